//! HTTP/2 checks against a scripted HTTP/2 server on loopback (the `h2`
//! crate's server): the checks of every VIP on one proxy share one
//! connection; a hung VIP fails only its own checks; GOAWAY moves the
//! checks to a new connection without a failure; a connection that stops
//! answering is replaced; status and body reasons; a server that goes away
//! and comes back. (Real nginx over HTTP/2: nginx_netns.rs.)

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::flip;
use edged_health::HttpCheck;
use edged_health::{CheckKey, CheckKind, CheckSpec, HealthChecker, HealthEvent, State};
use tokio::sync::mpsc::UnboundedReceiver;

const INTERVAL: Duration = Duration::from_millis(100);
const TIMEOUT: Duration = Duration::from_millis(80);

/// What the server answers for one `:authority`.
#[derive(Clone, Debug)]
enum Mode {
    /// 200 "ok".
    Ok,
    /// This status, body "no".
    Status(u16),
    /// 200 with this body.
    Body(&'static str),
    /// Never answers (the stream stays open).
    Hang,
}

#[derive(Default)]
struct Script {
    modes: Mutex<HashMap<String, Mode>>,
    /// Connections accepted.
    conns: AtomicUsize,
    /// Send GOAWAY after this many streams on a connection (0: never).
    goaway_every: AtomicUsize,
    /// Refuse (RST_STREAM REFUSED_STREAM: not processed, safe to retry)
    /// every this many streams on a connection (0: never).
    refuse_every: AtomicUsize,
    /// Connections accepted before this count stop answering anything.
    frozen_below: AtomicUsize,
    /// Streams answered.
    answered: AtomicU64,
    /// The server's cap on open streams per connection (0: h2's default).
    max_streams: AtomicUsize,
}

struct Server {
    addr: SocketAddr,
    script: Arc<Script>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(script: Arc<Script>, addr: SocketAddr) -> Server {
        let l = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = l.local_addr().unwrap();
        let s = script.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((sock, _)) = l.accept().await {
                let n = s.conns.fetch_add(1, Ordering::SeqCst);
                conns.spawn(serve(sock, s.clone(), n));
            }
        });
        Server { addr, script, task }
    }

    fn set(&self, authority: &str, mode: Mode) {
        self.script
            .modes
            .lock()
            .unwrap()
            .insert(authority.into(), mode);
    }

    /// Stops listening and drops every connection.
    fn stop(self) -> (SocketAddr, Arc<Script>) {
        self.task.abort();
        (self.addr, self.script)
    }
}

async fn serve(sock: tokio::net::TcpStream, s: Arc<Script>, n: usize) {
    let mut builder = h2::server::Builder::new();
    let max = s.max_streams.load(Ordering::SeqCst);
    if max > 0 {
        builder.max_concurrent_streams(max as u32);
    }
    let Ok(mut conn) = builder.handshake(sock).await else {
        return;
    };
    let mut held = Vec::new();
    let mut streams = 0;
    while let Some(Ok((req, mut respond))) = conn.accept().await {
        if n < s.frozen_below.load(Ordering::SeqCst) {
            // Stop reading and answering; the TCP connection stays up.
            std::future::pending::<()>().await;
        }
        streams += 1;
        let refuse = s.refuse_every.load(Ordering::SeqCst);
        if refuse > 0 && streams % refuse == 0 {
            respond.send_reset(h2::Reason::REFUSED_STREAM);
            continue;
        }
        let authority = req.uri().authority().map(|a| a.to_string());
        let mode = s
            .modes
            .lock()
            .unwrap()
            .get(authority.as_deref().unwrap_or(""))
            .cloned()
            .unwrap_or(Mode::Ok);
        let (status, body) = match mode {
            Mode::Ok => (200, "ok\n"),
            Mode::Status(c) => (c, "no\n"),
            Mode::Body(b) => (200, b),
            Mode::Hang => {
                held.push(respond);
                continue;
            }
        };
        let resp = http::Response::builder().status(status).body(()).unwrap();
        if let Ok(mut send) = respond.send_response(resp, false) {
            let _ = send.send_data(Bytes::from_static(body.as_bytes()), true);
            s.answered.fetch_add(1, Ordering::SeqCst);
        }
        let every = s.goaway_every.load(Ordering::SeqCst);
        if every > 0 && streams % every == 0 {
            conn.graceful_shutdown();
        }
    }
}

