//! `cargo bench -p edged-ebpf` (root): ns/packet of the XDP program through
//! BPF_PROG_TEST_RUN (repeat 1,048,576, 5 rounds, median) and its ratio to a
//! bare baseline measured in the same run, plus the Maglev build time.
//!
//! Method per path (every measured path's verdict and output are checked):
//! - baseline: bounds check, dst MAC from an array map, devmap redirect.
//! - pass: TCP SYN to a non-VIP address (untouched XDP_PASS).
//! - hit: TCP ACK of a flow already in the connection table (redirect).
//! - miss: bench build of the program (`-DEDGED_BENCH_FRESH_FLOW`) whose
//!   entry point bumps the source port (and address on wrap) in the packet
//!   after handling it, so each repeat is a fresh SYN, inserted into the
//!   connection table of 2^20 entries (2^18 sets of 4), filled beforehand
//!   (>= 97 % in use, checked) by unmeasured rounds of 2^22 fresh flows:
//!   every insert evicts.
//!   1 VIP, 100 proxies, M = 65537, as Katran's figures were taken.
//! - table change: one of the 100 proxies leaves the VIP's table (another
//!   one each round) while both halves of the ring hold the full table:
//!   the `ed_ring` words written and the time of `set_vip` (Maglev build
//!   included), and the same change with the halves forgotten, so written
//!   whole (every change before the rings were diffed).
//! - shared table change: 64 VIPs on one table
//!   (pool) of 100 proxies; one proxy leaves them all in one batch: one
//!   build and one swap (checked), the batch timed.
//! - second chance: a TCP ACK that misses this node's connection table and
//!   whose flow a peer node owns (told through `Flows::set_owner`, with the
//!   fingerprints the peer's own program queued): encapsulated to the
//!   peer (XDP_TX). Encapsulation cannot repeat on one buffer, so this and
//!   its reference, a non-SYN miss of a flow nobody owns (Maglev pick,
//!   redirect), are single runs of 4,096 distinct flows each, interleaved;
//!   the figure is their ratio, plus each median.
//! - peer-owned table: the locked memory of `ed_owner` at 2^20 entries
//!   (`bpftool map show`), per million entries.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::packet::{ACK, Frame, SYN};
use common::{Netns, PinDir, veth};
use edged_ebpf::bench::{Baseline, forget_rings, open_fresh_flow, ring_words_written, run};
use edged_ebpf::{
    Delivery, Flows, Forwarder, ForwarderSpec, HandoffSpec, Proto, ProxyTarget, VipService,
    XdpMode, maglev,
};

const REPEAT: u32 = 1 << 20;
const ROUNDS: usize = 5;
const PASS: u32 = 2;
const REDIRECT: u32 = 4;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn setup(edge: &Netns, fwd: &mut Forwarder) {
    let proxies: Vec<ProxyTarget> = (0..100)
        .map(|i| ProxyTarget {
            name: format!("proxy-{i:03}"),
            delivery: Delivery::L2 {
                ifname: "px0".into(),
                mac: [2, 0, 0, 0, 1, i as u8],
            },
        })
        .collect();
    edge.run(|| fwd.set_proxies(&proxies)).expect("proxies");
    let serving: Vec<(String, u32)> = proxies.iter().map(|p| (p.name.clone(), 1)).collect();
    let vip = VipService {
        addr: "192.0.2.10".parse().unwrap(),
        ports: vec![(80, Proto::Tcp)],
        no_healthy: None,
    };
    fwd.set_vip(&vip, &serving).expect("vip");
}

fn spec(pins: &PinDir) -> ForwarderSpec {
    let mut s = ForwarderSpec::new(vec![], pins.path.clone());
    s.mode = XdpMode::Generic;
    s.conntrack_entries = 1 << 20;
    // Room for the 100,000-VIP figures (two ports each).
    s.max_vips = 100_000;
    s.max_vip_ports = 300_000;
    s
}

/// Checks a redirect to one of the bench proxies with only MACs changed
/// (apart from `skip`, bytes the bench build rewrites).
fn check_redirect(v: u32, input: &[u8], out: &[u8], what: &str) {
    assert_eq!(v, REDIRECT, "{what}: verdict");
    assert_eq!(out[0..5], [2, 0, 0, 0, 1], "{what}: dst MAC of a proxy");
    assert_eq!(out[12..], input[12..], "{what}: only MACs rewritten");
}

