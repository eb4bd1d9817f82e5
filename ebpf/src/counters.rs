//! Counters summed over CPUs, and rebuilding the userspace view of a
//! re-adopted data plane from its maps.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::abi::*;
use crate::error::map_err;
use crate::vips::VipEntry;
use crate::{Forwarder, ForwarderError};

/// Everything the data plane counted since it was loaded (counters survive
/// restarts of edged; a VIP's or proxy's start at zero when it is added).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub vips: Vec<VipCounters>,
    pub proxies: Vec<ProxyCounters>,
    pub global: GlobalCounters,
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
}

// === impl Forwarder: counters ===

impl Forwarder {
    pub fn counters(&self) -> Result<Counters, ForwarderError> {
        let mut out = Counters::default();
        for (addr, v) in &self.vips {
            let per_cpu = self
                .maps
                .vipcnt
                .get(&v.id, 0)
                .map_err(map_err("ed_vipcnt", "get"))?;
            let mut c = VipCounters {
                addr: Some(*addr),
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
            }
            out.vips.push(c);
        }
        for (name, slot) in &self.proxies {
            let per_cpu = self
                .maps
                .pxcnt
                .get(slot, 0)
                .map_err(map_err("ed_pxcnt", "get"))?;
            let mut c = ProxyCounters {
                name: name.clone(),
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
            Ok(self
                .maps
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
        };
        Ok(out)
    }

    /// Number of flows in the connection table (walks it: diagnostics only).
    pub fn conntrack_len(&self) -> usize {
        self.maps
            .ct
            .iter()
            .filter_map(Result::ok)
            .map(|b| b.way.iter().filter(|e| **e != 0).count())
            .sum()
    }

    /// Rebuilds proxy slots and VIP ids from the maps of an adopted program.
    pub(crate) fn recover(&mut self) -> Result<(), ForwarderError> {
        for slot in 0..PEER_SLOT_BASE {
            let p = self
                .maps
                .proxy
                .get(&slot, 0)
                .map_err(map_err("ed_proxy", "get"))?;
            if p.kind == PROXY_NONE {
                continue;
            }
            let n = self
                .maps
                .pxname
                .get(&slot, 0)
                .map_err(map_err("ed_pxname", "get"))?;
            let len = n.name.iter().position(|&b| b == 0).unwrap_or(n.name.len());
            let name = String::from_utf8_lossy(&n.name[..len]).into_owned();
            self.proxies.insert(name, slot);
            self.next_slot = (slot + 1) % PEER_SLOT_BASE;
        }
        let keys: Vec<VipKey> = self.maps.vips.keys().filter_map(Result::ok).collect();
        for k in keys {
            let v = self
                .maps
                .vips
                .get(&k, 0)
                .map_err(map_err("ed_vips", "get"))?;
            let addr = key_addr(&k);
            let e = self
                .vips
                .entry(addr)
                .or_insert_with(|| VipEntry::new(v.vip_id));
            e.keys.insert(k);
        }
        // Handoff flags are not re-adopted: edged decides them again on its
        // first pass (a VIP undrained while edged was down must not keep
        // handing off).
        for v in self.vips.values() {
            self.maps
                .vipho
                .set(v.id, 0, 0)
                .map_err(map_err("ed_vipho", "reset"))?;
        }
        if !self.proxies.is_empty() || !self.vips.is_empty() {
            tracing::info!(
                proxies = self.proxies.len(),
                vips = self.vips.len(),
                "re-adopted state"
            );
        }
        Ok(())
    }
}

fn key_addr(k: &VipKey) -> IpAddr {
    let b = |w: u32| w.to_ne_bytes();
    if k.family == FAMILY_V4 {
        IpAddr::V4(Ipv4Addr::from(b(k.addr[0])))
    } else {
        let mut o = [0u8; 16];
        for (i, w) in k.addr.iter().enumerate() {
            o[i * 4..i * 4 + 4].copy_from_slice(&b(*w));
        }
        IpAddr::V6(Ipv6Addr::from(o))
    }
}
