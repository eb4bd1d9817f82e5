//! End to end on the default lab, with BGP: the ToR's kernel table holds an
//! ECMP route per VIP learned from both nodes' edged (BIRD); traffic
//! spreads over nodes and proxies; a node whose service fails leaves the
//! route; a drain under load fails no request (connection handoff); kill -9 of edged withdraws
//! the node; a restarted edged rejoins only after its checks pass.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edged_testlab::lab::{self, Lab, Spec, traffic};
use edged_testlab::{Health, net, poll_until};

const V4: &str = "203.0.113.10";

/// The status of `GET /healthz` on a proxy, asked from inside `ns_path`.
fn healthz(ns_path: &std::path::Path, proxy: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let addr: SocketAddr = format!("{proxy}:80").parse().unwrap();
    traffic::in_netns(ns_path, move || {
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
        s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).ok()?;
        std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
    })
}

/// Sends requests from a thread while `during` runs; returns the tally.
fn under_load(lab: &Lab, count: usize, during: impl FnOnce()) -> traffic::Tally {
    let (path, sources) = (lab.client.path(), lab.sources(false));
    let dst: SocketAddr = format!("{V4}:80").parse().unwrap();
    let load = std::thread::spawn(move || traffic::run(&path, sources, dst, count));
    during();
    load.join().unwrap()
}

