//! Scale: 1,000 VIPs × 10 checks (HTTP on kept-alive connections, one
//! request per check per second) against 10 keep-alive HTTP listeners in a
//! child process, for BENCH_SECS (default 30) seconds each, in two
//! topologies:
//! - loopback: listeners on 127.0.0.1. The kernel runs the listeners' side
//!   of every TCP segment we send (their receive processing) in our
//!   process's context, so it is charged to the checker:
//!   `health_cpu_pct_one_core` and the other names without a suffix.
//! - veth: the checker and the listeners in two network namespaces joined
//!   by a veth pair with threaded NAPI, so each side's receive processing
//!   runs in the kernel's NAPI thread as it does behind a NIC; the checker
//!   pays for what it does itself (suffix `_veth`).
//!
//! Each topology runs twice: HTTP/1.1 (a kept connection per check), then
//! HTTP/2 (`http2: true`: one connection per listener shared by its 1,000
//! checks, a stream per attempt; names get `_http2`).
//!
//! Prints, for the checker process alone, in steady state (once every
//! check is up, at least 2 s after the start; the first, connecting
//! attempts are not counted): CPU % of one core (the median of three
//! windows), RSS, attempts completed per second (the checks' own pass and
//! failure counts over the windows), check latency p50/p99 (the attempts
//! that ended in the windows), and two floors, the same requests and
//! answers on the same connections from a plain loop with no runtime (what
//! any checker with a connection per check pays the kernel here):
//! `health_syscall_floor_pct_one_core` (blocking reads) and
//! `health_epoll_floor_pct_one_core` (reads as epoll reports the answers,
//! as the kept-connection loop does); then the fault-to-down time at
//! interval 250 ms, fall 3 (worst and mean of 20 checks), and the latency
//! one kept check records on the kept-connection loop for an answer sent
//! at once and for one sent 23 ms late (less the time the server held it):
//! `health_kept_latency_at_once_us`, `health_kept_latency_late_excess_us`.
//!
//! BENCH_KIND=tcp runs TCP-connect checks instead (names get a `_tcp`
//! suffix; no kept latency). The veth run needs root: without it the bench fails rather
//! than leave its figures out. BENCH_ONLY=loopback or BENCH_ONLY=veth runs
//! one topology alone (and neither fault-to-down nor the kept latency);
//! BENCH_H2=0 leaves out the HTTP/2 runs. BENCH_SMOKE=1 (`make
//! bench-smoke`): every figure once, at 100 VIPs × 10 checks and BENCH_SECS
//! 3, to prove the bench runs, not to compare.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edged_health::{CheckKey, CheckKind, CheckSpec, HealthChecker, Observer, State};
use edged_health::{HttpCheck, TcpCheck};
use nix::sys::resource::{UsageWho, getrusage};

const CHECKS_PER_VIP: usize = 10;
const LISTENERS: usize = 10;

