//! Cross-field rules that serde cannot express. Each rule reports the path of
//! the field to change; `tests/validation.rs` feeds YAML for every one of them.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use crate::error::{FieldError, shown};
use crate::model::*;

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;
/// Largest proxy weight; keeps Maglev's per-weight work bounded.
pub const MAX_WEIGHT: u32 = 10_000;
/// Largest table_size parsed (a byte a ring slot, two halves a VIP); the loader takes <= 262139.
pub const MAX_TABLE_SIZE: u32 = 1 << 24;

/// Checks every cross-field rule and returns all violations.
pub fn validate(cfg: &Config) -> Vec<FieldError> {
    let mut v = Errors::default();
    node(&mut v, &cfg.node);
    if let Some(f) = &cfg.forwarder {
        forwarder(&mut v, f);
    }
    proxies(&mut v, &cfg.proxies, cfg.forwarder.is_some());
    vips(&mut v, cfg);
    bgp(&mut v, &cfg.bgp);
    v.0
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.0.push(FieldError::new(path, msg));
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 32
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-' | '_'))
}

/// Names must be unique as written and as BIRD sees them (`-` becomes `_`).
fn name_rule(v: &mut Errors, path: &str, name: &str, seen: &mut HashSet<String>) {
    if !valid_name(name) {
        v.push(
            path,
            format!("`{}` is not a valid name: use a-z, 0-9, - and _, starting with a letter, at most 32 characters", shown(name)),
        );
    } else if !seen.insert(name.replace('-', "_")) {
        v.push(
            path,
            format!(
                "duplicate name `{}` (`-` and `_` count as the same)",
                shown(name)
            ),
        );
    }
}

fn ifname_rule(v: &mut Errors, path: &str, name: &str) {
    if name.is_empty() || name.len() > IFNAME_MAX || name.contains(['/', ' ', ':']) {
        v.push(
            path,
            format!("`{}` is not a valid interface name (1-{IFNAME_MAX} characters, no `/`, `:` or space)", shown(name)),
        );
    }
}

fn asn_rule(v: &mut Errors, path: &str, asn: u32) {
    if asn == 0 || asn == 23456 || asn == u32::MAX {
        v.push(
            path,
            format!("{asn} is not a usable ASN (0, 23456 and 4294967295 are reserved)"),
        );
    }
}

// === node ===

fn node(v: &mut Errors, n: &Node) {
    if n.router_id.is_unspecified() || n.router_id.is_broadcast() {
        v.push(
            "node.router_id",
            format!("{} cannot be a router id", n.router_id),
        );
    }
    asn_rule(v, "node.asn", n.asn);
    for (path, p) in [
        ("node.state_dir", &n.state_dir),
        ("node.control_socket", &n.control_socket),
    ] {
        if !p.is_absolute() {
            v.push(
                path,
                format!(
                    "`{}` must be an absolute path",
                    shown(&p.display().to_string())
                ),
            );
        }
    }
    if n.control_group.as_deref() == Some("") {
        v.push(
            "node.control_group",
            "must not be empty; leave it out for root only",
        );
    }
    if let Some(ifname) = &n.vip_interface {
        ifname_rule(v, "node.vip_interface", ifname);
    }
    if n.shutdown_timeout.is_zero() {
        v.push("node.shutdown_timeout", "must be greater than 0");
    }
    if n.stop_timeout > Duration::from_secs(600) {
        v.push("node.stop_timeout", "must be at most 10m");
    }
    if n.restart_grace < Duration::from_secs(1) || n.restart_grace > Duration::from_secs(600) {
        v.push("node.restart_grace", "must be between 1s and 10m");
    }
}

// === forwarder ===

fn forwarder(v: &mut Errors, f: &Forwarder) {
    if f.uplinks.is_empty() {
        v.push("forwarder.uplinks", "needs at least one interface");
    }
    let mut seen = HashSet::new();
    for (i, up) in f.uplinks.iter().enumerate() {
        ifname_rule(v, &format!("forwarder.uplinks[{i}]"), up);
        if !seen.insert(up) {
            v.push(
                format!("forwarder.uplinks[{i}]"),
                format!("duplicate interface `{up}`"),
            );
        }
    }
    if !is_prime(f.table_size) || f.table_size > MAX_TABLE_SIZE {
        v.push(
            "forwarder.table_size",
            format!(
                "{} must be a prime no larger than {MAX_TABLE_SIZE} (e.g. 65537)",
                f.table_size
            ),
        );
    }
    if f.conntrack_entries == 0 {
        v.push("forwarder.conntrack_entries", "must be greater than 0");
    }
    if !(1024..=1 << 24).contains(&f.peer_flows) {
        v.push(
            "forwarder.peer_flows",
            format!("{} must be between 1024 and 16777216", f.peer_flows),
        );
    }
    if f.udp_idle_timeout.is_zero() {
        v.push("forwarder.udp_idle_timeout", "must be greater than 0");
    }
    if !f.pin_dir.starts_with("/sys/fs/bpf") {
        v.push(
            "forwarder.pin_dir",
            "must be under /sys/fs/bpf (the bpffs mount)",
        );
    }
    if let Some(h) = &f.handoff {
        handoff(v, h);
    }
}

