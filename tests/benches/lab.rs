//! End-to-end throughput through the lab (client → ToR → node → proxy),
//! two ways on the same topology: via the XDP path (edged running, routes
//! from BGP) and via plain kernel ECMP (edged stopped, the XDP program
//! detached, static multipath routes at the ToR and the nodes). Prints:
//!   BENCH lab_http_rps_{xdp,kernel}, BENCH lab_http_xdp_to_kernel_ratio
//!   BENCH lab_udp_pps_{xdp,kernel},  BENCH lab_udp_xdp_to_kernel_ratio
//! then, on the XDP path, how long failures take:
//!   BENCH lab_service_failure_to_tor_ms: both proxies of a node answer
//!     500 on /healthz → the ToR's route has lost the node (median of 3;
//!     the clock starts at the last look that still saw a healthy proxy,
//!     so it errs long);
//!   BENCH lab_proxy_failure_last_error_ms: a proxy's nginx stops under
//!     load → the start of the last request that failed.
//!
//! HTTP: a new connection per request, 4 client threads; UDP: 64-byte
//! datagrams from 4 threads, counted where the proxies receive them. Each
//! sample runs LAB_BENCH_SECS (default 5) seconds after a 1 s warm-up of
//! the same traffic, and is divided by its measured duration. The two paths
//! take turns (kernel, XDP, XDP, kernel, kernel, XDP: neither always
//! first, nor always just after a switch), 3 samples each; each figure is
//! the median.
//! Switching to the kernel path stops edged with SIGTERM and waits for it
//! to exit (10 s at most, then SIGKILL, said on stderr). BENCH_SMOKE=1
//! (`make bench-smoke`): one sample each of 1 s after 0.3 s, one failure
//! of each kind.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use edged_testlab::lab::{self, Lab, Spec, traffic};
use edged_testlab::{Health, net, poll_until};

const THREADS: usize = 4;
const V4: &str = "203.0.113.10";

