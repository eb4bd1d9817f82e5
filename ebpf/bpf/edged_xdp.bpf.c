// SPDX-License-Identifier: GPL-2.0
/*
 * edged XDP forwarder: VIP packets go to one local proxy picked by a weighted
 * Maglev ring and remembered in an LRU connection table; everything else is
 * XDP_PASSed untouched.
 *
 * Fragments: never guess a port. A fragment (first or later) whose
 * destination is a VIP address is XDP_PASSed and counted (frag_pass): the
 * host reassembles it. IPv6 extension headers likewise (ext_pass).
 *
 * Handoff (handoff.h): while a VIP is drained its new TCP flows go to peer
 * edge nodes, encapsulated; a peer's encapsulated packets are unwrapped
 * and served here.
 *
 * Bench build (-DEDGED_BENCH_FRESH_FLOW, bench.h): after handling a TCP
 * packet the entry point bumps its source port (and address on wrap), so
 * BPF_PROG_TEST_RUN's repeats each see a fresh flow; the paths themselves
 * are the production ones.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "edged.h"
#include "maps.h"
#include "glob.h"
#include "conntrack.h"
#include "handoff.h"
#include "icmp.h"
#include "bench.h"
/* XDP_PASS of a VIP packet to the host on purpose (host-stack proxy, or no
 * healthy proxy with `pass`): the entry point turns it into XDP_PASS. Any
 * other pass of an unwrapped peer packet is dropped instead, so a peer can
 * only hand us VIP traffic. */
#define V_HOST 0x100

#define F_NEW_OK 1    /* a miss may record the flow (bare SYN, UDP) */
#define F_TCP_NOSYN 2 /* TCP, not a bare SYN: never recorded */
#define F_ICMP 4
#define F_UDP 8
#define F_BAD_SYN 32 /* SYN with RST or FIN (with F_TCP_NOSYN): counted */
#define F_TCP_END 64 /* FIN or RST: the client ends the connection */

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_ACK 0x10

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

/*
 * Only a bare SYN (ACK, RST and FIN clear; ECN and other bits do not
 * matter) opens a connection. A SYN with RST or FIN is no new flow: it
 * follows the flow's entry, and without one it is a non-SYN miss.
 */
static __always_inline __u32 tcp_kind(const struct tcphdr *th)
{
	__u8 f = ((const __u8 *)th)[13];

	if ((f & (TH_SYN | TH_ACK | TH_RST | TH_FIN)) == TH_SYN)
		return F_NEW_OK;
	if ((f & TH_SYN) && (f & (TH_RST | TH_FIN)))
		return F_TCP_NOSYN | F_BAD_SYN;
	if (f & (TH_RST | TH_FIN))
		return F_TCP_NOSYN | F_TCP_END;
	return F_TCP_NOSYN;
}

static __always_inline __u32 mix(__u32 h, __u32 w)
{
	w *= 0xcc9e2d51;
	w = (w << 15) | (w >> 17);
	w *= 0x1b873593;
	h ^= w;
	h = (h << 13) | (h >> 19);
	return h * 5 + 0xe6546b64;
}

static __always_inline __u32 fmix(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	return h ^ (h >> 16);
}

/*
 * Seeded 64-bit hash of the 5-tuple: two murmur3-style lanes with
 * different seeds. The low lane picks the Maglev slot and the connection
 * table set; both lanes are the flow's fingerprint in that set.
 */
static __always_inline __u64 flow_hash(const struct flow *f, __u32 seed)
{
	__u32 a = seed, b = seed ^ 0x9e3779b9;

	if (f->family == FAMILY_V6) {
#pragma unroll
		for (int i = 1; i < 4; i++) {
			a = mix(a, f->src[i]);
			b = mix(b, f->src[i] ^ 0x7f4a7c15);
			a = mix(a, f->dst[i]);
			b = mix(b, f->dst[i] ^ 0x7f4a7c15);
		}
	}
	__u32 w[4] = {f->src[0], f->dst[0], ((__u32)f->sport << 16) | f->dport,
		      ((__u32)f->family << 8) | f->proto};

#pragma unroll
	for (int i = 0; i < 4; i++) {
		a = mix(a, w[i]);
		b = mix(b, w[i] ^ 0x7f4a7c15);
	}
	return ((__u64)fmix(b) << 32) | fmix(a);
}