/// Peers a drained VIP's connections can be handed to (the XDP program's
/// limit).
pub const MAX_HANDOFF_PEERS: usize = 8;

fn handoff(v: &mut Errors, h: &Handoff) {
    if h.address.is_unspecified() || h.address.is_multicast() || h.address.is_loopback() {
        v.push(
            "forwarder.handoff.address",
            format!("{} is not a unicast address of this node", h.address),
        );
    }
    if h.peers.is_empty() || h.peers.len() > MAX_HANDOFF_PEERS {
        v.push(
            "forwarder.handoff.peers",
            format!("needs 1 to {MAX_HANDOFF_PEERS} peer addresses"),
        );
    }
    let mut seen = HashSet::new();
    for (i, p) in h.peers.iter().enumerate() {
        let at = format!("forwarder.handoff.peers[{i}]");
        if p.is_ipv4() != h.address.is_ipv4() {
            v.push(at, format!("{p} is not of handoff.address's family"));
        } else if *p == h.address {
            v.push(at, format!("{p} is this node's own handoff.address"));
        } else if p.is_unspecified() || p.is_multicast() || p.is_loopback() {
            v.push(at, format!("{p} is not a unicast address"));
        } else if !seen.insert(p) {
            v.push(at, format!("duplicate peer {p}"));
        }
    }
    if h.time.is_zero() || h.time > Duration::from_secs(600) {
        v.push("forwarder.handoff.time", "must be between 1ms and 10m");
    }
    if h.port == 0 {
        v.push("forwarder.handoff.port", "must be a UDP port (1-65535)");
    }
    if h.connection_timeout > Duration::from_secs(3600) {
        v.push("forwarder.handoff.connection_timeout", "must be at most 1h");
    }
    if h.connection_idle < Duration::from_secs(1) || h.connection_idle > Duration::from_secs(3600) {
        v.push(
            "forwarder.handoff.connection_idle",
            "must be between 1s and 1h",
        );
    }
}

/// Trial division; table sizes are at most 2^24.
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    (2..)
        .take_while(|d: &u32| d * d <= n)
        .all(|d| !n.is_multiple_of(d))
}

// === proxies ===

fn proxies(v: &mut Errors, ps: &[Proxy], has_forwarder: bool) {
    let mut names = HashSet::new();
    for (i, p) in ps.iter().enumerate() {
        let at = |f: &str| format!("proxies[{i}].{f}");
        name_rule(v, &at("name"), &p.name, &mut names);
        match p.delivery {
            Delivery::L2 => {
                match &p.interface {
                    None if has_forwarder => {
                        v.push(at("interface"), "required with `delivery: l2`")
                    }
                    Some(ifname) => ifname_rule(v, &at("interface"), ifname),
                    None => {}
                }
                if p.mac.is_none() && has_forwarder {
                    v.push(at("mac"), "required with `delivery: l2`");
                }
            }
            Delivery::Host => {
                if p.interface.is_some() {
                    v.push(at("interface"), "only valid with `delivery: l2`");
                }
                if p.mac.is_some() {
                    v.push(at("mac"), "only valid with `delivery: l2`");
                }
            }
        }
        if let Some(l) = &p.liveness
            && !l.pidfile.is_absolute()
        {
            v.push(at("liveness.pidfile"), "must be an absolute path");
        }
        if p.weight > MAX_WEIGHT {
            v.push(
                at("weight"),
                format!("{} is above the maximum {MAX_WEIGHT}", p.weight),
            );
        }
        if p.address.is_unspecified() || p.address.is_multicast() {
            v.push(
                at("address"),
                format!("{} is not a unicast address", p.address),
            );
        }
    }
}

// === vips ===

