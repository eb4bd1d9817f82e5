/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Layout shared between the XDP program and the Rust loader
 * (ebpf/src/abi.rs mirrors every struct here, with size and offset
 * assertions). Bump EDGED_LAYOUT_VERSION on any change to a struct or map.
 */
#ifndef EDGED_H
#define EDGED_H

#include <linux/types.h>

#define EDGED_LAYOUT_VERSION 12

/* Sizes of the VIP maps at build; the loader sets them from the spec
 * (edged_cfg says which), so these only bound what a map starts with. */
#define MAX_VIPS 64
#define MAX_POOLS MAX_VIPS
#define MAX_PROXIES 256 /* slots; the last MAX_PEERS are handoff peers */
#define MAX_PEERS 8
#define PEER_SLOT_BASE (MAX_PROXIES - MAX_PEERS)
#define MAX_VIP_KEYS 4096
#define VIP_INDEX_BITS 16 /* ed_vipidx: 2^bits slots, a hash of the address */
#define VIP_INDEX_COLLIDE 0xffffffff /* two VIPs share a slot: use ed_vips */
#define VIP_PORTS 8	 /* ports a VIP's ed_vipinfo entry holds inline */
#define VIP_MANY_PORTS 1 /* vip_info.flags: more ports, in ed_vips only */

#define FAMILY_V4 4
#define FAMILY_V6 6

#define PROXY_NONE 0
#define PROXY_L2 1
#define PROXY_HOST 2
#define PROXY_PEER 3 /* another edge node: encapsulate (ed_handoff) */

#define NO_HEALTHY_DROP 0
#define NO_HEALTHY_PASS 1

/* Global reasons (ed_glob index). */
#define G_TRUNCATED 0	/* a header ended before its bounds: passed */
#define G_VLAN_DEEP 1	/* more than two VLAN tags: passed */
#define G_BAD_IP 2	/* bad version or IHL: passed */
#define G_NO_PROXY 3	/* ring pointed at an empty proxy slot: dropped */
#define G_ICMP_OTHER 4	/* ICMP error about a non-VIP or non-TCP/UDP flow */
#define G_HANDOFF_OUT 5 /* encapsulated to a peer node: XDP_TX */
#define G_HANDOFF_IN 6	/* decapsulated from a peer node */
#define G_HANDOFF_ERR 7 /* not encapsulable, or unwrapped non-VIP: dropped */
#define G_SHARE_LOST 8	/* a new flow not queued for the peers (ring full) */
#define G_NUM 9

/* ed_cfg[0]: written once by the loader, read on the miss path. */
struct edged_cfg {
	__u32 version;
	__u32 table_size;
	__u32 hash_seed;
	__u32 max_vips;
	__u64 udp_timeout_ns;
	__u32 conntrack_entries;
	__u32 no_healthy;
	__u32 ct_buckets;     /* power of two */
	__u32 peer_flows;     /* ed_owner's size */
	__u32 vip_index_bits; /* ed_vipidx has 2^bits slots */
	__u32 max_pools;
	__u32 max_vip_keys; /* ed_vips' size */
	__u32 pad;
};

/* ed_vips key; port 0 + proto 0 is the address-only entry of a VIP. */
struct vip_key {
	__u32 addr[4]; /* network order; IPv4 in addr[0], rest zero */
	__u16 port;    /* network order */
	__u8 proto;
	__u8 family;
};

struct vip_val {
	__u32 vip_id;
	__u32 flags;
};

/* ed_vipinfo[vip_id]: the address, checked after the ed_vipidx hit, and
 * up to VIP_PORTS of its ports inline (the rest in ed_vips). */
struct vip_info {
	__u32 addr[4];
	__u32 family;	       /* 0 = slot unused */
	__u32 port[VIP_PORTS]; /* proto << 16 | port (network order); 0 none */
	__u32 flags;	       /* VIP_MANY_PORTS */
};

/* ed_vipst[vip_id]: the VIP's pool and what its packets meet when the
 * pool has no healthy proxy. */
struct vip_state {
	__u32 pool;
	__u32 no_healthy; /* NO_HEALTHY_* */
};

/*
 * ed_poolst[pool]: a pool is one Maglev table over a set of (proxy,
 * weight), shared by every VIP with that serving set; which half of its
 * ring is live.
 */
struct pool_state {
	__u32 active;	/* 0 or 1 */
	__u32 count[2]; /* proxies in each half; 0 = no healthy proxy */
	__u32 pad;
};

/*
 * ed_handoff[0]: connection handoff between edge nodes. While a VIP is
 * drained, the node keeps its route for a while but sends the VIP's new TCP
 * connections to peer nodes, encapsulated (IPv4 protocol 4 or 41, IPv6 next
 * header 4 or 41) and XDP_TXed back to the top-of-rack; the peer's program
 * strips the outer header (only from a listed peer to `local`) and forwards
 * the inner packet as its own. Established flows stay; when the route goes,
 * the handed-off flows already live on the peers.
 */
