/* SPDX-License-Identifier: GPL-2.0 */
/* The global reason counters (ed_glob; reasons G_* in edged.h). */
#ifndef EDGED_GLOB_H
#define EDGED_GLOB_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "edged.h"
#include "maps.h"

/* Counts `reason` and returns `verdict`: a counted exit is one statement. */
static __always_inline int glob(__u32 reason, int verdict)
{
	__u64 *c = bpf_map_lookup_elem(&ed_glob, &reason);

	if (c)
		*c += 1;
	return verdict;
}

#endif