/// The addresses this node uses for something other than a VIP, with the
/// field that holds each: a VIP equal to one of them would put it on the
/// node's loopback and announce it to the fabric (a peer's address there
/// ends that session; a proxy's makes its checks hit the node itself).
fn own_addresses(cfg: &Config) -> Vec<(IpAddr, String)> {
    let mut own = vec![(IpAddr::V4(cfg.node.router_id), "node.router_id".to_string())];
    for (i, p) in cfg.bgp.peers.iter().enumerate() {
        own.push((p.address, format!("bgp.peers[{i}].address")));
        if let Some(src) = p.source_address {
            own.push((src, format!("bgp.peers[{i}].source_address")));
        }
    }
    for (i, p) in cfg.proxies.iter().enumerate() {
        own.push((p.address, format!("proxies[{i}].address")));
    }
    if let Some(h) = cfg.forwarder.as_ref().and_then(|f| f.handoff.as_ref()) {
        own.push((h.address, "forwarder.handoff.address".to_string()));
        for (i, p) in h.peers.iter().enumerate() {
            own.push((*p, format!("forwarder.handoff.peers[{i}]")));
        }
    }
    own
}

fn vips(v: &mut Errors, cfg: &Config) {
    let known: HashSet<&str> = cfg.proxies.iter().map(|p| p.name.as_str()).collect();
    let own = own_addresses(cfg);
    let mut names = HashSet::new();
    let mut addrs = HashSet::new();
    for (i, vip) in cfg.vips.iter().enumerate() {
        let at = |f: &str| format!("vips[{i}].{f}");
        name_rule(v, &at("name"), &vip.name, &mut names);
        address_rule(v, &at("address"), vip.address, &mut addrs);
        if let Some((_, field)) = own.iter().find(|(a, _)| *a == vip.address) {
            v.push(
                at("address"),
                format!(
                    "{} is also {field}: a VIP is announced to the fabric and put on this node, which would take that address off the network",
                    vip.address
                ),
            );
        }
        if let Some(host) = &vip.host {
            token_rule(v, &at("host"), host);
        }
        if vip.address.is_ipv6() && !cfg.bgp.peers.iter().any(|p| p.address.is_ipv6()) {
            v.push(
                at("address"),
                "IPv6 VIP but no IPv6 peer in bgp.peers to announce it to",
            );
        }
        if vip.address.is_ipv4() && !cfg.bgp.peers.iter().any(|p| p.address.is_ipv4()) {
            v.push(
                at("address"),
                "IPv4 VIP but no IPv4 peer in bgp.peers to announce it to",
            );
        }
        ports(v, i, &vip.ports);
        let serving = match &vip.proxies {
            None => cfg.proxies.len(),
            Some(list) => {
                let mut seen = HashSet::new();
                for (j, name) in list.iter().enumerate() {
                    if !known.contains(name.as_str()) {
                        v.push(
                            at(&format!("proxies[{j}]")),
                            format!("unknown proxy `{}` (not in proxies)", shown(name)),
                        );
                    } else if !seen.insert(name) {
                        v.push(
                            at(&format!("proxies[{j}]")),
                            format!("proxy `{}` listed twice", shown(name)),
                        );
                    }
                }
                seen.len()
            }
        };
        if vip.min_healthy == 0 {
            v.push(at("min_healthy"), "must be at least 1");
        } else if vip.min_healthy as usize > serving {
            v.push(
                at("min_healthy"),
                format!(
                    "{} is more than the {serving} proxies serving this VIP",
                    vip.min_healthy
                ),
            );
        }
        if vip.services.is_empty() {
            v.push(
                at("services"),
                "needs at least one service (a VIP with no check is never announced)",
            );
        }
        let mut svc_names = HashSet::new();
        for (j, s) in vip.services.iter().enumerate() {
            let sp = format!("vips[{i}].services[{j}]");
            name_rule(v, &format!("{sp}.name"), &s.name, &mut svc_names);
            check(v, &format!("{sp}.check"), &s.check);
        }
    }
}

fn address_rule(v: &mut Errors, path: &str, a: IpAddr, seen: &mut HashSet<IpAddr>) {
    let bad = a.is_unspecified() || a.is_multicast() || a.is_loopback();
    let mapped = match a {
        IpAddr::V6(six) => six.to_ipv4_mapped(),
        IpAddr::V4(_) => None,
    };
    if let Some(four) = mapped {
        v.push(
            path,
            format!("{a} is an IPv4-mapped IPv6 address; write the IPv4 VIP {four} instead"),
        );
    } else if bad {
        v.push(
            path,
            format!("{a} cannot be a VIP (unspecified, multicast or loopback)"),
        );
    } else if !seen.insert(a) {
        v.push(path, format!("duplicate VIP {a}"));
    }
}

