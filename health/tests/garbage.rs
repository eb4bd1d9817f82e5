//! Robustness: servers answering with random and mutated bytes (seeded, so
//! a failure replays), over HTTP/1.1, HTTP/2 and DNS. Every probe ends
//! within its timeout with a reason; none panics or hangs.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::http_kind;
use common::spec_of;
use edged_health::DnsCheck;
use edged_health::{CheckKey, CheckKind, probe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const VALID: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: b\r\n\r\nok\n";

/// splitmix64: a small seeded PRNG.
fn next(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A server's whole HTTP/2 side of a one-request exchange: SETTINGS (no
/// parameters), ACK of the client's SETTINGS, HEADERS for stream 1 with
/// `:status 200` (HPACK static index 8), DATA "ok\n" with END_STREAM.
const VALID_H2: &[u8] = &[
    0, 0, 0, 4, 0, 0, 0, 0, 0, // SETTINGS
    0, 0, 0, 4, 1, 0, 0, 0, 0, // SETTINGS ACK
    0, 0, 1, 1, 4, 0, 0, 0, 1, 0x88, // HEADERS, END_HEADERS, stream 1
    0, 0, 3, 0, 1, 0, 0, 0, 1, b'o', b'k', b'\n', // DATA, END_STREAM
];

/// Random bytes, or the valid answer truncated, with flipped bytes, or with
/// random bytes spliced in.
fn mutated(seed: u64) -> Vec<u8> {
    mutated_from(VALID, seed)
}

fn mutated_from(valid: &[u8], seed: u64) -> Vec<u8> {
    let mut s = seed;
    let mut v = valid.to_vec();
    match next(&mut s) % 4 {
        0 => {
            let len = (next(&mut s) % 300) as usize;
            return (0..len).map(|_| next(&mut s) as u8).collect();
        }
        1 => v.truncate((next(&mut s) as usize) % valid.len()),
        2 => {
            for _ in 0..1 + next(&mut s) % 4 {
                let i = (next(&mut s) as usize) % v.len();
                v[i] = next(&mut s) as u8;
            }
        }
        _ => {
            let at = (next(&mut s) as usize) % v.len();
            let junk: Vec<u8> = (0..next(&mut s) % 40).map(|_| next(&mut s) as u8).collect();
            v.splice(at..at, junk);
        }
    }
    v
}

fn key() -> CheckKey {
    CheckKey {
        vip: "web".into(),
        service: "svc".into(),
        proxy: "px1".into(),
    }
}

/// Answers connection n with `mutated(seed of n)`, then closes.
async fn garbage_http_server(case: Arc<AtomicU64>) -> SocketAddr {
    garbage_server(case, mutated).await
}

/// Answers each connection with `reply(current case)`, then closes.
async fn garbage_server(case: Arc<AtomicU64>, reply: fn(u64) -> Vec<u8>) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let reply = reply(case.load(Ordering::SeqCst));
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(&reply).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

/// Probes `kind` once per seed `0..n` (the server answers case `seed`):
/// each ends within the timeout with a reason. Returns how many failed.
async fn failures(case: &AtomicU64, kind: &CheckKind, t: Duration, n: u64) -> usize {
    let mut failed = 0;
    for seed in 0..n {
        case.store(seed, Ordering::SeqCst);
        let o = probe(&key(), &spec_of(kind.clone(), t)).await;
        assert!(!o.reason().is_empty(), "seed {seed}: {o:?}");
        assert!(
            o.latency < t + Duration::from_millis(200),
            "seed {seed}: {o:?}"
        );
        failed += usize::from(!o.ok());
    }
    failed
}

#[tokio::test]
async fn http_survives_mutated_responses() {
    let case = Arc::new(AtomicU64::new(0));
    let addr = garbage_http_server(case.clone()).await;
    let t = Duration::from_millis(500);
    let failed = failures(&case, &http_kind(addr, false), t, 400).await;
    println!("mutated HTTP responses: {failed} of 400 failed the check");
    assert!(failed > 200, "mutations should mostly fail the check");
}

/// The same over HTTP/2: the client's preface and request are read, a
/// mutated server side is written, the connection closes. The unmutated
/// exchange passes (the canned answer is right).
#[tokio::test]
async fn http2_survives_mutated_responses() {
    let case = Arc::new(AtomicU64::new(u64::MAX));
    let addr = garbage_server(case.clone(), |seed| {
        if seed == u64::MAX {
            VALID_H2.to_vec()
        } else {
            mutated_from(VALID_H2, seed)
        }
    })
    .await;
    let kind = http_kind(addr, true);
    let t = Duration::from_millis(300);
    let o = probe(&key(), &spec_of(kind.clone(), t)).await;
    assert!(o.ok(), "the canned HTTP/2 answer passes: {o:?}");
    let failed = failures(&case, &kind, t, 300).await;
    println!("mutated HTTP/2 responses: {failed} of 300 failed the check");
    assert!(failed > 150, "mutations should mostly fail the check");
}

#[tokio::test]
async fn dns_survives_garbage_replies() {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        let mut s = 7u64;
        while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
            // Random bytes; every other reply keeps the query's id and sets
            // the response bit, so the header parser sees plausible input.
            let len = (next(&mut s) % 40) as usize;
            let mut r: Vec<u8> = (0..len).map(|_| next(&mut s) as u8).collect();
            if next(&mut s).is_multiple_of(2) && r.len() >= 4 && n >= 2 {
                r[..2].copy_from_slice(&buf[..2]);
                r[2] |= 0x80;
            }
            let _ = sock.send_to(&r, peer).await;
        }
    });
    let t = Duration::from_millis(60);
    let kind = CheckKind::Dns(DnsCheck::a(addr, "health.example.com"));
    for i in 0..60 {
        let o = probe(&key(), &spec_of(kind.clone(), t)).await;
        assert!(!o.reason().is_empty(), "case {i}: {o:?}");
        assert!(
            o.latency < t + Duration::from_millis(200),
            "case {i}: {o:?}"
        );
        assert!(
            o.ok() || o.reason().starts_with("dns rcode") || o.reason().starts_with("timeout"),
            "case {i}: {o:?}"
        );
    }
}