struct handoff {
	__u32 local[4]; /* this node's address: peers send to it */
	__u32 family;	/* of local and the peers; 0 = handoff off */
	__u32 count;	/* peers in use */
	__u32 peer[MAX_PEERS][4];
};

/* ed_held[fingerprint]: a connection of a held-back VIP, last seen then
 * (bpf_ktime_get_coarse_ns() >> 20, about milliseconds). */
#define HELD_ENDED 0x80000000 /* in vip: the client sent FIN or RST */
struct held {
	__u32 vip; /* vip_id, | HELD_ENDED */
	__u32 last;
};

/* ed_proxy[proxy_id] */
struct proxy {
	__u8 mac[6];	 /* destination: the proxy's interface */
	__u8 src_mac[6]; /* source: our egress interface */
	__u32 ifindex;	 /* egress interface (devmap ed_tx holds it too) */
	__u32 kind;	 /* PROXY_* */
};

/* ed_ct key: the 5-tuple as seen on ingress. */
struct flow {
	__u32 src[4];
	__u32 dst[4];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

/*
 * Connection table: ed_ct[hash & (ct_buckets - 1)] is a set of CT_WAYS
 * 8-byte entries, shared by all CPUs, read and written inline (no helper
 * call). An entry is written with one aligned 8-byte store, so it is
 * never torn. It holds a fingerprint of the 5-tuple (the 55 high bits of
 * its 64-bit hash; with the set index, a false match has a chance of about
 * 2^-43 per lookup), the proxy slot and a "used since" bit. Replacement in
 * a set: an empty way, else one whose bit is clear (the bits then restart:
 * second chance, an approximation of LRU). UDP flows also keep a coarse
 * last-use time in ed_ctts (same index) for the idle timeout. An entry
 * keeps the fingerprint, not the 5-tuple: 8 bytes a flow (what that buys
 * is measured by the miss path of benches/xdp.rs).
 */
#define CT_WAYS 4
#define CT_FP_MASK (~0x1ffULL) /* bits 9..63: fingerprint */
#define CT_PROXY_SHIFT 1       /* bits 1..8: proxy slot */
#define CT_REF 1ULL	       /* bit 0: used since the last eviction */

struct ct_bucket {
	__u64 way[CT_WAYS];
};

struct vip_counters {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;
	__u64 nonsyn_miss;
	__u64 drop_no_healthy;
	__u64 pass_no_healthy;
	__u64 frag_pass;
	__u64 icmp_fwd;
	__u64 ext_pass;
	__u64 bad_tcp_flags; /* SYN with RST or FIN: not a new flow */
	__u64 second_chance; /* missed here, sent to the peer owning it */
};

struct proxy_counters {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;
};

/* ed_pxname[proxy_id]: the proxy's name, so a restarted edged re-adopts
 * the slot numbers the connection table refers to. Userspace only. */
struct proxy_name {
	char name[64];
};

/* The Rust side (src/abi.rs) asserts the same sizes and offsets. */
_Static_assert(sizeof(struct edged_cfg) == 56, "edged_cfg");
_Static_assert(__builtin_offsetof(struct edged_cfg, udp_timeout_ns) == 16,
	       "cfg");
_Static_assert(sizeof(struct vip_key) == 20, "vip_key");
_Static_assert(__builtin_offsetof(struct vip_key, port) == 16, "vip_key");
_Static_assert(sizeof(struct vip_val) == 8, "vip_val");
_Static_assert(sizeof(struct vip_info) == 56, "vip_info");
_Static_assert(sizeof(struct vip_state) == 8, "vip_state");
_Static_assert(sizeof(struct pool_state) == 16, "pool_state");
_Static_assert(sizeof(struct proxy) == 20, "proxy");
_Static_assert(__builtin_offsetof(struct proxy, ifindex) == 12, "proxy");
_Static_assert(sizeof(struct flow) == 40, "flow");
_Static_assert(__builtin_offsetof(struct flow, proto) == 36, "flow");
_Static_assert(sizeof(struct ct_bucket) == 32, "ct_bucket");
_Static_assert(MAX_PROXIES <= 256, "proxy slot fits 8 bits");
_Static_assert(sizeof(struct vip_counters) == 88, "vip_counters");
_Static_assert(sizeof(struct proxy_counters) == 24, "proxy_counters");
_Static_assert(sizeof(struct proxy_name) == 64, "proxy_name");
_Static_assert(sizeof(struct handoff) == 152, "handoff");
_Static_assert(sizeof(struct held) == 8, "held");

#endif