fn ports(v: &mut Errors, i: usize, ports: &[PortSpec]) {
    if ports.is_empty() {
        v.push(format!("vips[{i}].ports"), "needs at least one port");
    }
    let mut seen = BTreeSet::new();
    for (j, p) in ports.iter().enumerate() {
        let path = format!("vips[{i}].ports[{j}].port");
        if p.port == 0 {
            v.push(path, "must be between 1 and 65535");
        } else if !seen.insert((p.port, p.protocol)) {
            v.push(
                path,
                format!("port {} {:?} listed twice", p.port, p.protocol).to_lowercase(),
            );
        }
    }
}

// === checks ===

/// A value that goes into a request or a packet as one token: no control
/// characters (CR/LF would inject a header) and no spaces.
fn token_rule(v: &mut Errors, path: &str, value: &str) {
    if let Some(c) = value.chars().find(|c| c.is_control() || c.is_whitespace()) {
        v.push(
            path,
            format!(
                "`{}` contains {}; control characters and spaces are not allowed",
                shown(&value.escape_debug().to_string()),
                match c {
                    '\r' => "a carriage return".to_string(),
                    '\n' => "a line feed".to_string(),
                    ' ' => "a space".to_string(),
                    c => format!("the character U+{:04X}", c as u32),
                }
            ),
        );
    }
}

fn check(v: &mut Errors, at: &str, c: &Check) {
    let f = |name: &str| format!("{at}.{name}");
    if c.interval.is_zero() {
        v.push(f("interval"), "must be greater than 0");
    }
    if c.timeout.is_zero() {
        v.push(f("timeout"), "must be greater than 0");
    } else if c.timeout >= c.interval && !c.interval.is_zero() {
        v.push(f("timeout"), "must be less than the interval");
    }
    if c.interval < Duration::from_millis(10) && !c.interval.is_zero() {
        v.push(f("interval"), "must be at least 10ms");
    }
    if c.fastinter < Duration::from_millis(10)
        || c.fastinter > c.interval.max(Duration::from_millis(10))
    {
        v.push(f("fastinter"), "must be between 10ms and the interval");
    }
    if let Some(d) = c.downinter
        && (d < Duration::from_millis(10) || d > Duration::from_secs(3600))
    {
        v.push(f("downinter"), "must be between 10ms and 1h");
    }
    for (name, n) in [("rise", c.rise), ("fall", c.fall)] {
        if n == 0 || n > 100 {
            v.push(f(name), "must be between 1 and 100");
        }
    }
    if c.port == Some(0) {
        v.push(f("port"), "must be between 1 and 65535");
    }
    let http = matches!(c.kind, CheckKind::Http | CheckKind::Https);
    let only = |v: &mut Errors, set: bool, name: &str, kinds: &str| {
        if set {
            v.push(f(name), format!("only valid for kind {kinds}"));
        }
    };
    only(v, !http && c.method.is_some(), "method", "http or https");
    only(v, !http && c.path.is_some(), "path", "http or https");
    only(
        v,
        !http && c.expect_status.is_some(),
        "expect_status",
        "http or https",
    );
    only(
        v,
        !http && c.body_contains.is_some(),
        "body_contains",
        "http or https",
    );
    only(v, !http && c.host.is_some(), "host", "http or https");
    only(
        v,
        !http && c.reuse_connection.is_some(),
        "reuse_connection",
        "http or https",
    );
    only(v, !http && c.http2.is_some(), "http2", "http or https");
    if c.http2 == Some(true) && c.reuse_connection == Some(false) {
        v.push(
            f("reuse_connection"),
            "http2 checks share one kept connection per proxy; remove reuse_connection: false",
        );
    }
    let https = c.kind == CheckKind::Https;
    only(v, !https && c.ca_file.is_some(), "ca_file", "https");
    only(v, !https && c.tls_verify.is_some(), "tls_verify", "https");
    let dns = c.kind == CheckKind::Dns;
    only(v, !dns && c.query_name.is_some(), "query_name", "dns");
    only(v, !dns && c.query_type.is_some(), "query_type", "dns");
    only(v, !dns && c.expect_rcode.is_some(), "expect_rcode", "dns");
    let exec = c.kind == CheckKind::Exec;
    only(v, !exec && c.command.is_some(), "command", "exec");
    only(v, !exec && c.env.is_some(), "env", "exec");
    only(
        v,
        exec && c.port.is_some(),
        "port",
        "tcp, http, https or dns",
    );
    match c.kind {
        CheckKind::Tcp if c.port.is_none() => v.push(f("port"), "required for kind tcp"),
        CheckKind::Dns if c.query_name.is_none() => {
            v.push(f("query_name"), "required for kind dns")
        }
        CheckKind::Exec => match c.command.as_deref() {
            None | Some([]) => v.push(f("command"), "required for kind exec: [program, args...]"),
            Some([prog, ..]) if !prog.starts_with('/') => v.push(
                f("command"),
                format!("program `{}` must be an absolute path", shown(prog)),
            ),
            _ => {}
        },
        _ => {}
    }
    if let Some(codes) = &c.expect_status {
        if codes.is_empty() {
            v.push(f("expect_status"), "needs at least one status code");
        }
        if let Some(bad) = codes.iter().find(|s| !(100..=599).contains(*s)) {
            v.push(
                f("expect_status"),
                format!("{bad} is not an HTTP status (100-599)"),
            );
        }
    }
    if let Some(p) = &c.path {
        if !p.starts_with('/') {
            v.push(f("path"), format!("`{}` must start with /", shown(p)));
        }
        token_rule(v, &f("path"), p);
    }
    for (name, value) in [
        ("host", &c.host),
        ("method", &c.method),
        ("query_name", &c.query_name),
    ] {
        if let Some(value) = value {
            token_rule(v, &f(name), value);
        }
    }
    if let Some(rc) = c.expect_rcode
        && rc > 15
    {
        v.push(f("expect_rcode"), format!("{rc} is not a DNS rcode (0-15)"));
    }
}

