//! Crafted frames through BPF_PROG_TEST_RUN: verdict and rewritten bytes.
//! Needs root (BPF, netns); each test builds its own namespace and pin dir.

mod common;

use common::packet::{ACK, ECE_CWR, FIN, Frame, L4, RST, SYN};
use common::{Netns, PinDir, veth};
use edged_ebpf::{Delivery, Forwarder, ForwarderSpec, Proto, ProxyTarget, VipService, XdpMode};
use edged_testlab::Rng;

const DROP: u32 = 1;
const PASS: u32 = 2;
const TX: u32 = 3;
const REDIRECT: u32 = 4;
const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0xaa];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0xbb];
const MAC_T: [u8; 6] = [2, 0, 0, 0, 0, 0x77];

/// An edge namespace with two interfaces (`px0` towards proxies a and b,
/// `up0` the "uplink" with proxy t on it) and a forwarder with five VIPs.
struct Rig {
    edge: Netns,
    _peer: Netns,
    _pins: PinDir,
    fwd: Forwarder,
    px0_mac: [u8; 6],
    up0: u32,
}

fn rig() -> Rig {
    let edge = Netns::new("edce");
    let peer = Netns::new("edcp");
    veth(&edge, "px0", &peer, "px0p");
    veth(&edge, "up0", &peer, "up0p");
    let pins = PinDir::new();
    let mut spec = ForwarderSpec::new(vec![], pins.path.clone());
    spec.mode = XdpMode::Generic;
    spec.hash_seed = 7;
    spec.conntrack_entries = 4096;
    let mut fwd = edge.run(|| Forwarder::open(&spec)).expect("open");
    let l2 = |name: &str, ifname: &str, mac| ProxyTarget {
        name: name.into(),
        delivery: Delivery::L2 {
            ifname: ifname.into(),
            mac,
        },
    };
    let proxies = vec![
        l2("a", "px0", MAC_A),
        l2("b", "px0", MAC_B),
        l2("t", "up0", MAC_T),
        ProxyTarget {
            name: "h".into(),
            delivery: Delivery::HostStack,
        },
    ];
    edge.run(|| fwd.set_proxies(&proxies)).expect("proxies");
    let ab = vec![("a".to_string(), 1), ("b".to_string(), 1)];
    for (addr, ports, serving) in [
        (
            "192.0.2.10",
            vec![(80, Proto::Tcp), (53, Proto::Udp)],
            ab.clone(),
        ),
        ("2001:db8::10", vec![(443, Proto::Tcp)], ab.clone()),
        ("192.0.2.20", vec![(80, Proto::Tcp)], vec![]),
        (
            "192.0.2.30",
            vec![(80, Proto::Tcp)],
            vec![("t".to_string(), 1)],
        ),
        (
            "192.0.2.40",
            vec![(80, Proto::Tcp)],
            vec![("h".to_string(), 1)],
        ),
    ] {
        let vip = VipService {
            addr: addr.parse().unwrap(),
            ports,
            no_healthy: None,
        };
        fwd.set_vip(&vip, &serving).expect("set_vip");
    }
    let px0_mac = edge.mac("px0");
    let up0 = edge.ifindex("up0");
    Rig {
        edge,
        _peer: peer,
        _pins: pins,
        fwd,
        px0_mac,
        up0,
    }
}

impl Rig {
    fn run(&self, frame: &[u8]) -> (u32, Vec<u8>) {
        self.edge
            .run(|| self.fwd.test_run(frame, None))
            .expect("test_run")
    }

    /// Asserts a redirect towards px0 with only the MACs rewritten; returns
    /// the proxy's MAC.
    fn forwarded(&self, frame: &[u8]) -> [u8; 6] {
        let (v, out) = self.run(frame);
        assert_eq!(v, REDIRECT, "verdict");
        assert_eq!(out.len(), frame.len());
        assert_eq!(out[6..12], self.px0_mac, "source MAC is px0's");
        assert_eq!(out[12..], frame[12..], "only the MACs change");
        let dst: [u8; 6] = out[0..6].try_into().unwrap();
        assert!(dst == MAC_A || dst == MAC_B, "dst MAC {dst:x?}");
        dst
    }

    fn passed_untouched(&self, frame: &[u8]) {
        let (v, out) = self.run(frame);
        assert_eq!(v, PASS, "verdict");
        assert_eq!(out, frame, "bytes unchanged");
    }

    fn vip(&self, addr: &str) -> edged_ebpf::VipCounters {
        let c = self.fwd.counters().unwrap();
        c.vips
            .into_iter()
            .find(|v| v.addr == Some(addr.parse().unwrap()))
            .unwrap()
    }

    /// Makes `only` the single proxy of the VIP, so that a flow that still
    /// reaches the other one must have come from the connection table.
    fn only(&mut self, addr: &str, ports: Vec<(u16, Proto)>, only: &str) {
        let vip = VipService {
            addr: addr.parse().unwrap(),
            ports,
            no_healthy: None,
        };
        self.fwd.set_vip(&vip, &[(only.to_string(), 1)]).unwrap();
    }
}

fn other(mac: [u8; 6]) -> &'static str {
    if mac == MAC_A { "b" } else { "a" }
}

