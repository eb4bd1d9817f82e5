//! Every check kind against real sockets and processes: passes, and each
//! way of failing gives its own reason; nothing hangs past the timeout.

mod common;

use std::time::Duration;

use common::*;
use edged_health::{CheckKey, CheckKind, DnsCheck, ExecCheck, HttpCheck, TcpCheck, probe};

const T: Duration = Duration::from_millis(300);

fn key() -> CheckKey {
    CheckKey::new("web", "svc", "px1")
}

fn http(target: std::net::SocketAddr) -> CheckKind {
    HttpCheck::get(target)
        .path("/healthz")
        .host("www.example.com")
        .body("ok")
        .into()
}

#[tokio::test]
async fn tcp_connects_or_says_refused() {
    let srv = HttpServer::start().await;
    let o = probe(&key(), &spec_of(TcpCheck::new(srv.addr), T)).await;
    assert!(o.ok(), "{o:?}");
    let o = probe(&key(), &spec_of(TcpCheck::new(closed_port().await), T)).await;
    assert_eq!((o.ok(), o.reason().as_str()), (false, "connection refused"));
}

#[tokio::test]
async fn http_each_failure_has_its_reason() {
    let srv = HttpServer::start().await;
    let cases = [
        (Mode::Ok, "ok"),
        (Mode::Status500, "status 500"),
        (Mode::WrongBody, "body mismatch"),
        (Mode::Hang, "timeout after 300ms"),
        (Mode::CloseMidResponse, "closed mid-response"),
        (Mode::Garbage, "invalid response"),
        (Mode::Slow, "timeout after 300ms"),
    ];
    for (mode, want) in cases {
        srv.set(mode);
        let o = probe(&key(), &spec_of(http(srv.addr), T)).await;
        assert_eq!(o.reason(), want, "{mode:?}: {o:?}");
        assert_eq!(o.ok(), mode == Mode::Ok);
        // A timeout never comes early; nothing hangs past it (with
        // generous room: two loaded cores run this).
        if want.starts_with("timeout") {
            assert!(o.latency >= T, "{mode:?} timed out after {:?}", o.latency);
        }
        assert!(
            o.latency < T + Duration::from_millis(500),
            "{mode:?} took {:?}",
            o.latency
        );
    }
    srv.set(Mode::Reset);
    let o = probe(&key(), &spec_of(http(srv.addr), T)).await;
    assert!(!o.ok());
    assert!(
        ["reset by peer", "closed mid-response"].contains(&o.reason().as_str()),
        "{o:?}"
    );
    let addr = srv.addr;
    srv.stop().await;
    let o = probe(&key(), &spec_of(http(addr), T)).await;
    assert_eq!(o.reason(), "connection refused");
}

#[tokio::test]
async fn dns_checks_the_response_code() {
    let srv = DnsServer::start().await;
    let kind = |rc| DnsCheck {
        expect_rcode: rc,
        ..DnsCheck::a(srv.addr, "health.example.com")
    };
    assert!(probe(&key(), &spec_of(kind(0), T)).await.ok());
    srv.set_rcode(2);
    assert_eq!(
        probe(&key(), &spec_of(kind(0), T)).await.reason(),
        "dns rcode 2"
    );
    srv.set_rcode(255);
    assert_eq!(
        probe(&key(), &spec_of(kind(0), T)).await.reason(),
        "timeout after 300ms"
    );
}

#[tokio::test]
async fn exec_status_signal_and_timeout_kill_the_group() {
    let exec = |prog: &str, args: &[&str]| ExecCheck {
        env: vec![("EXTRA".into(), "1".into())],
        ..ExecCheck::new(prog, args)
    };
    assert!(
        probe(&key(), &spec_of(exec("/bin/true", &[]), T))
            .await
            .ok()
    );
    assert_eq!(
        probe(&key(), &spec_of(exec("/bin/sh", &["-c", "exit 2"]), T))
            .await
            .reason(),
        "exit status 2"
    );
    assert_eq!(
        probe(&key(), &spec_of(exec("/bin/sh", &["-c", "kill -9 $$"]), T))
            .await
            .reason(),
        "killed by signal 9"
    );
    // The environment names the VIP, service and proxy.
    let env_ok = exec(
        "/bin/sh",
        &[
            "-c",
            "[ \"$EDGED_VIP/$EDGED_SERVICE/$EDGED_PROXY/$EXTRA\" = web/svc/px1/1 ]",
        ],
    );
    assert!(probe(&key(), &spec_of(env_ok, T)).await.ok());

    // A hung check and the child it forked: both killed, both reaped.
    let marker = format!("edged-health-test-{}", std::process::id());
    let hang = exec(
        "/bin/bash",
        &[
            "-c",
            &format!("(exec -a {marker} sleep 30) & exec -a {marker} sleep 30"),
        ],
    );
    let o = probe(&key(), &spec_of(hang, T)).await;
    assert!(o.reason().starts_with("timeout after"), "{o:?}");
    let left = std::process::Command::new("pgrep")
        .args(["-f", &marker])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "process left: {}",
        String::from_utf8_lossy(&left.stdout)
    );
    let zombies = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter(|s| {
            s.contains(") Z ")
                && s.split_whitespace().nth(3) == Some(&std::process::id().to_string())
        })
        .count();
    assert_eq!(zombies, 0, "zombie children left");
    let missing = probe(&key(), &spec_of(exec("/nonexistent/check", &[]), T)).await;
    assert!(
        missing
            .reason()
            .starts_with("cannot run /nonexistent/check"),
        "{missing:?}"
    );
}