// === bgp ===

fn bgp(v: &mut Errors, b: &Bgp) {
    match b.mode {
        BirdMode::External => {
            if b.external_socket.is_none() {
                v.push("bgp.external_socket", "required with `mode: external`");
            }
            if b.include_file.is_none() {
                v.push("bgp.include_file", "required with `mode: external`");
            }
        }
        BirdMode::Managed => {
            if b.external_socket.is_some() {
                v.push("bgp.external_socket", "only valid with `mode: external`");
            }
            if b.include_file.is_some() {
                v.push("bgp.include_file", "only valid with `mode: external`");
            }
        }
    }
    if b.drain_prepend > 8 {
        v.push("bgp.drain_prepend", "must be between 0 and 8");
    }
    let mut names = HashSet::new();
    let mut addrs = HashSet::new();
    for (i, p) in b.peers.iter().enumerate() {
        let at = |f: &str| format!("bgp.peers[{i}].{f}");
        name_rule(v, &at("name"), &p.name, &mut names);
        asn_rule(v, &at("asn"), p.asn);
        if p.address.is_unspecified() || p.address.is_multicast() {
            v.push(
                at("address"),
                format!("{} is not a unicast address", p.address),
            );
        } else if !addrs.insert(p.address) {
            v.push(at("address"), format!("duplicate peer {}", p.address));
        }
        if let Some(src) = p.source_address
            && src.is_ipv4() != p.address.is_ipv4()
        {
            v.push(
                at("source_address"),
                "must be of the same address family as the peer",
            );
        }
        let hold = p.hold_time;
        if hold.subsec_nanos() != 0
            || hold.as_secs() > 65535
            || (hold.as_secs() > 0 && hold.as_secs() < 3)
        {
            v.push(
                at("hold_time"),
                "must be 0 or whole seconds between 3s and 65535s",
            );
        }
        if let Some(ka) = p.keepalive
            && (ka.is_zero() || ka.subsec_nanos() != 0 || (!hold.is_zero() && ka >= hold))
        {
            v.push(
                at("keepalive"),
                "must be whole seconds, greater than 0 and less than hold_time",
            );
        }
        if p.multihop == Some(0) {
            v.push(at("multihop"), "must be between 1 and 255");
        }
        if p.ttl_security && p.multihop.is_some() {
            v.push(at("ttl_security"), "cannot be combined with multihop");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn primes() {
        assert!(super::is_prime(65537));
        assert!(super::is_prime(251));
        assert!(!super::is_prime(65536));
        assert!(!super::is_prime(1));
    }
}