#[test]
fn tcp_v4_and_v6_syn_then_ack_keep_their_proxy_through_a_table_change() {
    let mut r = rig();
    let syn = Frame::tcp("198.51.100.7", "192.0.2.10", 40000, 80, SYN).bytes();
    let first = r.forwarded(&syn);
    r.only(
        "192.0.2.10",
        vec![(80, Proto::Tcp), (53, Proto::Udp)],
        other(first),
    );
    let ack = Frame::tcp("198.51.100.7", "192.0.2.10", 40000, 80, ACK).bytes();
    assert_eq!(r.forwarded(&ack), first, "ACK follows the connection table");
    // A new flow now lands on the only proxy left in the table.
    let syn2 = Frame::tcp("198.51.100.7", "192.0.2.10", 40001, 80, SYN).bytes();
    let new_mac = if first == MAC_A { MAC_B } else { MAC_A };
    assert_eq!(r.forwarded(&syn2), new_mac);
    // A non-SYN without an entry is forwarded by the Maglev pick and counted.
    let stray = Frame::tcp("198.51.100.7", "192.0.2.10", 40002, 80, ACK).bytes();
    assert_eq!(r.forwarded(&stray), new_mac);
    let c = r.vip("192.0.2.10");
    assert_eq!((c.packets, c.new_flows, c.nonsyn_miss), (4, 2, 1));

    let syn6 = Frame::tcp("2001:db8:1::7", "2001:db8::10", 40000, 443, SYN).bytes();
    let first6 = r.forwarded(&syn6);
    r.only("2001:db8::10", vec![(443, Proto::Tcp)], other(first6));
    let ack6 = Frame::tcp("2001:db8:1::7", "2001:db8::10", 40000, 443, ACK).bytes();
    assert_eq!(r.forwarded(&ack6), first6);
    assert_eq!(r.vip("2001:db8::10").new_flows, 1);
    let c = r.fwd.counters().unwrap();
    let total: u64 = c
        .proxies
        .iter()
        .filter(|p| p.name == "a" || p.name == "b")
        .map(|p| p.packets)
        .sum();
    assert_eq!(total, 6);
}

#[test]
fn udp_non_vip_wrong_port_host_stack_tx_and_no_healthy() {
    let r = rig();
    let udp = Frame::udp("198.51.100.7", "192.0.2.10", 5000, 53).bytes();
    r.forwarded(&udp);
    assert_eq!(r.vip("192.0.2.10").new_flows, 1, "UDP records the flow");
    r.passed_untouched(&Frame::tcp("198.51.100.7", "192.0.2.99", 1, 80, SYN).bytes());
    r.passed_untouched(&Frame::tcp("198.51.100.7", "192.0.2.10", 1, 81, SYN).bytes());
    r.passed_untouched(&Frame::udp("198.51.100.7", "192.0.2.10", 1, 80).bytes());
    r.passed_untouched(&Frame::tcp("2001:db8:1::7", "2001:db8::11", 1, 443, SYN).bytes());

    let host = Frame::tcp("198.51.100.7", "192.0.2.40", 1, 80, SYN).bytes();
    r.passed_untouched(&host);
    assert_eq!(r.vip("192.0.2.40").packets, 1);

    // Proxy t sits on the ingress interface: XDP_TX with both MACs rewritten.
    let tx = Frame::tcp("198.51.100.7", "192.0.2.30", 1, 80, SYN).bytes();
    let (v, out) = r.edge.run(|| r.fwd.test_run(&tx, Some(r.up0))).unwrap();
    assert_eq!(v, TX);
    assert_eq!(out[0..6], MAC_T);
    assert_eq!(out[6..12], r.edge.mac("up0"));
    assert_eq!(out[12..], tx[12..]);

    let nh = Frame::tcp("198.51.100.7", "192.0.2.20", 1, 80, SYN).bytes();
    let (v, _) = r.run(&nh);
    assert_eq!(v, DROP);
    assert_eq!(r.vip("192.0.2.20").drop_no_healthy, 1);
}

#[test]
fn icmp_errors_reach_the_proxy_owning_the_flow() {
    let mut r = rig();
    let syn = Frame::tcp("198.51.100.7", "192.0.2.10", 41000, 80, SYN).bytes();
    let owner = r.forwarded(&syn);
    // Move the table away so only the connection table knows the owner.
    r.only(
        "192.0.2.10",
        vec![(80, Proto::Tcp), (53, Proto::Udp)],
        other(owner),
    );
    let reply = Frame::tcp("192.0.2.10", "198.51.100.7", 80, 41000, SYN | ACK);
    for inner_l4_len in [20, 8] {
        let icmp = Frame {
            l4: L4::IcmpTooBig {
                inner: Box::new(reply.clone()),
                inner_l4_len,
            },
            ..Frame::tcp("203.0.113.1", "192.0.2.10", 0, 0, 0)
        };
        assert_eq!(
            r.forwarded(&icmp.bytes()),
            owner,
            "inner L4 of {inner_l4_len} bytes"
        );
    }
    let syn6 = Frame::tcp("2001:db8:1::7", "2001:db8::10", 41000, 443, SYN).bytes();
    let owner6 = r.forwarded(&syn6);
    r.only("2001:db8::10", vec![(443, Proto::Tcp)], other(owner6));
    let reply6 = Frame::tcp("2001:db8::10", "2001:db8:1::7", 443, 41000, SYN | ACK);
    let ptb = Frame {
        l4: L4::IcmpTooBig {
            inner: Box::new(reply6),
            inner_l4_len: 8,
        },
        ..Frame::tcp("2001:db8:ff::1", "2001:db8::10", 0, 0, 0)
    };
    assert_eq!(r.forwarded(&ptb.bytes()), owner6);
    assert_eq!(r.vip("192.0.2.10").icmp_forwarded, 2);
    assert_eq!(r.vip("2001:db8::10").icmp_forwarded, 1);
    // An ICMP error about a flow of no VIP port is passed untouched.
    let stranger = Frame::tcp("192.0.2.10", "198.51.100.7", 9999, 41000, ACK);
    let icmp = Frame {
        l4: L4::IcmpTooBig {
            inner: Box::new(stranger),
            inner_l4_len: 8,
        },
        ..Frame::tcp("203.0.113.1", "192.0.2.10", 0, 0, 0)
    };
    r.passed_untouched(&icmp.bytes());
    assert_eq!(r.fwd.counters().unwrap().global.icmp_not_ours, 1);
}

