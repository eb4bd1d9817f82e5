//! Failure noticed as it happens, not at the next interval: a kept
//! connection the proxy closes between attempts brings the next attempt
//! forward, and a failed attempt puts the check on `fastinter` until it
//! is decided, so a dead proxy with interval 2 s and fall 3 is down long
//! before its next slot (a slow path would need two more intervals: 4 s).
//! A down check runs at `downinter` however it fares; a server that
//! closes idle connections on its own gets one early attempt, not a
//! stream of them, and no failure.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use edged_health::{CheckKey, CheckSpec, HealthChecker, Observer, Outcome, Phase, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";

fn key() -> CheckKey {
    CheckKey::new("web", "http", "p")
}

fn spec(target: SocketAddr) -> CheckSpec {
    let mut s = CheckSpec::new(
        http_kind(target, false),
        Duration::from_secs(2),
        Duration::from_millis(500),
    )
    .rise_fall(2, 3);
    s.fastinter = Duration::from_millis(10);
    s
}

/// A keep-alive HTTP server on `addr` (0: any port); `die` closes its
/// listener and every connection, as a crashed proxy's kernel does;
/// `close_idle` makes it close each connection after answering.
struct Server {
    addr: SocketAddr,
    die: Arc<AtomicBool>,
    notify: Arc<tokio::sync::Notify>,
    close_idle: Arc<AtomicBool>,
    /// Answers nothing (a stopped process: connections stay, no answers).
    hang: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(addr: SocketAddr) -> Server {
        let l = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = l.local_addr().unwrap();
        let (die, close_idle) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let hang = Arc::new(AtomicBool::new(false));
        let (d, c, hg) = (die.clone(), close_idle.clone(), hang.clone());
        let notify = Arc::new(tokio::sync::Notify::new());
        let n = notify.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    a = l.accept() => {
                        let Ok((mut s, _)) = a else { return };
                        let (d, c, hg) = (d.clone(), c.clone(), hg.clone());
                        conns.spawn(async move {
                            let mut buf = [0u8; 1024];
                            while let Ok(n) = s.read(&mut buf).await {
                                if n == 0 || d.load(Ordering::SeqCst) {
                                    return;
                                }
                                if hg.load(Ordering::SeqCst) {
                                    continue;
                                }
                                if s.write_all(OK).await.is_err() || c.load(Ordering::SeqCst) {
                                    return;
                                }
                            }
                        });
                    }
                    _ = n.notified() => {
                        // Every connection and the listener close now.
                        conns.abort_all();
                        return;
                    }
                }
            }
        });
        Server {
            addr,
            die,
            notify,
            close_idle,
            hang,
            task,
        }
    }

    async fn kill(self) {
        self.die.store(true, Ordering::SeqCst);
        self.notify.notify_one();
        let _ = self.task.await;
    }
}

/// Every attempt's end and result.
type Ends = Arc<Mutex<Vec<(Instant, bool)>>>;

