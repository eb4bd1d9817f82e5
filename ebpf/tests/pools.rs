//! Shared tables (pools), with crafted frames through BPF_PROG_TEST_RUN:
//! VIPs with one serving set share one table; a change they all share is
//! one build and one swap; established flows keep their proxy through a
//! swap and through a VIP's move between pools; a removed proxy moves only
//! its own share of new flows; the no-healthy policy is the VIP's own.
//! Needs root (BPF, netns); each test builds its own namespace and pins.

mod common;

use std::net::IpAddr;

use common::packet::{ACK, Frame, SYN};
use common::{Netns, PinDir, veth};
use edged_ebpf::bench::pool_of;
use edged_ebpf::{
    Delivery, Forwarder, ForwarderSpec, NoHealthy, Proto, ProxyTarget, VipService, XdpMode,
};

const DROP: u32 = 1;
const PASS: u32 = 2;
const REDIRECT: u32 = 4;
/// Proxies, all on `px0`, told apart by their MACs.
const PROXIES: usize = 8;
/// VIPs, half IPv4, half IPv6.
const VIPS: usize = 64;
/// Flows per VIP.
const FLOWS: u16 = 2000;

fn mac(i: usize) -> [u8; 6] {
    [2, 0, 0, 0, 1, i as u8]
}

fn name(i: usize) -> String {
    format!("p{i}")
}

struct Rig {
    edge: Netns,
    _peer: Netns,
    _pins: PinDir,
    fwd: Forwarder,
    vips: Vec<VipService>,
}

fn rig() -> Rig {
    let edge = Netns::new("edpe");
    let peer = Netns::new("edpp");
    veth(&edge, "px0", &peer, "px0p");
    let pins = PinDir::new();
    let mut spec = ForwarderSpec::new(vec![], pins.path.clone());
    spec.mode = XdpMode::Generic;
    spec.conntrack_entries = 1 << 22;
    let mut fwd = edge.run(|| Forwarder::open(&spec)).expect("open");
    let proxies: Vec<ProxyTarget> = (0..PROXIES)
        .map(|i| ProxyTarget {
            name: name(i),
            delivery: Delivery::L2 {
                ifname: "px0".into(),
                mac: mac(i),
            },
        })
        .collect();
    edge.run(|| fwd.set_proxies(&proxies)).expect("proxies");
    let vips = (0..VIPS)
        .map(|i| VipService {
            addr: if i.is_multiple_of(2) {
                format!("192.0.2.{}", 100 + i / 2).parse().unwrap()
            } else {
                format!("2001:db8::1:{:x}", i / 2).parse().unwrap()
            },
            ports: vec![(80, Proto::Tcp)],
            no_healthy: None,
        })
        .collect();
    Rig {
        edge,
        _peer: peer,
        _pins: pins,
        fwd,
        vips,
    }
}

fn serving(without: &[usize]) -> Vec<(String, u32)> {
    (0..PROXIES)
        .filter(|i| !without.contains(i))
        .map(|i| (name(i), 1))
        .collect()
}

fn client(vip: IpAddr) -> &'static str {
    if vip.is_ipv4() {
        "198.51.100.7"
    } else {
        "2001:db8:9::7"
    }
}

impl Rig {
    /// Sets every VIP to `serving` in one batch.
    fn set_all(&mut self, serving: &[(String, u32)]) {
        let batch: Vec<(&VipService, &[(String, u32)])> =
            self.vips.iter().map(|v| (v, serving)).collect();
        for r in self.fwd.set_vips(&batch) {
            r.expect("set_vips");
        }
    }

    /// The proxy (index) a frame is redirected to; `None` for another
    /// verdict.
    fn to(&self, frame: &[u8]) -> Option<usize> {
        self.edge.run(|| redirected_to(&self.fwd, frame))
    }

    fn verdict(&self, frame: &[u8]) -> u32 {
        self.edge
            .run(|| self.fwd.test_run(frame, None))
            .expect("test_run")
            .0
    }

    /// Each of `FLOWS` flows from source port `base + n` to `vip`: where a
    /// packet with `flags` goes.
    fn picks(&self, vip: IpAddr, base: u16, flags: u8) -> Vec<Option<usize>> {
        let (src, dst) = (client(vip), vip.to_string());
        self.edge.run(|| {
            (0..FLOWS)
                .map(|n| {
                    redirected_to(
                        &self.fwd,
                        &Frame::tcp(src, &dst, base + n, 80, flags).bytes(),
                    )
                })
                .collect()
        })
    }
}