#[test]
fn bgp_ecmp_failover_drain_kill_and_restart() {
    let spec = Spec::parse(lab::spec::DEFAULT).unwrap();
    let mut lab = Lab::up(spec, &lab::workspace_bin("edged"));
    for i in 0..lab.nodes.len() {
        lab.start_node(i);
    }
    lab.until_hops(V4, 2, Duration::from_secs(20));
    lab.until_hops("2001:db8:100::10", 2, Duration::from_secs(5));

    // Spread over nodes and proxies, IPv4 and IPv6.
    for (dst, six) in [
        (format!("{V4}:80"), false),
        ("[2001:db8:100::10]:80".to_string(), true),
    ] {
        let t = traffic::run(
            &lab.client.path(),
            lab.sources(six),
            dst.parse().unwrap(),
            800,
        );
        assert!(
            t.failed.is_empty(),
            "{dst}: {:?}",
            &t.failed[..t.failed.len().min(3)]
        );
        assert_eq!(t.by_proxy.len(), 4, "{dst}: {:?}", t.by_proxy);
        let edge1: usize = t
            .by_proxy
            .iter()
            .filter(|(p, _)| p.starts_with("edge1"))
            .map(|(_, n)| n)
            .sum();
        assert!(
            (200..=600).contains(&edge1),
            "{dst}: node spread {:?}",
            t.by_proxy
        );
        assert!(
            t.by_proxy.values().all(|&n| n >= 80),
            "{dst}: proxy spread {:?}",
            t.by_proxy
        );
    }

    // edge2's service fails on both its proxies: the ToR drops edge2. The
    // fault is the moment both proxies answer 500 (nginx reloads its
    // config first); the clock starts at the last look that still saw a
    // healthy one, so the figure errs long.
    for p in &lab.nodes[1].proxies {
        p.nginx.set_health(Health::Error);
    }
    let mut fault = Instant::now();
    let failed = poll_until(Duration::from_secs(5), || {
        let before = Instant::now();
        let all = lab.nodes[1]
            .proxies
            .iter()
            .all(|p| healthz(&lab.nodes[1].ns.path(), &p.address_v4) == Some(500));
        if !all {
            fault = before;
        }
        all
    });
    assert!(failed, "edge2's proxies never answered 500");
    lab.until_hops(V4, 1, Duration::from_secs(10));
    let took = fault.elapsed();
    // A generous bound (two loaded cores run this lab): fall x interval
    // plus 2 s. The tight figure is the lab bench's
    // lab_service_failure_to_tor_ms.
    let bound = Duration::from_millis(3 * 250 + 2000);
    println!(
        "node service failure: ToR route lost the node {} ms after the fault \
         (fall x interval = 750 ms; bound {} ms)",
        took.as_millis(),
        bound.as_millis()
    );
    assert!(took <= bound, "{took:?} > {bound:?}");
    assert_eq!(net::nexthops(&lab.tor_ns, V4), ["192.0.2.2"]);
    let t = traffic::run(
        &lab.client.path(),
        lab.sources(false),
        format!("{V4}:80").parse().unwrap(),
        400,
    );
    assert!(
        t.failed.is_empty() && t.by_proxy.keys().all(|p| p.starts_with("edge1")),
        "{:?}",
        t.by_proxy
    );
    for p in &lab.nodes[1].proxies {
        p.nginx.set_health(Health::Ok);
    }
    lab.until_hops(V4, 2, Duration::from_secs(5));

    // Drain edge1 under continuous load from 4 parallel clients: for 1 s
    // (handoff.time) edge1 stays in the route but sends new connections to
    // edge2 through its XDP program; then GRACEFUL_SHUTDOWN moves the route,
    // and the connections edge2 took over already live there. No request
    // fails.
    let sock0 = lab.socket(0);
    let handoff = |i: usize, dir: &str| {
        lab.metric(
            i,
            &format!("edged_xdp_handoff_packets_total{{direction=\"{dir}\"}}"),
        )
        .unwrap_or(0.0)
    };
    let before = (handoff(0, "out"), handoff(1, "in"));
    let load = traffic::Load::start(
        &lab.client.path(),
        lab.sources(false),
        format!("{V4}:80").parse().unwrap(),
        4,
    );
    let t0 = Instant::now();
    lab::edgectl(&sock0, &["drain", "web"]);
    lab.until_hops(V4, 1, Duration::from_secs(5));
    assert_eq!(net::nexthops(&lab.tor_ns, V4), ["192.0.2.6"]);
    let moved = t0.elapsed();
    // Keep the load on past the withdrawal (drain_time 2 s).
    let vips = poll_until(Duration::from_secs(5), || {
        lab::edgectl(&sock0, &["-o", "json", "vips"]).contains("\"withdrawn\"")
    });
    assert!(vips, "edge1 never withdrew web");
    let t = load.stop();
    // edged snapshots the data plane's counters every 5 s.
    let (mut out, mut into) = (0.0, 0.0);
    poll_until(Duration::from_secs(12), || {
        (out, into) = (handoff(0, "out") - before.0, handoff(1, "in") - before.1);
        out > 0.0 && into > 0.0
    });
    println!(
        "drain under load: route moved after {} ms; {} requests, {} failed; \
         edge1 handed {out} packets to edge2, edge2 took {into}",
        moved.as_millis(),
        t.ok() + t.failed.len(),
        t.failed.len()
    );
    assert!(
        t.failed.is_empty(),
        "{} failed: {:?}",
        t.failed.len(),
        &t.failed[..t.failed.len().min(3)]
    );
    assert!(
        out > 0.0 && into > 0.0,
        "handoff not exercised: {out} out, {into} in"
    );
    assert!(t.by_proxy.keys().any(|p| p.starts_with("edge1")));
    lab::edgectl(&sock0, &["undrain", "web"]);
    lab.until_hops(V4, 2, Duration::from_secs(5));

    // kill -9 of edged on edge1: its BIRD dies with it, the ToR withdraws.
    let t = under_load(&lab, 3000, || {
        let t0 = Instant::now();
        lab.nodes[0]
            .edged
            .as_ref()
            .unwrap()
            .signal(nix::sys::signal::Signal::SIGKILL);
        let took = lab.until_hops(V4, 1, Duration::from_secs(5));
        println!(
            "kill -9 of edged: ToR route gone after {} ms",
            t0.elapsed().as_millis().max(took.as_millis())
        );
    });
    println!(
        "kill -9 under load: {} requests, {} failed",
        t.ok() + t.failed.len(),
        t.failed.len()
    );
    lab.nodes[0].edged = None;

    // Restart: edge1 rejoins only after its checks pass. Its first answer
    // comes after its first reconcile pass, before any check can have
    // risen (rise 2 at 250 ms): web is withdrawn there, and the ToR still
    // routes to edge2 alone.
    let t0 = Instant::now();
    lab.start_node(0);
    let first = lab::edgectl(&lab.socket(0), &["-o", "json", "vips"]);
    let (first_at, hops_at_first) = (t0.elapsed(), net::nexthops(&lab.tor_ns, V4));
    let vips: serde_json::Value = serde_json::from_str(&first).unwrap();
    let web = vips
        .as_array()
        .and_then(|a| a.iter().find(|v| v["name"] == "web"))
        .unwrap_or_else(|| panic!("no web in {first}"));
    assert_eq!(
        web["route"],
        "withdrawn",
        "announced {} ms after the start, before its checks passed: {web}",
        first_at.as_millis()
    );
    assert_eq!(
        hops_at_first,
        ["192.0.2.6"],
        "the ToR took edge1 back before its checks passed"
    );
    let back = lab.until_hops(V4, 2, Duration::from_secs(20));
    println!(
        "restart: first answer withdrawn at {} ms; back in the ToR's ECMP route after {} ms",
        first_at.as_millis(),
        (first_at + back).as_millis()
    );
}