#[test]
fn fragments_options_and_vlans() {
    let r = rig();
    let mut first = Frame::tcp("198.51.100.7", "192.0.2.10", 42000, 80, SYN);
    first.frag = 0x2000; // MF, offset 0
    r.passed_untouched(&first.bytes());
    let mut later = first.clone();
    later.frag = 0x0010; // offset 128 bytes, last
    later.l4 = L4::Raw {
        proto: 6,
        bytes: vec![0xab; 24],
    };
    r.passed_untouched(&later.bytes());
    assert_eq!(r.vip("192.0.2.10").frag_pass, 2);
    let mut frag6 = Frame::tcp("2001:db8:1::7", "2001:db8::10", 1, 443, SYN);
    frag6.l4 = L4::Raw {
        proto: 44,
        bytes: vec![6, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 0],
    };
    r.passed_untouched(&frag6.bytes());
    assert_eq!(r.vip("2001:db8::10").frag_pass, 1);

    let mut opts = Frame::tcp("198.51.100.7", "192.0.2.10", 42001, 80, SYN);
    opts.options = vec![1, 1, 1, 0]; // NOP NOP NOP EOL
    r.forwarded(&opts.bytes());

    let mut tagged = Frame::tcp("198.51.100.7", "192.0.2.10", 42002, 80, SYN);
    tagged.vlans = vec![100];
    r.forwarded(&tagged.bytes());
    tagged.vlans = vec![10, 100];
    r.forwarded(&tagged.bytes());
    tagged.vlans = vec![10, 100, 1000];
    r.passed_untouched(&tagged.bytes());
    assert_eq!(r.fwd.counters().unwrap().global.vlan_too_deep, 1);
}

#[test]
fn truncated_at_every_boundary_is_passed_and_counted() {
    let r = rig();
    let reply = Frame::tcp("192.0.2.10", "198.51.100.7", 80, 41000, ACK);
    let mut vlan = Frame::tcp("198.51.100.7", "192.0.2.10", 43000, 80, SYN);
    vlan.vlans = vec![5, 6];
    let frames = [
        Frame::tcp("198.51.100.7", "192.0.2.10", 43000, 80, SYN),
        Frame::udp("198.51.100.7", "192.0.2.10", 43000, 53),
        Frame::tcp("2001:db8:1::7", "2001:db8::10", 43000, 443, SYN),
        vlan,
        Frame {
            l4: L4::IcmpTooBig {
                inner: Box::new(reply),
                inner_l4_len: 8,
            },
            ..Frame::tcp("203.0.113.1", "192.0.2.10", 0, 0, 0)
        },
    ];
    let mut expected = 0;
    for f in &frames {
        let full = f.bytes();
        // Headers end where the payload starts (the UDP frame has 4 bytes).
        let headers = full.len() - if matches!(f.l4, L4::Udp { .. }) { 4 } else { 0 };
        // BPF_PROG_TEST_RUN needs at least an Ethernet header.
        for len in 14..headers {
            let cut = &full[..len];
            let (v, out) = r.run(cut);
            assert_eq!(v, PASS, "cut at {len} of {}", full.len());
            assert_eq!(out, cut);
            expected += 1;
        }
        // The untruncated frame is forwarded.
        r.forwarded(&full);
    }
    assert_eq!(r.fwd.counters().unwrap().global.truncated, expected);
}

#[test]
fn vips_sharing_an_index_slot_both_match_exactly() {
    let mut r = rig();
    // An address of 2001:db8::/32 whose index slot is 2001:db8::10's.
    let slot = |a: std::net::IpAddr| edged_ebpf::bench::index_slot(&r.fwd, a);
    let first: std::net::IpAddr = "2001:db8::10".parse().unwrap();
    let addr = (1u32..)
        .map(|i| {
            std::net::IpAddr::from(std::net::Ipv6Addr::new(
                0x2001,
                0xdb8,
                7,
                0,
                0,
                0,
                (i >> 16) as u16,
                i as u16,
            ))
        })
        .find(|a| slot(*a) == slot(first))
        .unwrap();
    let twin = VipService {
        addr,
        ports: vec![(8443, Proto::Tcp)],
        no_healthy: None,
    };
    let a = addr.to_string();
    r.fwd.set_vip(&twin, &[("a".to_string(), 1)]).unwrap();
    assert_eq!(
        r.forwarded(&Frame::tcp("2001:db8:1::7", &a, 1, 8443, SYN).bytes()),
        MAC_A
    );
    r.forwarded(&Frame::tcp("2001:db8:1::7", "2001:db8::10", 1, 443, SYN).bytes());
    r.passed_untouched(&Frame::tcp("2001:db8:1::7", &a, 1, 443, SYN).bytes());
    r.passed_untouched(&Frame::tcp("2001:db8:1::7", "2001:db8::10", 1, 8443, SYN).bytes());
    // Removing one leaves the other matched through the direct index again.
    r.fwd.remove_vip(twin.addr).unwrap();
    r.passed_untouched(&Frame::tcp("2001:db8:1::7", &a, 2, 8443, SYN).bytes());
    r.forwarded(&Frame::tcp("2001:db8:1::7", "2001:db8::10", 2, 443, SYN).bytes());
}

#[test]
fn a_vip_with_more_ports_than_its_entry_holds_matches_each_and_no_other() {
    let mut r = rig();
    // 12 ports: 8 inline, 4 in the hash map only.
    let ports: Vec<(u16, Proto)> = (0..12).map(|i| (9000 + i * 7, Proto::Tcp)).collect();
    let vip = VipService {
        addr: "192.0.2.77".parse().unwrap(),
        ports: ports.clone(),
        no_healthy: None,
    };
    r.fwd.set_vip(&vip, &[("a".to_string(), 1)]).unwrap();
    for (port, _) in &ports {
        let f = Frame::tcp("198.51.100.7", "192.0.2.77", 1, *port, SYN).bytes();
        assert_eq!(r.forwarded(&f), MAC_A, "port {port}");
    }
    for port in [9001, 80, 9000 + 12 * 7] {
        r.passed_untouched(&Frame::tcp("198.51.100.7", "192.0.2.77", 1, port, SYN).bytes());
    }
    // Down to two ports: the others stop matching.
    let two = VipService {
        ports: ports[..2].to_vec(),
        ..vip
    };
    r.fwd.set_vip(&two, &[("a".to_string(), 1)]).unwrap();
    r.passed_untouched(&Frame::tcp("198.51.100.7", "192.0.2.77", 2, 9000 + 11 * 7, SYN).bytes());
    r.forwarded(&Frame::tcp("198.51.100.7", "192.0.2.77", 2, 9007, SYN).bytes());
}

