//! `cargo bench -p edge-daemon --bench flowshare` (root): a full flow sync
//! to a rejoining peer, for real: node X's connection table is filled with
//! 2^20 flows by its own XDP program (the bench build, one fresh flow per
//! repeat of BPF_PROG_TEST_RUN; 2^18 under BENCH_SMOKE=1), then node Y's
//! flow-sharing task starts, asks X for every flow it owns, and records
//! them in its data plane, over UDP between two addresses of one network
//! namespace, signed. Prints:
//! - `flowshare_full_sync_flows`: flows X owns (what the sync carries);
//! - `flowshare_full_sync_ms`: Y's request to X's end of sync;
//! - `flowshare_full_sync_learned_pct`: of those, the share Y recorded;
//! - `flowshare_bytes_per_flow`, `flowshare_flows_per_datagram`: the
//!   sync's UDP payload per flow, and flows per datagram.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edge_daemon::flowshare::{Sharing, Spec, Stats};
use edged_ebpf::bench::{open_fresh_flow, run};
use edged_ebpf::{
    Delivery, Flows, Forwarder, ForwarderSpec, HandoffSpec, Proto, ProxyTarget, VipService, XdpMode,
};
use edged_testlab::NetNs;

const X: &str = "192.0.2.1";
const Y: &str = "192.0.2.2";
const KEY: &[u8] = b"bench flow-sharing key";

/// A pin dir removed on drop.
struct Pins(PathBuf);

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An Ethernet + IPv4 + TCP SYN frame from 10.0.0.0:1 to 192.0.2.10:80.
fn syn() -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    f.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&[10, 0, 0, 0, 192, 0, 2, 10]);
    f.extend_from_slice(&[0, 1, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff]);
    f.extend_from_slice(&[0, 0, 0, 0]);
    f
}

fn node(pins: &Path, fresh: bool, entries: u32) -> Forwarder {
    let mut spec = ForwarderSpec::new(vec![], pins.to_path_buf());
    spec.mode = XdpMode::Generic;
    spec.conntrack_entries = entries;
    spec.peer_flows = entries * 2;
    let mut f = if fresh {
        open_fresh_flow(&spec).expect("open bench build")
    } else {
        Forwarder::open(&spec).expect("open")
    };
    f.set_proxies(&[ProxyTarget {
        name: "p".into(),
        delivery: Delivery::L2 {
            ifname: "px0".into(),
            mac: [2, 0, 0, 0, 1, 1],
        },
    }])
    .expect("proxy");
    let vip = VipService {
        addr: "192.0.2.10".parse().unwrap(),
        ports: vec![(80, Proto::Tcp)],
        no_healthy: None,
    };
    f.set_vip(&vip, &[("p".to_string(), 1)]).expect("vip");
    f
}

fn spec(local: &str, peer: &str, pins: &Path) -> Spec {
    Spec {
        local: local.parse().unwrap(),
        peers: vec![peer.parse().unwrap()],
        port: 7575,
        seed: 0,
        pin_dir: pins.to_path_buf(),
        key_file: None,
    }
}

fn bench(smoke: bool) -> Vec<(String, f64, &'static str)> {
    let entries: u32 = if smoke { 1 << 18 } else { 1 << 20 };
    let tag = std::process::id();
    let (px, py) = (
        Pins(format!("/sys/fs/bpf/edfs{tag}x").into()),
        Pins(format!("/sys/fs/bpf/edfs{tag}y").into()),
    );
    let mut x = node(&px.0, true, entries);
    let mut frame = syn();
    for _ in 0..4 {
        let (_, out, _) = run(&x, &frame, entries).expect("fill");
        frame = out;
    }
    let owned = Flows::open(&px.0).expect("flows x").owned().len();
    assert!(owned as f64 > 0.9 * entries as f64, "{owned} flows");
    let (a, b): (IpAddr, IpAddr) = (X.parse().unwrap(), Y.parse().unwrap());
    x.set_handoff(Some(&HandoffSpec {
        local: a,
        peers: vec![b],
    }))
    .expect("handoff x");
    let mut y = node(&py.0, false, entries);
    y.set_handoff(Some(&HandoffSpec {
        local: b,
        peers: vec![a],
    }))
    .expect("handoff y");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (sx, sy) = (
        Arc::new(Mutex::new(Stats::default())),
        Arc::new(Mutex::new(Stats::default())),
    );
    let (synced_ms, learned, bytes, datagrams, sent) = rt.block_on(async {
        let _x = Sharing::run(spec(X, Y, &px.0), Some(KEY.to_vec()), &sx);
        // X is listening before Y asks (Y asks at once).
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t0 = Instant::now();
        let _y = Sharing::run(spec(Y, X, &py.0), Some(KEY.to_vec()), &sy);
        let done = loop {
            let s = sy.lock().unwrap().peers[&a].clone();
            if s.synced {
                break s;
            }
            assert!(t0.elapsed() < Duration::from_secs(120), "no sync in 120 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let xs = sx.lock().unwrap().peers[&b].clone();
        (
            done.sync_ms.unwrap_or(0),
            done.sync_flows,
            xs.bytes_sent,
            xs.datagrams_sent,
            xs.flows_sent,
        )
    });
    drop((x, y));
    vec![
        ("flowshare_full_sync_flows".into(), owned as f64, "flows"),
        ("flowshare_full_sync_ms".into(), synced_ms as f64, "ms"),
        (
            "flowshare_full_sync_learned_pct".into(),
            100.0 * learned as f64 / owned as f64,
            "%",
        ),
        (
            "flowshare_bytes_per_flow".into(),
            bytes as f64 / sent.max(1) as f64,
            "bytes",
        ),
        (
            "flowshare_flows_per_datagram".into(),
            sent as f64 / datagrams.max(1) as f64,
            "flows",
        ),
    ]
}

fn main() {
    let smoke = std::env::var("BENCH_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0");
    let ns = NetNs::new("edfs");
    for a in [X, Y] {
        ns.exec_ok(&["ip", "addr", "add", &format!("{a}/32"), "dev", "lo"]);
    }
    ns.exec_ok(&[
        "ip", "link", "add", "px0", "type", "veth", "peer", "name", "px0p",
    ]);
    ns.exec_ok(&["ip", "link", "set", "px0", "up"]);
    ns.exec_ok(&["ip", "link", "set", "px0p", "up"]);
    let figures = edged_testlab::lab::traffic::in_netns(&ns.path(), move || bench(smoke));
    for (name, v, unit) in figures {
        println!("BENCH {name} {v:.1} {unit}");
    }
}
