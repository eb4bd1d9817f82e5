//! The kept-connection loop (plain HTTP/1.1 checks whose connection is
//! kept run on one thread, not in their tasks): attempts after the first
//! run there on one connection with their real latency, an answer after
//! the timeout fails, answers in pieces are put together, connections the
//! server closed cost no failure, garbage ends every attempt with a reason,
//! and a removed check's attempts and connection stop.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use edged_health::{CheckKey, CheckKind, CheckSpec, HealthChecker, Observer, Outcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";

fn spec(target: SocketAddr, interval_ms: u64, timeout_ms: u64) -> CheckSpec {
    CheckSpec {
        kind: http_kind(target, false),
        interval: Duration::from_millis(interval_ms),
        timeout: Duration::from_millis(timeout_ms),
        rise: 1,
        fall: 1,
        hold_down: None,
        reuse_connection: true,
        fastinter: std::time::Duration::from_millis(10),
        downinter: None,
        source: None,
    }
}

/// VIP `vip`'s check: its own Host, so that checks of several VIPs are
/// several checks (identical ones would share one run).
fn own(vip: usize, mut s: CheckSpec) -> CheckSpec {
    if let CheckKind::Http(h) = &mut s.kind {
        h.host = Some(format!("v{vip}.example"));
    }
    s
}

fn key(vip: usize) -> CheckKey {
    CheckKey {
        vip: format!("v{vip}"),
        service: "http".into(),
        proxy: "p".into(),
    }
}

/// What one answer of the scripted server is: its pieces, each written
/// after its delay.
type Answer = Vec<(u64, Vec<u8>)>;

/// Counts of the scripted server: connections accepted, connections the
/// client closed, requests.
#[derive(Default)]
struct Counts {
    accepted: AtomicUsize,
    closed: AtomicUsize,
    requests: AtomicUsize,
}

