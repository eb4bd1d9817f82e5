//! Identical checks run once and every key shares the result: 100 VIPs
//! whose HTTP check on one proxy is the same cost that proxy one check;
//! a different Host is another check; exec checks are never shared (the
//! program is told its VIP). A reload keeps a shared run running.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use edged_health::{CheckKey, CheckSpec, ExecCheck, HealthChecker, HttpCheck, State};

fn spec(h: HttpCheck) -> CheckSpec {
    let mut s = CheckSpec::new(h, Duration::from_millis(200), Duration::from_millis(100));
    s.reuse_connection = false; // a connection per attempt: attempts are countable
    s
}

/// Polls until every key of `service` in the snapshot is `want`.
async fn all(hc: &HealthChecker, service: &str, want: State) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let snap = hc.snapshot();
        let mine = snap.iter().filter(|(k, _)| k.service == service);
        if mine.clone().count() > 0 && mine.into_iter().all(|(_, s)| s.state == want) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn identical_checks_run_once_and_every_key_shares_the_result() {
    let server = HttpServer::start().await;
    let same = spec(HttpCheck::get(server.addr).body("ok"));
    let mut checks: Vec<(CheckKey, CheckSpec)> = (0..100)
        .map(|v| (CheckKey::new(&format!("v{v}"), "http", "p"), same.clone()))
        .collect();
    // One VIP names its own Host: its own check.
    let mut host = HttpCheck::get(server.addr).body("ok");
    host.host = Some("other.example".into());
    checks.push((CheckKey::new("other", "http", "p"), spec(host)));
    // Two exec checks alike: each its own.
    let exec = CheckSpec::new(
        ExecCheck::new("/bin/true", &[]),
        Duration::from_millis(200),
        Duration::from_millis(100),
    );
    checks.push((CheckKey::new("x1", "exec", "p"), exec.clone()));
    checks.push((CheckKey::new("x2", "exec", "p"), exec));

    let (hc, _rx) = HealthChecker::spawn(checks.clone(), None);
    assert_eq!(
        hc.running(),
        4,
        "100 alike share one run; the rest their own"
    );
    assert_eq!(hc.snapshot().len(), 103, "every key has its status");
    assert!(all(&hc, "http", State::Up).await, "{:?}", hc.snapshot());
    assert!(all(&hc, "exec", State::Up).await, "{:?}", hc.snapshot());

    // Attempts: about 2 runs' worth (one a connection), not 101.
    let before = server.accepted.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let made = server.accepted.load(Ordering::SeqCst) - before;
    assert!((4..=20).contains(&made), "{made} connections in 1 s");

    // A reload with the same checks keeps the runs.
    hc.update(checks.clone());
    assert_eq!(hc.running(), 4);
    assert!(hc.snapshot().iter().all(|(_, s)| s.state == State::Up));

    // The proxy fails: every key of the shared run goes down with it.
    server.set(Mode::Status500);
    assert!(all(&hc, "http", State::Down).await, "{:?}", hc.snapshot());
    assert!(
        hc.snapshot()
            .iter()
            .filter(|(k, _)| k.service == "exec")
            .all(|(_, s)| s.state == State::Up)
    );
}