fn spec_at(target: SocketAddr, vip: &str, path: &str, body_contains: Option<&str>) -> CheckSpec {
    CheckSpec {
        kind: CheckKind::Http(HttpCheck {
            path: path.into(),
            host: Some(format!("{vip}.example")),
            body_contains: body_contains.map(Into::into),
            http2: true,
            ..HttpCheck::get(target)
        }),
        interval: INTERVAL,
        timeout: TIMEOUT,
        rise: 2,
        fall: 3,
        hold_down: None,
        reuse_connection: true,
        fastinter: std::time::Duration::from_millis(10),
        downinter: None,
        source: None,
    }
}

fn key(vip: &str, service: &str) -> CheckKey {
    CheckKey {
        vip: vip.into(),
        service: service.into(),
        proxy: "px".into(),
    }
}

/// `vips` × 2 services (each its own path: two checks, not one shared),
/// all to `target`.
fn checks(target: SocketAddr, vips: &[&str]) -> Vec<(CheckKey, CheckSpec)> {
    vips.iter()
        .flat_map(|v| {
            ["s1", "s2"].map(|s| {
                (
                    key(v, s),
                    spec_at(target, v, &format!("/healthz/{s}"), Some("ok")),
                )
            })
        })
        .collect()
}

/// Waits for `n` flips, all to `state`; returns them.
async fn flips(
    rx: &mut UnboundedReceiver<HealthEvent>,
    n: usize,
    state: State,
) -> Vec<HealthEvent> {
    let mut v = Vec::new();
    for _ in 0..n {
        let ev = flip(rx).await;
        assert_eq!(ev.state, state, "{ev:?}");
        v.push(ev);
    }
    v
}

fn failures(hc: &HealthChecker, vip: &str) -> u64 {
    hc.snapshot()
        .iter()
        .filter(|(k, _)| k.vip == vip)
        .map(|(_, s)| s.failures)
        .sum()
}

#[tokio::test]
async fn one_connection_per_proxy_and_a_hung_vip_fails_only_itself() {
    let srv = Server::start(Arc::default(), "127.0.0.1:0".parse().unwrap()).await;
    let (hc, mut rx) = HealthChecker::spawn(checks(srv.addr, &["a", "b", "hung"]), None);
    flips(&mut rx, 6, State::Up).await;
    assert_eq!(
        srv.script.conns.load(Ordering::SeqCst),
        1,
        "6 checks, 1 connection"
    );

    srv.set("hung.example", Mode::Hang);
    let down = flips(&mut rx, 2, State::Down).await;
    for ev in &down {
        assert_eq!(ev.key.vip, "hung");
        assert_eq!(ev.outcome.reason(), "timeout after 80ms");
    }
    // The other VIPs' streams on the same connection never failed, and the
    // connection stayed (their answers show it alive).
    assert_eq!((failures(&hc, "a"), failures(&hc, "b")), (0, 0));
    assert_eq!(srv.script.conns.load(Ordering::SeqCst), 1);

    srv.set("hung.example", Mode::Ok);
    flips(&mut rx, 2, State::Up).await;
}

/// The proxy allows 2 open streams per connection; two hung VIPs' 4
/// checks hold streams until they time out. The healthy VIP's checks get
/// streams on another connection and never fail.
#[tokio::test]
async fn hung_checks_do_not_starve_others_of_streams() {
    let srv = Server::start(Arc::default(), "127.0.0.1:0".parse().unwrap()).await;
    srv.script.max_streams.store(2, Ordering::SeqCst);
    srv.set("h1.example", Mode::Hang);
    srv.set("h2.example", Mode::Hang);
    let (hc, _rx) = HealthChecker::spawn(checks(srv.addr, &["a", "h1", "h2"]), None);
    // Long enough for the hung checks to time out several times over.
    answers(&srv, 60).await;
    let conns = srv.script.conns.load(Ordering::SeqCst);
    assert!(
        conns >= 2,
        "streams of hung checks fill a connection: {conns}"
    );
    assert_eq!(failures(&hc, "a"), 0, "{:?}", hc.snapshot());
    assert!(failures(&hc, "h1") >= 3 && failures(&hc, "h2") >= 3);
}

