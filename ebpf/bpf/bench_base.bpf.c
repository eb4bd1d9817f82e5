// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark baseline: the least an L2 forwarder does. Bounds check, rewrite
 * the destination MAC from an array map, redirect through a devmap.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8[8]);
} base_mac SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} base_tx SEC(".maps");

SEC("xdp")
int edged_base(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 zero = 0;
	__u8 *mac;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	mac = bpf_map_lookup_elem(&base_mac, &zero);
	if (!mac)
		return XDP_PASS;
	__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
	return bpf_redirect_map(&base_tx, 0, XDP_DROP);
}

char _license[] SEC("license") = "GPL";