/// Source (address, port) of an IPv4 TCP frame as one 48-bit counter.
fn flow_counter(f: &[u8]) -> u64 {
    let addr = u32::from_be_bytes(f[26..30].try_into().unwrap()) as u64;
    let port = u16::from_be_bytes(f[34..36].try_into().unwrap()) as u64;
    (addr << 16) | port
}

/// `all` without its `i`-th proxy.
fn without(all: &[(String, u32)], i: usize) -> Vec<(String, u32)> {
    let mut less = all.to_vec();
    less.remove(i);
    less
}

/// One proxy of 100 leaves the table, from both halves holding the full
/// table: words written and microseconds, diffed and written whole.
fn table_change(fwd: &mut Forwarder) {
    let vip = VipService {
        addr: "192.0.2.10".parse().unwrap(),
        ports: vec![(80, Proto::Tcp)],
        no_healthy: None,
    };
    let all: Vec<(String, u32)> = (0..100).map(|i| (format!("proxy-{i:03}"), 1)).collect();
    let (mut words, mut us, mut full_us) = (vec![], vec![], vec![]);
    for r in 0..9 {
        let less = without(&all, r * 11);
        // Weight 2 for all gives the same table as weight 1 (a turn each
        // round), so both halves end up holding the full table.
        let all2: Vec<(String, u32)> = all.iter().map(|(n, _)| (n.clone(), 2)).collect();
        for forget in [false, true] {
            fwd.set_vip(&vip, &all).expect("full table");
            fwd.set_vip(&vip, &all2).expect("full table, other half");
            if forget {
                forget_rings(fwd);
            }
            let w0 = ring_words_written(fwd);
            let start = Instant::now();
            fwd.set_vip(&vip, &less).expect("one proxy less");
            let t = start.elapsed().as_secs_f64() * 1e6;
            let n = ring_words_written(fwd) - w0;
            if forget {
                assert_eq!(n, 8193, "written whole");
                full_us.push(t);
            } else {
                assert!(n > 0 && n < 8193 / 4, "{n} words for one proxy of 100");
                words.push(n as f64);
                us.push(t);
            }
        }
    }
    println!(
        "BENCH xdp_table_change_words_written {:.0} words",
        median(words)
    );
    println!("BENCH xdp_table_change_us {:.0} us", median(us));
    println!(
        "BENCH xdp_table_change_full_rewrite_us {:.0} us",
        median(full_us)
    );
}

/// 64 VIPs share one table over 100 proxies; one
/// proxy leaves all of them in one batch (a health flip): one table build
/// and one swap for all (checked), timed.
fn shared_table_change(fwd: &mut Forwarder) {
    let n = 64;
    // The bench's VIP and 63 more.
    let vips: Vec<VipService> = std::iter::once("192.0.2.10".to_string())
        .chain((1..n).map(|i| format!("198.18.0.{i}")))
        .map(|a| VipService {
            addr: a.parse().unwrap(),
            ports: vec![(80, Proto::Tcp)],
            no_healthy: None,
        })
        .collect();
    let all: Vec<(String, u32)> = (0..100).map(|i| (format!("proxy-{i:03}"), 1)).collect();
    let mut us = vec![];
    for r in 0..9 {
        let less = without(&all, r * 11);
        let set = |fwd: &mut Forwarder, serving: &[(String, u32)]| {
            let batch: Vec<(&VipService, &[(String, u32)])> =
                vips.iter().map(|v| (v, serving)).collect();
            for r in fwd.set_vips(&batch) {
                r.expect("set_vips");
            }
        };
        set(fwd, &all);
        assert_eq!(fwd.usage().pools.0, 1, "one shared table");
        let swaps = fwd.table_swaps();
        let start = Instant::now();
        set(fwd, &less);
        us.push(start.elapsed().as_secs_f64() * 1e6);
        assert_eq!(fwd.table_swaps() - swaps, 1, "one swap for {n} VIPs");
    }
    for v in &vips[1..] {
        fwd.remove_vip(v.addr).expect("remove");
    }
    println!(
        "BENCH xdp_shared_table_change_{n}_vips_us {:.0} us",
        median(us)
    );
}

const TX: u32 = 3;