/* Set by the loader: ed_vipidx has 2^(32 - shift) slots (edged_cfg's
 * vip_index_bits). A constant of the loaded program, not a map lookup. */
volatile const __u32 edged_vip_index_shift = 32 - VIP_INDEX_BITS;

/*
 * The ed_vipidx entry of a destination, at a hash of its address (the
 * words in host order, multiplied by odd constants and summed; the top
 * bits of the sum): vip_id + 1, 0 for no VIP, VIP_INDEX_COLLIDE when
 * several VIPs share the slot. Looked up once per packet, before the L4
 * header is parsed, so that traffic to no VIP is passed after one array
 * lookup. keys.rs computes the same slot.
 */
static __always_inline __u32 vip_index(const __u32 *addr, __u8 family)
{
	__u32 h = bpf_ntohl(addr[0]) * 0x9e3779b1;

	if (family == FAMILY_V6)
		h += bpf_ntohl(addr[1]) * 0x85ebca77 +
		     bpf_ntohl(addr[2]) * 0xc2b2ae3d +
		     bpf_ntohl(addr[3]) * 0x27d4eb2f;
	h >>= edged_vip_index_shift & 31;
	__u32 *idx = bpf_map_lookup_elem(&ed_vipidx, &h);

	return idx ? *idx : 0;
}

/*
 * The VIP id of (addr, port, proto), or -1; `idx` is vip_index(addr).
 * proto 0 matches the address alone (fragments, extension headers). Two
 * inlined array lookups and up to VIP_PORTS compares; the hash map only
 * when two VIPs share the index slot or the VIP has more ports.
 */
static __always_inline int vip_match(__u32 idx, const __u32 *addr, __u8 family,
				     __u16 port, __u8 proto)
{
	__u32 id, want;

	if (idx == 0)
		return -1;
	if (idx == VIP_INDEX_COLLIDE)
		goto slow;
	id = idx - 1;
	struct vip_info *vi = bpf_map_lookup_elem(&ed_vipinfo, &id);

	if (!vi || vi->family != family || vi->addr[0] != addr[0] ||
	    vi->addr[1] != addr[1] || vi->addr[2] != addr[2] ||
	    vi->addr[3] != addr[3])
		return -1;
	if (proto == 0)
		return id;
	want = ((__u32)proto << 16) | port;
#pragma unroll
	for (int i = 0; i < VIP_PORTS; i++)
		if (vi->port[i] == want)
			return id;
	if (!(vi->flags & VIP_MANY_PORTS))
		return -1;
slow:;
	struct vip_key k = {
		.port = proto ? port : 0, .proto = proto, .family = family};
	struct vip_val *vv;

	__builtin_memcpy(k.addr, addr, 16);
	vv = bpf_map_lookup_elem(&ed_vips, &k);
	return vv ? (int)vv->vip_id : -1;
}

static __always_inline void count_vip(int vip, int frag)
{
	__u32 id = vip;
	struct vip_counters *vc;

	if (vip < 0)
		return;
	vc = bpf_map_lookup_elem(&ed_vipcnt, &id);
	if (!vc)
		return;
	if (frag)
		vc->frag_pass += 1;
	else
		vc->ext_pass += 1;
}

static __always_inline int no_healthy(struct vip_counters *vc, __u32 action)
{
	if (action == NO_HEALTHY_PASS) {
		if (vc)
			vc->pass_no_healthy += 1;
		return V_HOST;
	}
	if (vc)
		vc->drop_no_healthy += 1;
	return XDP_DROP;
}

/* The UDP idle clock of a table entry. */
static __always_inline __u32 *ct_time(__u32 bkt, int way)
{
	__u32 i = bkt * CT_WAYS + (way & (CT_WAYS - 1));

	return bpf_map_lookup_elem(&ed_ctts, &i);
}

/*
 * While a VIP is held back (its handoff flag set: a drain, maintenance, a
 * stop), the TCP connections it still serves here, for edged to count
 * (ed_held): each packet refreshes its flow's last-seen time; the
 * client's FIN or RST marks it ended, and only a bare SYN (the 5-tuple
 * reused) makes it live again, so the last ACK after a FIN does not.
 */
