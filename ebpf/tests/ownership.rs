//! Flow ownership shared between nodes, through BPF_PROG_TEST_RUN: node A
//! serves a flow and queues it; node B, told by A, sends the flow's packets
//! that miss its connection table back to A. Two real forwarders, each in
//! its own namespace and pin dir. Needs root.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::packet::{ACK, FIN, Frame, RST, SYN};
use common::{Netns, PinDir, veth};
use edged_ebpf::{
    Delivery, Flows, Forwarder, ForwarderSpec, HandoffSpec, Proto, ProxyTarget, VipService, XdpMode,
};

const PASS: u32 = 2;
const TX: u32 = 3;
const REDIRECT: u32 = 4;
const A: &str = "192.0.2.201";
const B: &str = "192.0.2.202";
const C: &str = "192.0.2.203";

/// One edge node: a forwarder with proxy `p` (L2, behind px0) serving
/// 192.0.2.10 (80/tcp, 53/udp) and 2001:db8::10 (443/tcp), handing off
/// from `local` to `peers`.
/// Fields drop in order: the maps, the pins, then the namespaces.
struct Node {
    fwd: Forwarder,
    flows: Flows,
    pins: PinDir,
    _other: Netns,
    ns: Netns,
}

fn node(local: &str, peers: &[&str]) -> Node {
    let ns = Netns::new("edoa");
    let other = Netns::new("edob");
    veth(&ns, "px0", &other, "px0p");
    let pins = PinDir::new();
    let mut spec = ForwarderSpec::new(vec![], pins.path.clone());
    spec.mode = XdpMode::Generic;
    spec.hash_seed = 7;
    spec.conntrack_entries = 4096;
    spec.peer_flows = 4096;
    let mut fwd = ns.run(|| Forwarder::open(&spec)).expect("open");
    let proxy = ProxyTarget {
        name: "p".into(),
        delivery: Delivery::L2 {
            ifname: "px0".into(),
            mac: [2, 0, 0, 0, 0, 0xaa],
        },
    };
    ns.run(|| fwd.set_proxies(&[proxy])).expect("proxies");
    for (addr, ports) in [
        ("192.0.2.10", vec![(80, Proto::Tcp), (53, Proto::Udp)]),
        ("2001:db8::10", vec![(443, Proto::Tcp)]),
    ] {
        let vip = VipService {
            addr: addr.parse().unwrap(),
            ports,
            no_healthy: None,
        };
        fwd.set_vip(&vip, &[("p".to_string(), 1)]).expect("set_vip");
    }
    let handoff = HandoffSpec {
        local: local.parse().unwrap(),
        peers: peers.iter().map(|p| p.parse().unwrap()).collect(),
    };
    fwd.set_handoff(Some(&handoff)).expect("handoff");
    let flows = Flows::open(&pins.path).expect("flows");
    Node {
        ns,
        _other: other,
        pins,
        fwd,
        flows,
    }
}

impl Node {
    fn run(&self, frame: &[u8]) -> (u32, Vec<u8>) {
        self.ns
            .run(|| self.fwd.test_run(frame, None))
            .expect("test_run")
    }

    /// The outer destination if the frame was encapsulated to a peer.
    fn sent_to(&self, frame: &[u8]) -> Option<Ipv4Addr> {
        let (v, out) = self.run(frame);
        if v != TX {
            assert_eq!(v, REDIRECT, "served here or sent to a peer");
            assert_eq!(out[12..], frame[12..], "served here: only MACs change");
            return None;
        }
        assert_eq!(out.len(), frame.len() + 20);
        assert_eq!(out[34..], frame[14..], "inner packet unchanged");
        Some(Ipv4Addr::new(out[30], out[31], out[32], out[33]))
    }

    fn new_flows(&mut self) -> Vec<u64> {
        let mut v = Vec::new();
        self.flows.take_new(&mut v);
        v
    }

    fn second_chance(&self) -> u64 {
        let c = self.fwd.counters().unwrap();
        c.vips.iter().map(|v| v.second_chance).sum()
    }
}