fn recorder() -> (Observer, Ends) {
    let ends: Ends = Arc::default();
    let e = ends.clone();
    let obs: Observer = Arc::new(move |_: &CheckKey, o: &Outcome| {
        e.lock().unwrap().push((Instant::now(), o.ok()));
    });
    (obs, ends)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_proxy_is_down_within_a_few_ticks_and_then_probed_at_downinter() {
    let srv = Server::start("127.0.0.1:0".parse().unwrap()).await;
    let addr = srv.addr;
    let mut s = spec(addr);
    s.downinter = Some(Duration::from_millis(300));
    let (obs, ends) = recorder();
    let (hc, mut rx) = HealthChecker::spawn(vec![(key(), s)], Some(obs));
    // Up: two passes, the second at fastinter (a new check that passes is
    // changing), then steady on its kept connection.
    let up = flip(&mut rx).await;
    assert_eq!(up.state, State::Up);
    assert_eq!(hc.snapshot()[0].1.phase, Phase::Steady);
    // Wait for the kept connection to be the loop's (an attempt after the
    // two that took it up), so that the crash finds it idle.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ends.lock().unwrap().len() < 3 {
        assert!(Instant::now() < deadline, "no third attempt");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    let crash = Instant::now();
    srv.kill().await;
    let down = flip(&mut rx).await;
    let took = crash.elapsed();
    println!("crash to down with interval 2 s, fall 3, fastinter 10 ms: {took:?}");
    assert_eq!(down.state, State::Down);
    assert_eq!(down.outcome.reason(), "connection refused");
    // Before the next slot: the close brought an attempt forward, the
    // failures came at fastinter.
    assert!(took < Duration::from_secs(2), "down after {took:?}");
    let st = hc.snapshot()[0].1.clone();
    assert_eq!((st.phase, st.cause), (Phase::Down, Some("refused")));
    let failed: Vec<Instant> = ends
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, ok)| !ok && *t >= crash)
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(failed.len(), 3, "fall 3: {failed:?}");

    // Down: every 300 ms, never faster. Over 1.5 s: at most 6 attempts
    // (one a period, and one the tick it was decided on).
    let window = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let attempts = ends
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| *t >= window)
        .count();
    assert!(
        (3..=6).contains(&attempts),
        "{attempts} attempts in 1.5 s at downinter 300 ms"
    );
    // Back: the rise passes come at downinter too (a down proxy is never
    // probed faster), then it is up.
    let _srv = Server::start(addr).await;
    let up = flip(&mut rx).await;
    assert_eq!(up.state, State::Up);
    let passes: Vec<Instant> = ends
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, ok)| *ok)
        .map(|(t, _)| *t)
        .rev()
        .take(2)
        .collect();
    let gap = passes[0] - passes[1];
    assert!(
        gap >= Duration::from_millis(290),
        "rise passes {gap:?} apart while down"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_closing_idle_connections_gets_one_early_attempt_and_no_failure() {
    let srv = Server::start("127.0.0.1:0".parse().unwrap()).await;
    srv.close_idle.store(true, Ordering::SeqCst);
    let mut s = spec(srv.addr);
    s.interval = Duration::from_millis(200);
    s.timeout = Duration::from_millis(100);
    let (obs, ends) = recorder();
    let (hc, mut rx) = HealthChecker::spawn(vec![(key(), s)], Some(obs));
    assert_eq!(flip(&mut rx).await.state, State::Up);
    // 10 periods: about 10 attempts, one of them early; none failed.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let ends = ends.lock().unwrap().clone();
    assert!(ends.iter().all(|(_, ok)| *ok), "a failure: {ends:?}");
    let gaps: Vec<Duration> = ends.windows(2).map(|w| w[1].0 - w[0].0).collect();
    let early = gaps[1..]
        .iter()
        .filter(|g| **g < Duration::from_millis(100))
        .count();
    assert!(early <= 1, "attempts brought forward: {gaps:?}");
    assert!(
        ends.len() <= 16,
        "{} attempts in 2.2 s: {gaps:?}",
        ends.len()
    );
    assert_eq!(hc.snapshot()[0].1.state, State::Up);
}

/// A check that runs in its own task (here TCP: a new connection per
/// attempt, nothing to watch between attempts) is brought forward when
/// the daemon says its proxy's process is gone: down well before its
/// next slot (interval 5 s, fall 3: a check on its slots would need 10 s
/// more). A down check is not brought forward.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_reported_gone_is_probed_at_once() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let accept = tokio::spawn(async move {
        loop {
            let _ = l.accept().await;
        }
    });
    let mut s = CheckSpec::new(
        edged_health::TcpCheck::new(addr),
        Duration::from_secs(5),
        Duration::from_millis(500),
    )
    .rise_fall(1, 3);
    s.fastinter = Duration::from_millis(10);
    let (obs, ends) = recorder();
    let (hc, mut rx) = HealthChecker::spawn(vec![(key(), s)], Some(obs));
    assert_eq!(flip(&mut rx).await.state, State::Up);
    assert_eq!(hc.reprobe("other"), 0, "another proxy's checks only");
    // The listener goes (its process died).
    accept.abort();
    let _ = accept.await;
    let gone = Instant::now();
    assert_eq!(hc.reprobe("p"), 1);
    let down = flip(&mut rx).await;
    let took = gone.elapsed();
    println!("reported gone to down, interval 5 s, fall 3: {took:?}");
    assert_eq!(down.state, State::Down);
    assert!(took < Duration::from_secs(4), "down after {took:?}");
    // Down: told again, it keeps to its schedule (no attempt at once).
    let before = ends.lock().unwrap().len();
    hc.reprobe("p");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        ends.lock().unwrap().len(),
        before,
        "a down check was brought forward"
    );
}

/// A check on the kept-connection loop (plain HTTP/1.1, kept) is brought
/// forward too: a proxy whose process is reported stopped (connections
/// open, nothing answers) is down after `fall` timeouts at fastinter,
/// not at its next slot (interval 5 s: a check on its slots would take
/// 10 s more).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_check_of_a_proxy_reported_stopped_is_probed_at_once() {
    let srv = Server::start("127.0.0.1:0".parse().unwrap()).await;
    let mut s = spec(srv.addr);
    s.interval = Duration::from_secs(5);
    s.timeout = Duration::from_millis(200);
    let (obs, ends) = recorder();
    let (hc, mut rx) = HealthChecker::spawn(vec![(key(), s)], Some(obs));
    assert_eq!(flip(&mut rx).await.state, State::Up);
    // Up after two passes; on the loop after the first.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ends.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "no second attempt");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    srv.hang.store(true, Ordering::SeqCst);
    let stopped = Instant::now();
    assert_eq!(hc.reprobe("p"), 1);
    let down = flip(&mut rx).await;
    let took = stopped.elapsed();
    println!("reported stopped to down, interval 5 s, timeout 200 ms, fall 3: {took:?}");
    assert_eq!(down.state, State::Down);
    assert!(
        down.outcome.reason().starts_with("timeout"),
        "{}",
        down.outcome.reason()
    );
    assert!(took < Duration::from_secs(3), "down after {took:?}");
}
