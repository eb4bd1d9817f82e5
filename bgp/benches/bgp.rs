//! BGP benchmarks against a real BIRD ToR in network namespaces (run as root).
//! Prints `BENCH <name> <value> <unit>` lines.
//!
//! 10k IPv6 VIPs (the IPv4 documentation ranges are too small) over one
//! IPv6 session; BENCH_SMOKE=1 (`make bench-smoke`): 1k, and the names say
//! so (`bgp_*_1k_vips_*`).
//!
//! Memory: `bgp_rss_10k_vips_bird` is the managed BIRD's RSS;
//! `bgp_rss_10k_vips_speaker` is what the speaker (edged-bgp, the part of
//! edged that holds this state) added to this process's RSS from before
//! it started to after 10k announced, verified and reconfigured (the
//! process itself is the bench, not edged: its runtime and the bench's own
//! lists are left out); `bgp_rss_10k_vips` is their sum.
//!
//! Single-VIP latency (`bgp_withdraw_latency_*`): from the withdraw
//! command to the route leaving the ToR's kernel table, as the kernel
//! reports it on an rtnetlink route-change subscription in the ToR's
//! namespace (no polling, no fork beside BIRD).

#[path = "../tests/lab/mod.rs"]
mod lab;

use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use edged_bgp::{RouteState, Speaker};
use lab::{Lab, in_netns, node_spec, tor, wait_established};

