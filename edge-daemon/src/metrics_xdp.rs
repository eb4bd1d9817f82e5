//! The data plane's counters as Prometheus counters, read from the last
//! snapshot the daemon loop took (the loop owns the forwarder).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::TypedMetric;
use prometheus_client::metrics::counter::ConstCounter;

/// The last counters and the VIP names of their addresses.
#[derive(Debug, Default)]
pub struct XdpSnapshot {
    pub counters: edged_ebpf::Counters,
    pub names: HashMap<IpAddr, String>,
    /// Counters per VIP; else one row, `vip="_all"`, their sum.
    pub per_vip: bool,
}

/// Whether the data plane's counters are per VIP (`node.metrics_per_vip`;
/// absent: up to this many VIPs).
pub const PER_VIP_UP_TO: usize = 1000;

/// Shared between the loop (writer) and the collector (reader).
pub type SharedSnapshot = Arc<Mutex<Option<XdpSnapshot>>>;

/// Encodes the snapshot on each scrape.
#[derive(Debug)]
pub struct XdpCollector(pub SharedSnapshot);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VipReason {
    vip: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Vip {
    vip: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Proxy {
    proxy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Direction {
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Table {
    table: String,
}

fn gauges<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(L, u64)],
) -> Result<(), std::fmt::Error> {
    use prometheus_client::metrics::gauge::ConstGauge;
    let mut m = enc.encode_descriptor(name, help, None, ConstGauge::<i64>::TYPE)?;
    for (labels, v) in rows {
        ConstGauge::new(*v as i64).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn family<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(L, u64)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, ConstCounter::<u64>::TYPE)?;
    for (labels, v) in rows {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for XdpCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let guard = self.0.lock().map_err(|_| std::fmt::Error)?;
        let Some(s) = guard.as_ref() else {
            return Ok(());
        };
        let c = &s.counters;
        let g = &c.global;
        let all;
        let vips: &[edged_ebpf::VipCounters] = if s.per_vip {
            &c.vips
        } else {
            let mut sum = edged_ebpf::VipCounters::default();
            for v in &c.vips {
                sum += v;
            }
            all = [sum];
            &all
        };
        let name = |a: &Option<IpAddr>| match a {
            Some(a) => s.names.get(a).cloned().unwrap_or_else(|| a.to_string()),
            None => "_all".into(),
        };
        let vip = |f: fn(&edged_ebpf::VipCounters) -> u64| -> Vec<(Vip, u64)> {
            vips.iter()
                .map(|v| (Vip { vip: name(&v.addr) }, f(v)))
                .collect()
        };
        family(
            &mut enc,
            "xdp_vip_packets",
            "Packets forwarded to a proxy, per VIP",
            &vip(|v| v.packets),
        )?;
        family(
            &mut enc,
            "xdp_vip_bytes",
            "Bytes forwarded to a proxy, per VIP",
            &vip(|v| v.bytes),
        )?;
        family(
            &mut enc,
            "xdp_vip_new_flows",
            "Flows recorded in the connection table, per VIP",
            &vip(|v| v.new_flows),
        )?;
        family(
            &mut enc,
            "xdp_vip_nonsyn_misses",
            "TCP non-SYN packets with no connection entry (Maglev pick)",
            &vip(|v| v.nonsyn_miss),
        )?;
        family(
            &mut enc,
            "xdp_vip_bad_tcp_flags",
            "TCP SYN packets with RST or FIN, per VIP (not a new connection: they follow the flow's entry)",
            &vip(|v| v.bad_tcp_flags),
        )?;
        family(
            &mut enc,
            "xdp_vip_second_chance",
            "Packets that missed the connection table here and went to the peer node owning their flow, per VIP",
            &vip(|v| v.second_chance),
        )?;
        family(
            &mut enc,
            "xdp_flows_not_shared",
            "New flows not queued for the handoff peers (the queue to edged was full)",
            &[(
                Reason {
                    reason: "queue_full".into(),
                },
                g.share_lost,
            )],
        )?;
        family(
            &mut enc,
            "xdp_vip_icmp_forwarded",
            "ICMP errors forwarded to the flow's proxy",
            &vip(|v| v.icmp_forwarded),
        )?;
        let mut drops = Vec::new();
        let mut passes = Vec::new();
        for v in vips {
            let n = name(&v.addr);
            let row = |reason: &str, val| {
                (
                    VipReason {
                        vip: n.clone(),
                        reason: reason.into(),
                    },
                    val,
                )
            };
            drops.push(row("no_healthy_proxy", v.drop_no_healthy));
            passes.push(row("no_healthy_proxy", v.pass_no_healthy));
            passes.push(row("fragment", v.frag_pass));
            passes.push(row("ipv6_extension_header", v.ext_header_pass));
        }
        family(
            &mut enc,
            "xdp_vip_drops",
            "VIP packets dropped, by reason",
            &drops,
        )?;
        family(
            &mut enc,
            "xdp_vip_passes",
            "VIP packets passed to the host stack, by reason",
            &passes,
        )?;
        let proxy = |f: fn(&edged_ebpf::ProxyCounters) -> u64| -> Vec<(Proxy, u64)> {
            c.proxies
                .iter()
                .map(|p| {
                    (
                        Proxy {
                            proxy: p.name.clone(),
                        },
                        f(p),
                    )
                })
                .collect()
        };
        family(
            &mut enc,
            "xdp_proxy_packets",
            "Packets delivered to the proxy",
            &proxy(|p| p.packets),
        )?;
        family(
            &mut enc,
            "xdp_proxy_bytes",
            "Bytes delivered to the proxy",
            &proxy(|p| p.bytes),
        )?;
        family(
            &mut enc,
            "xdp_proxy_new_flows",
            "New flows assigned to the proxy",
            &proxy(|p| p.new_flows),
        )?;
        let u = &c.usage;
        let tables = [
            ("vips", u.vips),
            ("vip_ports", u.vip_ports),
            ("pools", u.pools),
            ("proxies", u.proxies),
        ];
        gauges(
            &mut enc,
            "xdp_table_used",
            "Entries in use of each data-plane table (pools: shared Maglev tables)",
            &tables.map(|(t, (used, _))| (Table { table: t.into() }, used)),
        )?;
        gauges(
            &mut enc,
            "xdp_table_capacity",
            "Entries each data-plane table holds at most",
            &tables.map(|(t, (_, cap))| (Table { table: t.into() }, cap)),
        )?;
        let swaps = enc.encode_descriptor(
            "xdp_table_swaps",
            "Shared tables built and swapped in since edged started (a health flip of a proxy all of a table's VIPs use: one)",
            None,
            ConstCounter::<u64>::TYPE,
        )?;
        ConstCounter::new(c.table_swaps).encode(swaps)?;
        let global = [
            ("truncated", g.truncated),
            ("vlan_too_deep", g.vlan_too_deep),
            ("bad_ip_header", g.bad_ip_header),
            ("no_proxy_drop", g.no_proxy_drop),
            ("icmp_not_ours", g.icmp_not_ours),
        ]
        .map(|(r, v)| (Reason { reason: r.into() }, v));
        family(
            &mut enc,
            "xdp_packets_by_reason",
            "Packets the forwarder passed or dropped before a VIP, by reason",
            &global,
        )?;
        let handoff = [
            ("out", g.handoff_out),
            ("in", g.handoff_in),
            ("error", g.handoff_error),
        ]
        .map(|(r, v)| {
            (
                Direction {
                    direction: r.into(),
                },
                v,
            )
        });
        family(
            &mut enc,
            "xdp_handoff_packets",
            "Packets handed to peer nodes (out), taken over from them (in), or dropped (error: not encapsulable, or unwrapped but not for a VIP here)",
            &handoff,
        )?;
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Peer {
    peer: String,
}

/// Encodes what the flow-sharing task counted, on each scrape.
#[derive(Debug)]
pub struct FlowSharingCollector(pub Arc<Mutex<crate::flowshare::Stats>>);

impl Collector for FlowSharingCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.lock().map_err(|_| std::fmt::Error)?;
        if s.peers.is_empty() {
            return Ok(());
        }
        let peer = |f: fn(&crate::flowshare::PeerStats) -> u64| -> Vec<(Peer, u64)> {
            s.peers
                .iter()
                .map(|(a, p)| {
                    (
                        Peer {
                            peer: a.to_string(),
                        },
                        f(p),
                    )
                })
                .collect()
        };
        family(
            &mut enc,
            "flows_shared",
            "Flows this node told the handoff peer it owns",
            &peer(|p| p.flows_sent),
        )?;
        family(
            &mut enc,
            "flows_learned",
            "Flows the handoff peer said it owns (sent back to it when the top-of-rack moves them here)",
            &peer(|p| p.flows_received),
        )?;
        family(
            &mut enc,
            "flow_syncs_served",
            "Full flow syncs sent to the handoff peer on its request",
            &peer(|p| p.syncs_served),
        )?;
        family(
            &mut enc,
            "flow_datagrams_received",
            "Flow-sharing datagrams heard from the handoff peer",
            &peer(|p| p.datagrams_received),
        )?;
        family(
            &mut enc,
            "flow_datagrams_lost",
            "Flow-sharing datagrams from the handoff peer that its sequence numbers say never arrived",
            &peer(|p| p.datagrams_lost),
        )?;
        family(
            &mut enc,
            "flow_sync_repairs",
            "Full flow syncs asked of the handoff peer after a loss (at most one per 10 s)",
            &peer(|p| p.repairs),
        )?;
        let lag = enc.encode_descriptor(
            "flow_sharing_lag_seconds",
            "How long the latest batch of new flows could have waited before every peer was told",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        prometheus_client::metrics::gauge::ConstGauge::new(s.lag_us as f64 / 1e6).encode(lag)?;
        let refused: Vec<(Reason, u64)> = s
            .rejected
            .iter()
            .map(|(r, n)| (Reason { reason: r.clone() }, *n))
            .collect();
        family(
            &mut enc,
            "flow_datagrams_refused",
            "Flow-sharing datagrams refused, by reason",
            &refused,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(per_vip: bool) -> String {
        let vip = |a: &str, packets| edged_ebpf::VipCounters {
            addr: Some(a.parse().unwrap()),
            packets,
            drop_no_healthy: 1,
            ..Default::default()
        };
        let counters = edged_ebpf::Counters {
            vips: vec![vip("203.0.113.10", 5), vip("2001:db8::10", 7)],
            ..Default::default()
        };
        let names = [("203.0.113.10".parse().unwrap(), "web".to_string())].into();
        let snap = Arc::new(Mutex::new(Some(XdpSnapshot {
            counters,
            names,
            per_vip,
        })));
        let mut reg = prometheus_client::registry::Registry::default();
        reg.register_collector(Box::new(XdpCollector(snap)));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        out
    }

    #[test]
    fn vip_counters_are_per_vip_or_one_sum() {
        let t = text(true);
        assert!(t.contains("xdp_vip_packets_total{vip=\"web\"} 5"), "{t}");
        assert!(
            t.contains("xdp_vip_packets_total{vip=\"2001:db8::10\"} 7"),
            "{t}"
        );
        let t = text(false);
        assert!(t.contains("xdp_vip_packets_total{vip=\"_all\"} 12"), "{t}");
        assert!(
            t.contains("xdp_vip_drops_total{vip=\"_all\",reason=\"no_healthy_proxy\"} 2"),
            "{t}"
        );
        assert!(!t.contains("vip=\"web\""), "{t}");
    }
}