/// A keep-alive server: the n-th request (from 0) on a connection gets
/// `script(n)`; `None` closes the connection.
async fn server(script: fn(usize) -> Option<Answer>) -> (SocketAddr, Arc<Counts>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let counts = Arc::new(Counts::default());
    let c2 = counts.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let conn = c2.accepted.fetch_add(1, Ordering::SeqCst);
            let c3 = c2.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                for n in 0.. {
                    match s.read(&mut buf).await {
                        Ok(got) if got > 0 => c3.requests.fetch_add(1, Ordering::SeqCst),
                        _ => {
                            c3.closed.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    };
                    // Requests are numbered across connections for garbage
                    // seeds, per connection otherwise.
                    let Some(answer) = script(n + 1000 * conn) else {
                        return;
                    };
                    for (delay, piece) in answer {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                        if s.write_all(&piece).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, counts)
}

/// Every attempt's outcome, in order, with its check's VIP and the name of
/// the thread it ran on.
type Seen = Arc<Mutex<(Vec<Outcome>, Vec<String>, Vec<String>)>>;

fn recorder() -> (Observer, Seen) {
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    let obs: Observer = Arc::new(move |k, o| {
        let mut s = s2.lock().unwrap();
        s.0.push(o.clone());
        s.1.push(k.vip.clone());
        let on = std::thread::current().name().unwrap_or("").to_string();
        s.2.push(on);
    });
    (obs, seen)
}

/// Waits until `seen` holds `n` outcomes (deadline 10 s); returns them.
async fn outcomes(seen: &Seen, n: usize) -> Vec<Outcome> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = seen.lock().unwrap().0.clone();
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} outcomes: {got:?}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// One connection for every attempt, and every attempt after the first
/// runs on the kept-connection thread; the latency is the answer's: at once,
/// then 100 ms late. The loop runs on its own thread with the real clock,
/// so the bounds are generous (two loaded cores run this); the tight
/// figures are the health bench's `health_kept_latency_*`.
#[tokio::test]
async fn kept_checks_run_on_the_loop_with_their_latency() {
    const LATE: Duration = Duration::from_millis(100);
    let (addr, counts) = server(|n| {
        let delay = if n % 1000 < 6 { 0 } else { 100 };
        Some(vec![(delay, OK.to_vec())])
    })
    .await;
    let (obs, seen) = recorder();
    let (_hc, _rx) = HealthChecker::spawn(vec![(key(0), spec(addr, 300, 250))], Some(obs));
    let got = outcomes(&seen, 12).await;
    assert!(got.iter().all(|o| o.ok()), "{got:?}");
    assert_eq!(
        counts.accepted.load(Ordering::SeqCst),
        1,
        "one kept connection"
    );
    let threads = seen.lock().unwrap().2.clone();
    assert_ne!(
        threads[0], "edged-kept",
        "the first attempt connects, in its task"
    );
    assert!(
        threads[1..12].iter().all(|t| t == "edged-kept"),
        "kept attempts not on the loop: {threads:?}"
    );
    let fast = median(got[1..6].iter().map(|o| o.latency).collect());
    let slow = median(got[7..12].iter().map(|o| o.latency).collect());
    println!("kept connection: answered at once {fast:?}, 100 ms late {slow:?} (medians)");
    // Never less than the answer's delay; not the interval (300 ms) nor the
    // timeout (250 ms): measured from this attempt's write.
    assert!(fast < slow, "at once {fast:?}, late {slow:?}");
    assert!(fast < Duration::from_millis(50), "at once: {fast:?}");
    assert!(
        slow >= LATE && slow < LATE + Duration::from_millis(100),
        "100 ms late: {slow:?}"
    );
}

/// The timeout (25 ms) ends between ticks, and the loop finds timeouts on
/// the 10 ms grid: an answer at 27 ms comes before the 30 ms tick, but too
/// late: a timeout, as in a task. The fourth answer on each connection is
/// the late one.
#[tokio::test]
async fn an_answer_after_the_timeout_fails() {
    let (addr, counts) = server(|n| {
        let delay = if n % 1000 == 3 { 27 } else { 0 };
        Some(vec![(delay, OK.to_vec())])
    })
    .await;
    let (obs, seen) = recorder();
    let (_hc, _rx) = HealthChecker::spawn(vec![(key(0), spec(addr, 80, 25))], Some(obs));
    let got = outcomes(&seen, 8).await;
    let reasons: Vec<String> = got.iter().map(|o| o.reason()).collect();
    println!("{reasons:?}");
    for (i, o) in got[..8].iter().enumerate() {
        if i % 4 == 3 {
            assert_eq!(o.reason(), "timeout after 25ms", "attempt {i}: {got:?}");
        } else {
            assert!(o.ok(), "attempt {i}: {got:?}");
        }
    }
    // A timeout drops the connection: the next attempt has a new one.
    assert!(counts.accepted.load(Ordering::SeqCst) >= 2);
}

/// Answers in pieces (a chunked body 15 ms apart) are put together on the
/// kept connection.
#[tokio::test]
async fn answers_in_pieces_are_put_together() {
    let (addr, counts) = server(|_| {
        Some(vec![
            (
                0,
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            ),
            (15, b"1\r\no\r\n".to_vec()),
            (15, b"2\r\nk\n\r\n0\r\n\r\n".to_vec()),
        ])
    })
    .await;
    let (obs, seen) = recorder();
    let (_hc, _rx) = HealthChecker::spawn(vec![(key(0), spec(addr, 100, 90))], Some(obs));
    let got = outcomes(&seen, 5).await;
    assert!(got.iter().all(|o| o.ok()), "{got:?}");
    assert!(
        got[1..]
            .iter()
            .all(|o| o.latency >= Duration::from_millis(30))
    );
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 1);
}

/// A server that closes every connection after its answer: each kept
/// connection is closed before the next attempt, and that attempt passes
/// on a new one.
#[tokio::test]
async fn stale_kept_connections_cost_no_failure() {
    let srv = HttpServer::start().await; // closes after each answer
    let (obs, seen) = recorder();
    let mut s = spec(srv.addr, 50, 40);
    if let CheckKind::Http(h) = &mut s.kind {
        h.body_contains = None;
    }
    let (_hc, _rx) = HealthChecker::spawn(vec![(key(0), s)], Some(obs));
    let got = outcomes(&seen, 10).await;
    assert!(got.iter().all(|o| o.ok()), "{got:?}");
    assert!(srv.accepted.load(Ordering::SeqCst) >= 10);
}

