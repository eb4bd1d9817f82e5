/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ICMP errors about a VIP flow (IPv4 fragmentation-needed, IPv6
 * packet-too-big) go to the proxy owning the flow: the embedded header is
 * the proxy's reply (VIP -> client), so the flow is that header reversed.
 * Only the first 8 bytes of the inner L4 header are needed (the ports).
 * This header finds the flow; the program looks it up and forwards.
 */
#ifndef EDGED_ICMP_H
#define EDGED_ICMP_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_helpers.h>

#include "edged.h"
#include "glob.h"

#define ICMP_DEST_UNREACH 3
#define ICMP_FRAG_NEEDED 4

/* Returned by icmp4_flow and icmp6_flow when *f holds the error's flow;
 * anything else is the packet's verdict. Never an XDP action. */
#define ICMP_FLOW (-1)

/* linux/icmp.h drags libc headers in; the 8 bytes we need. */
struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__u32 rest;
};

struct l4ports {
	__be16 source;
	__be16 dest;
	__u32 rest;
};

/* The quoted ports, reversed: the flow is client -> VIP:port. */
static __always_inline int icmp_ports(struct flow *f, void *l4, void *end)
{
	struct l4ports *p = l4;

	if ((void *)(p + 1) > end)
		return glob(G_TRUNCATED, XDP_PASS);
	if (f->proto != IPPROTO_TCP && f->proto != IPPROTO_UDP)
		return glob(G_ICMP_OTHER, XDP_PASS);
	f->sport = p->dest;
	f->dport = p->source;
	return ICMP_FLOW;
}

/* The flow an IPv4 fragmentation-needed error at `l4` is about, into a
 * zeroed *f. */
static __always_inline int icmp4_flow(struct flow *f, void *l4, void *end)
{
	struct icmphdr *ic = l4;
	struct iphdr *in = (void *)(ic + 1);

	if ((void *)(ic + 1) > end)
		return glob(G_TRUNCATED, XDP_PASS);
	if (ic->type != ICMP_DEST_UNREACH || ic->code != ICMP_FRAG_NEEDED)
		return XDP_PASS;
	if ((void *)(in + 1) > end)
		return glob(G_TRUNCATED, XDP_PASS);
	if (in->ihl < 5)
		return glob(G_BAD_IP, XDP_PASS);
	f->src[0] = in->daddr;
	f->dst[0] = in->saddr;
	f->proto = in->protocol;
	f->family = FAMILY_V4;
	return icmp_ports(f, (void *)in + in->ihl * 4, end);
}

/* The flow an ICMPv6 packet-too-big at `l4` is about, into a zeroed *f. */
static __always_inline int icmp6_flow(struct flow *f, void *l4, void *end)
{
	struct icmp6hdr *ic = l4;
	struct ipv6hdr *in = (void *)(ic + 1);

	if ((void *)(ic + 1) > end)
		return glob(G_TRUNCATED, XDP_PASS);
	if (ic->icmp6_type != ICMPV6_PKT_TOOBIG)
		return XDP_PASS;
	if ((void *)(in + 1) > end)
		return glob(G_TRUNCATED, XDP_PASS);
	__builtin_memcpy(f->src, &in->daddr, 16);
	__builtin_memcpy(f->dst, &in->saddr, 16);
	f->proto = in->nexthdr;
	f->family = FAMILY_V6;
	return icmp_ports(f, in + 1, end);
}

#endif