fn smoke() -> bool {
    std::env::var("BENCH_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// VIPs in the scale runs: 1,000 (100 for a smoke run; BENCH_VIPS=N by
/// hand, e.g. 4,000 for 40,000 checks a second).
fn vips() -> usize {
    match std::env::var("BENCH_VIPS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(n) => n,
        None if smoke() => 100,
        None => 1000,
    }
}

/// Checks in the scale runs.
fn checks_total() -> usize {
    vips() * CHECKS_PER_VIP
}

fn main() {
    if std::env::var_os("EDGED_BENCH_SERVE").is_some() {
        return serve();
    }
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke() { 3 } else { 30 });
    let kind = if std::env::var("BENCH_KIND").is_ok_and(|k| k == "tcp") {
        "_tcp"
    } else {
        ""
    };
    let exe = std::env::current_exe().unwrap();
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let h2 = kind.is_empty() && std::env::var("BENCH_H2").map_or(true, |v| v != "0");
    if only != "veth" {
        let mut child = Command::new(&exe);
        child
            .env("EDGED_BENCH_SERVE", "1")
            .env("EDGED_BENCH_BIND", "127.0.0.1");
        scale(&mut child, "127.0.0.1", secs, kind, false);
        if h2 {
            scale(&mut child, "127.0.0.1", secs, "_http2", true);
        }
    }
    if only == "loopback" {
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "the _veth figures need root (network namespaces); \
         BENCH_ONLY=loopback runs the loopback figures alone"
    );
    {
        use edged_testlab::{NetNs, net};
        let (a, b) = (NetNs::new("edhb"), NetNs::new("edhb"));
        net::veth(&a, "v0", &b, "v1");
        net::addr(&a, "v0", "198.51.100.1/30");
        net::addr(&b, "v1", "198.51.100.2/30");
        for (ns, ifname) in [(&a, "v0"), (&b, "v1")] {
            ns.exec_ok(&["ethtool", "-K", ifname, "gro", "on"]);
            // sysfs shows a namespace's devices only when mounted in it.
            let threaded = format!("echo 1 > /sys/class/net/{ifname}/threaded");
            let ok = Command::new("ip")
                .args(["netns", "exec", ns.name(), "sh", "-c", &threaded])
                .status()
                .unwrap()
                .success();
            assert!(ok, "threaded NAPI on {ifname}");
        }
        let mut child = b.command(&exe);
        child
            .env("EDGED_BENCH_SERVE", "1")
            .env("EDGED_BENCH_BIND", "198.51.100.2");
        let path = a.path();
        let sfx = format!("{kind}_veth");
        edged_testlab::lab::traffic::in_netns(&path, move || {
            scale(&mut child, "198.51.100.2", secs, &sfx, false);
            if h2 {
                scale(&mut child, "198.51.100.2", secs, "_http2_veth", true);
            }
        });
    }
    if only.is_empty() {
        fault_to_down();
        if kind.is_empty() {
            kept_latency();
        }
    }
}

/// The 10,000 checks for `secs` against listeners started by `child` at
/// `host`; prints the figures with `sfx` appended to their names.
fn scale(child: &mut Command, host: &str, secs: u64, sfx: &str, h2: bool) {
    if h2 {
        child.env("EDGED_BENCH_H2", "1");
    }
    let mut child = child.stdout(Stdio::piped()).spawn().unwrap();
    let mut ports = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ports)
        .unwrap();
    let addrs: Vec<SocketAddr> = ports
        .split_whitespace()
        .map(|p| format!("{host}:{p}").parse().unwrap())
        .collect();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let n = checks_total();
        let lat = Arc::new(Mutex::new(Vec::<u32>::with_capacity(n * secs as usize)));
        // Latencies count only while measuring (steady state).
        let measuring = Arc::new(AtomicBool::new(false));
        let (l2, m2) = (lat.clone(), measuring.clone());
        let obs: Observer = Arc::new(move |_, o| {
            if m2.load(Ordering::Relaxed) {
                l2.lock().unwrap().push(o.latency.as_micros() as u32);
            }
        });
        let mut checks = Vec::new();
        for v in 0..vips() {
            for c in 0..CHECKS_PER_VIP {
                let key = CheckKey {
                    vip: format!("v{v}"),
                    service: format!("s{c}"),
                    proxy: format!("p{}", c % LISTENERS),
                };
                let mut s = spec(addrs[c % LISTENERS], Duration::from_secs(1));
                if let CheckKind::Http(h) = &mut s.kind {
                    h.http2 = h2;
                    // Each VIP's own Host: distinct checks (identical
                    // ones would share one run).
                    h.host = Some(format!("v{v}.example"));
                }
                checks.push((key, s));
            }
        }
        let (hc, _rx) = HealthChecker::spawn(checks, Some(obs));
        // Steady state: at least 2 s after the start, and every check up
        // (it has connected and passed `rise` times). The CPU figure is
        // the median of 3 equal windows after that (this machine's
        // neighbours make single windows noisy).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let all_up = |hc: &HealthChecker| {
            let snap = hc.snapshot();
            snap.len() == n && snap.iter().all(|(_, s)| s.state == State::Up)
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !all_up(&hc) {
            assert!(Instant::now() < deadline, "not every check up after 32 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let attempts = |hc: &HealthChecker| -> u64 {
            hc.snapshot()
                .iter()
                .map(|(_, s)| s.passes + s.failures)
                .sum()
        };
        let (attempts0, m0) = (attempts(&hc), Instant::now());
        measuring.store(true, Ordering::Relaxed);
        let mut windows = Vec::new();
        for _ in 0..3 {
            let (cpu0, w0) = (cpu_secs(), Instant::now());
            tokio::time::sleep(Duration::from_secs(secs) / 3).await;
            windows.push(100.0 * (cpu_secs() - cpu0) / w0.elapsed().as_secs_f64());
        }
        measuring.store(false, Ordering::Relaxed);
        let (attempts1, measured) = (attempts(&hc), m0.elapsed());
        windows.sort_by(f64::total_cmp);
        let ups = hc
            .snapshot()
            .iter()
            .filter(|(_, s)| s.state == State::Up)
            .count();
        let rss = rss_mib();
        drop(hc);
        let mut l = lat.lock().unwrap().clone();
        l.sort_unstable();
        assert!(ups == n, "only {ups} checks up");
        assert!(!l.is_empty(), "no attempt ended while measuring");
        let checks_per_s = (attempts1 - attempts0) as f64 / measured.as_secs_f64();
        println!("BENCH health_checks_per_s{sfx} {checks_per_s:.0} checks/s");
        let cpu_pct = windows[1];
        println!("BENCH health_cpu_pct_one_core{sfx} {cpu_pct:.1} %");
        if sfx.is_empty() || sfx == "_tcp" {
            // The second run's process also holds what the first left.
            println!("BENCH health_rss{sfx} {rss:.1} MiB");
        }
        println!("BENCH health_check_latency_p50{sfx} {} us", l[l.len() / 2]);
        let p99 = l[l.len() * 99 / 100];
        println!("BENCH health_check_latency_p99{sfx} {p99} us");
    });
    drop(rt);
    if !sfx.contains("tcp") && !h2 {
        syscall_floor(&addrs, secs.div_ceil(3), sfx);
        epoll_floor(&addrs, secs.div_ceil(3), sfx);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The floor under any checker with one kept connection per check: the
/// same requests a second (10,000) on as many connections, from a plain loop
/// (no runtime, no timers, no parsing): each 10 ms, 100 connections send
/// their request, then read their answer. Prints its CPU % of one core.
fn syscall_floor(addrs: &[SocketAddr], secs: u64, sfx: &str) {
    use std::io::{Read, Write};
    let (mut conns, req) = floor_conns(addrs);
    let n = conns.len();
    let mut buf = [0u8; 512];
    let steps = secs * 100;
    let per_step = n / 100;
    let (cpu0, t0) = (cpu_secs(), Instant::now());
    for step in 0..steps {
        let batch = (step as usize % 100) * per_step;
        for c in &mut conns[batch..batch + per_step] {
            c.write_all(req).unwrap();
        }
        for c in &mut conns[batch..batch + per_step] {
            let got = c.read(&mut buf).unwrap();
            assert!(buf[..got].starts_with(b"HTTP/1.1 200"), "floor: bad answer");
        }
        let due = t0 + Duration::from_millis(10 * (step + 1));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let pct = 100.0 * (cpu_secs() - cpu0) / t0.elapsed().as_secs_f64();
    println!("BENCH health_syscall_floor_pct_one_core{sfx} {pct:.1} %");
}

/// The floors' 10,000 connections, and the request they send.
fn floor_conns(addrs: &[SocketAddr]) -> (Vec<std::net::TcpStream>, &'static [u8]) {
    let conns = (0..checks_total())
        .map(|i| std::net::TcpStream::connect(addrs[i % addrs.len()]).unwrap())
        .collect();
    let req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: edged-health\r\n\r\n";
    (conns, req)
}

/// The floor under an event-driven checker (what the kept-connection loop
/// does, less its bookkeeping): the same requests on the same
/// connections, each 10 ms a hundredth of them sent, and the answers read
/// as epoll reports them. Prints its CPU % of one core; then every answer
/// must come (within 5 s: the last ones may still be on their way).
fn epoll_floor(addrs: &[SocketAddr], secs: u64, sfx: &str) {
    use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
    use std::io::{Read, Write};
    let (mut conns, req) = floor_conns(addrs);
    let n = conns.len();
    let ep = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
    for (i, c) in conns.iter().enumerate() {
        c.set_nonblocking(true).unwrap();
        ep.add(c, EpollEvent::new(EpollFlags::EPOLLIN, i as u64))
            .unwrap();
    }
    let mut buf = [0u8; 512];
    let mut events = vec![EpollEvent::empty(); 256];
    let (steps, per_step) = (secs * 100, n / 100);
    let (mut answers, mut sent) = (0, 0);
    let (cpu0, t0) = (cpu_secs(), Instant::now());
    for step in 0..steps {
        let batch = (step as usize % 100) * per_step;
        for c in &mut conns[batch..batch + per_step] {
            c.write_all(req).unwrap();
            sent += 1;
        }
        let due = t0 + Duration::from_millis(10 * (step + 1));
        while let Some(left) = due.checked_duration_since(Instant::now()) {
            let ms = left.as_nanos().div_ceil(1_000_000) as u16;
            let k = ep.wait(&mut events, ms).unwrap();
            for e in &events[..k] {
                let got = conns[e.data() as usize].read(&mut buf).unwrap();
                assert!(
                    buf[..got].starts_with(b"HTTP/1.1 200"),
                    "epoll floor: bad answer"
                );
                answers += 1;
            }
        }
    }
    let pct = 100.0 * (cpu_secs() - cpu0) / t0.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(5);
    while answers < sent && Instant::now() < deadline {
        let k = ep.wait(&mut events, 100u16).unwrap();
        for e in &events[..k] {
            let got = conns[e.data() as usize].read(&mut buf).unwrap();
            assert!(
                buf[..got].starts_with(b"HTTP/1.1 200"),
                "epoll floor: bad answer"
            );
            answers += 1;
        }
    }
    assert_eq!(answers, sent, "epoll floor: answers to requests");
    println!("BENCH health_epoll_floor_pct_one_core{sfx} {pct:.1} %");
}

fn spec(target: SocketAddr, interval: Duration) -> CheckSpec {
    let tcp = std::env::var("BENCH_KIND").is_ok_and(|k| k == "tcp");
    CheckSpec {
        kind: if tcp {
            CheckKind::Tcp(TcpCheck::new(target))
        } else {
            CheckKind::Http(HttpCheck::get(target))
        },
        interval,
        timeout: interval / 2,
        rise: 2,
        fall: 3,
        // As edged runs them: starts spread by identity, no per-period jitter.
        hold_down: None,
        reuse_connection: true,
        fastinter: std::time::Duration::from_millis(10),
        downinter: None,
        source: None,
    }
}

/// 20 checks (so 20 phases) at 250 ms, fall 3, no jitter: the server goes
/// away (listener and connections); time until each check is Down. Prints
/// the worst and the mean.
fn fault_to_down() {
    const N: usize = 20;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (max, mean) = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(accept_loop(l));
        let s = spec(addr, Duration::from_millis(250));
        let checks = (0..N)
            .map(|i| {
                let key = CheckKey {
                    vip: format!("v{i}"),
                    service: "s".into(),
                    proxy: "p".into(),
                };
                let mut s = s.clone();
                if let CheckKind::Http(h) = &mut s.kind {
                    h.host = Some(format!("v{i}.example"));
                }
                (key, s)
            })
            .collect();
        let (_hc, mut rx) = HealthChecker::spawn(checks, None);
        for _ in 0..N {
            assert_eq!(rx.recv().await.unwrap().state, State::Up);
        }
        server.abort();
        let _ = server.await;
        let t0 = Instant::now();
        let mut times = Vec::new();
        for _ in 0..N {
            assert_eq!(rx.recv().await.unwrap().state, State::Down);
            times.push(t0.elapsed().as_millis());
        }
        (times[N - 1], times.iter().sum::<u128>() / N as u128)
    });
    println!("BENCH health_fault_to_down_ms {max} ms");
    println!("BENCH health_fault_to_down_mean_ms {mean} ms");
}

