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

/// Source of a native XDP program that passes every frame.
const XDP_PASS_C: &str = "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n\
SEC(\"xdp\") int pass(struct xdp_md *ctx) { return XDP_PASS; }\n\
char _license[] SEC(\"license\") = \"GPL\";\n";

/// Builds the pass-everything XDP object in `dir` (clang); returns its path.
pub fn xdp_pass_object(dir: &std::path::Path) -> std::path::PathBuf {
    let (src, obj) = (dir.join("xdp_pass.c"), dir.join("xdp_pass.o"));
    std::fs::write(&src, XDP_PASS_C).expect("write xdp_pass.c");
    let arch = if cfg!(target_arch = "aarch64") {
        "aarch64-linux-gnu"
    } else {
        "x86_64-linux-gnu"
    };
    let include = format!("-I/usr/include/{arch}");
    let (src_s, obj_s) = (src.to_str().expect("utf-8"), obj.to_str().expect("utf-8"));
    crate::sh_ok(
        "clang",
        &[
            "-O2", "-g", "-target", "bpf", &include, "-c", src_s, "-o", obj_s,
        ],
    );
    obj
}

/// The pass-everything program attached (native, through bpf links) to
/// interfaces of one namespace; detached when dropped. A veth delivers the
/// frames its peer's XDP program sends back (`XDP_TX`) promptly only when
/// it has an XDP program itself: with GRO alone they wait in its ring until
/// other traffic wakes it (up to a second here). Loaded with aya, not
/// iproute2, which would leave its pin directories on bpffs.
pub struct XdpPass {
    _ebpf: aya::Ebpf,
}

impl XdpPass {
    pub fn attach(ns: &NetNs, ifnames: &[String], object: &std::path::Path) -> XdpPass {
        let (object, names) = (object.to_owned(), ifnames.to_vec());
        // Interface names resolve in the namespace of the attaching thread.
        let ebpf = crate::lab::traffic::in_netns(&ns.path(), move || {
            let mut ebpf = aya::Ebpf::load_file(&object).expect("load xdp_pass.o");
            let prog: &mut aya::programs::Xdp = ebpf
                .program_mut("pass")
                .expect("program pass")
                .try_into()
                .expect("an XDP program");
            prog.load().expect("verify xdp_pass");
            for n in &names {
                prog.attach(n, aya::programs::XdpMode::Driver)
                    .unwrap_or_else(|e| panic!("attach xdp_pass to {n}: {e}"));
            }
            ebpf
        });
        XdpPass { _ebpf: ebpf }
    }
}
