//! End-to-end throughput through the lab (client → ToR → node → proxy),
//! measured in one run two ways: via the XDP path (edged running, routes
//! from BGP), then with edged stopped, the XDP program detached and plain
//! kernel ECMP doing the job on the same topology. Prints:
//!   BENCH lab_http_rps_{xdp,kernel}, BENCH lab_http_xdp_to_kernel_ratio
//!   BENCH lab_udp_pps_{xdp,kernel},  BENCH lab_udp_xdp_to_kernel_ratio
//! HTTP: new connection per request, 4 client threads; UDP: 64-byte
//! datagrams from 4 threads, counted where the proxies receive them.
//! LAB_BENCH_SECS (default 5) seconds per figure.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use edged_testlab::lab::{self, Lab, Spec, traffic};
use edged_testlab::{net, poll_until};

const THREADS: usize = 4;

fn secs() -> Duration {
    Duration::from_secs(
        std::env::var("LAB_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    )
}

fn http_rps(lab: &Lab, dst: SocketAddr) -> f64 {
    let sources = lab.sources(false);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (path, src) = (lab.client.path(), sources.clone());
            std::thread::spawn(move || {
                traffic::in_netns(&path, move || {
                    let end = Instant::now() + secs();
                    let mut ok = 0u64;
                    let mut i = t;
                    while Instant::now() < end {
                        if traffic::get(src[i % src.len()], dst, Duration::from_secs(1)).is_ok() {
                            ok += 1;
                        }
                        i += THREADS;
                    }
                    ok
                })
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    total as f64 / secs().as_secs_f64()
}

fn udp_pps(lab: &Lab, dst: SocketAddr) -> f64 {
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
                    let end = Instant::now() + secs();
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
    let before = received.load(Ordering::Relaxed);
    let t0 = Instant::now();
    for s in senders {
        s.join().unwrap();
    }
    let elapsed = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(200)); // what is in flight
    let got = received.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    for s in sinks {
        s.join().unwrap();
    }
    got as f64 / elapsed
}

fn main() {
    let edged = lab::workspace_bin("edged");
    let spec = Spec::parse(lab::spec::DEFAULT).unwrap();
    let mut lab = Lab::up(spec, &edged);
    for i in 0..lab.nodes.len() {
        lab.start_node(i);
    }
    let routed = poll_until(Duration::from_secs(30), || {
        net::nexthops(&lab.tor_ns, "203.0.113.10").len() == 2
    });
    assert!(routed, "no BGP route at the ToR");
    let http: SocketAddr = "203.0.113.10:80".parse().unwrap();
    let udp: SocketAddr = "203.0.113.10:9000".parse().unwrap();
    let xdp_http = http_rps(&lab, http);
    let xdp_udp = udp_pps(&lab, udp);

    // Same topology, no edged, no XDP: kernel ECMP at the ToR and the nodes.
    for n in &mut lab.nodes {
        if let Some(p) = n.edged.take() {
            p.signal(nix::sys::signal::Signal::SIGTERM);
            drop(p);
        }
        let _ = std::fs::remove_dir_all(&n.pins.0); // detaches XDP
    }
    lab.kernel_routes();
    let k_http = http_rps(&lab, http);
    let k_udp = udp_pps(&lab, udp);
    println!("BENCH lab_http_rps_xdp {xdp_http:.0} req/s");
    println!("BENCH lab_http_rps_kernel {k_http:.0} req/s");
    println!(
        "BENCH lab_http_xdp_to_kernel_ratio {:.2} x",
        xdp_http / k_http
    );
    println!("BENCH lab_udp_pps_xdp {xdp_udp:.0} pkt/s");
    println!("BENCH lab_udp_pps_kernel {k_udp:.0} pkt/s");
    println!("BENCH lab_udp_xdp_to_kernel_ratio {:.2} x", xdp_udp / k_udp);
}
