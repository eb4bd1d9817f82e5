/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Connection handoff between edge nodes (struct handoff in edged.h).
 *
 * Out: a drained VIP's new TCP flow is given a peer slot (PROXY_PEER) in the
 * connection table; its packets get an outer IPv4 or IPv6 header from this
 * node to the peer and go back out of the uplink they came in on (XDP_TX),
 * MACs swapped, so the top-of-rack routes them to the peer.
 *
 * Shared ownership: each new flow this node serves is queued (ed_newflow)
 * for edged to tell the peers; a packet that misses the connection table
 * and is not a bare SYN goes to the peer that owns it (ed_owner), through
 * the same encapsulation.
 *
 * In: an untagged IPv4/IPv6 packet with protocol 4 (IPv4) or 41 (IPv6),
 * addressed to `local` from a listed peer, loses its outer header and is
 * handled as if it had arrived so; anything else of protocol 4/41 is
 * passed untouched (the host may have tunnels of its own).
 */
#ifndef EDGED_HANDOFF_H
#define EDGED_HANDOFF_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "edged.h"
#include "maps.h"
#include "glob.h"

#define F_FROM_PEER 16 /* decapsulated: never handed off again */

static __always_inline struct handoff *handoff_cfg(void)
{
	__u32 zero = 0;
	struct handoff *ho = bpf_map_lookup_elem(&ed_handoff, &zero);

	if (!ho || ho->family == 0 || ho->count == 0 || ho->count > MAX_PEERS)
		return 0;
	return ho;
}

/*
 * The peer slot for a new flow of `vip_id`, if the VIP hands off and the
 * frame can be encapsulated (untagged); 0 otherwise. `hi` is the flow's
 * second hash lane.
 */
static __always_inline struct proxy *
handoff_pick(__u32 vip_id, __u32 hi, const struct ethhdr *eth, __u32 *pid)
{
	__u32 *on = bpf_map_lookup_elem(&ed_vipho, &vip_id);
	struct handoff *ho;
	struct proxy *px;
	__u32 slot;

	if (!on || !*on)
		return 0;
	if (eth->h_proto != bpf_htons(ETH_P_IP) &&
	    eth->h_proto != bpf_htons(ETH_P_IPV6))
		return 0; /* VLAN-tagged: served here */
	ho = handoff_cfg();
	if (!ho)
		return 0;
	slot = PEER_SLOT_BASE +
	       ((((__u64)hi * ho->count) >> 32) & (MAX_PEERS - 1));
	px = bpf_map_lookup_elem(&ed_proxy, &slot);
	if (!px || px->kind != PROXY_PEER)
		return 0;
	*pid = slot;
	return px;
}

/*
 * Second chance: the peer slot of the node that owns the flow `fp` (a
 * packet this node has no entry for, after the top-of-rack moved the
 * flow here), if a peer told us it does and the frame can be
 * encapsulated; 0 otherwise.
 */
static __always_inline struct proxy *
owner_pick(__u64 fp, const struct ethhdr *eth, __u32 *pid)
{
	__u32 *k = bpf_map_lookup_elem(&ed_owner, &fp);
	struct proxy *px;
	__u32 slot;

	if (!k)
		return 0;
	if (eth->h_proto != bpf_htons(ETH_P_IP) &&
	    eth->h_proto != bpf_htons(ETH_P_IPV6))
		return 0;
	slot = PEER_SLOT_BASE + (*k & (MAX_PEERS - 1));
	px = bpf_map_lookup_elem(&ed_proxy, &slot);
	if (!px || px->kind != PROXY_PEER)
		return 0;
	*pid = slot;
	return px;
}

/* Queues a flow this node now serves for edged to tell the peers. */
static __always_inline void share_flow(__u64 fp)
{
	if (handoff_cfg() &&
	    bpf_ringbuf_output(&ed_newflow, &fp, sizeof(fp), BPF_RB_NO_WAKEUP))
		glob(G_SHARE_LOST, 0);
}

static __always_inline __u16 ip4_csum(const struct iphdr *ip)
{
	const __u16 *w = (const __u16 *)ip;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*ip) / 2); i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