fn smoke() -> bool {
    std::env::var("BENCH_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn tor_count(sock: &str) -> usize {
    let out = tor::birdc(sock, "show route protocol n1v6 count");
    // "10000 of 10000 routes for 10000 networks in table master6"
    out.lines()
        .find(|l| l.contains(" of ") && l.contains("routes"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn rss_kib(pid: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn wait(sock: &str, want: usize) {
    let start = Instant::now();
    while tor_count(sock) != want {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "ToR never reached {want} routes"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // BENCH_BGP_VIPS=100000: the same figures at another size, named by it
    // (not in `make bench`: measured by hand for a design choice).
    let n: usize = match std::env::var("BENCH_BGP_VIPS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(n) => n,
        None if smoke() => 1_000,
        None => 10_000,
    };
    let samples_n = if smoke() { 5 } else { 15 };
    let size = format!("{}k", n / 1000);
    let mut lab = Lab::new(1);
    let sock = tor::start_bird_tor(&mut lab, 1);
    let names: Vec<String> = (0..n).map(|i| format!("v{i}")).collect();
    let addrs: Vec<String> = (0..n)
        .map(|i| format!("2001:db8:ff::{:x}:{:x}", (i + 1) >> 16, (i + 1) & 0xffff))
        .collect();
    let vips: Vec<(&str, &str)> = names
        .iter()
        .map(String::as_str)
        .zip(addrs.iter().map(String::as_str))
        .collect();
    let mut spec = node_spec(&lab, 1, &vips, true);
    spec.peers.retain(|p| p.name == "tor6");
    let tor_ns = lab.tor.clone();
    in_netns(&lab.nodes[0].clone(), move || {
        Box::pin(async move {
            let spec_copy = spec.clone();
            let before = rss_kib("self");
            let t = Instant::now();
            let mut sp = Speaker::start(spec).await.expect("start");
            println!(
                "BENCH bgp_start_{size}_vips_s {:.3} s",
                t.elapsed().as_secs_f64()
            );
            wait_established(&mut sp).await;
            let t = Instant::now();
            for n in &names {
                sp.set_route(n, RouteState::Announced).await.unwrap();
            }
            let sent = t.elapsed();
            wait(&sock, n);
            println!(
                "BENCH bgp_announce_{size}_vips_s {:.3} s",
                t.elapsed().as_secs_f64()
            );
            println!(
                "BENCH bgp_announce_{size}_vips_commands_s {:.3} s",
                sent.as_secs_f64()
            );
            let t = Instant::now();
            let mism = sp.export_mismatches().await.unwrap();
            assert!(mism.is_empty(), "{} mismatches", mism.len());
            println!(
                "BENCH bgp_verify_{size}_vips_s {:.3} s",
                t.elapsed().as_secs_f64()
            );
            // One more VIP: a full `configure` of a 2n-protocol config, routes kept.
            let mut bigger = spec_copy.clone();
            bigger.vips.push(edged_bgp::VipRoute {
                name: "extra".into(),
                prefix: "2001:db8:fe::1".parse().unwrap(),
                communities: vec![],
                large_communities: vec![],
            });
            let t = Instant::now();
            sp.reconfigure(bigger).await.expect("reconfigure");
            println!(
                "BENCH bgp_reconfigure_{size}_vips_s {:.3} s",
                t.elapsed().as_secs_f64()
            );
            assert!(sp.export_mismatches().await.unwrap().is_empty());
            assert_eq!(tor_count(&sock), n, "existing routes kept across configure");
            let bird = rss_kib(&sp.bird_pid().unwrap().to_string());
            let speaker = rss_kib("self").saturating_sub(before);
            println!(
                "BENCH bgp_rss_{size}_vips {:.1} MiB",
                (bird + speaker) as f64 / 1024.0
            );
            println!(
                "BENCH bgp_rss_{size}_vips_bird {:.1} MiB",
                bird as f64 / 1024.0
            );
            println!(
                "BENCH bgp_rss_{size}_vips_speaker {:.1} MiB",
                speaker as f64 / 1024.0
            );
            let t = Instant::now();
            for n in &names {
                sp.set_route(n, RouteState::Withdrawn).await.unwrap();
            }
            wait(&sock, 0);
            println!(
                "BENCH bgp_withdraw_{size}_vips_s {:.3} s",
                t.elapsed().as_secs_f64()
            );
            // Single-VIP decision-to-gone latency, at the ToR's kernel table.
            let v0: Ipv6Addr = "2001:db8:ff::1".parse().unwrap();
            let events = RouteEvents::watch(&tor_ns, v0);
            let mut samples = Vec::new();
            for _ in 0..samples_n {
                sp.set_route("v0", RouteState::Announced).await.unwrap();
                events.next(true);
                let t = Instant::now();
                sp.set_route("v0", RouteState::Withdrawn).await.unwrap();
                let gone = events.next(false);
                samples.push(gone.duration_since(t).as_secs_f64() * 1e3);
            }
            samples.sort_by(f64::total_cmp);
            println!(
                "BENCH bgp_withdraw_latency_ms {:.2} ms",
                samples[samples.len() / 2]
            );
            println!(
                "BENCH bgp_withdraw_latency_max_ms {:.2} ms",
                samples[samples.len() - 1]
            );
            sp.shutdown().await;
        })
    });
}

// === ToR route events over netlink ===

/// The ToR kernel table's changes to one IPv6 host route, as rtnetlink
/// reports them: a thread in the ToR's namespace (a netlink socket belongs
/// to the namespace it was opened in) subscribed to IPv6 route changes
/// sends each change of `dst`/128 (added or replaced: true; deleted:
/// false) with the instant it read it.
struct RouteEvents {
    rx: mpsc::Receiver<(bool, Instant)>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RouteEvents {
    fn watch(ns: &str, dst: Ipv6Addr) -> RouteEvents {
        use netlink_sys::{Socket, protocols::NETLINK_ROUTE};
        let path = format!("/var/run/netns/{ns}");
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let mut sock = Socket::new(NETLINK_ROUTE).expect("netlink socket");
            sock.bind_auto().expect("bind netlink");
            sock.add_membership(libc::RTNLGRP_IPV6_ROUTE)
                .expect("join RTNLGRP_IPV6_ROUTE");
            // Wake up now and then to see the stop flag.
            let tv = nix::sys::time::TimeVal::new(0, 100_000);
            nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
                .expect("SO_RCVTIMEO");
            ready_tx.send(()).unwrap();
            let mut buf = vec![0u8; 1 << 16];
            while !stop2.load(Ordering::Relaxed) {
                let Ok(len) = sock.recv(&mut &mut buf[..], 0) else {
                    continue; // the timeout
                };
                let at = Instant::now();
                for present in route_changes(&buf[..len], dst) {
                    if tx.send((present, at)).is_err() {
                        return;
                    }
                }
            }
        });
        ready_rx.recv().expect("netlink watcher started");
        RouteEvents {
            rx,
            stop,
            thread: Some(thread),
        }
    }

    /// When the route next became present (`true`) or went (`false`);
    /// changes of the other kind before it are skipped.
    fn next(&self, present: bool) -> Instant {
        loop {
            match self.rx.recv_timeout(Duration::from_secs(10)) {
                Ok((p, at)) if p == present => return at,
                Ok(_) => {}
                Err(e) => panic!(
                    "no route {} event within 10 s: {e}",
                    if present { "add" } else { "delete" }
                ),
            }
        }
    }
}

impl Drop for RouteEvents {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The changes to `dst`/128 in one netlink datagram (several messages).
fn route_changes(mut buf: &[u8], dst: Ipv6Addr) -> Vec<bool> {
    use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::RouteNetlinkMessage;
    use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
    let ours = |m: &RouteMessage| {
        m.header.destination_prefix_length == 128
            && m.attributes.iter().any(
                |a| matches!(a, RouteAttribute::Destination(RouteAddress::Inet6(d)) if *d == dst),
            )
    };
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes(buf[..4].try_into().unwrap()) as usize;
        if len < 16 || len > buf.len() {
            break;
        }
        if let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[..len])
            && let NetlinkPayload::InnerMessage(inner) = msg.payload
        {
            match inner {
                RouteNetlinkMessage::NewRoute(m) if ours(&m) => out.push(true),
                RouteNetlinkMessage::DelRoute(m) if ours(&m) => out.push(false),
                _ => {}
            }
        }
        // Messages are 4-byte aligned.
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
    }
    out
}
