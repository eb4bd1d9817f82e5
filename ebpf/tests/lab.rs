//! Namespace lab: real traffic through the XDP program on a veth uplink.
//!
//! ```text
//!  client ns               edge ns (XDP on e0)              proxy ns i
//!  c0 198.51.100.2 ─── e0 198.51.100.1                      lo: VIP 203.0.113.10
//!                          p<i> 192.0.2.(4i+1)/30 ─── eth0 192.0.2.(4i+2)/30
//!                                                   HTTP :80 and UDP :5353
//! ```
//! The client routes the VIP via the edge; XDP rewrites the MACs and
//! redirects to the proxy's veth; the proxy answers directly to the client
//! through the edge's ordinary forwarding (direct server return).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use aya::programs::ProgramError;
use aya::sys::SyscallError;
use common::servers::{Servers, http_get, http_once, udp_once};
use common::{Netns, PinDir, veth};
use edged_ebpf::{
    Delivery, Forwarder, ForwarderError, ForwarderSpec, Proto, ProxyTarget, VipService, XdpMode,
};

const VIP: &str = "203.0.113.10";
const CLIENT: &str = "198.51.100.2";

struct Lab {
    // Field order is drop order: servers, then forwarder, then namespaces.
    servers: Vec<Servers>,
    fwd: Option<Forwarder>,
    spec: ForwarderSpec,
    proxies: Vec<(Netns, ProxyTarget)>,
    client: Netns,
    edge: Netns,
    _pins: PinDir,
}

