//! The checker end to end on loopback: state flips with rise and fall,
//! reasons reach the snapshot, reloads keep unchanged checks, dropping the
//! checker stops every probe.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use edged_health::{CheckKey, CheckKind, CheckSpec, HealthChecker, State};
use edged_health::{ExecCheck, HttpCheck};

fn spec(target: std::net::SocketAddr) -> CheckSpec {
    CheckSpec {
        kind: CheckKind::Http(HttpCheck::get(target)),
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(40),
        rise: 2,
        fall: 3,
        hold_down: None,
        reuse_connection: true,
        // No fast phase: these tests count intervals (fast.rs tests it).
        fastinter: Duration::from_millis(50),
        downinter: None,
        source: None,
    }
}

fn key(proxy: &str) -> CheckKey {
    CheckKey {
        vip: "web".into(),
        service: "http".into(),
        proxy: proxy.into(),
    }
}

#[tokio::test]
async fn flips_with_rise_and_fall_and_reports_the_reason() {
    let srv = HttpServer::start().await;
    let (hc, mut rx) = HealthChecker::spawn(vec![(key("a"), spec(srv.addr))], None);
    assert_eq!(hc.snapshot()[0].1.state, State::Unknown);
    assert_eq!(flip(&mut rx).await.state, State::Up);

    srv.set(Mode::Status500);
    let fault = Instant::now();
    let ev = flip(&mut rx).await;
    let took = fault.elapsed();
    assert_eq!(
        (ev.state, ev.outcome.reason().as_str()),
        (State::Down, "status 500")
    );
    // fall 3 at 50 ms: at least two more intervals after the first failure.
    assert!(
        took >= Duration::from_millis(80),
        "went down after only {took:?}"
    );
    println!(
        "fault-to-down with interval 50ms, fall 3: {} ms",
        took.as_millis()
    );
    let snap = hc.snapshot();
    assert_eq!(snap[0].1.last.as_ref().unwrap().reason(), "status 500");
    assert!(snap[0].1.failures >= 3);

    srv.set(Mode::Ok);
    assert_eq!(flip(&mut rx).await.state, State::Up);
}

