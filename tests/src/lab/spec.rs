//! The lab's declarative description (`tests/lab/topology.yaml`) and its
//! addressing plan. Every address is in a documentation range:
//! 192.0.2.0/25 ToR–node links, 192.0.2.128/25 node–proxy links,
//! 198.51.100.0/24 the client's sources, 203.0.113.0/24 and 2001:db8::/32
//! VIPs and IPv6 links.

use std::net::IpAddr;

use serde::Deserialize;

/// The default topology, embedded so `make demo` needs no file.
pub const DEFAULT: &str = include_str!("../../lab/topology.yaml");

/// A lab topology.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The top-of-rack switch.
    pub tor: Tor,
    /// Edge nodes (1-16).
    pub nodes: usize,
    /// Proxies behind each node (1-4).
    pub proxies_per_node: usize,
    /// ASN of every edge node.
    pub node_asn: u32,
    /// Source addresses of the client (1-250).
    pub client_sources: usize,
    /// The VIPs every node serves.
    pub vips: Vec<LabVip>,
    /// XDP mode of each node's forwarder (`native`, `generic`); absent:
    /// no forwarder (the kernel-routing baseline).
    #[serde(default)]
    pub xdp: Option<String>,
    /// Every check's timing, as `check:` fields.
    #[serde(default = "default_check")]
    pub check: String,
    /// Each node watches its proxies' nginx master through its pid file
    /// (`proxies[].liveness`).
    #[serde(default)]
    pub liveness: bool,
}

fn default_check() -> String {
    "interval: 250ms, timeout: 200ms, rise: 2, fall: 3".into()
}

/// `tor:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tor {
    /// The ToR's ASN.
    pub asn: u32,
}

/// `vips[]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabVip {
    /// Name.
    pub name: String,
    /// Address.
    pub address: IpAddr,
    /// HTTP port.
    pub port: u16,
    /// A UDP port forwarded too (for UDP traffic; no UDP check).
    #[serde(default)]
    pub udp_port: Option<u16>,
}

impl Spec {
    /// Parses and checks the limits of the addressing plan.
    pub fn parse(text: &str) -> Result<Spec, String> {
        let s: Spec = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        if !(1..=16).contains(&s.nodes) {
            return Err("nodes: must be 1-16".into());
        }
        if !(1..=4).contains(&s.proxies_per_node) {
            return Err("proxies_per_node: must be 1-4".into());
        }
        if s.nodes * s.proxies_per_node > 32 {
            return Err("nodes × proxies_per_node: at most 32 proxies in all".into());
        }
        if !(1..=250).contains(&s.client_sources) {
            return Err("client_sources: must be 1-250".into());
        }
        Ok(s)
    }
}

// === addressing plan ===

/// Both ends of a point-to-point link: (near, far, prefix length).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub v4: (String, String),
    pub v6: (String, String),
}

/// ToR (near) — node `i` (far).
pub fn tor_link(i: usize) -> Link {
    Link {
        v4: (
            format!("192.0.2.{}", 4 * i + 1),
            format!("192.0.2.{}", 4 * i + 2),
        ),
        v6: (
            format!("2001:db8:0:{:x}::1", 0x10 + i),
            format!("2001:db8:0:{:x}::2", 0x10 + i),
        ),
    }
}

/// Node `i` (near) — its proxy `j` (far).
pub fn proxy_link(i: usize, j: usize, per_node: usize) -> Link {
    let k = i * per_node + j;
    Link {
        v4: (
            format!("192.0.2.{}", 128 + 4 * k + 1),
            format!("192.0.2.{}", 128 + 4 * k + 2),
        ),
        v6: (
            format!("2001:db8:1:{k:x}::1"),
            format!("2001:db8:1:{k:x}::2"),
        ),
    }
}

/// The ToR's address towards the client.
pub const CLIENT_GW: (&str, &str) = ("198.51.100.1", "2001:db8:c::1");

/// The client's source address `s` (IPv4, IPv6).
pub fn client_source(s: usize) -> (String, String) {
    (
        format!("198.51.100.{}", s + 2),
        format!("2001:db8:c::{:x}", s + 2),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_parses_and_plan_has_no_overlap() {
        let s = Spec::parse(DEFAULT).unwrap();
        assert_eq!(s.nodes, 2);
        let mut seen = std::collections::HashSet::new();
        for i in 0..16 {
            let t = tor_link(i);
            assert!(seen.insert(t.v4.0.clone()) && seen.insert(t.v4.1.clone()));
        }
        for i in 0..8 {
            for j in 0..4 {
                let p = proxy_link(i, j, 4);
                assert!(p.v4.1.parse::<std::net::Ipv4Addr>().is_ok(), "{p:?}");
                assert!(
                    seen.insert(p.v4.0.clone()) && seen.insert(p.v4.1.clone()),
                    "{p:?}"
                );
                assert!(seen.insert(p.v6.1.clone()));
            }
        }
        assert_eq!(client_source(249).0, "198.51.100.251");
    }
}