/// Flows that went elsewhere the second time.
fn moved(a: &[Option<usize>], b: &[Option<usize>]) -> usize {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

fn redirected_to(fwd: &Forwarder, frame: &[u8]) -> Option<usize> {
    let (v, out) = fwd.test_run(frame, None).expect("test_run");
    if v != REDIRECT {
        return None;
    }
    let dst: [u8; 6] = out[0..6].try_into().unwrap();
    let i = (0..PROXIES).find(|&i| mac(i) == dst);
    assert!(i.is_some(), "redirected to an unknown MAC {dst:x?}");
    i
}

#[test]
fn vips_with_one_serving_set_share_one_table_and_a_shared_flip_is_one_swap() {
    let mut r = rig();
    let all = serving(&[]);
    r.set_all(&all);
    let (pools, cap) = r.fwd.usage().pools;
    assert_eq!(pools, 1, "{VIPS} VIPs with one serving set: one table");
    assert!(cap >= VIPS as u64);
    let shared = pool_of(&r.fwd, r.vips[0].addr).expect("a pool");
    assert!(
        r.vips
            .iter()
            .all(|v| pool_of(&r.fwd, v.addr) == Some(shared))
    );

    // Every VIP reaches its pool's proxies, and all of them.
    let before: Vec<Vec<Option<usize>>> = r
        .vips
        .iter()
        .map(|v| r.picks(v.addr, 10_000, SYN))
        .collect();
    for (v, picks) in r.vips.iter().zip(&before) {
        let mut seen = [0usize; PROXIES];
        for p in picks {
            seen[p.expect("a new flow is forwarded")] += 1;
        }
        assert!(seen.iter().all(|&n| n > 0), "{}: {seen:?}", v.addr);
    }

    // p3 fails on every VIP: one build, one swap, for all of them.
    let swaps = r.fwd.table_swaps();
    let words = edged_ebpf::bench::ring_words_written(&r.fwd);
    r.set_all(&serving(&[3]));
    assert_eq!(r.fwd.table_swaps() - swaps, 1, "one swap for {VIPS} VIPs");
    let written = edged_ebpf::bench::ring_words_written(&r.fwd) - words;
    assert!(written <= 8193, "one table's words at most: {written}");
    assert_eq!(r.fwd.usage().pools.0, 1);
    assert!(
        r.vips
            .iter()
            .all(|v| pool_of(&r.fwd, v.addr) == Some(shared))
    );

    // Established flows keep their proxy, p3's too.
    for (v, was) in r.vips.iter().zip(&before) {
        let now = r.picks(v.addr, 10_000, ACK);
        assert_eq!(moved(was, &now), 0, "{}: established flows moved", v.addr);
    }
    for (v, was) in r.vips.iter().zip(&before) {
        // New flows (a bare SYN picks afresh): p3's move, and nearly
        // nothing else (Maglev's minimal disruption).
        let fresh = r.picks(v.addr, 10_000, SYN);
        let on_p3 = was.iter().filter(|p| **p == Some(3)).count();
        let moved_others = was
            .iter()
            .zip(&fresh)
            .filter(|(a, b)| **a != Some(3) && a != b)
            .count();
        assert!(fresh.iter().all(|p| p.is_some() && *p != Some(3)));
        assert!(
            moved_others * 100 <= FLOWS as usize,
            "{}: {moved_others} of {FLOWS} flows not on p3 moved",
            v.addr
        );
        let share = on_p3 as f64 / FLOWS as f64;
        assert!(
            share <= 1.0 / PROXIES as f64 + 0.05,
            "{}: p3 had {share:.3} of new flows",
            v.addr
        );
    }
}

#[test]
fn a_vip_whose_set_diverges_moves_to_a_table_of_its_own_and_back_keeping_its_flows() {
    let mut r = rig();
    let all = serving(&[]);
    r.set_all(&all);
    let shared = pool_of(&r.fwd, r.vips[0].addr).unwrap();
    let lone = r.vips[5].clone();
    let before = r.picks(lone.addr, 20_000, SYN);
    let swaps = r.fwd.table_swaps();

    // One service fails on p5 for this VIP only.
    r.fwd.set_vip(&lone, &serving(&[5])).unwrap();
    let own = pool_of(&r.fwd, lone.addr).unwrap();
    assert_ne!(own, shared);
    assert_eq!(r.fwd.usage().pools.0, 2);
    assert_eq!(r.fwd.table_swaps() - swaps, 1, "its new table only");
    assert!(
        r.vips
            .iter()
            .filter(|v| v.addr != lone.addr)
            .all(|v| pool_of(&r.fwd, v.addr) == Some(shared)),
        "the others stay"
    );
    assert_eq!(
        moved(&before, &r.picks(lone.addr, 20_000, ACK)),
        0,
        "flows kept"
    );
    let fresh = r.picks(lone.addr, 30_000, SYN);
    assert!(fresh.iter().all(|p| p.is_some() && *p != Some(5)));

    // It recovers: back on the shared table, its own freed.
    r.fwd.set_vip(&lone, &all).unwrap();
    assert_eq!(pool_of(&r.fwd, lone.addr), Some(shared));
    assert_eq!(r.fwd.usage().pools.0, 1);
    assert_eq!(
        moved(&before, &r.picks(lone.addr, 20_000, ACK)),
        0,
        "flows kept"
    );

    // Two VIPs diverge the same way: they share the new table.
    let (a, b) = (r.vips[1].clone(), r.vips[2].clone());
    r.fwd.set_vip(&a, &serving(&[1])).unwrap();
    r.fwd.set_vip(&b, &serving(&[1])).unwrap();
    assert_eq!(pool_of(&r.fwd, a.addr), pool_of(&r.fwd, b.addr));
    assert_eq!(r.fwd.usage().pools.0, 2);

    // A restart re-adopts the pools: the same sharing, the same tables.
    let spec = {
        let mut s = ForwarderSpec::new(vec![], r._pins.path.clone());
        s.mode = XdpMode::Generic;
        s.conntrack_entries = 1 << 22;
        s
    };
    let picks_a = r.picks(a.addr, 40_000, SYN);
    let Rig {
        edge,
        _peer,
        _pins,
        fwd,
        vips,
    } = r;
    drop(fwd);
    let fwd = edge.run(|| Forwarder::open(&spec)).expect("re-open");
    let r = Rig {
        edge,
        _peer,
        _pins,
        fwd,
        vips,
    };
    assert_eq!(r.fwd.usage().pools.0, 2);
    assert_eq!(pool_of(&r.fwd, a.addr), pool_of(&r.fwd, b.addr));
    assert_eq!(moved(&picks_a, &r.picks(a.addr, 40_000, SYN)), 0);
}

#[test]
fn a_vip_with_no_healthy_proxy_meets_its_own_policy() {
    let mut r = rig();
    let (pass, drop) = (r.vips[0].clone(), r.vips[2].clone());
    let pass = VipService {
        no_healthy: Some(NoHealthy::Pass),
        ..pass
    };
    // The forwarder's default is drop; one VIP passes instead.
    r.fwd.set_vip(&pass, &[]).unwrap();
    r.fwd.set_vip(&drop, &[]).unwrap();
    let syn = |vip: &VipService| {
        Frame::tcp(client(vip.addr), &vip.addr.to_string(), 5000, 80, SYN).bytes()
    };
    assert_eq!(r.verdict(&syn(&pass)), PASS);
    assert_eq!(r.verdict(&syn(&drop)), DROP);
    // Both share the empty table; the policy is the VIP's.
    assert_eq!(pool_of(&r.fwd, pass.addr), pool_of(&r.fwd, drop.addr));

    // The policy changes in place (a reload), the table stays.
    let swaps = r.fwd.table_swaps();
    let now_drop = VipService {
        no_healthy: Some(NoHealthy::Drop),
        ..pass.clone()
    };
    r.fwd.set_vip_no_healthy(&now_drop).unwrap();
    assert_eq!(r.verdict(&syn(&pass)), DROP);
    assert_eq!(r.fwd.table_swaps(), swaps);
    let c = r.fwd.counters().unwrap();
    let of = |a: IpAddr| c.vips.iter().find(|v| v.addr == Some(a)).unwrap().clone();
    assert_eq!(of(pass.addr).pass_no_healthy, 1);
    assert_eq!(of(pass.addr).drop_no_healthy, 1);
    assert_eq!(of(drop.addr).drop_no_healthy, 1);

    // Served again: forwarded whatever the policy.
    r.fwd.set_vip(&now_drop, &serving(&[])).unwrap();
    assert!(r.to(&syn(&pass)).is_some());
}
