/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ICMP errors about a VIP flow (IPv4 fragmentation-needed, IPv6
 * packet-too-big) go to the proxy owning the flow: the embedded header is
 * the proxy's reply (VIP -> client), so the flow is that header reversed.
 * Only the first 8 bytes of the inner L4 header are needed (the ports).
 */
#ifndef EDGED_ICMP_H
#define EDGED_ICMP_H

#define ICMP_DEST_UNREACH 3
#define ICMP_FRAG_NEEDED 4

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

static __always_inline int inner_flow(struct xdp_md *ctx, struct ethhdr *eth,
				      struct flow *f, void *l4, void *end,
				      __u32 from)
{
	struct l4ports *p = l4;
	int vip;

	if ((void *)(p + 1) > end)
		return glob(G_TRUNCATED, XDP_PASS);
	if (f->proto != IPPROTO_TCP && f->proto != IPPROTO_UDP)
		return glob(G_ICMP_OTHER, XDP_PASS);
	/* inner: VIP:port -> client; the flow is client -> VIP:port. */
	f->sport = p->dest;
	f->dport = p->source;
	vip = vip_match(f->dst, f->family, f->dport, f->proto);
	if (vip < 0)
		return glob(G_ICMP_OTHER, XDP_PASS);
	return forward(ctx, eth, f, vip, F_ICMP | from);
}

static __always_inline int handle_icmp4(struct xdp_md *ctx, struct ethhdr *eth,
					void *l4, void *end, __u32 from)
{
	struct icmphdr *ic = l4;
	struct iphdr *in = (void *)(ic + 1);
	struct flow f = {};

	if ((void *)(ic + 1) > end)
		return glob(G_TRUNCATED, XDP_PASS);
	if (ic->type != ICMP_DEST_UNREACH || ic->code != ICMP_FRAG_NEEDED)
		return XDP_PASS;
	if ((void *)(in + 1) > end)
		return glob(G_TRUNCATED, XDP_PASS);
	if (in->ihl < 5)
		return glob(G_BAD_IP, XDP_PASS);
	f.src[0] = in->daddr;
	f.dst[0] = in->saddr;
	f.proto = in->protocol;
	f.family = FAMILY_V4;
	return inner_flow(ctx, eth, &f, (void *)in + in->ihl * 4, end, from);
}

static __always_inline int handle_icmp6(struct xdp_md *ctx, struct ethhdr *eth,
					void *l4, void *end, __u32 from)
{
	struct icmp6hdr *ic = l4;
	struct ipv6hdr *in = (void *)(ic + 1);
	struct flow f = {};

	if ((void *)(ic + 1) > end)
		return glob(G_TRUNCATED, XDP_PASS);
	if (ic->icmp6_type != ICMPV6_PKT_TOOBIG)
		return XDP_PASS;
	if ((void *)(in + 1) > end)
		return glob(G_TRUNCATED, XDP_PASS);
	__builtin_memcpy(f.src, &in->daddr, 16);
	__builtin_memcpy(f.dst, &in->saddr, 16);
	f.proto = in->nexthdr;
	f.family = FAMILY_V6;
	return inner_flow(ctx, eth, &f, in + 1, end, from);
}

#endif
