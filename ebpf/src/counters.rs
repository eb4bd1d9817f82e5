//! What the data plane counted, summed over CPUs.

use std::net::IpAddr;

use crate::ForwarderError;
use crate::error::map_err;
use crate::maps::Maps;
use crate::proxies::ProxySlots;
use crate::vips::VipTables;

/// Everything the data plane counted since it was loaded (counters survive
/// restarts of edged; a VIP's or proxy's start at zero when it is added).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub vips: Vec<VipCounters>,
    pub proxies: Vec<ProxyCounters>,
    pub global: GlobalCounters,
    /// What the maps hold against what they can hold.
    pub usage: Usage,
    /// Shared tables built and swapped in by this edged (not counted by
    /// the program: since this process opened the data plane).
    pub table_swaps: u64,
}

impl std::ops::AddAssign<&VipCounters> for VipCounters {
    /// Adds every counter of `o` (the address stays).
    fn add_assign(&mut self, o: &VipCounters) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.new_flows += o.new_flows;
        self.nonsyn_miss += o.nonsyn_miss;
        self.drop_no_healthy += o.drop_no_healthy;
        self.pass_no_healthy += o.pass_no_healthy;
        self.frag_pass += o.frag_pass;
        self.icmp_forwarded += o.icmp_forwarded;
        self.ext_header_pass += o.ext_header_pass;
        self.bad_tcp_flags += o.bad_tcp_flags;
        self.second_chance += o.second_chance;
    }
}

/// Used and capacity of each table of the data plane.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub vips: (u64, u64),
    /// Address and port entries (ports + 1 per VIP).
    pub vip_ports: (u64, u64),
    /// Shared Maglev tables.
    pub pools: (u64, u64),
    /// Local proxy slots.
    pub proxies: (u64, u64),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VipCounters {
    pub addr: Option<IpAddr>,
    /// Forwarded to a proxy (including the host stack).
    pub packets: u64,
    pub bytes: u64,
    /// Flows recorded in the connection table (TCP bare SYN, UDP).
    pub new_flows: u64,
    /// TCP non-SYN with no connection entry, forwarded by the Maglev pick.
    pub nonsyn_miss: u64,
    pub drop_no_healthy: u64,
    pub pass_no_healthy: u64,
    /// IP fragments to the VIP, passed to the host stack (no port to hash).
    pub frag_pass: u64,
    /// ICMP frag-needed / packet-too-big forwarded to the flow's proxy.
    pub icmp_forwarded: u64,
    /// IPv6 with extension headers to the VIP, passed.
    pub ext_header_pass: u64,
    /// TCP SYN with RST or FIN: not a new connection, so it follows the
    /// flow's entry (or, without one, the Maglev pick, as a non-SYN miss).
    pub bad_tcp_flags: u64,
    /// Packets that missed the connection table here and went to the peer
    /// node that owns their flow.
    pub second_chance: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyCounters {
    pub name: String,
    pub packets: u64,
    pub bytes: u64,
    pub new_flows: u64,
}

/// Reasons not tied to a VIP (the packet never got that far).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GlobalCounters {
    /// A header ended early: passed.
    pub truncated: u64,
    /// More than two VLAN tags: passed.
    pub vlan_too_deep: u64,
    /// IPv4 with a bad version or header length, IPv6 with a bad version:
    /// passed.
    pub bad_ip_header: u64,
    /// A table slot pointed at a removed proxy: dropped.
    pub no_proxy_drop: u64,
    /// ICMP error about a flow that is not a VIP's TCP/UDP flow: passed.
    pub icmp_not_ours: u64,
    /// Packets of drained VIPs' flows encapsulated to a peer node.
    pub handoff_out: u64,
    /// Packets a peer node handed to us, unwrapped and served here.
    pub handoff_in: u64,
    /// Handoff packets that could not be encapsulated, or that a peer sent
    /// but were not for a VIP here: dropped.
    pub handoff_error: u64,
    /// New flows not queued for the peers (the queue was full).
    pub share_lost: u64,
}

/// What each table holds against its capacity.
pub(crate) fn usage(vips: &VipTables, proxies: &ProxySlots) -> Usage {
    use crate::abi::PEER_SLOT_BASE;
    let (max_vips, max_pools, max_keys) = vips.capacity();
    Usage {
        vips: (vips.len() as u64, max_vips as u64),
        vip_ports: (vips.keys() as u64, max_keys as u64),
        pools: (vips.pools() as u64, max_pools as u64),
        proxies: (proxies.len() as u64, PEER_SLOT_BASE as u64),
    }
}

/// Sums each VIP's, each proxy's and the global counters over the CPUs.
pub(crate) fn read(
    maps: &Maps,
    vips: &VipTables,
    proxies: &ProxySlots,
) -> Result<Counters, ForwarderError> {
    let mut out = Counters {
        usage: usage(vips, proxies),
        table_swaps: vips.swaps(),
        ..Default::default()
    };
    for (addr, id) in vips.ids() {
        let per_cpu = maps
            .vipcnt
            .get(&id, 0)
            .map_err(map_err("ed_vipcnt", "get"))?;
        let mut c = VipCounters {
            addr: Some(addr),
            ..Default::default()
        };
        for r in per_cpu.iter() {
            c.packets += r.packets;
            c.bytes += r.bytes;
            c.new_flows += r.new_flows;
            c.nonsyn_miss += r.nonsyn_miss;
            c.drop_no_healthy += r.drop_no_healthy;
            c.pass_no_healthy += r.pass_no_healthy;
            c.frag_pass += r.frag_pass;
            c.icmp_forwarded += r.icmp_fwd;
            c.ext_header_pass += r.ext_pass;
            c.bad_tcp_flags += r.bad_tcp_flags;
            c.second_chance += r.second_chance;
        }
        out.vips.push(c);
    }
    for (name, slot) in proxies.iter() {
        let per_cpu = maps
            .pxcnt
            .get(&slot, 0)
            .map_err(map_err("ed_pxcnt", "get"))?;
        let mut c = ProxyCounters {
            name: name.to_string(),
            ..Default::default()
        };
        for r in per_cpu.iter() {
            c.packets += r.packets;
            c.bytes += r.bytes;
            c.new_flows += r.new_flows;
        }
        out.proxies.push(c);
    }
    let g = |i: u32| -> Result<u64, ForwarderError> {
        Ok(maps
            .glob
            .get(&i, 0)
            .map_err(map_err("ed_glob", "get"))?
            .iter()
            .sum())
    };
    out.global = GlobalCounters {
        truncated: g(0)?,
        vlan_too_deep: g(1)?,
        bad_ip_header: g(2)?,
        no_proxy_drop: g(3)?,
        icmp_not_ours: g(4)?,
        handoff_out: g(5)?,
        handoff_in: g(6)?,
        handoff_error: g(7)?,
        share_lost: g(8)?,
    };
    Ok(out)
}

/// Number of flows in the connection table (walks it: diagnostics only).
pub(crate) fn conntrack_len(maps: &Maps) -> usize {
    maps.ct
        .iter()
        .filter_map(Result::ok)
        .map(|b| b.way.iter().filter(|e| **e != 0).count())
        .sum()
}