fn lab(n: usize, udp_idle: Duration) -> Lab {
    let client = Netns::new("edlc");
    let edge = Netns::new("edle");
    edge.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    edge.exec(&["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]);
    edge.exec(&["sysctl", "-qw", "net.ipv4.conf.default.rp_filter=0"]);
    veth(&client, "c0", &edge, "e0");
    client.ip(&["addr", "add", "198.51.100.2/24", "dev", "c0"]);
    edge.ip(&["addr", "add", "198.51.100.1/24", "dev", "e0"]);
    client.ip(&["route", "add", "203.0.113.10/32", "via", "198.51.100.1"]);
    // veth TX checksum offload would leave redirected segments unchecksummed.
    client.exec(&["ethtool", "-K", "c0", "tx", "off"]);
    let pins = PinDir::new();
    let mut spec = ForwarderSpec::new(vec!["e0".into()], pins.path.clone());
    spec.mode = XdpMode::Native;
    spec.hash_seed = 0x5eed;
    spec.conntrack_entries = 65536;
    spec.udp_idle_timeout = udp_idle;
    let mut l = Lab {
        servers: vec![],
        fwd: None,
        spec,
        proxies: vec![],
        client,
        edge,
        _pins: pins,
    };
    for _ in 0..n {
        l.add_proxy_ns();
    }
    l.fwd = Some(
        l.edge
            .run(|| Forwarder::open(&l.spec))
            .expect("open forwarder"),
    );
    l
}

impl Lab {
    /// A proxy namespace with its servers (not yet in the forwarder).
    fn add_proxy_ns(&mut self) -> String {
        let i = self.proxies.len() + 1;
        let name = format!("proxy{i}");
        let ns = Netns::new("edlp");
        let pif = format!("p{i}");
        veth(&self.edge, &pif, &ns, "eth0");
        self.edge.ip(&[
            "addr",
            "add",
            &format!("192.0.2.{}/30", 4 * i + 1),
            "dev",
            &pif,
        ]);
        ns.ip(&[
            "addr",
            "add",
            &format!("192.0.2.{}/30", 4 * i + 2),
            "dev",
            "eth0",
        ]);
        ns.ip(&[
            "route",
            "add",
            "default",
            "via",
            &format!("192.0.2.{}", 4 * i + 1),
        ]);
        ns.ip(&["addr", "add", "203.0.113.10/32", "dev", "lo"]);
        // Frames redirected into a veth need GRO (or an XDP program) on the peer.
        ns.exec(&["ethtool", "-K", "eth0", "gro", "on"]);
        let mac = ns.mac("eth0");
        self.servers.push(Servers::start(&ns, &name, VIP, 80, 5353));
        let target = ProxyTarget {
            name: name.clone(),
            delivery: Delivery::L2 { ifname: pif, mac },
        };
        self.proxies.push((ns, target));
        name
    }

    fn fwd(&mut self) -> &mut Forwarder {
        self.fwd.as_mut().expect("forwarder open")
    }

    /// Proxies `names` with `weights`, in the forwarder and in the table.
    fn serve(&mut self, set: &[(&str, u32)]) {
        let targets: Vec<ProxyTarget> = self
            .proxies
            .iter()
            .filter(|(_, t)| set.iter().any(|(n, _)| *n == t.name))
            .map(|(_, t)| t.clone())
            .collect();
        let serving: Vec<(String, u32)> = set.iter().map(|(n, w)| (n.to_string(), *w)).collect();
        let vip = VipService {
            addr: VIP.parse().unwrap(),
            ports: vec![(80, Proto::Tcp), (5353, Proto::Udp)],
            no_healthy: None,
        };
        let edge = &self.edge;
        let fwd = self.fwd.as_mut().expect("forwarder open");
        edge.run(|| {
            fwd.set_proxies(&targets)?;
            fwd.set_vip(&vip, &serving)
        })
        .expect("serve");
    }

    /// `n` new HTTP connections; how many reached each proxy.
    fn spread(&self, n: usize) -> BTreeMap<String, usize> {
        let names = self
            .client
            .run(|| (0..n).map(|_| http_once(VIP, 80)).collect::<Vec<_>>());
        let mut out = BTreeMap::new();
        for name in names {
            *out.entry(name).or_insert(0) += 1;
        }
        out
    }

    fn xdp_prog_id(&self) -> String {
        let out = std::process::Command::new("ip")
            .args(["-n", &self.edge.name, "-d", "link", "show", "e0"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let at = text.find("prog/xdp id ").expect("XDP attached to e0");
        text[at..].split_whitespace().nth(2).unwrap().to_string()
    }
}

#[test]
fn flows_spread_by_weight() {
    let mut l = lab(3, Duration::from_secs(30));
    l.serve(&[("proxy1", 1), ("proxy2", 1), ("proxy3", 1)]);
    let n = 1500;
    let got = l.spread(n);
    assert_eq!(got.len(), 3, "every proxy served: {got:?}");
    for (name, c) in &got {
        let share = *c as f64 / n as f64;
        assert!(
            (share - 1.0 / 3.0).abs() <= 0.2 / 3.0,
            "{name}: {share} of flows ({got:?})"
        );
    }
    l.serve(&[("proxy1", 1), ("proxy2", 9)]);
    let n = 2000;
    let got = l.spread(n);
    let p1 = *got.get("proxy1").unwrap_or(&0) as f64 / n as f64;
    let p2 = *got.get("proxy2").unwrap_or(&0) as f64 / n as f64;
    assert!(
        (0.08..=0.12).contains(&p1),
        "1:9 gave proxy1 {p1} ({got:?})"
    );
    assert!(
        (p1 + p2 - 1.0).abs() < 1e-9,
        "only proxy1 and proxy2: {got:?}"
    );
    let c = l.fwd().counters().unwrap();
    assert!(c.vips[0].new_flows >= 3500, "{:?}", c.vips[0]);
}

#[test]
fn removing_one_of_n_moves_few_new_flows() {
    // UDP flows idle for 1 ns are picked again: each query is a new flow.
    let mut l = lab(4, Duration::from_nanos(1));
    let all = [("proxy1", 1), ("proxy2", 1), ("proxy3", 1), ("proxy4", 1)];
    l.serve(&all);
    let ports: Vec<u16> = (20000..40000).collect();
    let query = |l: &Lab| {
        l.client.run(|| {
            ports
                .iter()
                .map(|p| udp_once(CLIENT, *p, VIP, 5353))
                .collect::<Vec<_>>()
        })
    };
    let before = query(&l);
    l.serve(&all[..3]);
    let after = query(&l);
    let total = ports.len() as f64;
    let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count() as f64;
    let moved_others = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b != a && *b != "proxy4")
        .count() as f64;
    assert!(
        after.iter().all(|a| a != "proxy4"),
        "removed proxy still gets new flows"
    );
    assert!(
        moved / total <= 0.25 + 0.01,
        "moved {} of new flows",
        moved / total
    );
    assert!(
        moved_others / total <= 0.01,
        "{} of flows moved between remaining proxies",
        moved_others / total
    );
}

#[test]
fn long_lived_connection_keeps_its_proxy_across_changes_and_restart() {
    let mut l = lab(3, Duration::from_secs(30));
    let p4 = l.add_proxy_ns();
    l.serve(&[("proxy1", 1), ("proxy2", 1), ("proxy3", 1)]);
    let mut conn = l.client.run(|| {
        let addr = format!("{VIP}:80").parse().unwrap();
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)).expect("connect")
    });
    let owner = http_get(&mut conn);
    // Remove a different proxy, add a new one.
    let gone = ["proxy1", "proxy2", "proxy3"]
        .into_iter()
        .find(|p| *p != owner)
        .unwrap();
    let mut set: Vec<(&str, u32)> = ["proxy1", "proxy2", "proxy3"]
        .into_iter()
        .filter(|p| *p != gone)
        .map(|p| (p, 1))
        .collect();
    set.push((&p4, 1));
    l.serve(&set);
    for _ in 0..3 {
        assert_eq!(
            http_get(&mut conn),
            owner,
            "established connection kept its proxy"
        );
    }
    let got = l.spread(300);
    assert!(
        !got.contains_key(gone),
        "removed proxy got new flows: {got:?}"
    );
    assert!(
        got.contains_key(p4.as_str()),
        "added proxy got no new flows: {got:?}"
    );

    // Restart: drop the forwarder (program stays attached), open again.
    let id = l.xdp_prog_id();
    drop(l.fwd.take());
    assert_eq!(http_get(&mut conn), owner, "served while edged is down");
    l.fwd = Some(l.edge.run(|| Forwarder::open(&l.spec)).expect("re-adopt"));
    assert_eq!(l.xdp_prog_id(), id, "re-adopted, not reloaded");
    assert!(l.fwd().conntrack_len() > 0, "connection table kept");
    l.serve(&set);
    for _ in 0..3 {
        assert_eq!(
            http_get(&mut conn),
            owner,
            "kept its proxy across the restart"
        );
    }
    let before = l.fwd().counters().unwrap().vips[0].packets;
    assert_eq!(http_get(&mut conn), owner);
    assert!(
        l.fwd().counters().unwrap().vips[0].packets > before,
        "counting after re-adopt"
    );
}

#[test]
fn incompatible_layout_is_replaced_and_teardown_detaches() {
    let mut l = lab(1, Duration::from_secs(30));
    l.serve(&[("proxy1", 1)]);
    assert_eq!(l.spread(5).get("proxy1"), Some(&5));
    let id = l.xdp_prog_id();
    drop(l.fwd.take());
    l.spec.table_size = 65521;
    l.fwd = Some(l.edge.run(|| Forwarder::open(&l.spec)).expect("replace"));
    assert_ne!(l.xdp_prog_id(), id, "another layout is loaded afresh");
    l.serve(&[("proxy1", 1)]);
    assert_eq!(l.spread(5).get("proxy1"), Some(&5));
    l.fwd.take().unwrap().teardown().expect("teardown");
    assert!(!l.spec.pin_dir.exists(), "pins removed");
    // The link goes when its last reference does; poll for it.
    let attached = || {
        let out = std::process::Command::new("ip")
            .args(["-n", &l.edge.name, "-d", "link", "show", "e0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while attached() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!attached(), "detached");
}

/// The pin dir and spec of a forwarder on `uplink` only.
fn uplink_spec(pins: &PinDir, uplink: &str, mode: XdpMode) -> ForwarderSpec {
    let mut spec = ForwarderSpec::new(vec![uplink.into()], pins.path.clone());
    spec.mode = mode;
    spec.conntrack_entries = 1024;
    spec
}

#[test]
fn native_attach_refused_by_the_driver_names_generic_mode() {
    // A Linux bridge has no native XDP (neither have lo and macvlan on this
    // kernel; veth has): the driver refuses the attach with EOPNOTSUPP.
    let pins = PinDir::new();
    let edge = Netns::new("edln");
    edge.ip(&["link", "add", "br0", "type", "bridge"]);
    edge.ip(&["link", "set", "br0", "up"]);
    let spec = uplink_spec(&pins, "br0", XdpMode::Native);
    let err = edge
        .run(|| Forwarder::open(&spec))
        .err()
        .expect("native XDP on a bridge was not refused");
    let ForwarderError::AttachNative { iface, source } = &err else {
        panic!("not the native-attach refusal: {err}");
    };
    assert_eq!(iface, "br0");
    let errno = match &**source {
        ProgramError::SyscallError(SyscallError { io_error, .. }) => io_error.raw_os_error(),
        other => panic!("not the kernel's refusal: {other}"),
    };
    assert_eq!(errno, Some(libc::EOPNOTSUPP), "{err}");
    assert!(err.to_string().contains("set `xdp_mode: generic`"), "{err}");
    // What the hint says works: generic mode attaches to the same bridge.
    let spec = uplink_spec(&pins, "br0", XdpMode::Generic);
    let fwd = edge.run(|| Forwarder::open(&spec)).expect("generic mode");
    let out = std::process::Command::new("ip")
        .args(["-n", &edge.name, "-d", "link", "show", "br0"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("xdpgeneric"), "generic XDP on br0: {text}");
    fwd.teardown().expect("teardown");
}

#[test]
fn attach_to_a_missing_interface_names_it_in_either_mode() {
    let pins = PinDir::new();
    let edge = Netns::new("edlm");
    for mode in [XdpMode::Native, XdpMode::Generic] {
        let spec = uplink_spec(&pins, "nosuch0", mode);
        let err = edge
            .run(|| Forwarder::open(&spec))
            .err()
            .expect("no such interface");
        assert!(
            matches!(&err, ForwarderError::Attach { iface, .. } if iface == "nosuch0"),
            "{mode:?}: {err}"
        );
        let text = err.to_string();
        assert!(text.contains("check that the interface exists"), "{text}");
        assert!(
            !text.contains("xdp_mode"),
            "{mode:?}: misleading hint: {text}"
        );
    }
}
