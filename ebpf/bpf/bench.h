/* SPDX-License-Identifier: GPL-2.0 */
/*
 * For the bench build only (-DEDGED_BENCH_FRESH_FLOW): BPF_PROG_TEST_RUN
 * feeds each repeat the previous repeat's output, so a repeated SYN would
 * be one flow. After the program has handled a TCP packet, the source
 * port (and on wrap the source address) is bumped in the frame: each
 * repeat is a new flow. Untagged IPv4 and IPv6; an encapsulated (handed
 * off) frame is left as it is.
 */
#ifndef EDGED_BENCH_H
#define EDGED_BENCH_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

static __always_inline void bench_next_flow(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct tcphdr *th;
	__be32 *carry;
	__u16 sport;

	if ((void *)(eth + 1) > end)
		return;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP)
			return;
		th = (void *)ip + ip->ihl * 4;
		carry = &ip->saddr;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP)
			return;
		th = (void *)(ip6 + 1);
		carry = &ip6->saddr.in6_u.u6_addr32[3];
	} else {
		return;
	}
	if ((void *)(th + 1) > end)
		return;
	sport = bpf_ntohs(th->source) + 1;
	th->source = bpf_htons(sport);
	if (sport == 0)
		*carry = bpf_htonl(bpf_ntohl(*carry) + 1);
}

#endif
