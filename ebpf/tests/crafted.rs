//! Crafted frames through BPF_PROG_TEST_RUN: verdict and rewritten bytes.
//! Needs root (BPF, netns); each test builds its own namespace and pin dir.

mod common;

use common::packet::{ACK, Frame, L4, SYN};
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
fn vips_sharing_an_index_fold_both_match_exactly() {
    let mut r = rig();
    // 2001:db8::10 and 2001:db8::10:0:0 XOR-fold to the same index entry.
    let twin = VipService {
        addr: "2001:db8::10:0:0".parse().unwrap(),
        ports: vec![(8443, Proto::Tcp)],
    };
    r.fwd.set_vip(&twin, &[("a".to_string(), 1)]).unwrap();
    assert_eq!(
        r.forwarded(&Frame::tcp("2001:db8:1::7", "2001:db8::10:0:0", 1, 8443, SYN).bytes()),
        MAC_A
    );
    r.forwarded(&Frame::tcp("2001:db8:1::7", "2001:db8::10", 1, 443, SYN).bytes());
    r.passed_untouched(&Frame::tcp("2001:db8:1::7", "2001:db8::10:0:0", 1, 443, SYN).bytes());
    r.passed_untouched(&Frame::tcp("2001:db8:1::7", "2001:db8::10", 1, 8443, SYN).bytes());
    // Removing one leaves the other matched through the direct index again.
    r.fwd.remove_vip(twin.addr).unwrap();
    r.passed_untouched(&Frame::tcp("2001:db8:1::7", "2001:db8::10:0:0", 2, 8443, SYN).bytes());
    r.forwarded(&Frame::tcp("2001:db8:1::7", "2001:db8::10", 2, 443, SYN).bytes());
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
        for _ in 0..1 + rng.below(4) {
            match rng.below(4) {
                0 => {
                    let at = rng.below(f.len());
                    f[at] ^= 1 << rng.below(8);
                }
                1 => {
                    let at = 12 + rng.below(f.len() - 12);
                    f[at] = rng.next_u64() as u8;
                }
                2 => f.truncate(14 + rng.below(f.len() - 13)),
                _ => f.extend((0..rng.below(64)).map(|_| rng.next_u64() as u8)),
            }
        }
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