/// One kept check (interval 60 ms, timeout 50 ms) against a keep-alive
/// server that answers its first 21 requests at once and the next 20
/// 23 ms late: the median latency the kept-connection loop records for
/// each (the late ones less the time the server really held them). The
/// attempt that connects (in the check's task, not on the loop) is left
/// out.
fn kept_latency() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const LATE: Duration = Duration::from_millis(23);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (at_once, late) = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        // How long the server really held each late answer (its timer
        // overshoots by up to a millisecond): the excess is over that.
        let held: Arc<Mutex<Vec<Duration>>> = Arc::default();
        let h2 = held.clone();
        let server = tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let held = h2.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    for n in 0.. {
                        if !matches!(s.read(&mut buf).await, Ok(k) if k > 0) {
                            return;
                        }
                        if n > 20 {
                            let t = Instant::now();
                            tokio::time::sleep(LATE).await;
                            held.lock().unwrap().push(t.elapsed());
                        }
                        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
                        if s.write_all(ok).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let seen: Arc<Mutex<Vec<(bool, Duration)>>> = Arc::default();
        let s2 = seen.clone();
        let obs: Observer = Arc::new(move |_, o| {
            assert!(o.ok(), "kept latency: {o:?}");
            let on_loop = std::thread::current().name() == Some("edged-kept");
            s2.lock().unwrap().push((on_loop, o.latency));
        });
        let mut s = spec(addr, Duration::from_millis(60));
        s.timeout = Duration::from_millis(50);
        let key = CheckKey {
            vip: "v".into(),
            service: "s".into(),
            proxy: "p".into(),
        };
        let (hc, _rx) = HealthChecker::spawn(vec![(key, s)], Some(obs));
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.lock().unwrap().len() < 41 {
            assert!(
                Instant::now() < deadline,
                "kept latency: fewer than 41 attempts"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(hc);
        server.abort();
        let seen = seen.lock().unwrap().clone();
        // The loop takes the check over after its first attempt, and keeps
        // it: every attempt after the first is on the loop.
        assert!(
            !seen[0].0 && seen[1..41].iter().all(|(on_loop, _)| *on_loop),
            "kept latency: attempts off the loop"
        );
        let median = |mut v: Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        let at_once = median(seen[1..21].iter().map(|(_, l)| *l).collect());
        let held = held.lock().unwrap().clone();
        let excess = seen[21..41].iter().zip(&held).map(|((_, l), h)| {
            assert!(l >= h, "kept latency: {l:?} for an answer held {h:?}");
            *l - *h
        });
        (at_once, median(excess.collect()))
    });
    println!(
        "BENCH health_kept_latency_at_once_us {} us",
        at_once.as_micros()
    );
    println!(
        "BENCH health_kept_latency_late_excess_us {} us",
        late.as_micros()
    );
}