/// The second-chance path beside a non-SYN miss nobody owns and the bare
/// baseline, each one packet a run (a second-chance packet records its
/// flow, so a repeat would be a hit): every figure carries the test run's
/// fixed cost alike.
fn second_chance(edge: &Netns, base: &Baseline) {
    const N: u16 = 4096;
    let (pins_x, pins_y) = (PinDir::new(), PinDir::new());
    let mut x = edge
        .run(|| Forwarder::open(&spec(&pins_x)))
        .expect("open x");
    let mut y = edge
        .run(|| Forwarder::open(&spec(&pins_y)))
        .expect("open y");
    setup(edge, &mut x);
    setup(edge, &mut y);
    let (a, b): (std::net::IpAddr, std::net::IpAddr) = (
        "192.0.2.201".parse().unwrap(),
        "192.0.2.202".parse().unwrap(),
    );
    x.set_handoff(Some(&HandoffSpec {
        local: a,
        peers: vec![b],
    }))
    .expect("handoff x");
    y.set_handoff(Some(&HandoffSpec {
        local: b,
        peers: vec![a],
    }))
    .expect("handoff y");
    let frame =
        |port: u16, flags| Frame::tcp("198.51.100.9", "192.0.2.10", port, 80, flags).bytes();
    for port in 1..=N {
        let (v, _, _) = run(&x, &frame(port, SYN), 1).expect("x serves");
        assert_eq!(v, REDIRECT);
    }
    let mut fps = Vec::new();
    Flows::open(&pins_x.path)
        .expect("flows x")
        .take_new(&mut fps);
    assert_eq!(fps.len(), N as usize, "x queued every flow once");
    let mut flows_y = Flows::open(&pins_y.path).expect("flows y");
    assert_eq!(flows_y.set_owner(a, &fps).expect("owner"), Some(N as usize));
    let (mut sc, mut miss, mut bare) = (vec![], vec![], vec![]);
    let syn = frame(1, SYN);
    for port in 1..=N {
        let (v, _, ns) = base.run(&syn, 1).expect("baseline");
        assert_eq!(v, REDIRECT, "baseline verdict");
        bare.push(ns as f64);
        let (v, _, ns) = run(&y, &frame(port, ACK), 1).expect("second chance");
        assert_eq!(v, TX, "sent to the owner");
        sc.push(ns as f64);
        let (v, _, ns) = run(&y, &frame(N + port, ACK), 1).expect("nonsyn miss");
        assert_eq!(v, REDIRECT, "nobody's: Maglev pick");
        miss.push(ns as f64);
    }
    let seconds: u64 = y
        .counters()
        .unwrap()
        .vips
        .iter()
        .map(|v| v.second_chance)
        .sum();
    assert_eq!(seconds, N as u64);
    let (sc, miss, bare) = (median(sc), median(miss), median(bare));
    println!("BENCH xdp_second_chance_ns {sc:.1} ns");
    println!("BENCH xdp_nonsyn_miss_single_run_ns {miss:.1} ns");
    println!("BENCH xdp_baseline_single_run_ns {bare:.1} ns");
    println!(
        "BENCH xdp_second_chance_ratio_to_nonsyn_miss {:.2} x",
        sc / miss
    );
    println!(
        "BENCH xdp_second_chance_ratio_to_baseline_single_run {:.2} x",
        sc / bare
    );

    // The peer-owned table's memory at 2^20 entries.
    let pins = PinDir::new();
    let mut big = spec(&pins);
    big.peer_flows = 1 << 20;
    let f = edge
        .run(|| Forwarder::open(&big))
        .expect("open 2^20 peer flows");
    let out = std::process::Command::new("bpftool")
        .args(["-j", "map", "show", "pinned"])
        .arg(pins.path.join("ed_owner"))
        .output()
        .expect("bpftool");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bpftool json");
    let bytes = v["bytes_memlock"].as_u64().expect("bytes_memlock");
    println!(
        "BENCH xdp_peer_owned_table_mib_per_million {:.1} MiB",
        bytes as f64 / (1u64 << 20) as f64 / ((1u64 << 20) as f64 / 1e6)
    );
    drop(f);

    // Every map's locked memory: at the defaults, and sized for 100,000
    // VIPs (two ports each) on 4,096 shared tables at M = 65,537.
    let pins = PinDir::new();
    let f = edge
        .run(|| Forwarder::open(&spec_default(&pins)))
        .expect("open defaults");
    println!("BENCH xdp_maps_mib_default {:.1} MiB", maps_mib(&pins));
    drop(f);
    let pins = PinDir::new();
    let mut big = spec_default(&pins);
    big.max_vips = 100_000;
    big.max_vip_ports = 300_000;
    big.max_pools = 4096;
    let f = edge.run(|| Forwarder::open(&big)).expect("open 100k VIPs");
    println!(
        "BENCH xdp_maps_mib_100k_vips_4096_pools {:.1} MiB",
        maps_mib(&pins)
    );
    drop(f);
}