fn smoke() -> bool {
    std::env::var("BENCH_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// One sample's measured time.
fn secs() -> Duration {
    if smoke() {
        return Duration::from_secs(1);
    }
    Duration::from_secs(
        std::env::var("LAB_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    )
}

/// The untimed traffic before each sample.
fn warm_up() -> Duration {
    if smoke() {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(1)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

// === traffic ===

/// HTTP requests per second from `THREADS` clients for `len`: answered
/// requests over the time until the last client finished.
fn http_rps(lab: &Lab, dst: SocketAddr, len: Duration) -> f64 {
    let sources = lab.sources(false);
    let start = Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (path, src) = (lab.client.path(), sources.clone());
            std::thread::spawn(move || {
                traffic::in_netns(&path, move || {
                    let end = start + len;
                    let (mut ok, mut i) = (0u64, t);
                    while Instant::now() < end {
                        if traffic::get(src[i % src.len()], dst, Duration::from_secs(1)).is_ok() {
                            ok += 1;
                        }
                        i += THREADS;
                    }
                    (ok, Instant::now())
                })
            })
        })
        .collect();
    let (mut total, mut last) = (0, start);
    for h in handles {
        let (ok, done) = h.join().unwrap();
        total += ok;
        last = last.max(done);
    }
    total as f64 / (last - start).as_secs_f64()
}

/// UDP datagrams per second received by the proxies while `THREADS`
/// senders send for `len`, over the senders' measured time.
fn udp_pps(lab: &Lab, dst: SocketAddr, len: Duration) -> f64 {
    // Sinks in every proxy namespace, bound to the VIP.
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let sinks: Vec<_> = lab
        .nodes
        .iter()
        .flat_map(|n| n.proxies.iter().map(|p| p.ns.path()))
        .map(|path: PathBuf| {
            let (stop, received) = (stop.clone(), received.clone());
            let (tx, rx) = std::sync::mpsc::channel();
            let h = std::thread::spawn(move || {
                traffic::in_netns(&path, move || {
                    let s = UdpSocket::bind(dst).expect("bind the VIP in the proxy");
                    s.set_read_timeout(Some(Duration::from_millis(100)))
                        .unwrap();
                    tx.send(()).unwrap();
                    let mut buf = [0u8; 2048];
                    while !stop.load(Ordering::Relaxed) {
                        if s.recv(&mut buf).is_ok() {
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            });
            rx.recv().unwrap();
            h
        })
        .collect();
    let sources = lab.sources(false);
    let before = received.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let (path, src) = (lab.client.path(), sources.clone());
            std::thread::spawn(move || {
                traffic::in_netns(&path, move || {
                    let socks: Vec<UdpSocket> = src
                        .iter()
                        .skip(t)
                        .step_by(THREADS)
                        .map(|a: &IpAddr| UdpSocket::bind(SocketAddr::new(*a, 0)).unwrap())
                        .collect();
                    let end = t0 + len;
                    let payload = [0u8; 64];
                    let mut i = 0;
                    while Instant::now() < end {
                        let _ = socks[i % socks.len()].send_to(&payload, dst);
                        i += 1;
                    }
                })
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let elapsed = t0.elapsed().as_secs_f64();
    // What is in flight: until the count stands still for 50 ms (1 s at most).
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut last = received.load(Ordering::Relaxed);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = received.load(Ordering::Relaxed);
        if now == last || Instant::now() >= deadline {
            break;
        }
        last = now;
    }
    let got = received.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    for s in sinks {
        s.join().unwrap();
    }
    got as f64 / elapsed
}

// === the two paths ===

#[derive(Clone, Copy, PartialEq, Debug)]
enum Path {
    Xdp,
    Kernel,
}

/// Brings the lab onto `path`.
fn switch(lab: &mut Lab, path: Path) {
    match path {
        Path::Kernel => to_kernel(lab),
        Path::Xdp => to_xdp(lab),
    }
}

/// edged stopped (SIGTERM, then its exit), XDP detached, static ECMP.
fn to_kernel(lab: &mut Lab) {
    for n in &mut lab.nodes {
        if let Some(mut p) = n.edged.take() {
            p.signal(nix::sys::signal::Signal::SIGTERM);
            if p.wait_timeout(Duration::from_secs(10)).is_none() {
                eprintln!(
                    "lab bench: edged on {} still running 10 s after SIGTERM; SIGKILL",
                    n.name
                );
            }
            drop(p);
        }
        let _ = std::fs::remove_dir_all(&n.pins.0); // detaches XDP
    }
    // The ToR drops the nodes' routes when their sessions close; only then
    // can the static route go in (a late withdrawal would remove it).
    let gone = poll_until(Duration::from_secs(15), || {
        net::nexthops(&lab.tor_ns, V4).is_empty()
    });
    assert!(gone, "the ToR kept the BGP route after edged stopped");
    lab.kernel_routes();
}

/// The static routes gone, edged started on every node, its BGP route at
/// the ToR and every proxy serving.
fn to_xdp(lab: &mut Lab) {
    for v in &lab.spec.vips {
        let (fam, plen) = if v.address.is_ipv4() {
            ("-4", 32)
        } else {
            ("-6", 128)
        };
        let prefix = format!("{}/{plen}", v.address);
        for ns in std::iter::once(&lab.tor_ns).chain(lab.nodes.iter().map(|n| &n.ns)) {
            let _ = ns
                .command("ip")
                .args([fam, "route", "del", &prefix])
                .output();
        }
    }
    for i in 0..lab.nodes.len() {
        lab.start_node(i);
    }
    let routed = poll_until(Duration::from_secs(30), || {
        net::nexthops(&lab.tor_ns, V4).len() == lab.nodes.len()
    });
    assert!(routed, "no BGP route at the ToR:\n{}", lab.node_log(0));
    let serving = poll_until(Duration::from_secs(15), || {
        (0..lab.nodes.len()).all(|i| serving(lab, i) == lab.spec.proxies_per_node)
    });
    assert!(serving, "not every proxy serving:\n{}", lab.node_log(0));
}

/// How many proxies node `i` serves the first VIP with.
fn serving(lab: &Lab, i: usize) -> usize {
    let out = lab::edgectl(&lab.socket(i), &["-o", "json", "vips"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    v[0]["serving"].as_array().map_or(0, Vec::len)
}

// === failures (XDP path) ===

/// Both of node 2's proxies fail their health check: the ToR's route
/// loses the node. Restores them and waits for the route to come back.
fn service_failure_ms(lab: &Lab) -> f64 {
    let healthz = |ns: &std::path::Path, proxy: &str| -> Option<u16> {
        use std::io::{Read, Write};
        let addr: SocketAddr = format!("{proxy}:80").parse().unwrap();
        traffic::in_netns(ns, move || {
            let mut s =
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
            s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").ok()?;
            let mut head = [0u8; 12];
            s.read_exact(&mut head).ok()?;
            std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
        })
    };
    let node = &lab.nodes[1];
    for p in &node.proxies {
        p.nginx.set_health(Health::Error);
    }
    let mut fault = Instant::now();
    let failed = poll_until(Duration::from_secs(5), || {
        let before = Instant::now();
        let all = node
            .proxies
            .iter()
            .all(|p| healthz(&node.ns.path(), &p.address_v4) == Some(500));
        if !all {
            fault = before;
        }
        all
    });
    assert!(failed, "edge2's proxies never answered 500");
    let lost = poll_until(Duration::from_secs(10), || {
        net::nexthops(&lab.tor_ns, V4).len() == lab.nodes.len() - 1
    });
    let took = fault.elapsed();
    assert!(lost, "the ToR kept edge2 after its service failed");
    for p in &node.proxies {
        p.nginx.set_health(Health::Ok);
    }
    let back = poll_until(Duration::from_secs(10), || {
        net::nexthops(&lab.tor_ns, V4).len() == lab.nodes.len()
    });
    assert!(back, "edge2 never came back");
    took.as_secs_f64() * 1e3
}

/// edge1-px1's nginx stops under load from 2 clients: when the last
/// failed request started, after the fault.
fn proxy_failure_ms(lab: &mut Lab) -> f64 {
    let dst: SocketAddr = format!("{V4}:80").parse().unwrap();
    let load = traffic::Load::start(&lab.client.path(), lab.sources(false), dst, 2);
    assert!(
        poll_until(Duration::from_secs(5), || load.done() > 100),
        "no load"
    );
    let fault = Instant::now();
    lab.nodes[0].proxies[0].nginx.stop();
    let gone = poll_until(Duration::from_secs(10), || {
        serving(lab, 0) == lab.spec.proxies_per_node - 1
    });
    assert!(gone, "edge1-px1 never left the table");
    let after = load.done();
    poll_until(Duration::from_secs(5), || load.done() > after + 500);
    let t = load.stop();
    let last = t
        .last_failed_at
        .map_or(Duration::ZERO, |at| at.saturating_duration_since(fault));
    last.as_secs_f64() * 1e3
}

fn main() {
    let edged = lab::workspace_bin("edged");
    let spec = Spec::parse(lab::spec::DEFAULT).unwrap();
    let mut lab = Lab::up(spec, &edged);
    let http: SocketAddr = format!("{V4}:80").parse().unwrap();
    let udp: SocketAddr = format!("{V4}:9000").parse().unwrap();
    let order: &[Path] = if smoke() {
        &[Path::Kernel, Path::Xdp]
    } else {
        &[
            Path::Kernel,
            Path::Xdp,
            Path::Xdp,
            Path::Kernel,
            Path::Kernel,
            Path::Xdp,
        ]
    };
    // The lab starts with no edged: the kernel path is one `kernel_routes`.
    lab.kernel_routes();
    let mut on = Path::Kernel;
    let (mut http_s, mut udp_s) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for &path in order {
        if path != on {
            switch(&mut lab, path);
            on = path;
        }
        let k = path as usize;
        http_rps(&lab, http, warm_up());
        let h = http_rps(&lab, http, secs());
        udp_pps(&lab, udp, warm_up());
        let u = udp_pps(&lab, udp, secs());
        eprintln!("lab bench: {path:?}: {h:.0} req/s, {u:.0} pkt/s");
        http_s[k].push(h);
        udp_s[k].push(u);
    }
    assert_eq!(on, Path::Xdp, "the failures are measured on the XDP path");
    let services: Vec<f64> = (0..if smoke() { 1 } else { 3 })
        .map(|_| service_failure_ms(&lab))
        .collect();
    let proxy = proxy_failure_ms(&mut lab);

    let (xh, kh) = (median(http_s[0].clone()), median(http_s[1].clone()));
    let (xu, ku) = (median(udp_s[0].clone()), median(udp_s[1].clone()));
    println!("BENCH lab_http_rps_xdp {xh:.0} req/s");
    println!("BENCH lab_http_rps_kernel {kh:.0} req/s");
    println!("BENCH lab_http_xdp_to_kernel_ratio {:.2} x", xh / kh);
    println!("BENCH lab_udp_pps_xdp {xu:.0} pkt/s");
    println!("BENCH lab_udp_pps_kernel {ku:.0} pkt/s");
    println!("BENCH lab_udp_xdp_to_kernel_ratio {:.2} x", xu / ku);
    println!(
        "BENCH lab_service_failure_to_tor_ms {:.0} ms",
        median(services)
    );
    println!("BENCH lab_proxy_failure_last_error_ms {proxy:.0} ms");
}