/// The IP destination of a frame (after up to two VLAN tags), if any.
fn ip_dst(f: &[u8]) -> Option<std::net::IpAddr> {
    let mut off = 12;
    let mut et = u16::from_be_bytes([*f.get(off)?, *f.get(off + 1)?]);
    for _ in 0..2 {
        if et != 0x8100 && et != 0x88a8 {
            break;
        }
        off += 4;
        et = u16::from_be_bytes([*f.get(off)?, *f.get(off + 1)?]);
    }
    let l3 = off + 2;
    match et {
        0x0800 => Some(<[u8; 4]>::try_from(f.get(l3 + 16..l3 + 20)?).ok()?.into()),
        0x86dd => Some(<[u8; 16]>::try_from(f.get(l3 + 24..l3 + 40)?).ok()?.into()),
        _ => None,
    }
}

/// One to four seeded changes to `f`: a flipped bit (at `from` or later),
/// a random byte after the MACs, a cut (never below the Ethernet header),
/// or up to `grow` random bytes appended.
fn mutate(rng: &mut Rng, f: &mut Vec<u8>, from: usize, grow: usize) {
    for _ in 0..1 + rng.below(4) {
        match rng.below(4) {
            0 => {
                let at = from + rng.below(f.len() - from);
                f[at] ^= 1 << rng.below(8);
            }
            1 => {
                let at = 12 + rng.below(f.len() - 12);
                f[at] = rng.next_u64() as u8;
            }
            2 => f.truncate(14 + rng.below(f.len() - 13)),
            _ => f.extend((0..rng.below(grow)).map(|_| rng.next_u64() as u8)),
        }
    }
}

#[test]
fn mutated_frames_never_abort_nor_misforward() {
    let r = rig();
    let vips: Vec<std::net::IpAddr> = ["192.0.2.10", "2001:db8::10", "192.0.2.30", "192.0.2.40"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let reply = Frame::tcp("192.0.2.10", "198.51.100.7", 80, 41000, ACK);
    let mut vlan = Frame::tcp("198.51.100.7", "192.0.2.10", 43000, 80, SYN);
    vlan.vlans = vec![5, 6];
    let mut opts = Frame::udp("198.51.100.7", "192.0.2.10", 43000, 53);
    opts.options = vec![1, 1, 1, 0, 1, 1, 1, 0];
    let seeds: Vec<Vec<u8>> = vec![
        Frame::tcp("198.51.100.7", "192.0.2.10", 43000, 80, SYN).bytes(),
        Frame::tcp("2001:db8:1::7", "2001:db8::10", 43000, 443, ACK).bytes(),
        vlan.bytes(),
        opts.bytes(),
        Frame {
            l4: L4::IcmpTooBig {
                inner: Box::new(reply),
                inner_l4_len: 8,
            },
            ..Frame::tcp("203.0.113.1", "192.0.2.10", 0, 0, 0)
        }
        .bytes(),
    ];
    let mut rng = Rng(0x5eed_edfe_0000_0003);
    for i in 0..4000 {
        let mut f = seeds[rng.below(seeds.len())].clone();
        mutate(&mut rng, &mut f, 0, 64);
        let (v, out) = r.run(&f);
        match v {
            PASS | DROP => assert_eq!(out, f, "case {i}: passed or dropped frames are untouched"),
            REDIRECT | TX => {
                assert_eq!(out[12..], f[12..], "case {i}: only MACs rewritten");
                let dst = ip_dst(&f).expect("forwarded frames are IP");
                assert!(
                    vips.contains(&dst),
                    "case {i}: forwarded to {dst}, not a VIP"
                );
            }
            other => panic!("case {i}: verdict {other} on {f:02x?}"),
        }
    }
}

#[test]
fn no_healthy_proxy_can_pass_to_the_host() {
    let edge = Netns::new("edcn");
    let pins = PinDir::new();
    let mut spec = ForwarderSpec::new(vec![], pins.path.clone());
    spec.no_healthy = edged_ebpf::NoHealthy::Pass;
    spec.conntrack_entries = 1024;
    let mut fwd = edge.run(|| Forwarder::open(&spec)).expect("open");
    let vip = VipService {
        addr: "192.0.2.50".parse().unwrap(),
        ports: vec![(80, Proto::Tcp)],
        no_healthy: None,
    };
    fwd.set_vip(&vip, &[]).unwrap();
    let syn = Frame::tcp("198.51.100.7", "192.0.2.50", 1, 80, SYN).bytes();
    let (v, out) = edge.run(|| fwd.test_run(&syn, None)).unwrap();
    assert_eq!((v, out), (PASS, syn));
    let c = fwd.counters().unwrap();
    assert_eq!(
        (c.vips[0].pass_no_healthy, c.vips[0].drop_no_healthy),
        (1, 0)
    );
}

#[test]
fn bad_input_is_rejected_and_changes_nothing() {
    let mut r = rig();
    let vip = VipService {
        addr: "192.0.2.10".parse().unwrap(),
        ports: vec![(80, Proto::Tcp), (53, Proto::Udp)],
        no_healthy: None,
    };
    let err = r
        .fwd
        .set_vip(&vip, &[("nobody".to_string(), 1)])
        .unwrap_err();
    assert!(
        matches!(err, edged_ebpf::ForwarderError::UnknownProxy { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("set_proxies"), "{err}");
    r.forwarded(&Frame::tcp("198.51.100.7", "192.0.2.10", 44000, 80, SYN).bytes());
    let long = ProxyTarget {
        name: "x".repeat(64),
        delivery: Delivery::HostStack,
    };
    let err = r.edge.run(|| r.fwd.set_proxies(&[long])).unwrap_err();
    assert!(
        matches!(err, edged_ebpf::ForwarderError::ProxyName { .. }),
        "{err}"
    );
    let missing = ProxyTarget {
        name: "m".into(),
        delivery: Delivery::L2 {
            ifname: "nosuch0".into(),
            mac: MAC_A,
        },
    };
    let err = r.edge.run(|| r.fwd.set_proxies(&[missing])).unwrap_err();
    assert!(
        matches!(err, edged_ebpf::ForwarderError::Interface { .. }),
        "{err}"
    );
    // Proxies a and b are still there and still serving.
    assert_eq!(r.fwd.counters().unwrap().proxies.len(), 4);
    r.forwarded(&Frame::tcp("198.51.100.7", "192.0.2.10", 44001, 80, SYN).bytes());
    let mut spec = ForwarderSpec::new(vec![], "/sys/fs/bpf/x".into());
    spec.table_size = 65536;
    let err = Forwarder::open(&spec).err().expect("not prime");
    assert!(err.to_string().contains("table_size"), "{err}");
}

/// An outer IPv4 header (protocol 4 or 41) around `inner` in a frame from
/// the ToR (MACs as in `Frame::bytes`).
fn wrap_v4(src: &str, dst: &str, inner: &Frame) -> Vec<u8> {
    let ip = inner.ip();
    let proto = if inner.src.is_ipv4() { 4 } else { 41 };
    let (s, d): (std::net::Ipv4Addr, std::net::Ipv4Addr) =
        (src.parse().unwrap(), dst.parse().unwrap());
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&((20 + ip.len()) as u16).to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0, 64, proto, 0, 0]);
    h.extend_from_slice(&s.octets());
    h.extend_from_slice(&d.octets());
    let mut f = inner.bytes()[..12].to_vec();
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&h);
    f.extend_from_slice(&ip);
    f
}

