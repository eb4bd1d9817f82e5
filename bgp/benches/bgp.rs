//! BGP benchmarks against a real BIRD ToR in network namespaces (run as root).
//! Prints `BENCH <name> <value> <unit>` lines.
//!
//! 10k IPv6 VIPs (the IPv4 documentation ranges are too small) over one IPv6 session.

#[path = "../tests/lab/mod.rs"]
mod lab;

use std::time::{Duration, Instant};

use edged_bgp::{RouteState, Speaker};
use lab::{Lab, TorView, in_netns, node_spec, tor, wait_established};

const N: usize = 10_000;

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
    let mut lab = Lab::new(1);
    let sock = tor::start_bird_tor(&mut lab, 1);
    let names: Vec<String> = (0..N).map(|i| format!("v{i}")).collect();
    let addrs: Vec<String> = (0..N)
        .map(|i| format!("2001:db8:ff::{:x}", i + 1))
        .collect();
    let vips: Vec<(&str, &str)> = names
        .iter()
        .map(String::as_str)
        .zip(addrs.iter().map(String::as_str))
        .collect();
    let mut spec = node_spec(&lab, 1, &vips, true);
    spec.peers.retain(|p| p.name == "tor6");
    let tv = TorView(lab.tor.clone());
    in_netns(&lab.nodes[0].clone(), move || {
        Box::pin(async move {
            let t = Instant::now();
            let spec_copy = spec.clone();
            let mut sp = Speaker::start(spec).await.expect("start");
            println!(
                "BENCH bgp_start_10k_vips_s {:.3} s",
                t.elapsed().as_secs_f64()
            );
            wait_established(&mut sp).await;
            let t = Instant::now();
            for n in &names {
                sp.set_route(n, RouteState::Announced).await.unwrap();
            }
            let sent = t.elapsed();
            wait(&sock, N);
            println!(
                "BENCH bgp_announce_10k_vips_s {:.3} s",
                t.elapsed().as_secs_f64()
            );
            println!(
                "BENCH bgp_announce_10k_vips_commands_s {:.3} s",
                sent.as_secs_f64()
            );
            let t = Instant::now();
            let mism = sp.export_mismatches().await.unwrap();
            assert!(mism.is_empty(), "{} mismatches", mism.len());
            println!(
                "BENCH bgp_verify_10k_vips_s {:.3} s",
                t.elapsed().as_secs_f64()
            );
            // One more VIP: a full `configure` of a 20k-protocol config, routes kept.
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
                "BENCH bgp_reconfigure_10k_vips_s {:.3} s",
                t.elapsed().as_secs_f64()
            );
            assert!(sp.export_mismatches().await.unwrap().is_empty());
            assert_eq!(tor_count(&sock), N, "existing routes kept across configure");
            let bird = rss_kib(&sp.bird_pid().unwrap().to_string());
            let me = rss_kib("self");
            println!(
                "BENCH bgp_rss_10k_vips {:.1} MiB",
                (bird + me) as f64 / 1024.0
            );
            println!(
                "BENCH bgp_rss_10k_vips_bird {:.1} MiB",
                bird as f64 / 1024.0
            );
            println!("BENCH bgp_rss_10k_vips_edged {:.1} MiB", me as f64 / 1024.0);
            let t = Instant::now();
            for n in &names {
                sp.set_route(n, RouteState::Withdrawn).await.unwrap();
            }
            wait(&sock, 0);
            println!(
                "BENCH bgp_withdraw_10k_vips_s {:.3} s",
                t.elapsed().as_secs_f64()
            );
            // Single-VIP decision-to-gone latency, at the ToR's kernel table.
            let mut samples = Vec::new();
            for _ in 0..15 {
                sp.set_route("v0", RouteState::Announced).await.unwrap();
                while tv.route("2001:db8:ff::1").is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let t = Instant::now();
                sp.set_route("v0", RouteState::Withdrawn).await.unwrap();
                while !tv.route("2001:db8:ff::1").is_empty() {}
                samples.push(t.elapsed().as_secs_f64() * 1e3);
            }
            samples.sort_by(f64::total_cmp);
            println!(
                "BENCH bgp_withdraw_latency_ms {:.1} ms",
                samples[samples.len() / 2]
            );
            println!(
                "BENCH bgp_withdraw_latency_max_ms {:.1} ms",
                samples[samples.len() - 1]
            );
            sp.shutdown().await;
        })
    });
}
