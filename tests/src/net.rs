//! Links and addresses between lab namespaces, and reading routes.

use crate::NetNs;

/// Creates a veth pair `a`@`ns_a` — `b`@`ns_b`, both up, with TX checksum
/// offload off (XDP-redirected TCP segments otherwise arrive with bad
/// checksums on veth). Deleting either namespace deletes the pair.
pub fn veth(ns_a: &NetNs, a: &str, ns_b: &NetNs, b: &str) {
    ns_a.exec_ok(&[
        "ip",
        "link",
        "add",
        a,
        "type",
        "veth",
        "peer",
        "name",
        b,
        "netns",
        ns_b.name(),
    ]);
    for (ns, ifname) in [(ns_a, a), (ns_b, b)] {
        ns.exec_ok(&["ip", "link", "set", ifname, "up"]);
        ns.exec_ok(&["ethtool", "-K", ifname, "tx", "off"]);
    }
}

/// Adds `cidr` to `ifname` in `ns` (IPv6 without duplicate address detection).
pub fn addr(ns: &NetNs, ifname: &str, cidr: &str) {
    if cidr.contains(':') {
        ns.exec_ok(&["ip", "addr", "add", cidr, "dev", ifname, "nodad"]);
    } else {
        ns.exec_ok(&["ip", "addr", "add", cidr, "dev", ifname]);
    }
}

/// Enables forwarding (IPv4 and IPv6) in `ns`.
pub fn forwarding(ns: &NetNs) {
    ns.exec_ok(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    ns.exec_ok(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
}

/// The next hops of the route to `prefix` in `ns`'s main table (kernel,
/// not a RIB): empty when there is no route.
pub fn nexthops(ns: &NetNs, prefix: &str) -> Vec<String> {
    let family = if prefix.contains(':') { "-6" } else { "-4" };
    let out = ns.exec_ok(&["ip", family, "route", "show", prefix]);
    let mut hops = Vec::new();
    let words: Vec<&str> = out.split_whitespace().collect();
    for w in words.windows(2) {
        if w[0] == "via" {
            hops.push(w[1].to_string());
        }
    }
    hops.sort();
    hops
}

/// The MAC address of `ifname` in `ns`.
pub fn mac(ns: &NetNs, ifname: &str) -> String {
    let out = ns.exec_ok(&["ip", "-o", "link", "show", "dev", ifname]);
    let words: Vec<&str> = out.split_whitespace().collect();
    let i = words
        .iter()
        .position(|w| *w == "link/ether")
        .expect("an Ethernet link");
    words[i + 1].to_string()
}
