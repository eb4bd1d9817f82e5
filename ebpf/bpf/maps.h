/* SPDX-License-Identifier: GPL-2.0 */
/* Maps of the edged XDP program; all pinned by name under edged's bpffs dir. */
#ifndef EDGED_MAPS_H
#define EDGED_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "edged.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct edged_cfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ed_cfg SEC(".maps");

/* Authoritative VIP keys; the fast path asks it only on an index collision
 * or for a port beyond a VIP's inline ones. Maps of VIPs and pools are
 * resized by the loader (edged_cfg). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_VIP_KEYS);
	__type(key, struct vip_key);
	__type(value, struct vip_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ed_vips SEC(".maps");

/* Hash of the destination -> vip_id + 1 (0: no VIP; COLLIDE: ask ed_vips);
 * 2^vip_index_bits slots (resized by the loader). Array lookups are
 * inlined by the verifier: the VIP match makes no call. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << VIP_INDEX_BITS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ed_vipidx SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_VIPS);
	__type(key, __u32);
	__type(value, struct vip_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ed_vipinfo SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_VIPS);
	__type(key, __u32);
	__type(value, struct vip_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ed_vipst SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_POOLS);
	__type(key, __u32);
	__type(value, struct pool_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ed_poolst SEC(".maps");

/* Maglev rings, one per pool, 8 proxy slots (one byte each) per word, two
 * halves (ed_poolst says which is live): word (pool * 2 + half) *
 * ring_words + slot / 8, byte slot % 8, ring_words = (M + 7) / 8.
 * Resized by the loader.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_POOLS * 2 * 8193);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ed_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_PROXIES);
	__type(key, __u32);
	__type(value, struct proxy);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ed_proxy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_PROXIES);
	__type(key, __u32);
	__type(value, struct proxy_name);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ed_pxname SEC(".maps");

/* Connection handoff to peer nodes (struct handoff). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct handoff);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ed_handoff SEC(".maps");

/* ed_vipho[vip_id] = 1: the VIP's new TCP connections go to peer nodes. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_VIPS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ed_vipho SEC(".maps");

/* Flow ownership shared by the peer nodes: flow fingerprint (as in the
 * connection table) -> index of the owning peer in ed_handoff. Written by
 * edged from the peers' messages, read on a connection-table miss; sized
 * by the loader (edged_cfg.peer_flows), least recently used out first. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 18);
	__type(key, __u64);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ed_owner SEC(".maps");

/* The connections a held-back VIP still serves here: flow fingerprint ->
 * struct held (handoff.h: held_seen). Edged counts and prunes it; sized by
 * the loader like ed_owner. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 18);
	__type(key, __u64);
	__type(value, struct held);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ed_held SEC(".maps");

/* The fingerprints of flows this node starts serving, for edged to tell
 * the peers (written only while handoff peers are set). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ed_newflow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, MAX_PROXIES);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ed_tx SEC(".maps");

/* Connection table (see struct ct_bucket); resized by the loader.
 * Mmapable only for the page-aligned storage such an array gets: nothing
 * maps it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1 << 18);
	__type(key, __u32);
	__type(value, struct ct_bucket);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ed_ct SEC(".maps");

/* Coarse last-use time (2^20 ns units) of UDP entries: ed_ct set * 4 + way. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << 20);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ed_ctts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_VIPS);
	__type(key, __u32);
	__type(value, struct vip_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ed_vipcnt SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_PROXIES);
	__type(key, __u32);
	__type(value, struct proxy_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ed_pxcnt SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, G_NUM);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ed_glob SEC(".maps");

#endif