/// A check's prober keeps its HTTP connection: one accept for many
/// attempts on a keep-alive server; and a server that closes after every
/// answer (a stale kept connection) still passes every attempt.
#[tokio::test]
async fn prober_reuses_connections_and_survives_stale_ones() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let accepts = Arc::new(AtomicUsize::new(0));
    let count = accepts.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
                    if s.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let mut prober = edged_health::Prober::new(true, Default::default());
    for i in 0..5 {
        let o = prober.probe(&key(), &spec_of(http(addr), T)).await;
        assert!(o.ok(), "attempt {i}: {o:?}");
    }
    assert_eq!(accepts.load(Ordering::SeqCst), 1, "one connection for all");
    // reuse_connection: false opens one per attempt against the same server.
    let mut fresh = edged_health::Prober::new(false, Default::default());
    for i in 0..5 {
        let o = fresh.probe(&key(), &spec_of(http(addr), T)).await;
        assert!(o.ok(), "attempt {i} without reuse: {o:?}");
    }
    assert_eq!(
        accepts.load(Ordering::SeqCst),
        6,
        "without reuse: a connection per attempt"
    );

    let closing = HttpServer::start().await; // closes after each answer
    let mut prober = edged_health::Prober::new(true, Default::default());
    for i in 0..20 {
        let o = prober.probe(&key(), &spec_of(http(closing.addr), T)).await;
        assert!(o.ok(), "attempt {i}: {o:?}");
    }
}

/// A keep-alive server that answers the n-th request on a connection with
/// `script[n]` (each answer a list of pieces written 5 ms apart), then
/// closes that connection when the script runs out. Counts connections.
async fn scripted(
    script: Vec<Vec<&'static [u8]>>,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let script = script.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                for answer in script {
                    match s.read(&mut buf).await {
                        Ok(n) if n > 0 => {}
                        _ => return,
                    }
                    for piece in answer {
                        if s.write_all(piece).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn http_framings_and_connection_reuse() {
    use edged_health::Prober;
    use std::sync::atomic::Ordering;
    // Chunked in pieces, then a 100 Continue before the answer: both on one
    // kept connection.
    let (addr, accepted) = scripted(vec![
        vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nfi",
            b"n\r\n4;x=y\r\ne ok\r\n0\r\n",
            b"\r\n",
        ],
        vec![
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ],
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"],
    ])
    .await;
    let mut p = Prober::new(true, Default::default());
    for i in 0..3 {
        let o = p.probe(&key(), &spec_of(http(addr), T)).await;
        assert!(o.ok(), "answer {i}: {o:?}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one kept connection");
    // The server said close: the next attempt connects afresh.
    let o = p.probe(&key(), &spec_of(http(addr), T)).await;
    assert!(o.ok(), "{o:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);

    // HTTP/1.0 without a length: the body runs to the close.
    let (addr, _) = scripted(vec![vec![b"HTTP/1.0 200 OK\r\n\r\nall ok\n"]]).await;
    let o = p.probe(&key(), &spec_of(http(addr), T)).await;
    assert!(o.ok(), "{o:?}");

    // A server that closes a kept connection while idle: one retry on a new
    // connection, not a failure.
    let (addr, accepted) = scripted(vec![vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ]])
    .await;
    let mut p = Prober::new(true, Default::default());
    for _ in 0..3 {
        let o = p.probe(&key(), &spec_of(http(addr), T)).await;
        assert!(o.ok(), "{o:?}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);

    // A chunked body that breaks its framing, and one that is too long.
    let (addr, _) = scripted(vec![vec![
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX",
    ]])
    .await;
    let o = p.probe(&key(), &spec_of(http(addr), T)).await;
    assert_eq!(o.reason(), "invalid response: chunk");
    let (addr, _) = scripted(vec![vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 9999999\r\n\r\n",
    ]])
    .await;
    let o = p.probe(&key(), &spec_of(http(addr), T)).await;
    assert_eq!(o.reason(), "body longer than 65536 bytes");
}