static __always_inline void held_seen(__u32 vip_id, __u64 fp, __u32 flags)
{
	__u32 *on = bpf_map_lookup_elem(&ed_vipho, &vip_id);
	__u32 now, mark;
	struct held *e;

	if (!on || !*on)
		return;
	now = bpf_ktime_get_coarse_ns() >> 20;
	mark = (flags & F_TCP_END) ? HELD_ENDED : 0;
	e = bpf_map_lookup_elem(&ed_held, &fp);
	if (e) {
		if ((e->vip & HELD_ENDED) && !(flags & F_NEW_OK))
			return;
		e->vip = vip_id | mark;
		e->last = now;
		return;
	}
	if (mark)
		return; /* ends a connection not seen since the drain began */
	struct held v = {.vip = vip_id, .last = now};

	bpf_map_update_elem(&ed_held, &fp, &v, BPF_ANY);
}

/* Picks (or recalls) the flow's proxy and delivers the frame to it. */
static __always_inline int forward(struct xdp_md *ctx, struct ethhdr *eth,
				   const struct flow *f, __u32 vip_id,
				   __u32 flags)
{
	__u64 len = ctx->data_end - ctx->data;
	struct vip_counters *vc = bpf_map_lookup_elem(&ed_vipcnt, &vip_id);
	__u32 zero = 0, pid = 0, hash, bkt, now, *t;
	struct edged_cfg *cfg = bpf_map_lookup_elem(&ed_cfg, &zero);
	struct ct_bucket *b;
	struct proxy *px = 0;
	int is_new = 0, second = 0, way;
	__u64 h;

	if ((flags & F_BAD_SYN) && vc)
		vc->bad_tcp_flags += 1;
	if (!cfg || cfg->table_size == 0)
		return glob(G_NO_PROXY, XDP_DROP);
	h = flow_hash(f, cfg->hash_seed);
	hash = h;
	bkt = hash & (cfg->ct_buckets - 1);
	b = bpf_map_lookup_elem(&ed_ct, &bkt);
	if (!b)
		return glob(G_NO_PROXY, XDP_DROP);
	h = (h & CT_FP_MASK) | (1ULL << 63); /* never 0: 0 is an empty way */
	way = ct_find(b, h);
	if (way >= 0) {
		__u64 *e = &b->way[way & (CT_WAYS - 1)];

		pid = ct_proxy(*e);
		px = bpf_map_lookup_elem(&ed_proxy, &pid);
		if (px && (flags & F_UDP)) {
			now = bpf_ktime_get_coarse_ns() >> 20;
			t = ct_time(bkt, way);
			if (t && now - *t > (cfg->udp_timeout_ns >> 20))
				px = 0; /* idle too long: pick again */
			else if (t)
				*t = now;
		} else if (!(*e & CT_REF)) {
			*e |= CT_REF;
		}
	}
	/* A bare SYN opens a new connection: pick afresh, so that a reused
	 * 5-tuple does not follow an old connection's entry to a proxy that
	 * has left the table since. */
	if ((flags & (F_NEW_OK | F_UDP)) == F_NEW_OK)
		px = 0;
	if (px && px->kind == PROXY_PEER && (flags & F_FROM_PEER))
		px = 0; /* a peer handed it back: serve it here, never loop */
	if (!px || px->kind == PROXY_NONE) {
		px = 0;
		way = -1; /* pick afresh and record */
		/* bits 31..62 of the fingerprint: the second lane (63 set) */
		if ((flags & (F_NEW_OK | F_UDP | F_FROM_PEER)) == F_NEW_OK)
			px = handoff_pick(vip_id, h >> 31, eth, &pid);
		else if (!(flags & (F_FROM_PEER | F_ICMP)))
			second = (px = owner_pick(h, eth, &pid)) != 0;
	}
	if (!px) {
		struct vip_state *st = bpf_map_lookup_elem(&ed_vipst, &vip_id);
		struct pool_state *ps;
		__u32 half, idx, ring_slot, pool;
		__u64 *word;

		if (!st)
			return no_healthy(vc, NO_HEALTHY_DROP);
		pool = st->pool;
		ps = bpf_map_lookup_elem(&ed_poolst, &pool);
		if (!ps)
			return no_healthy(vc, st->no_healthy);
		half = ps->active & 1;
		if (ps->count[half] == 0)
			return no_healthy(vc, st->no_healthy);
		/* hash * M >> 32: uniform over [0, M) without a division. */
		ring_slot = ((__u64)hash * cfg->table_size) >> 32;
		idx = (pool * 2 + half) * ((cfg->table_size + 7) / 8) +
		      ring_slot / 8;
		word = bpf_map_lookup_elem(&ed_ring, &idx);
		if (!word)
			return glob(G_NO_PROXY, XDP_DROP);
		pid = (*word >> ((ring_slot % 8) * 8)) & 0xff;
		px = bpf_map_lookup_elem(&ed_proxy, &pid);
		if (!px || px->kind == PROXY_NONE || px->kind == PROXY_PEER)
			return glob(G_NO_PROXY, XDP_DROP);
	}
	if (way < 0) {
		if (flags & F_NEW_OK || second) {
			way = ct_insert(b, h, pid);
			if (flags & F_UDP) {
				t = ct_time(bkt, way);
				if (t)
					*t = bpf_ktime_get_coarse_ns() >> 20;
			}
			is_new = !second;
		} else if ((flags & F_TCP_NOSYN) && vc) {
			vc->nonsyn_miss += 1;
		}
	}

	struct proxy_counters *pc = bpf_map_lookup_elem(&ed_pxcnt, &pid);

	if (vc) {
		vc->packets += 1;
		vc->bytes += len;
		vc->new_flows += is_new;
		vc->second_chance += second;
		if (flags & F_ICMP)
			vc->icmp_fwd += 1;
	}
	if (pc) {
		pc->packets += 1;
		pc->bytes += len;
		pc->new_flows += is_new;
	}
	if (px->kind == PROXY_PEER)
		return handoff_encap(ctx, pid - PEER_SLOT_BASE);
	if (is_new)
		share_flow(h);
	if (!(flags & (F_UDP | F_ICMP)))
		held_seen(vip_id, h, flags);
	if (px->kind == PROXY_HOST)
		return V_HOST;
	__builtin_memcpy(eth->h_dest, px->mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, px->src_mac, ETH_ALEN);
	if (px->ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect_map(&ed_tx, pid, XDP_DROP);
}

/*
 * TCP or UDP to a VIP, either family: f holds the addresses, protocol and
 * family; `idx` is vip_index(f->dst). Each protocol has its own call of
 * vip_match and forward, so that each is inlined with its protocol and
 * flags known (UDP's idle clock is no branch on the TCP path).
 */
static __always_inline int handle_l4(struct xdp_md *ctx, struct ethhdr *eth,
				     struct flow *f, void *l4, void *end,
				     __u32 idx, __u32 from)
{
	int vip;

	if (f->proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;

		if ((void *)(th + 1) > end)
			return glob(G_TRUNCATED, XDP_PASS);
		f->sport = th->source;
		f->dport = th->dest;
		vip = vip_match(idx, f->dst, f->family, f->dport, IPPROTO_TCP);
		if (vip < 0)
			return XDP_PASS;
		return forward(ctx, eth, f, vip, tcp_kind(th) | from);
	}
	struct udphdr *uh = l4;

	if ((void *)(uh + 1) > end)
		return glob(G_TRUNCATED, XDP_PASS);
	f->sport = uh->source;
	f->dport = uh->dest;
	vip = vip_match(idx, f->dst, f->family, f->dport, IPPROTO_UDP);
	if (vip < 0)
		return XDP_PASS;
	return forward(ctx, eth, f, vip, F_NEW_OK | F_UDP | from);
}

/* An ICMP error about the flow in *f (icmp.h): to the proxy owning it. The
 * quoted header names the VIP itself, so its address is matched anew. */
static __always_inline int handle_icmp(struct xdp_md *ctx, struct ethhdr *eth,
				       struct flow *f, __u32 from)
{
	int vip = vip_match(vip_index(f->dst, f->family), f->dst, f->family,
			    f->dport, f->proto);
	if (vip < 0)
		return glob(G_ICMP_OTHER, XDP_PASS);
	return forward(ctx, eth, f, vip, F_ICMP | from);
}

static __always_inline int handle_v4(struct xdp_md *ctx, struct ethhdr *eth,
				     void *l3, void *end, __u32 from)
{
	struct iphdr *iph = l3;
	struct flow f = {};
	__u32 idx;
	void *l4;

	if ((void *)(iph + 1) > end)
		return glob(G_TRUNCATED, XDP_PASS);
	f.dst[0] = iph->daddr;
	idx = vip_index(f.dst, FAMILY_V4);
	if (idx == 0)
		return XDP_PASS; /* not a VIP: the pass path stops here */
	if (iph->version != 4 || iph->ihl < 5)
		return glob(G_BAD_IP, XDP_PASS);
	f.src[0] = iph->saddr;
	f.family = FAMILY_V4;
	f.proto = iph->protocol;
	if (iph->frag_off & bpf_htons(0x3fff)) {
		count_vip(vip_match(idx, f.dst, FAMILY_V4, 0, 0), 1);
		return XDP_PASS;
	}
	l4 = l3 + iph->ihl * 4;
	if (f.proto == IPPROTO_TCP || f.proto == IPPROTO_UDP)
		return handle_l4(ctx, eth, &f, l4, end, idx, from);
	if (f.proto == IPPROTO_ICMP) {
		struct flow in = {};
		int v = icmp4_flow(&in, l4, end);

		return v == ICMP_FLOW ? handle_icmp(ctx, eth, &in, from) : v;
	}
	return XDP_PASS;
}

static __always_inline int handle_v6(struct xdp_md *ctx, struct ethhdr *eth,
				     void *l3, void *end, __u32 from)
{
	struct ipv6hdr *ip6 = l3;
	struct flow f = {};
	void *l4 = ip6 + 1;
	__u32 idx;

	if (l4 > end)
		return glob(G_TRUNCATED, XDP_PASS);
	__builtin_memcpy(f.dst, &ip6->daddr, 16);
	idx = vip_index(f.dst, FAMILY_V6);
	if (idx == 0)
		return XDP_PASS;
	if (ip6->version != 6) /* as IPv4: only VIP frames pay for it */
		return glob(G_BAD_IP, XDP_PASS);
	__builtin_memcpy(f.src, &ip6->saddr, 16);
	f.family = FAMILY_V6;
	f.proto = ip6->nexthdr;
	if (f.proto == IPPROTO_TCP || f.proto == IPPROTO_UDP)
		return handle_l4(ctx, eth, &f, l4, end, idx, from);
	if (f.proto == IPPROTO_ICMPV6) {
		struct flow in = {};
		int v = icmp6_flow(&in, l4, end);

		return v == ICMP_FLOW ? handle_icmp(ctx, eth, &in, from) : v;
	}
	/* Fragment or other extension header: never guess a port. */
	count_vip(vip_match(idx, f.dst, FAMILY_V6, 0, 0),
		  f.proto == IPPROTO_FRAGMENT);
	return XDP_PASS;
}

/* Parses the frame as it is now in ctx (after any decapsulation). */
static __always_inline int dispatch(struct xdp_md *ctx, __u32 from)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *l3 = eth + 1;
	__u16 proto;

	if (l3 > end)
		return glob(G_TRUNCATED, from ? XDP_DROP : XDP_PASS);
	proto = eth->h_proto;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) &&
		    proto != bpf_htons(ETH_P_8021AD))
			break;
		struct vlan_hdr *vh = l3;

		if ((void *)(vh + 1) > end)
			return glob(G_TRUNCATED, XDP_PASS);
		proto = vh->proto;
		l3 = vh + 1;
	}
	if (proto == bpf_htons(ETH_P_IP))
		return handle_v4(ctx, eth, l3, end, from);
	if (proto == bpf_htons(ETH_P_IPV6))
		return handle_v6(ctx, eth, l3, end, from);
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD))
		return glob(G_VLAN_DEEP, XDP_PASS);
	return XDP_PASS;
}

SEC("xdp")
int edged_xdp(struct xdp_md *ctx)
{
	int d = handoff_decap(ctx);
	int v;

	if (d < 0)
		return glob(G_TRUNCATED, XDP_DROP);
	v = dispatch(ctx, d > 0 ? F_FROM_PEER : 0);
#ifdef EDGED_BENCH_FRESH_FLOW
	if (v != XDP_PASS)
		bench_next_flow(ctx); /* handled, not passed: the next flow */
#endif
	if (v == V_HOST)
		return XDP_PASS;
	if (d > 0 && v == XDP_PASS)
		/* unwrapped, but not a VIP's */
		return glob(G_HANDOFF_ERR, XDP_DROP);
	return v;
}

char _license[] SEC("license") = "GPL";