fn cpu_secs() -> f64 {
    let u = getrusage(UsageWho::RUSAGE_SELF).unwrap();
    let tv = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    tv(u.user_time()) + tv(u.system_time())
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// The child: LISTENERS HTTP listeners; prints their ports, serves forever.
fn serve() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut ports = Vec::new();
        let bind = std::env::var("EDGED_BENCH_BIND").unwrap_or_else(|_| "127.0.0.1".into());
        for _ in 0..LISTENERS {
            let l = tokio::net::TcpListener::bind((bind.as_str(), 0))
                .await
                .unwrap();
            ports.push(l.local_addr().unwrap().port().to_string());
            if std::env::var_os("EDGED_BENCH_H2").is_some() {
                tokio::spawn(accept_loop_h2(l));
            } else {
                tokio::spawn(accept_loop(l));
            }
        }
        println!("{}", ports.join(" "));
        std::future::pending::<()>().await;
    });
}

/// Serves keep-alive HTTP/1.1 (as nginx does); aborting the task closes the
/// listener and every connection (they live in its JoinSet).
async fn accept_loop(l: tokio::net::TcpListener) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((mut s, _)) = l.accept().await else {
            return;
        };
        while conns.try_join_next().is_some() {}
        conns.spawn(async move {
            let mut buf = [0u8; 1024];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0
                    || s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                        .await
                        .is_err()
                {
                    return;
                }
            }
        });
    }
}

/// Serves HTTP/2 with prior knowledge: every stream gets 200 "ok".
async fn accept_loop_h2(l: tokio::net::TcpListener) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((s, _)) = l.accept().await else {
            return;
        };
        let _ = s.set_nodelay(true);
        while conns.try_join_next().is_some() {}
        conns.spawn(async move {
            let Ok(mut conn) = h2::server::handshake(s).await else {
                return;
            };
            while let Some(Ok((_, mut respond))) = conn.accept().await {
                let answer = respond
                    .send_response(http::Response::new(()), false)
                    .and_then(|mut body| body.send_data(bytes::Bytes::from_static(b"ok\n"), true));
                if answer.is_err() {
                    return;
                }
            }
        });
    }
}