#[tokio::test]
async fn goaway_moves_checks_to_a_new_connection_without_failing() {
    let srv = Server::start(Arc::default(), "127.0.0.1:0".parse().unwrap()).await;
    srv.script.goaway_every.store(3, Ordering::SeqCst);
    let (hc, mut rx) = HealthChecker::spawn(checks(srv.addr, &["a"]), None);
    flips(&mut rx, 2, State::Up).await;
    answers(&srv, 30).await;
    let conns = srv.script.conns.load(Ordering::SeqCst);
    assert!(
        conns >= 8,
        "GOAWAY every 3 streams, 30 streams: {conns} connections"
    );
    assert_eq!(failures(&hc, "a"), 0, "{:?}", hc.snapshot());
}

/// A stream the server refused unprocessed (as when it is shutting down)
/// is retried at once on a new connection: not a failure.
#[tokio::test]
async fn a_refused_stream_is_retried_on_a_new_connection() {
    let srv = Server::start(Arc::default(), "127.0.0.1:0".parse().unwrap()).await;
    srv.script.refuse_every.store(3, Ordering::SeqCst);
    let (hc, mut rx) = HealthChecker::spawn(checks(srv.addr, &["a"]), None);
    flips(&mut rx, 2, State::Up).await;
    answers(&srv, 20).await;
    let conns = srv.script.conns.load(Ordering::SeqCst);
    assert!(
        conns >= 5,
        "every third stream refused: {conns} connections"
    );
    assert_eq!(failures(&hc, "a"), 0, "{:?}", hc.snapshot());
}

async fn answers(srv: &Server, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while srv.script.answered.load(Ordering::SeqCst) < n {
        assert!(tokio::time::Instant::now() < deadline, "{n} answers in 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_connection_that_stops_answering_is_replaced() {
    let srv = Server::start(Arc::default(), "127.0.0.1:0".parse().unwrap()).await;
    let (hc, mut rx) = HealthChecker::spawn(checks(srv.addr, &["a"]), None);
    flips(&mut rx, 2, State::Up).await;
    // The open connection goes silent (TCP still up); new ones work.
    srv.script.frozen_below.store(1, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while srv.script.conns.load(Ordering::SeqCst) < 2 || failures(&hc, "a") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            hc.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Time out once, then a new connection: never `fall` failures in a row.
    tokio::time::sleep(INTERVAL * 5).await;
    for (k, s) in hc.snapshot() {
        assert_eq!(s.state, State::Up, "{k}: {s:?}");
        assert!(s.failures <= 2, "{k}: {s:?}");
    }
    assert!(rx.try_recv().is_err(), "no flip");
}

#[tokio::test]
async fn status_and_body_reasons_then_gone_and_back() {
    let srv = Server::start(Arc::default(), "127.0.0.1:0".parse().unwrap()).await;
    let (_hc, mut rx) = HealthChecker::spawn(checks(srv.addr, &["a"]), None);
    flips(&mut rx, 2, State::Up).await;
    for (mode, reason) in [
        (Mode::Status(503), "status 503"),
        (Mode::Body("maintenance\n"), "body mismatch"),
    ] {
        srv.set("a.example", mode);
        for ev in flips(&mut rx, 2, State::Down).await {
            assert_eq!(ev.outcome.reason(), reason);
        }
        srv.set("a.example", Mode::Ok);
        flips(&mut rx, 2, State::Up).await;
    }
    // The server goes away: refused. It comes back on the same port: up.
    let (addr, script) = srv.stop();
    for ev in flips(&mut rx, 2, State::Down).await {
        assert_eq!(ev.outcome.reason(), "connection refused", "{ev:?}");
    }
    let _srv = Server::start(script, addr).await;
    flips(&mut rx, 2, State::Up).await;
}