/* Encapsulates the (untagged) frame to peer `k` and sends it back out. */
static __always_inline int handoff_encap(struct xdp_md *ctx, __u32 k)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct handoff *ho = handoff_cfg();
	__u8 to[ETH_ALEN], from[ETH_ALEN], inner;
	__u32 len;
	int outer;

	k &= MAX_PEERS - 1;
	if (!ho || (void *)(eth + 1) > end)
		return glob(G_HANDOFF_ERR, XDP_DROP);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end)
			return glob(G_HANDOFF_ERR, XDP_DROP);
		len = bpf_ntohs(ip->tot_len);
		inner = IPPROTO_IPIP;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return glob(G_HANDOFF_ERR, XDP_DROP);
		len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
		inner = IPPROTO_IPV6;
	} else {
		return glob(G_HANDOFF_ERR, XDP_DROP);
	}
	__builtin_memcpy(to, eth->h_source, ETH_ALEN);
	__builtin_memcpy(from, eth->h_dest, ETH_ALEN);
	outer = ho->family == FAMILY_V6 ? (int)sizeof(struct ipv6hdr)
					: (int)sizeof(struct iphdr);
	if (bpf_xdp_adjust_head(ctx, -outer))
		return glob(G_HANDOFF_ERR, XDP_DROP);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if (ho->family == FAMILY_V6) {
		struct ipv6hdr *o = (void *)(eth + 1);

		if ((void *)(o + 1) > end)
			return glob(G_HANDOFF_ERR, XDP_DROP);
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		*(__be32 *)o = bpf_htonl(0x60000000); /* version 6 */
		o->payload_len = bpf_htons(len);
		o->nexthdr = inner;
		o->hop_limit = 64;
		__builtin_memcpy(&o->saddr, ho->local, 16);
		__builtin_memcpy(&o->daddr, ho->peer[k], 16);
	} else {
		struct iphdr *o = (void *)(eth + 1);

		if ((void *)(o + 1) > end)
			return glob(G_HANDOFF_ERR, XDP_DROP);
		eth->h_proto = bpf_htons(ETH_P_IP);
		o->version = 4;
		o->ihl = 5;
		o->tos = 0;
		o->tot_len = bpf_htons(len + sizeof(*o));
		o->id = 0;
		o->frag_off = 0;
		o->ttl = 64;
		o->protocol = inner;
		o->check = 0;
		o->saddr = ho->local[0];
		o->daddr = ho->peer[k][0];
		o->check = ip4_csum(o);
	}
	__builtin_memcpy(eth->h_dest, to, ETH_ALEN);
	__builtin_memcpy(eth->h_source, from, ETH_ALEN);
	return glob(G_HANDOFF_OUT, XDP_TX);
}

static __always_inline int is_peer(const struct handoff *ho, const __u32 *a)
{
	int hit = 0;

#pragma unroll
	for (int i = 0; i < MAX_PEERS; i++) {
		if (i < (int)ho->count && ho->peer[i][0] == a[0] &&
		    ho->peer[i][1] == a[1] && ho->peer[i][2] == a[2] &&
		    ho->peer[i][3] == a[3])
			hit = 1;
	}
	return hit;
}

/*
 * Strips the outer header of a peer's handoff packet. 1: the frame now
 * holds the inner packet (pointers must be re-read); 0: not a handoff
 * packet, untouched; -1: a peer's packet with nothing inside (drop).
 */
static __always_inline int handoff_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 to[ETH_ALEN], from[ETH_ALEN], next;
	__u32 src[4] = {}, dst[4] = {};
	struct handoff *ho;
	int outer;

	if ((void *)(eth + 1) > end)
		return 0;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end || (ip->protocol != IPPROTO_IPIP &&
					       ip->protocol != IPPROTO_IPV6))
			return 0;
		ho = handoff_cfg();
		if (!ho || ho->family != FAMILY_V4 || ip->ihl != 5 ||
		    (ip->frag_off & bpf_htons(0x3fff)))
			return 0;
		src[0] = ip->saddr;
		dst[0] = ip->daddr;
		next = ip->protocol;
		outer = sizeof(*ip);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end || (ip6->nexthdr != IPPROTO_IPIP &&
						ip6->nexthdr != IPPROTO_IPV6))
			return 0;
		ho = handoff_cfg();
		if (!ho || ho->family != FAMILY_V6)
			return 0;
		__builtin_memcpy(src, &ip6->saddr, 16);
		__builtin_memcpy(dst, &ip6->daddr, 16);
		next = ip6->nexthdr;
		outer = sizeof(*ip6);
	} else {
		return 0;
	}
	if (dst[0] != ho->local[0] || dst[1] != ho->local[1] ||
	    dst[2] != ho->local[2] || dst[3] != ho->local[3] ||
	    !is_peer(ho, src))
		return 0;
	__builtin_memcpy(to, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(from, eth->h_source, ETH_ALEN);
	if (bpf_xdp_adjust_head(ctx, outer))
		return 0;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return -1;
	__builtin_memcpy(eth->h_dest, to, ETH_ALEN);
	__builtin_memcpy(eth->h_source, from, ETH_ALEN);
	eth->h_proto = bpf_htons(next == IPPROTO_IPIP ? ETH_P_IP : ETH_P_IPV6);
	glob(G_HANDOFF_IN, 0);
	return 1;
}

#endif
