/* SPDX-License-Identifier: GPL-2.0 */
/* The connection table (struct ct_bucket in edged.h): lookup and insert. */
#ifndef EDGED_CONNTRACK_H
#define EDGED_CONNTRACK_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#include "edged.h"

/* The way holding `fp`, or -1. */
static __always_inline int ct_find(const struct ct_bucket *b, __u64 fp)
{
	int found = -1;

#pragma unroll
	for (int w = 0; w < CT_WAYS; w++) {
		__u64 e = b->way[w];

		if (e && (e & CT_FP_MASK) == fp)
			found = w;
	}
	return found;
}

static __always_inline __u32 ct_proxy(__u64 e)
{
	return (e >> CT_PROXY_SHIFT) & 0xff;
}

/* Records fp -> proxy_id; returns the way used. */
static __always_inline int ct_insert(struct ct_bucket *b, __u64 fp,
				     __u32 proxy_id)
{
	int victim = -1, spare = -1;

#pragma unroll
	for (int w = CT_WAYS - 1; w >= 0; w--) {
		__u64 e = b->way[w];

		if (e == 0 || (e & CT_FP_MASK) == fp)
			victim = w;
		else if (!(e & CT_REF))
			spare = w;
	}
	if (victim < 0) {
		/* An eviction: the spare way, or a pseudo-random one when every
		 * way was used since the last eviction; second chances restart.
		 */
		victim = spare >= 0 ? spare : (int)((fp >> 9) & (CT_WAYS - 1));
#pragma unroll
		for (int w = 0; w < CT_WAYS; w++)
			if (b->way[w] & CT_REF)
				b->way[w] &= ~CT_REF;
	}
	victim &= CT_WAYS - 1;
	b->way[victim] = fp | ((__u64)proxy_id << CT_PROXY_SHIFT);
	return victim;
}

#endif