fn spec_default(pins: &PinDir) -> ForwarderSpec {
    let mut s = ForwarderSpec::new(vec![], pins.path.clone());
    s.mode = XdpMode::Generic;
    s
}

/// The locked memory of every map pinned in `pins` (`bpftool map show`).
fn maps_mib(pins: &PinDir) -> f64 {
    let mut bytes = 0u64;
    for e in std::fs::read_dir(&pins.path).expect("pin dir") {
        let path = e.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("ed_") {
            continue;
        }
        let out = std::process::Command::new("bpftool")
            .args(["-j", "map", "show", "pinned"])
            .arg(&path)
            .output()
            .expect("bpftool");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bpftool json");
        bytes += v["bytes_memlock"].as_u64().unwrap_or(0);
    }
    bytes as f64 / (1u64 << 20) as f64
}

/// `ROUNDS` rounds of the baseline, pass, hit and miss paths, each
/// `REPEAT` runs: the ns of each run, by path. `fresh` is the miss path's
/// next fresh flow.
fn rounds(
    base: &Baseline,
    fwd: &Forwarder,
    miss: &Forwarder,
    syn: &[u8],
    ack: &[u8],
    other: &[u8],
    fresh: &mut Vec<u8>,
) -> [Vec<f64>; 4] {
    let (mut b, mut p, mut h, mut m) = (vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        let (v, out, ns) = base.run(syn, REPEAT).expect("baseline");
        assert_eq!(v, REDIRECT, "baseline verdict");
        assert_eq!(out[0..6], [2, 0, 0, 0, 1, 1]);
        b.push(ns as f64);

        let (v, out, ns) = run(fwd, other, REPEAT).expect("pass");
        assert_eq!((v, &out[..]), (PASS, other), "pass path untouched");
        p.push(ns as f64);

        let (v, out, ns) = run(fwd, ack, REPEAT).expect("hit");
        check_redirect(v, ack, &out, "hit");
        h.push(ns as f64);

        let before = miss.counters().unwrap().vips[0].new_flows;
        let (v, out, ns) = run(miss, fresh, REPEAT).expect("miss");
        assert_eq!(v, REDIRECT, "miss verdict");
        assert_eq!(out[0..5], [2, 0, 0, 0, 1], "miss: dst MAC of a proxy");
        let unchanged = |f: &[u8]| [&f[12..26], &f[30..34], &f[36..]].concat();
        assert_eq!(
            unchanged(&out),
            unchanged(fresh),
            "miss: only MACs and the source rewritten"
        );
        assert_eq!(
            flow_counter(&out),
            flow_counter(fresh) + REPEAT as u64,
            "one fresh flow per repeat"
        );
        let after = miss.counters().unwrap().vips[0].new_flows;
        assert_eq!(after - before, REPEAT as u64, "every repeat inserted");
        *fresh = out;
        m.push(ns as f64);
    }
    [b, p, h, m]
}

/// Adds VIPs to `fwd` until it holds `n` (IPv4 from 198.18.0.0/15, IPv6
/// from 2001:db8::/32, alternating), all on the bench's 100 proxies.
fn grow(fwd: &mut Forwarder, n: usize) {
    let serving: Vec<(String, u32)> = (0..100).map(|i| (format!("proxy-{i:03}"), 1)).collect();
    let have = fwd.usage().vips.0 as usize;
    let vips: Vec<VipService> = (have..n)
        .map(|i| VipService {
            addr: if i.is_multiple_of(2) {
                std::net::IpAddr::V4(std::net::Ipv4Addr::from(0xc612_0000 + i as u32 / 2))
            } else {
                let k = i as u32 / 2;
                std::net::IpAddr::V6(std::net::Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    0xbe,
                    0,
                    0,
                    0,
                    (k >> 16) as u16,
                    k as u16,
                ))
            },
            ports: vec![(80, Proto::Tcp), (443, Proto::Tcp)],
            no_healthy: None,
        })
        .collect();
    for chunk in vips.chunks(4096) {
        let batch: Vec<(&VipService, &[(String, u32)])> =
            chunk.iter().map(|v| (v, &serving[..])).collect();
        for r in fwd.set_vips(&batch) {
            r.expect("grow");
        }
    }
    assert_eq!(fwd.usage().vips.0 as usize, n);
}