/// splitmix64.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Seeded garbage on kept connections: each connection's first answer is
/// good, its second a mutation of it (truncated, bytes flipped, random
/// bytes spliced in or sent alone, in one or two pieces), then it closes.
/// Every attempt ends within its timeout and a tick with a reason, and
/// every check keeps running (no panic, no stuck check).
#[tokio::test]
async fn garbage_on_kept_connections_ends_every_attempt() {
    const CHECKS: usize = 40;
    let (addr, _) = server(|n| {
        if n % 1000 == 0 {
            return Some(vec![(0, OK.to_vec())]);
        }
        if n % 1000 > 1 {
            return None;
        }
        let mut r = mix(n as u64);
        let mut b = OK.to_vec();
        match r % 4 {
            0 => b.truncate((r >> 8) as usize % OK.len()),
            1 => {
                let at = (r >> 8) as usize % b.len();
                b[at] = (r >> 16) as u8;
            }
            2 => {
                let at = (r >> 8) as usize % (b.len() + 1);
                let junk: Vec<u8> = (0..(r >> 16) % 16)
                    .map(|_| {
                        r = mix(r);
                        r as u8
                    })
                    .collect();
                b.splice(at..at, junk);
            }
            _ => {
                b = (0..(r >> 8) % 200)
                    .map(|_| {
                        r = mix(r);
                        r as u8
                    })
                    .collect()
            }
        }
        let cut = (r >> 24) as usize % (b.len() + 1);
        let rest = b.split_off(cut);
        Some(vec![(0, b), ((r >> 32) % 25, rest)])
    })
    .await;
    let (obs, seen) = recorder();
    let checks = (0..CHECKS)
        .map(|i| (key(i), own(i, spec(addr, 60, 40))))
        .collect();
    let (_hc, _rx) = HealthChecker::spawn(checks, Some(obs));
    let got = outcomes(&seen, 600).await;
    let failed = got.iter().filter(|o| !o.ok()).count();
    println!(
        "{} attempts over kept connections with garbage, {failed} failed",
        got.len()
    );
    let slowest = got.iter().map(|o| o.latency).max().unwrap_or_default();
    println!("slowest attempt: {slowest:?} (timeout 40 ms)");
    for o in &got {
        // The timeout, the tick that finds it, and generous room for a
        // loaded host (the loop's thread runs on the real clock): an
        // attempt whose timeout is not enforced hangs on a truncated answer.
        assert!(o.latency <= Duration::from_millis(40 + 10 + 500), "{o:?}");
        assert!(!o.reason().is_empty());
    }
    assert!(failed > 100, "the mutations were not seen: {failed} failed");
    // Every check is still running: each has new outcomes.
    let before = got.len();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let vips: std::collections::HashSet<String> =
            seen.lock().unwrap().1[before..].iter().cloned().collect();
        if vips.len() == CHECKS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} checks still run",
            vips.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A check removed by a reload stops on the loop: no more requests, and its