#[tokio::test]
async fn update_keeps_unchanged_checks_and_drop_stops_probing() {
    let srv = HttpServer::start().await;
    let (hc, mut rx) = HealthChecker::spawn(
        vec![(key("a"), spec(srv.addr)), (key("b"), spec(srv.addr))],
        None,
    );
    flip(&mut rx).await;
    flip(&mut rx).await;
    hc.update(vec![(key("a"), spec(srv.addr))]);
    let snap = hc.snapshot();
    assert_eq!(snap.len(), 1);
    assert_eq!(
        snap[0].1.state,
        State::Up,
        "an unchanged check keeps its state"
    );

    // New settings on the same target: state and history stay, and the
    // check goes on (on the new settings).
    let mut slower = spec(srv.addr);
    slower.interval = Duration::from_millis(80);
    slower.rise = 3;
    slower.fall = 1;
    hc.update(vec![(key("a"), slower.clone())]);
    let s = hc.snapshot()[0].1.clone();
    assert_eq!(s.state, State::Up, "new settings keep the state");
    assert!(s.passes >= 2 && s.since.is_some(), "and the history: {s:?}");
    let ran = tokio::time::timeout(Duration::from_secs(2), async {
        while hc.snapshot()[0].1.passes < s.passes + 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    assert!(ran.await.is_ok(), "the check stopped after the reload");
    // fall 1 is in force: one failure takes it down.
    srv.set(Mode::Status500);
    assert_eq!(flip(&mut rx).await.state, State::Down);
    srv.set(Mode::Ok);
    assert_eq!(flip(&mut rx).await.state, State::Up);

    // A new target is a new check: pending until it decides.
    let mut moved = slower;
    if let CheckKind::Http(h) = &mut moved.kind {
        h.path = "/other".into();
    }
    hc.update(vec![(key("a"), moved)]);
    assert_eq!(
        hc.snapshot()[0].1.state,
        State::Unknown,
        "a changed target starts pending"
    );

    drop(hc);
    tokio::task::yield_now().await;
    let before = srv.accepted.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await; // 6 intervals: would be 3+ probes
    assert!(
        srv.accepted.load(Ordering::SeqCst) <= before + 1,
        "probes go on after drop"
    );
}

#[tokio::test]
async fn observer_sees_every_attempt() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    let srv = HttpServer::start().await;
    let seen = Arc::new(AtomicUsize::new(0));
    let s2 = seen.clone();
    let obs: edged_health::Observer = Arc::new(move |_, _| {
        s2.fetch_add(1, Ordering::SeqCst);
    });
    let (_hc, mut rx) = HealthChecker::spawn(vec![(key("a"), spec(srv.addr))], Some(obs));
    flip(&mut rx).await; // Up after 2 attempts
    assert!(seen.load(Ordering::SeqCst) >= 2);
}

/// An attempt that runs past its next slot (here: the observer stalls the
/// thread the attempt ran on for 2.5 periods: the current-thread runtime
/// for a check in its task, the kept-connection loop for a kept one) skips
/// the slots it missed. The next attempts keep one period between them
/// instead of firing back to back, so `rise` passes can never come closer
/// than a period. The stall and the loop are real time (the probes do real
/// I/O, which a paused clock would race), so the period is long enough
/// that a loaded host cannot blur the difference: after the stall the next
/// attempt ends half a period later (one period and a half had it skipped
/// a slot too many), then a period apart (next to nothing back to back).
#[tokio::test]
async fn a_stalled_attempt_skips_its_missed_slots() {
    for kept in [false, true] {
        stall_skips_missed_slots(kept).await;
    }
}

async fn stall_skips_missed_slots(kept: bool) {
    use std::sync::{Arc, Mutex};
    const PERIOD: Duration = Duration::from_millis(200);
    let srv = HttpServer::start().await;
    let ends: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let e2 = ends.clone();
    let obs: edged_health::Observer = Arc::new(move |_, _| {
        let mut ends = e2.lock().unwrap();
        if ends.len() == 1 {
            std::thread::sleep(PERIOD * 5 / 2);
        }
        ends.push(Instant::now());
    });
    let mut s = spec(srv.addr);
    s.interval = PERIOD;
    s.fastinter = PERIOD;
    s.timeout = PERIOD * 4 / 5;
    s.reuse_connection = kept;
    let (_hc, _rx) = HealthChecker::spawn(vec![(key("a"), s)], Some(obs));
    let deadline = Instant::now() + Duration::from_secs(10);
    while ends.lock().unwrap().len() < 5 {
        assert!(Instant::now() < deadline, "fewer than 5 attempts in 10 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ends = ends.lock().unwrap().clone();
    let gaps: Vec<Duration> = ends.windows(2).map(|w| w[1] - w[0]).collect();
    println!("kept {kept}: gaps between attempt ends: {gaps:?}");
    // gaps[1] follows the stall: half a period expected.
    assert!(gaps[1] < PERIOD, "kept {kept}: {gaps:?}");
    for g in &gaps[2..] {
        assert!(
            *g >= PERIOD / 2,
            "kept {kept}: attempts closer than a period: {gaps:?}"
        );
    }
}

/// A running exec check (and what it forked) dies with the checker: the
/// whole process group, not only the direct child; no zombie is left.
#[tokio::test]
async fn dropping_the_checker_kills_running_exec_groups() {
    let marker = format!("edged-hc-drop-{}", std::process::id());
    let exec = CheckSpec {
        kind: CheckKind::Exec(ExecCheck {
            program: "/bin/bash".into(),
            args: vec![
                "-c".into(),
                format!("(exec -a {marker} sleep 30) & exec -a {marker} sleep 30"),
            ],
            env: vec![],
        }),
        interval: Duration::from_secs(4),
        timeout: Duration::from_millis(3500),
        rise: 1,
        fall: 1,
        hold_down: None,
        reuse_connection: true,
        fastinter: std::time::Duration::from_millis(10),
        downinter: None,
        source: None,
    };
    let running = || {
        let out = std::process::Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .count()
    };
    let (hc, _rx) = HealthChecker::spawn(vec![(key("a"), exec)], None);
    let deadline = Instant::now() + Duration::from_secs(6); // start offset < interval
    while running() < 2 {
        assert!(Instant::now() < deadline, "the exec check never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(hc);
    let deadline = Instant::now() + Duration::from_secs(5);
    while running() > 0 {
        assert!(Instant::now() < deadline, "processes outlive the checker");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while zombies() > 0 {
        assert!(Instant::now() < deadline, "zombie children left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Zombie children of this process.
fn zombies() -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter(|s| {
            let after = s.rsplit_once(") ").map_or("", |(_, a)| a);
            let mut f = after.split_whitespace();
            f.next() == Some("Z") && f.next() == Some(me.as_str())
        })
        .count()
}