fn tcp(sport: u16, flags: u8) -> Vec<u8> {
    Frame::tcp("198.51.100.7", "192.0.2.10", sport, 80, flags).bytes()
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The fingerprint of a TCP flow from source port `sport`, as a node (here
/// a throwaway one with the same seed) queues it for its peers.
fn fingerprint(sport: u16) -> u64 {
    let mut n = node(A, &[B]);
    assert_eq!(n.sent_to(&tcp(sport, SYN)), None);
    n.new_flows()[0]
}

/// `inner` in an outer IPv4 header from `src` to `dst` (IP in IP).
fn wrap(src: &str, dst: &str, inner: &Frame) -> Vec<u8> {
    let ip = inner.ip();
    let mut f = inner.bytes()[..12].to_vec();
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
    f.extend_from_slice(&((20 + ip.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 64, 4, 0, 0]);
    f.extend_from_slice(&src.parse::<Ipv4Addr>().unwrap().octets());
    f.extend_from_slice(&dst.parse::<Ipv4Addr>().unwrap().octets());
    f.extend_from_slice(&ip);
    f
}

#[test]
fn a_flow_the_tor_moves_goes_back_to_the_node_that_owns_it() {
    let mut a = node(A, &[B, C]);
    let mut b = node(B, &[A, C]);

    // A serves three flows (TCP v4, TCP v6, UDP) and queues each once.
    assert_eq!(a.sent_to(&tcp(41000, SYN)), None);
    assert_eq!(a.sent_to(&tcp(41000, ACK)), None, "a known flow: not new");
    let v6 = |flags| Frame::tcp("2001:db8:1::7", "2001:db8::10", 41001, 443, flags).bytes();
    assert_eq!(a.sent_to(&v6(SYN)), None);
    let udp = Frame::udp("198.51.100.7", "192.0.2.10", 5000, 53).bytes();
    assert_eq!(a.sent_to(&udp), None);
    let fps = a.new_flows();
    assert_eq!(fps.len(), 3, "{fps:x?}");
    assert!(a.new_flows().is_empty(), "taken once");
    let mut owned = a.flows.owned();
    owned.sort();
    let mut sorted = fps.clone();
    sorted.sort();
    assert_eq!(owned, sorted, "a full sync lists the same flows");

    // Before B hears of them, B would serve A's flows itself (the reset
    // users saw); once told, every later packet goes back to A.
    assert_eq!(b.sent_to(&tcp(41000, ACK)), None);
    assert_eq!(b.flows.set_owner(addr(A), &fps).unwrap(), Some(3));
    assert_eq!(b.flows.owner(fps[0]).unwrap(), Some(addr(A)));
    for _ in 0..3 {
        assert_eq!(b.sent_to(&tcp(41000, ACK)), Some(A.parse().unwrap()));
    }
    assert_eq!(b.sent_to(&v6(ACK)), Some(A.parse().unwrap()));
    assert_eq!(b.sent_to(&udp), Some(A.parse().unwrap()));
    assert_eq!(
        b.second_chance(),
        3,
        "counted once per flow, then a table hit"
    );
    assert!(
        b.new_flows().is_empty(),
        "A's flows are not B's to announce"
    );

    // A new connection on the same 5-tuple is B's own.
    assert_eq!(b.sent_to(&tcp(41000, SYN)), None);
    assert_eq!(b.new_flows().len(), 1);
    // A flow nobody owns is served here, as before.
    assert_eq!(b.sent_to(&tcp(42000, ACK)), None);

    // A's packet of its own flow arrives wrapped at A (the owner): served.
    let inner = Frame::tcp("198.51.100.7", "192.0.2.10", 41000, 80, ACK);
    let (v, out) = a.run(&wrap(B, A, &inner));
    assert_eq!(v, REDIRECT);
    assert_eq!(out[12..], inner.bytes()[12..]);
}

#[test]
fn ownership_is_taken_only_from_peers_and_never_loops() {
    let mut b = node(B, &[A, C]);
    let fp = fingerprint(43000);

    // Not a peer: nothing written. Not a fingerprint: skipped.
    assert_eq!(b.flows.set_owner(addr("192.0.2.99"), &[fp]).unwrap(), None);
    assert_eq!(b.flows.set_owner(addr("2001:db8::1"), &[fp]).unwrap(), None);
    assert_eq!(b.flows.owner(fp).unwrap(), None);
    assert_eq!(
        b.flows
            .set_owner(addr(C), &[0, 1, fp & !(1 << 63)])
            .unwrap(),
        Some(0),
        "none is a fingerprint"
    );
    assert_eq!(b.flows.peer_owned_len(), 0);

    // A packet a peer handed us is served here even if that peer "owns"
    // it: never sent back.
    b.flows.set_owner(addr(C), &[fp]).unwrap();
    let inner = Frame::tcp("198.51.100.7", "192.0.2.10", 43000, 80, ACK);
    let (v, _) = b.run(&wrap(C, B, &inner));
    assert_eq!(v, REDIRECT, "served here");
    assert_eq!(b.second_chance(), 0);

    // A VLAN-tagged frame cannot be encapsulated as is: served here.
    let fp2 = fingerprint(43001);
    b.flows.set_owner(addr(C), &[fp2]).unwrap();
    let mut tagged = Frame::tcp("198.51.100.7", "192.0.2.10", 43001, 80, ACK);
    tagged.vlans = vec![7];
    assert_eq!(b.run(&tagged.bytes()).0, REDIRECT);

    // New peers: the indices moved, so what the old ones owned is gone.
    assert_eq!(b.flows.peer_owned_len(), 2);
    b.fwd
        .set_handoff(Some(&HandoffSpec {
            local: addr(B),
            peers: vec![addr(C)],
        }))
        .unwrap();
    assert_eq!(b.flows.peer_owned_len(), 0);
    assert_eq!(b.sent_to(&tcp(43000, ACK)), None, "a nonsyn miss again");
    // Same peers set again: kept.
    b.flows.set_owner(addr(C), &[fp]).unwrap();
    b.fwd
        .set_handoff(Some(&HandoffSpec {
            local: addr(B),
            peers: vec![addr(C)],
        }))
        .unwrap();
    assert_eq!(b.flows.owner(fp).unwrap(), Some(addr(C)));
}

#[test]
fn without_peers_nothing_is_queued_and_nothing_is_unwrapped() {
    let mut a = node(A, &[B]);
    a.fwd.set_handoff(None).unwrap();
    assert_eq!(a.sent_to(&tcp(44000, SYN)), None);
    assert!(a.new_flows().is_empty());
    let g = a.fwd.counters().unwrap().global;
    assert_eq!(g.share_lost, 0);
    // A plain non-VIP packet is still passed.
    let other = Frame::tcp("198.51.100.7", "192.0.2.99", 1, 80, SYN).bytes();
    assert_eq!(a.run(&other).0, PASS);
}

/// The connections a held-back VIP still serves here, as the daemon reads
/// them every second.
fn held(n: &mut Node) -> u64 {
    let h = edged_ebpf::HeldCounter::open(&n.pins.path)
        .unwrap()
        .count(std::time::Duration::from_secs(30))
        .unwrap();
    h.get(&addr("192.0.2.10")).copied().unwrap_or(0)
}

#[test]
fn a_drained_vip_counts_the_connections_it_still_serves_until_they_end() {
    let mut a = node(A, &[B]);
    let vip = addr("192.0.2.10");
    // Three connections before the drain; not counted while the VIP serves.
    for sport in [45000, 45001, 45002] {
        assert_eq!(a.sent_to(&tcp(sport, SYN)), None);
    }
    assert_eq!(a.sent_to(&tcp(45000, ACK)), None);
    assert_eq!(held(&mut a), 0, "not held back: nothing counted");

    a.fwd.set_vip_handoff(vip, true).unwrap();
    // Seen since the drain began: held, however they arrive (directly, or
    // wrapped by the peer the ToR moved them to).
    assert_eq!(a.sent_to(&tcp(45000, ACK)), None);
    let inner = Frame::tcp("198.51.100.7", "192.0.2.10", 45001, 80, ACK);
    assert_eq!(a.run(&wrap(B, A, &inner)).0, REDIRECT);
    assert_eq!(held(&mut a), 2);
    // A new connection goes to the peer: not this node's to hold.
    assert_eq!(a.sent_to(&tcp(45100, SYN)), Some(B.parse().unwrap()));
    assert_eq!(held(&mut a), 2);
    // A UDP flow is not counted (it has no end to wait for).
    let udp = Frame::udp("198.51.100.7", "192.0.2.10", 5001, 53).bytes();
    a.run(&udp);
    assert_eq!(held(&mut a), 2);

    // The client's FIN ends one; the ACK after it does not revive it.
    assert_eq!(a.sent_to(&tcp(45000, FIN | ACK)), None);
    assert_eq!(a.sent_to(&tcp(45000, ACK)), None);
    assert_eq!(held(&mut a), 1);
    // RST ends the other.
    let inner = Frame::tcp("198.51.100.7", "192.0.2.10", 45001, 80, RST);
    assert_eq!(a.run(&wrap(B, A, &inner)).0, REDIRECT);
    assert_eq!(held(&mut a), 0);
    // An end of a connection never seen since the drain adds nothing.
    assert_eq!(a.sent_to(&tcp(45002, FIN | ACK)), None);
    assert_eq!(held(&mut a), 0);

    // Silent for longer than the idle bound: no longer counted (and pruned).
    assert_eq!(a.sent_to(&tcp(45002, ACK)), None);
    let idle = std::time::Duration::ZERO;
    std::thread::sleep(std::time::Duration::from_millis(30));
    let mut counter = edged_ebpf::HeldCounter::open(&a.pins.path).unwrap();
    assert_eq!(counter.count(idle).unwrap().get(&vip), None);

    // Undrained: nothing new is tracked.
    a.fwd.set_vip_handoff(vip, false).unwrap();
    assert_eq!(a.sent_to(&tcp(45002, ACK)), None);
    assert_eq!(held(&mut a), 0);
}