fn main() {
    let edge = Netns::new("edbe");
    let peer = Netns::new("edbp");
    veth(&edge, "px0", &peer, "px0p");
    let ifindex = edge.ifindex("px0");
    let pins = PinDir::new();
    let pins_miss = PinDir::new();
    let base = edge
        .run(|| Baseline::load([2, 0, 0, 0, 1, 1], ifindex))
        .expect("baseline");
    let mut fwd = edge.run(|| Forwarder::open(&spec(&pins))).expect("open");
    setup(&edge, &mut fwd);
    let mut miss = edge
        .run(|| open_fresh_flow(&spec(&pins_miss)))
        .expect("open bench build");
    setup(&edge, &mut miss);

    let syn = Frame::tcp("198.51.100.7", "192.0.2.10", 40000, 80, SYN).bytes();
    let ack = Frame::tcp("198.51.100.7", "192.0.2.10", 40000, 80, ACK).bytes();
    let other = Frame::tcp("198.51.100.7", "192.0.2.99", 40000, 80, SYN).bytes();
    run(&fwd, &syn, 1).expect("prime the hit flow");

    // Fill the connection table with 2^22 fresh flows (unmeasured).
    let mut fresh = Frame::tcp("10.0.0.0", "192.0.2.10", 0, 80, SYN).bytes();
    for _ in 0..4 {
        let (_, out, _) = run(&miss, &fresh, REPEAT).expect("fill");
        fresh = out;
    }
    let c0 = miss.counters().unwrap().vips[0].new_flows;
    assert_eq!(c0, 4 * REPEAT as u64, "every fill repeat inserted a flow");
    let filled = miss.conntrack_len();
    eprintln!("connection table: {filled} of {} entries in use", 1 << 20);
    assert!(filled as f64 >= 0.97 * (1 << 20) as f64, "table filled");

    let [b, p, h, m] = rounds(&base, &fwd, &miss, &syn, &ack, &other, &mut fresh);
    let base_ns = median(b);
    println!("BENCH xdp_baseline_ns {base_ns:.1} ns");
    let one = [median(p), median(h), median(m)];
    for (name, ns) in ["pass", "hit", "miss"].iter().zip(one) {
        println!("BENCH xdp_{name}_ns {ns:.1} ns");
        println!("BENCH xdp_{name}_ratio_to_baseline {:.2} x", ns / base_ns);
    }
    table_change(&mut fwd);
    shared_table_change(&mut fwd);
    // The same paths with 1,000 and 100,000 VIPs in the maps (the bench
    // VIP's lookups: the index slot, its entry, its table), in this run.
    for (n, tag) in [(1000, "1k"), (100_000, "100k")] {
        grow(&mut fwd, n);
        grow(&mut miss, n);
        let [_, p, h, m] = rounds(&base, &fwd, &miss, &syn, &ack, &other, &mut fresh);
        for ((name, v), at_one) in ["pass", "hit", "miss"].iter().zip([p, h, m]).zip(one) {
            let ns = median(v);
            println!("BENCH xdp_{name}_{tag}_vips_ns {ns:.1} ns");
            if n == 100_000 {
                println!("BENCH xdp_{name}_100k_vips_to_1_vip {:.2} x", ns / at_one);
            }
        }
    }

    let ids: Vec<String> = (0..100).map(|i| format!("proxy-{i:03}")).collect();
    let backends: Vec<(&str, u32)> = ids.iter().map(|s| (s.as_str(), 1)).collect();
    let mut t = vec![];
    for _ in 0..9 {
        let start = Instant::now();
        let table = maglev::build(65537, &backends);
        t.push(start.elapsed().as_secs_f64() * 1e3);
        assert_eq!(table.len(), 65537);
    }
    println!("BENCH maglev_build_65537x100_ms {:.3} ms", median(t));
    second_chance(&edge, &base);
    drop(fwd);
    drop(miss);
}