/// connection closes within an interval; dropping the checker closes the
/// others at once.
#[tokio::test]
async fn removed_checks_stop_and_close_their_connections() {
    let (addr, counts) = server(|_| Some(vec![(0, OK.to_vec())])).await;
    let (obs, seen) = recorder();
    let checks = vec![
        (key(0), own(0, spec(addr, 50, 40))),
        (key(1), own(1, spec(addr, 50, 40))),
    ];
    let (hc, _rx) = HealthChecker::spawn(checks.clone(), Some(obs));
    // Both kept, on the loop.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let threads = seen.lock().unwrap().2.clone();
        if threads.iter().filter(|t| *t == "edged-kept").count() >= 4 {
            break;
        }
        assert!(Instant::now() < deadline, "not on the loop: {threads:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 2);
    hc.update(vec![checks[1].clone()]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while counts.closed.load(Ordering::SeqCst) < 1 {
        assert!(
            Instant::now() < deadline,
            "the removed check's connection stays open"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let removed = |s: &Seen| s.lock().unwrap().1.iter().filter(|v| *v == "v0").count();
    let before = removed(&seen);
    tokio::time::sleep(Duration::from_millis(200)).await; // 4 intervals
    assert_eq!(removed(&seen), before, "the removed check still runs");
    assert_eq!(
        counts.closed.load(Ordering::SeqCst),
        1,
        "the other one is kept"
    );
    drop(hc);
    let deadline = Instant::now() + Duration::from_secs(5);
    while counts.closed.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "connections outlive the checker");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let requests = counts.requests.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(counts.requests.load(Ordering::SeqCst), requests);
}

/// A timeout found on the grid at the very next slot (timeout 45 ms,
/// interval 50 ms) does not cost that slot: the next attempt starts on it,
/// on a new connection, and the hung answer is never taken for it.
#[tokio::test]
async fn a_timeout_found_at_the_next_slot_keeps_that_slot() {
    let gaps = timeout_then_next_attempt(key(0)).await;
    // The timeout is found at the next slot (about 50 ms after the attempt
    // began); the next attempt starts there and ends a moment later. Had
    // the slot been lost, the gap would be a whole interval more: the
    // bound is that interval, all of it left to a loaded host.
    for (i, gap) in [3, 6].into_iter().zip(gaps) {
        assert!(
            gap < Duration::from_millis(50),
            "attempt {i} came {gap:?} after the timeout"
        );
    }
}

/// The same for a check whose first slot is rounded up to the grid by
/// almost a tick: "missed by less than a tick" counts from the slot's
/// rounded start (`Check::next_start`), where the loop finds the timeout;
/// counted from the slot before rounding, the slot after a timeout was lost.
#[tokio::test]
async fn a_timeout_found_at_the_next_slot_keeps_that_slot_whatever_the_phase() {
    // How far the first slot is rounded up to the 10 ms grid.
    let rounding = |k: &CheckKey| {
        let off = edged_health::start_offset(k, Duration::from_millis(50));
        let tick = 10_000_000u128;
        Duration::from_nanos(((tick - off.as_nanos() % tick) % tick) as u64)
    };
    let k = (0..1000)
        .map(key)
        .find(|k| rounding(k) > Duration::from_micros(9_500))
        .expect("a key whose start rounds up by more than 9.5 ms");
    println!("{} starts {:?} before its grid point", k.vip, rounding(&k));
    for gap in timeout_then_next_attempt(k).await {
        assert!(gap < Duration::from_millis(50), "slot lost: {gap:?}");
    }
}

/// Runs one check (interval 50 ms, timeout 45 ms) against a server whose
/// third answer on each connection is 70 ms late; returns the gaps between
/// the two timeouts and the attempts after them.
async fn timeout_then_next_attempt(k: CheckKey) -> Vec<Duration> {
    // The late answer has a body the check refuses (were it read as a
    // later attempt's answer).
    let (addr, counts) = server(|n| match n % 1000 {
        2 => Some(vec![(
            70,
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nlate\n".to_vec(),
        )]),
        _ => Some(vec![(0, OK.to_vec())]),
    })
    .await;
    let times: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let (t2, (obs, seen)) = (times.clone(), recorder());
    let obs2: Observer = Arc::new(move |k, o| {
        t2.lock().unwrap().push(Instant::now());
        obs(k, o)
    });
    let (_hc, _rx) = HealthChecker::spawn(vec![(k, spec(addr, 50, 45))], Some(obs2));
    let got = outcomes(&seen, 7).await;
    let reasons: Vec<String> = got.iter().map(|o| o.reason()).collect();
    println!("{reasons:?}");
    assert_eq!(
        reasons[..7],
        [
            "ok",
            "ok",
            "timeout after 45ms",
            "ok",
            "ok",
            "timeout after 45ms",
            "ok"
        ]
    );
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 3);
    let times = times.lock().unwrap().clone();
    let gaps: Vec<Duration> = [2, 5].iter().map(|&i| times[i + 1] - times[i]).collect();
    println!("attempts 3 and 6 ended {gaps:?} after their timeouts");
    gaps
}

/// A panic on the loop (here in the observer, once) stops no check: the
/// loop hands its checks back to their tasks and starts over, and they come
/// back to it.
#[tokio::test]
async fn a_panic_on_the_loop_stops_no_check() {
    let (addr, counts) = server(|_| Some(vec![(0, OK.to_vec())])).await;
    let (obs, seen) = recorder();
    let panicked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let p2 = panicked.clone();
    let obs2: Observer = Arc::new(move |k, o| {
        let on_loop = std::thread::current().name() == Some("edged-kept");
        if on_loop && k.vip == "v0" && !p2.swap(true, Ordering::SeqCst) {
            panic!("observer bug (on purpose)");
        }
        obs(k, o)
    });
    let checks = vec![
        (key(0), own(0, spec(addr, 50, 40))),
        (key(1), own(1, spec(addr, 50, 40))),
    ];
    let (_hc, _rx) = HealthChecker::spawn(checks, Some(obs2));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // After the panic, both checks are back on the loop.
        let back_on_loop = |vip: &str| {
            let s = seen.lock().unwrap();
            s.1.iter()
                .zip(&s.2)
                .filter(|(v, t)| *v == vip && *t == "edged-kept")
                .count()
        };
        if panicked.load(Ordering::SeqCst) && back_on_loop("v0") >= 3 && back_on_loop("v1") >= 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "checks stopped after a panic on the loop"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The loop's connections were closed and opened again.
    assert!(counts.accepted.load(Ordering::SeqCst) >= 4);
    assert!(seen.lock().unwrap().0.iter().all(|o| o.ok()));
}

/// Statuses are judged on the loop as in a task: 204 passes when expected,
/// 503 fails with its status, and the failure hands the check back.
#[tokio::test]
async fn statuses_are_judged_on_the_loop() {
    let (addr, counts) = server(|n| {
        let answer: &[u8] = match n % 1000 {
            2 => b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n",
            1 => b"HTTP/1.1 204 No Content\r\n\r\n",
            _ => OK,
        };
        Some(vec![(0, answer.to_vec())])
    })
    .await;
    let (obs, seen) = recorder();
    let mut s = spec(addr, 50, 40);
    if let CheckKind::Http(h) = &mut s.kind {
        h.body_contains = None;
        h.expect_status = vec![200, 204];
    }
    let (_hc, _rx) = HealthChecker::spawn(vec![(key(0), s)], Some(obs));
    let got = outcomes(&seen, 4).await;
    let threads = seen.lock().unwrap().2.clone();
    let reasons: Vec<String> = got.iter().map(|o| o.reason()).collect();
    assert_eq!(
        reasons[..4],
        ["ok", "ok", "status 503", "ok"],
        "{threads:?}"
    );
    assert_eq!(threads[1..3], ["edged-kept", "edged-kept"]);
    assert_ne!(
        threads[3], "edged-kept",
        "after a failure the task connects"
    );
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 2);
}

/// Kept checks spread over the loops, one per core up to 4: with 40 checks
/// on a machine of several cores, more than one thread runs attempts, and
/// each check always on the same one.
#[tokio::test]
async fn kept_checks_spread_over_a_loop_per_core() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (addr, _) = server(|_| Some(vec![(0, OK.to_vec())])).await;
    type Seen = Arc<Mutex<Vec<(String, std::thread::ThreadId)>>>;
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    let obs: Observer = Arc::new(move |k, _| {
        let t = std::thread::current();
        if t.name() == Some("edged-kept") {
            s2.lock().unwrap().push((k.vip.clone(), t.id()));
        }
    });
    let checks = (0..40)
        .map(|i| (key(i), own(i, spec(addr, 50, 40))))
        .collect();
    let (_hc, _rx) = HealthChecker::spawn(checks, Some(obs));
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < 400 {
        assert!(Instant::now() < deadline, "too few attempts on the loops");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = seen.lock().unwrap().clone();
    let threads: std::collections::HashSet<_> = seen.iter().map(|(_, t)| *t).collect();
    assert_eq!(threads.len(), cores.clamp(1, 4), "loops in use");
    let mut of: std::collections::HashMap<String, std::thread::ThreadId> = Default::default();
    for (vip, t) in &seen {
        assert_eq!(
            *of.entry(vip.clone()).or_insert(*t),
            *t,
            "{vip} moved loops"
        );
    }
}
