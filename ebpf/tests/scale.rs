//! The data plane at 1, 1,000 and 100,000 VIPs (IPv4 and IPv6, two ports
//! each), with crafted frames through BPF_PROG_TEST_RUN: every VIP reaches
//! only its table's proxies, on both ports; other ports and addresses are
//! passed untouched; four serving sets make four shared tables whatever
//! the number of VIPs; a capacity is refused with the table named.
//! Needs root (BPF, netns).

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::packet::{Frame, SYN};
use common::{Netns, PinDir, veth};
use edged_ebpf::{
    Delivery, Forwarder, ForwarderError, ForwarderSpec, Proto, ProxyTarget, VipService, XdpMode,
};

const PASS: u32 = 2;
const REDIRECT: u32 = 4;
const PROXIES: usize = 4;

fn mac(i: usize) -> [u8; 6] {
    [2, 0, 0, 0, 2, i as u8]
}

/// VIP `i`: IPv4 from 198.18.0.0/15 (RFC 2544), IPv6 from 2001:db8::/32,
/// alternating.
fn addr(i: usize) -> IpAddr {
    let n = (i / 2) as u32;
    if i.is_multiple_of(2) {
        IpAddr::V4(Ipv4Addr::from(0xc612_0000 + n))
    } else {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0x5ca1,
            0,
            0,
            0,
            (n >> 16) as u16,
            n as u16,
        ))
    }
}

/// VIP `i`'s serving set: all proxies but `i % 4` (four sets).
fn serving(i: usize) -> Vec<(String, u32)> {
    (0..PROXIES)
        .filter(|p| *p != i % PROXIES)
        .map(|p| (format!("p{p}"), 1))
        .collect()
}

fn open(edge: &Netns, pins: &PinDir, max_vips: u32) -> Forwarder {
    let mut spec = ForwarderSpec::new(vec![], pins.path.clone());
    spec.mode = XdpMode::Generic;
    spec.conntrack_entries = 1 << 18;
    spec.max_vips = max_vips;
    spec.max_vip_ports = max_vips * 3 + 3; // room for one more: max_vips binds
    spec.max_pools = 16.min(max_vips);
    let mut fwd = edge.run(|| Forwarder::open(&spec)).expect("open");
    let proxies: Vec<ProxyTarget> = (0..PROXIES)
        .map(|i| ProxyTarget {
            name: format!("p{i}"),
            delivery: Delivery::L2 {
                ifname: "px0".into(),
                mac: mac(i),
            },
        })
        .collect();
    edge.run(|| fwd.set_proxies(&proxies)).expect("proxies");
    fwd
}

fn vip(i: usize) -> VipService {
    VipService {
        addr: addr(i),
        ports: vec![(80, Proto::Tcp), (443, Proto::Tcp)],
        no_healthy: None,
    }
}

fn client(a: IpAddr) -> &'static str {
    if a.is_ipv4() {
        "198.51.100.7"
    } else {
        "2001:db8:9::7"
    }
}

/// Sets `n` VIPs (in batches), then sends each a SYN on each port and one
/// on a port it does not serve.
fn every_vip_reaches_its_tables_proxies(n: usize) {
    let edge = Netns::new("edse");
    let peer = Netns::new("edsp");
    veth(&edge, "px0", &peer, "px0p");
    let pins = PinDir::new();
    let mut fwd = open(&edge, &pins, n as u32);
    let vips: Vec<VipService> = (0..n).map(vip).collect();
    let sets: Vec<Vec<(String, u32)>> = (0..n).map(serving).collect();
    for chunk in (0..n).collect::<Vec<_>>().chunks(4096) {
        let batch: Vec<(&VipService, &[(String, u32)])> =
            chunk.iter().map(|&i| (&vips[i], &sets[i][..])).collect();
        for r in fwd.set_vips(&batch) {
            r.expect("set_vips");
        }
    }
    let u = fwd.usage();
    assert_eq!(u.vips.0, n as u64);
    assert_eq!(u.vip_ports.0, 3 * n as u64);
    assert_eq!(
        fwd.usage().pools.0,
        n.min(PROXIES) as u64,
        "one table per serving set"
    );

    let bad = edge.run(|| {
        let mut bad = Vec::new();
        for (i, v) in vips.iter().enumerate() {
            let dst = v.addr.to_string();
            for port in [80, 443] {
                let f = Frame::tcp(
                    client(v.addr),
                    &dst,
                    (i as u16).wrapping_add(1000),
                    port,
                    SYN,
                )
                .bytes();
                let (verdict, out) = fwd.test_run(&f, None).expect("test_run");
                let to = (0..PROXIES).find(|&p| out[0..6] == mac(p));
                if verdict != REDIRECT || to.is_none_or(|p| p == i % PROXIES) {
                    bad.push(format!("{dst}:{port}: verdict {verdict}, proxy {to:?}"));
                }
            }
            let f = Frame::tcp(client(v.addr), &dst, 1, 8080, SYN).bytes();
            let (verdict, out) = fwd.test_run(&f, None).expect("test_run");
            if verdict != PASS || out != f {
                bad.push(format!("{dst}:8080 not passed untouched"));
            }
        }
        bad
    });
    assert!(
        bad.is_empty(),
        "{} of {n} VIPs wrong, e.g. {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );

    // Not a VIP: passed untouched.
    let f = Frame::tcp("198.51.100.7", "203.0.113.250", 1, 80, SYN).bytes();
    let (verdict, out) = edge.run(|| fwd.test_run(&f, None)).unwrap();
    assert_eq!((verdict, out), (PASS, f));

    // One more than it is sized for: refused, the table named.
    let extra = VipService {
        addr: "203.0.113.251".parse().unwrap(),
        ..vip(0)
    };
    match fwd.set_vip(&extra, &serving(0)) {
        Err(ForwarderError::Full { what, max }) => {
            assert_eq!((what, max), ("VIPs", n as u32));
        }
        other => panic!("beyond max_vips: {other:?}"),
    }
    drop(fwd);
    drop(peer);
}

#[test]
fn one_vip() {
    every_vip_reaches_its_tables_proxies(1);
}

#[test]
fn a_thousand_vips() {
    every_vip_reaches_its_tables_proxies(1000);
}

#[test]
fn a_hundred_thousand_vips() {
    every_vip_reaches_its_tables_proxies(100_000);
}