fn ip4_checksum_ok(h: &[u8]) -> bool {
    let mut sum: u32 = h
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

const LOCAL: &str = "192.0.2.201";
const PEERS: [&str; 2] = ["192.0.2.202", "192.0.2.203"];

impl Rig {
    /// Asserts the frame went back out encapsulated to a peer; returns the
    /// peer's address.
    fn handed_off(&self, frame: &[u8]) -> std::net::Ipv4Addr {
        let (v, out) = self.run(frame);
        assert_eq!(v, TX, "verdict");
        assert_eq!(out.len(), frame.len() + 20);
        assert_eq!(out[0..6], frame[6..12], "back to the router it came from");
        assert_eq!(out[6..12], frame[0..6], "from our own MAC");
        assert_eq!(out[12..14], [0x08, 0x00]);
        let outer = &out[14..34];
        assert_eq!(outer[0], 0x45);
        assert_eq!(
            u16::from_be_bytes([outer[2], outer[3]]) as usize,
            frame.len() - 14 + 20
        );
        let inner_proto = if frame[12..14] == [0x08, 0x00] { 4 } else { 41 };
        assert_eq!(outer[9], inner_proto, "protocol");
        assert!(ip4_checksum_ok(outer), "outer checksum {outer:x?}");
        assert_eq!(
            outer[12..16],
            LOCAL.parse::<std::net::Ipv4Addr>().unwrap().octets()
        );
        assert_eq!(out[34..], frame[14..], "inner packet unchanged");
        let peer = std::net::Ipv4Addr::new(outer[16], outer[17], outer[18], outer[19]);
        assert!(PEERS.contains(&peer.to_string().as_str()), "{peer}");
        peer
    }
}

/// The rig, handing off from LOCAL to PEERS.
fn rig_with_peers() -> Rig {
    let mut r = rig();
    let spec = edged_ebpf::HandoffSpec {
        local: LOCAL.parse().unwrap(),
        peers: PEERS.iter().map(|p| p.parse().unwrap()).collect(),
    };
    r.fwd.set_handoff(Some(&spec)).unwrap();
    r
}

#[test]
fn handoff_sends_a_drained_vips_new_flows_to_peers_and_serves_theirs() {
    let mut r = rig_with_peers();
    let vip: std::net::IpAddr = "192.0.2.10".parse().unwrap();
    let est = |flags| Frame::tcp("198.51.100.7", "192.0.2.10", 41000, 80, flags).bytes();
    let owner = r.forwarded(&est(SYN));
    assert!(!r.fwd.vip_handoff(vip).unwrap());
    r.fwd.set_vip_handoff(vip, true).unwrap();
    assert!(r.fwd.vip_handoff(vip).unwrap());

    // An established flow stays on its proxy; UDP is not handed off.
    assert_eq!(r.forwarded(&est(ACK)), owner);
    r.forwarded(&Frame::udp("198.51.100.7", "192.0.2.10", 5000, 53).bytes());
    // New TCP flows go to the peers, spread over both, and stay there.
    let mut seen = std::collections::BTreeSet::new();
    for port in 42000..42040 {
        let syn = Frame::tcp("198.51.100.7", "192.0.2.10", port, 80, SYN).bytes();
        let peer = r.handed_off(&syn);
        let ack = Frame::tcp("198.51.100.7", "192.0.2.10", port, 80, ACK).bytes();
        assert_eq!(r.handed_off(&ack), peer, "the flow's later packets follow");
        seen.insert(peer);
    }
    assert_eq!(seen.len(), 2, "both peers get flows: {seen:?}");
    // IPv6 inside IPv4 (protocol 41).
    let v6: std::net::IpAddr = "2001:db8::10".parse().unwrap();
    r.fwd.set_vip_handoff(v6, true).unwrap();
    r.handed_off(&Frame::tcp("2001:db8:1::7", "2001:db8::10", 42000, 443, SYN).bytes());
    // A VLAN-tagged SYN cannot be encapsulated as is: served here.
    let mut tagged = Frame::tcp("198.51.100.7", "192.0.2.10", 43000, 80, SYN);
    tagged.vlans = vec![7];
    let (v, _) = r.run(&tagged.bytes());
    assert_eq!(v, REDIRECT);
    let g = r.fwd.counters().unwrap().global;
    assert_eq!((g.handoff_out, g.handoff_error), (81, 0));

    // Undrained: new flows are served here; handed-off ones stay away.
    r.fwd.set_vip_handoff(vip, false).unwrap();
    r.forwarded(&Frame::tcp("198.51.100.7", "192.0.2.10", 44000, 80, SYN).bytes());
    r.handed_off(&Frame::tcp("198.51.100.7", "192.0.2.10", 42000, 80, ACK).bytes());

    // A peer's packet to us is unwrapped and served by our proxies, even
    // for a flow we had handed off (never sent back: no loop).
    for (port, flags) in [(45000, SYN), (42001, ACK)] {
        let inner = Frame::tcp("198.51.100.7", "192.0.2.10", port, 80, flags);
        let wrapped = wrap_v4(PEERS[1], LOCAL, &inner);
        let (v, out) = r.run(&wrapped);
        assert_eq!(v, REDIRECT, "port {port}");
        assert_eq!(out.len(), wrapped.len() - 20);
        assert_eq!(out[6..12], r.px0_mac);
        assert_eq!(out[12..], inner.bytes()[12..], "the inner frame");
    }
    let inner6 = Frame::tcp("2001:db8:1::7", "2001:db8::10", 45001, 443, SYN);
    let (v, out) = r.run(&wrap_v4(PEERS[0], LOCAL, &inner6));
    assert_eq!((v, &out[12..]), (REDIRECT, &inner6.bytes()[12..]));
    // Not from a peer, or not to us: the host's business, untouched.
    let inner = Frame::tcp("198.51.100.7", "192.0.2.10", 45002, 80, SYN);
    r.passed_untouched(&wrap_v4("192.0.2.99", LOCAL, &inner));
    r.passed_untouched(&wrap_v4(PEERS[0], "192.0.2.250", &inner));
    assert_eq!(r.fwd.counters().unwrap().global.handoff_in, 3);

    // Handoff off: nothing is unwrapped, flows handed to a peer come home.
    r.fwd.set_handoff(None).unwrap();
    r.passed_untouched(&wrap_v4(PEERS[1], LOCAL, &inner));
    r.forwarded(&Frame::tcp("198.51.100.7", "192.0.2.10", 42002, 80, ACK).bytes());
}

#[test]
fn a_new_syn_on_a_reused_five_tuple_is_picked_afresh() {
    let mut r = rig();
    let syn = Frame::tcp("198.51.100.7", "192.0.2.10", 40100, 80, SYN).bytes();
    let ack = Frame::tcp("198.51.100.7", "192.0.2.10", 40100, 80, ACK).bytes();
    let first = r.forwarded(&syn);
    // The first proxy leaves the table: the old connection's packets still
    // follow the entry, but a new connection on the same 5-tuple does not.
    r.only(
        "192.0.2.10",
        vec![(80, Proto::Tcp), (53, Proto::Udp)],
        other(first),
    );
    assert_eq!(r.forwarded(&ack), first);
    let again = r.forwarded(&syn);
    assert_ne!(again, first, "the SYN went to the proxy that left");
    assert_eq!(r.forwarded(&ack), again, "and the entry now says so");
    assert_eq!(r.vip("192.0.2.10").new_flows, 2);
}

/// A TCP VIP of `rig()`: its client, address, TCP port and all its ports.
struct TcpVip {
    client: &'static str,
    vip: &'static str,
    port: u16,
    ports: Vec<(u16, Proto)>,
}

fn tcp_vips() -> [TcpVip; 2] {
    [
        TcpVip {
            client: "198.51.100.7",
            vip: "192.0.2.10",
            port: 80,
            ports: vec![(80, Proto::Tcp), (53, Proto::Udp)],
        },
        TcpVip {
            client: "2001:db8:1::7",
            vip: "2001:db8::10",
            port: 443,
            ports: vec![(443, Proto::Tcp)],
        },
    ]
}

#[test]
fn syn_with_rst_or_fin_follows_the_live_flow_through_a_table_change() {
    let mut r = rig();
    for TcpVip {
        client,
        vip,
        port,
        ports,
    } in tcp_vips()
    {
        let seg = |flags| Frame::tcp(client, vip, 40200, port, flags).bytes();
        let owner = r.forwarded(&seg(SYN));
        // Only the other proxy is left in the table: a fresh pick goes there.
        r.only(vip, ports, other(owner));
        let fresh = if owner == MAC_A { MAC_B } else { MAC_A };
        let bad = [
            SYN | RST,
            SYN | FIN,
            SYN | RST | FIN,
            SYN | RST | ACK,
            SYN | FIN | ACK,
        ];
        for flags in bad {
            assert_eq!(
                r.forwarded(&seg(flags)),
                owner,
                "{vip}: flags {flags:#04x} left the live flow's proxy"
            );
        }
        assert_eq!(r.forwarded(&seg(ACK)), owner, "{vip}: entry unchanged");
        let c = r.vip(vip);
        assert_eq!(
            (c.new_flows, c.nonsyn_miss, c.bad_tcp_flags),
            (1, 0, bad.len() as u64),
            "{vip}: {c:?}"
        );
        // Only a bare SYN on the same 5-tuple is a new connection.
        assert_eq!(r.forwarded(&seg(SYN)), fresh, "{vip}: a bare SYN re-picks");
    }
}

#[test]
fn syn_with_rst_or_fin_of_an_unknown_flow_is_a_nonsyn_miss() {
    let mut r = rig_with_peers();
    for TcpVip {
        client, vip, port, ..
    } in tcp_vips()
    {
        let seg = |sport, flags| Frame::tcp(client, vip, sport, port, flags);
        let addr: std::net::IpAddr = vip.parse().unwrap();
        let kept = r.fwd.conntrack_len();
        // Forwarded by the Maglev pick, and not recorded.
        r.forwarded(&seg(40300, SYN | RST).bytes());
        r.forwarded(&seg(40301, SYN | FIN).bytes());
        assert_eq!(r.fwd.conntrack_len(), kept, "{vip}: recorded a SYN|RST/FIN");
        // Drained: a bare SYN goes to a peer; a SYN|RST, as any non-SYN
        // packet of an unknown flow, is served here.
        r.fwd.set_vip_handoff(addr, true).unwrap();
        r.forwarded(&seg(40302, SYN | RST).bytes());
        let peer = r.handed_off(&seg(40303, SYN).bytes());
        r.fwd.set_vip_handoff(addr, false).unwrap();
        assert_eq!(r.fwd.conntrack_len(), kept + 1, "{vip}: only the bare SYN");
        // Undrained, a handed-off flow's SYN|RST still follows its entry.
        let rst = seg(40303, SYN | RST).bytes();
        assert_eq!(r.handed_off(&rst), peer, "{vip}: to the flow's peer");
        // A peer's SYN|FIN of a flow unknown here: served, not recorded.
        let inner = seg(40304, SYN | FIN);
        let (v, out) = r.run(&wrap_v4(PEERS[1], LOCAL, &inner));
        assert_eq!((v, &out[12..]), (REDIRECT, &inner.bytes()[12..]), "{vip}");
        assert_eq!(r.fwd.conntrack_len(), kept + 1, "{vip}: peer's SYN|FIN");
        // ECN setup (SYN|ECE|CWR) is still a bare SYN: a new flow.
        r.forwarded(&seg(40305, SYN | ECE_CWR).bytes());
        assert_eq!(r.fwd.conntrack_len(), kept + 2, "{vip}: ECN SYN recorded");
        let c = r.vip(vip);
        assert_eq!(
            (c.new_flows, c.nonsyn_miss, c.bad_tcp_flags),
            (2, 4, 5),
            "{vip}: {c:?}"
        );
    }
}

#[test]
fn ipv6_header_of_another_version_is_passed_and_counted() {
    let r = rig();
    let good = Frame::tcp("2001:db8:1::7", "2001:db8::10", 48000, 443, SYN).bytes();
    for version in [4u8, 7] {
        let mut bad = good.clone();
        bad[14] = (version << 4) | (bad[14] & 0x0f);
        r.passed_untouched(&bad);
    }
    assert_eq!(r.fwd.counters().unwrap().global.bad_ip_header, 2);
    assert_eq!(r.vip("2001:db8::10").packets, 0, "nothing forwarded");
    // Version 6: forwarded. Not a VIP: passed before any check, uncounted.
    r.forwarded(&good);
    let mut stranger = Frame::tcp("2001:db8:1::7", "2001:db8::11", 1, 443, SYN).bytes();
    stranger[14] = 0x40;
    r.passed_untouched(&stranger);
    assert_eq!(r.fwd.counters().unwrap().global.bad_ip_header, 2);
}

#[test]
fn handoff_over_ipv6_between_nodes() {
    let mut r = rig();
    let (local, peer): (std::net::Ipv6Addr, std::net::Ipv6Addr) = (
        "2001:db8:ff::1".parse().unwrap(),
        "2001:db8:ff::2".parse().unwrap(),
    );
    let spec = edged_ebpf::HandoffSpec {
        local: local.into(),
        peers: vec![peer.into()],
    };
    r.fwd.set_handoff(Some(&spec)).unwrap();
    r.fwd
        .set_vip_handoff("192.0.2.10".parse().unwrap(), true)
        .unwrap();
    let syn = Frame::tcp("198.51.100.7", "192.0.2.10", 46000, 80, SYN).bytes();
    let (v, out) = r.run(&syn);
    assert_eq!(v, TX);
    assert_eq!(out.len(), syn.len() + 40);
    assert_eq!(out[12..14], [0x86, 0xdd]);
    let outer = &out[14..54];
    assert_eq!(outer[0] >> 4, 6);
    assert_eq!(
        u16::from_be_bytes([outer[4], outer[5]]) as usize,
        syn.len() - 14
    );
    assert_eq!(outer[6], 4, "next header: IPv4");
    assert_eq!(outer[8..24], local.octets());
    assert_eq!(outer[24..40], peer.octets());
    assert_eq!(out[54..], syn[14..]);

    // The peer's packets to us: IPv6 outer, IPv6 inner (next header 41).
    let inner = Frame::tcp("2001:db8:1::7", "2001:db8::10", 46001, 443, SYN);
    let ip = inner.ip();
    let mut wrapped = inner.bytes()[..12].to_vec();
    wrapped.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    wrapped.extend_from_slice(&(ip.len() as u16).to_be_bytes());
    wrapped.extend_from_slice(&[41, 64]);
    wrapped.extend_from_slice(&peer.octets());
    wrapped.extend_from_slice(&local.octets());
    wrapped.extend_from_slice(&ip);
    let (v, out) = r.run(&wrapped);
    assert_eq!((v, &out[12..]), (REDIRECT, &inner.bytes()[12..]));
    // An IPv4 outer header is not ours when the nodes speak IPv6.
    r.passed_untouched(&wrap_v4(PEERS[0], LOCAL, &inner));
}

/// The IP packet of an Ethernet frame (untagged), if any.
fn l3(f: &[u8]) -> &[u8] {
    &f[14.min(f.len())..]
}

#[test]
fn mutated_handoff_frames_never_abort_nor_misforward() {
    let mut r = rig_with_peers();
    r.fwd
        .set_vip_handoff("192.0.2.10".parse().unwrap(), true)
        .unwrap();
    let vips: Vec<std::net::IpAddr> = ["192.0.2.10", "2001:db8::10", "192.0.2.30", "192.0.2.40"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let inner4 = Frame::tcp("198.51.100.7", "192.0.2.10", 47000, 80, SYN);
    let inner6 = Frame::tcp("2001:db8:1::7", "2001:db8::10", 47000, 443, ACK);
    let seeds: Vec<Vec<u8>> = vec![
        wrap_v4(PEERS[0], LOCAL, &inner4),
        wrap_v4(PEERS[1], LOCAL, &inner6),
        wrap_v4(
            PEERS[0],
            LOCAL,
            &Frame::udp("198.51.100.7", "192.0.2.10", 5, 53),
        ),
        inner4.bytes(),
    ];
    let mut rng = Rng(0x5eed_edfe_0000_0004);
    let (mut unwrapped, mut handed) = (0, 0);
    for i in 0..4000 {
        let mut f = seeds[rng.below(seeds.len())].clone();
        mutate(&mut rng, &mut f, 12, 32);
        let (v, out) = r.run(&f);
        let is_vip = |frame: &[u8]| ip_dst(frame).is_some_and(|d| vips.contains(&d));
        match v {
            PASS => assert_eq!(out, f, "case {i}: passed frames are untouched"),
            DROP => {}
            REDIRECT if out.len() == f.len() => {
                assert_eq!(out[12..], f[12..], "case {i}");
                assert!(is_vip(&f), "case {i}: forwarded, not a VIP");
            }
            REDIRECT => {
                // Unwrapped: what goes to the proxy is the inner packet.
                assert_eq!(out.len() + 20, f.len(), "case {i}");
                assert_eq!(l3(&out), &f[34..], "case {i}: the inner packet, unchanged");
                assert!(is_vip(&out), "case {i}: unwrapped to {:?}", ip_dst(&out));
                unwrapped += 1;
            }
            TX => {
                assert_eq!(out.len(), f.len() + 20, "case {i}");
                assert_eq!(&out[34..], l3(&f), "case {i}: the packet, wrapped");
                assert!(is_vip(&f), "case {i}: handed off, not a VIP");
                handed += 1;
            }
            other => panic!("case {i}: verdict {other} on {f:02x?}"),
        }
    }
    assert!(
        unwrapped > 100 && handed > 100,
        "{unwrapped} unwrapped, {handed} handed off"
    );
}

#[test]
fn the_bench_build_of_the_program_passes_the_verifier() {
    let edge = Netns::new("edcb");
    let pins = PinDir::new();
    let mut spec = ForwarderSpec::new(vec![], pins.path.clone());
    spec.mode = XdpMode::Generic;
    spec.conntrack_entries = 1024;
    let fwd = edge.run(|| edged_ebpf::bench::open_fresh_flow(&spec));
    assert!(fwd.is_ok(), "{:?}", fwd.err());
}

#[test]
fn the_bench_build_makes_each_tcp_packet_of_either_family_a_new_flow() {
    let edge = Netns::new("edcf");
    let pins = PinDir::new();
    let mut spec = ForwarderSpec::new(vec![], pins.path.clone());
    spec.mode = XdpMode::Generic;
    spec.conntrack_entries = 1024;
    let mut fwd = edge
        .run(|| edged_ebpf::bench::open_fresh_flow(&spec))
        .expect("open bench build");
    let host = ProxyTarget {
        name: "h".into(),
        delivery: Delivery::HostStack,
    };
    fwd.set_proxies(std::slice::from_ref(&host)).unwrap();
    for addr in ["192.0.2.70", "2001:db8::70"] {
        let vip = VipService {
            addr: addr.parse().unwrap(),
            ports: vec![(80, Proto::Tcp)],
            no_healthy: None,
        };
        fwd.set_vip(&vip, &[("h".to_string(), 1)]).unwrap();
    }
    let run = |f: &Frame| edge.run(|| fwd.test_run(&f.bytes(), None)).unwrap();
    // (frame, offset of the source address's last byte, of the source port)
    let v4 = |sport| Frame::tcp("198.51.100.7", "192.0.2.70", sport, 80, SYN);
    let v6 = |sport| Frame::tcp("2001:db8:1::7", "2001:db8::70", sport, 80, SYN);
    for (frame, wrap, addr_at, port_at) in [
        (v4(40000), v4(0xffff), 29, 34),
        (v6(40000), v6(0xffff), 37, 54),
    ] {
        let (v, out) = run(&frame);
        let input = frame.bytes();
        assert_eq!(v, PASS, "to the host-stack proxy");
        assert_eq!(out[port_at..port_at + 2], 40001u16.to_be_bytes());
        assert_eq!(out[..port_at], input[..port_at], "only the port moves");
        assert_eq!(out[port_at + 2..], input[port_at + 2..]);
        let (_, out) = run(&wrap);
        let input = wrap.bytes();
        assert_eq!(out[port_at..port_at + 2], [0, 0], "the port wraps");
        assert_eq!(out[addr_at], input[addr_at] + 1, "and the address moves on");
    }
    // Passed traffic (no VIP, or UDP) is left as it came.
    let other = Frame::tcp("198.51.100.7", "192.0.2.71", 40000, 80, SYN);
    assert_eq!(run(&other), (PASS, other.bytes()));
    let udp = Frame::udp("198.51.100.7", "192.0.2.70", 40000, 53);
    assert_eq!(run(&udp), (PASS, udp.bytes()));
}

#[test]
fn handoff_flags_are_not_readopted_after_a_restart() {
    let edge = Netns::new("edch");
    let pins = PinDir::new();
    let mut spec = ForwarderSpec::new(vec![], pins.path.clone());
    spec.mode = XdpMode::Generic;
    spec.conntrack_entries = 1024;
    let host = ProxyTarget {
        name: "h".into(),
        delivery: Delivery::HostStack,
    };
    let vip = VipService {
        addr: "192.0.2.60".parse().unwrap(),
        ports: vec![(80, Proto::Tcp)],
        no_healthy: None,
    };
    let mut fwd = edge.run(|| Forwarder::open(&spec)).expect("open");
    fwd.set_proxies(std::slice::from_ref(&host)).unwrap();
    fwd.set_vip(&vip, &[("h".to_string(), 1)]).unwrap();
    fwd.set_vip_handoff(vip.addr, true).unwrap();
    assert!(fwd.vip_handoff(vip.addr).unwrap());
    drop(fwd);
    let fwd = edge.run(|| Forwarder::open(&spec)).expect("re-adopt");
    assert!(!fwd.vip_handoff(vip.addr).unwrap(), "edged decides again");
}
