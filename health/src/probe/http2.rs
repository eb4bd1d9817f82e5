//! HTTP/2 checks (`http2: true`): every check that goes to the same proxy
//! (target, source address, TLS name and trust) shares one connection
//! (more only when streams run out, below), and each attempt is one stream
//! on it.
//!
//! Why: a listener that speaks only HTTP/2 (a gRPC endpoint, an Envoy
//! listener set to HTTP/2) cannot be checked over HTTP/1.1; and with one
//! kept HTTP/1.1 connection per check, 1,000 VIPs hold 1,000 health
//! connections on every proxy, where this holds one. The requests due in
//! one 10 ms step leave in one write and their answers come back together.
//! Streams are independent, so one VIP's hung application delays only its
//! own check (HTTP/1.1 pipelining would let it fail every check behind
//! it). It is not cheaper for the checker: the framing costs about what
//! the kernel saves (see the health bench).
//!
//! Rules:
//! - The connection opens on the first attempt that needs it, one at a
//!   time (the others wait for it), and closes when no check uses it.
//! - A proxy caps the streams open on one connection (nginx: 128). Hung
//!   checks hold theirs until they time out; when every connection is at
//!   the cap another opens (up to `MAX_CONNS`), so hung VIPs cannot starve
//!   the healthy ones of streams.
//! - A check that times out cancels its stream (RST_STREAM); the
//!   connection stays, unless nothing at all was answered on it since the
//!   attempt began: then it is presumed dead and the next attempt opens a
//!   new one (as an HTTP/1.1 check drops its connection on a timeout).
//! - A connection the server is closing (GOAWAY, e.g. nginx after
//!   `keepalive_requests`) or that broke while idle is not a failure: the
//!   attempt is retried once on a new connection.
//! - Over TLS the server must agree to `h2` by ALPN.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use bytes::Bytes;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};

use super::http::MAX_BODY;
use crate::spec::CheckKind;

/// The HTTP/2 connections of one checker, one per proxy.
#[derive(Clone, Default)]
pub struct Pool(Arc<Mutex<HashMap<Key, Weak<Slot>>>>);

/// What makes two checks' connections interchangeable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    target: SocketAddr,
    source: Option<IpAddr>,
    tls: Option<TlsKey>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct TlsKey {
    name: Option<String>,
    ca_file: Option<PathBuf>,
    verify: bool,
}

/// Connections to one proxy at most: more than one opens only when every
/// one is at the proxy's cap on open streams.
const MAX_CONNS: usize = 8;

/// One proxy's connections, shared by the checks that go there; they close
/// when the last of them drops its `Arc`.
pub struct Slot {
    conns: tokio::sync::Mutex<Vec<Live>>,
    key: Key,
    epoch: Instant,
    next_id: AtomicU64,
}

/// An open connection.
struct Live {
    id: u64,
    send: h2::client::SendRequest<Bytes>,
    /// When (ns since the slot's epoch) it opened or last answered anything.
    answered: Arc<AtomicU64>,
    /// Our streams open on it now.
    streams: Arc<AtomicUsize>,
    driver: tokio::task::AbortHandle,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// A check's handle on one connection for one attempt.
struct Sender {
    id: u64,
    send: h2::client::SendRequest<Bytes>,
    answered: Arc<AtomicU64>,
    streams: Arc<AtomicUsize>,
}

/// Counts a stream as open while it lives (a cancelled attempt included).
struct Stream(Arc<AtomicUsize>);

impl Stream {
    fn open(count: &Arc<AtomicUsize>) -> Stream {
        count.fetch_add(1, Ordering::Relaxed);
        Stream(count.clone())
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An HTTP/2 check's request, built once.
#[derive(Debug)]
pub struct Prepared {
    method: ::http::Method,
    uri: ::http::Uri,
}

/// How one attempt on one connection ended.
enum Failure {
    /// The connection could not take the request (going away, closed while
    /// idle, refused the stream unprocessed): worth one retry on a new one.
    Stale(String),
    Reason(String),
}

/// One attempt of an `http2` check on `slot` (its caller reports a
/// timeout with [`Slot::after_timeout`]).
pub async fn check(kind: &CheckKind, req: &Prepared, slot: &Slot) -> Result<(), String> {
    let CheckKind::Http {
        expect_status,
        body_contains,
        ..
    } = kind
    else {
        unreachable!("http2::check takes an Http check")
    };
    let expect = (expect_status.as_slice(), body_contains.as_deref());
    let first = slot.sender().await?;
    let stream = Stream::open(&first.streams);
    match exchange(first.send, req, expect, &first.answered, slot.epoch).await {
        Ok(()) => Ok(()),
        Err(Failure::Reason(r)) => Err(r),
        Err(Failure::Stale(_)) => {
            drop(stream);
            slot.evict(first.id).await;
            let again = slot.sender().await?;
            let _stream = Stream::open(&again.streams);
            match exchange(again.send, req, expect, &again.answered, slot.epoch).await {
                Ok(()) => Ok(()),
                Err(Failure::Reason(r) | Failure::Stale(r)) => Err(r),
            }
        }
    }
}

/// The request of an `http2` check: method, `scheme://host/path` (the
/// `:authority` is the VIP's name, as the Host header is on HTTP/1.1).
pub fn prepare(kind: &CheckKind) -> Result<Prepared, String> {
    let CheckKind::Http {
        target,
        tls,
        method,
        path,
        host,
        ..
    } = kind
    else {
        unreachable!("http2::prepare takes an Http check")
    };
    let authority = super::http::host_name(host.as_deref(), target);
    let scheme = if *tls { "https" } else { "http" };
    let uri = format!("{scheme}://{authority}{path}")
        .parse()
        .map_err(|e| format!("bad request target {authority}{path}: {e}"))?;
    let method = ::http::Method::from_bytes(method.as_bytes())
        .map_err(|e| format!("bad method {method}: {e}"))?;
    Ok(Prepared { method, uri })
}

/// Sends the request on `send`, reads the answer, judges it.
async fn exchange(
    send: h2::client::SendRequest<Bytes>,
    req: &Prepared,
    (expect_status, body_contains): (&[u16], Option<&str>),
    answered: &AtomicU64,
    epoch: Instant,
) -> Result<(), Failure> {
    let mut send = send.ready().await.map_err(|e| Failure::Stale(reason(&e)))?;
    let mut request = ::http::Request::new(());
    *request.method_mut() = req.method.clone();
    *request.uri_mut() = req.uri.clone();
    request.headers_mut().insert(
        ::http::header::USER_AGENT,
        ::http::HeaderValue::from_static("edged-health"),
    );
    let (response, _) = send
        .send_request(request, true)
        .map_err(|e| Failure::Stale(reason(&e)))?;
    let response = response.await.map_err(|e| {
        // Refused before any processing, or cut by GOAWAY: the server did
        // not look at it; anything else is the server's answer.
        if e.is_go_away() || e.reason() == Some(h2::Reason::REFUSED_STREAM) || e.is_io() {
            Failure::Stale(reason(&e))
        } else {
            Failure::Reason(reason(&e))
        }
    })?;
    answered.store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
    let status = response.status().as_u16();
    super::http::status_ok(expect_status, status).map_err(Failure::Reason)?;
    // Read the body to its end (bounded): a stream left half-read would be
    // cancelled with a RST_STREAM, a frame more each way.
    let mut body = response.into_body();
    let mut seen: Vec<u8> = Vec::new();
    let mut len = 0usize;
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| Failure::Reason(reason(&e)))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        len += chunk.len();
        if len > MAX_BODY {
            if body_contains.is_some() {
                return Err(Failure::Reason("body too long".into()));
            }
            break;
        }
        if body_contains.is_some() {
            seen.extend_from_slice(&chunk);
        }
    }
    super::http::body_ok(body_contains, &seen).map_err(Failure::Reason)
}

/// Words for an HTTP/2 error.
fn reason(e: &h2::Error) -> String {
    if let Some(io) = e.get_io() {
        return super::io_reason(io);
    }
    match e.reason() {
        Some(r) if e.is_go_away() => format!("connection closed by server ({r:?})"),
        Some(r) if e.is_reset() && e.is_remote() => format!("stream reset by server ({r:?})"),
        _ => format!("http2: {e}"),
    }
}

// === impl Pool ===

impl Pool {
    /// The slot of the proxy `kind` goes to, from `source`.
    pub fn slot(&self, kind: &CheckKind, source: Option<IpAddr>) -> Arc<Slot> {
        let CheckKind::Http {
            target,
            tls,
            host,
            ca_file,
            tls_verify,
            ..
        } = kind
        else {
            unreachable!("http2 slots are for Http checks")
        };
        let key = Key {
            target: *target,
            source,
            tls: tls.then(|| TlsKey {
                name: host.clone(),
                ca_file: ca_file.clone(),
                verify: *tls_verify,
            }),
        };
        let mut map = self.0.lock().expect("http2 pool lock");
        if let Some(slot) = map.get(&key).and_then(Weak::upgrade) {
            return slot;
        }
        // Forget the proxies no check goes to any more.
        map.retain(|_, w| w.strong_count() > 0);
        let slot = Arc::new(Slot {
            conns: tokio::sync::Mutex::new(Vec::new()),
            key: key.clone(),
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
        });
        map.insert(key, Arc::downgrade(&slot));
        slot
    }

    /// How many proxies have a connection slot in use.
    #[cfg(test)]
    fn len(&self) -> usize {
        let map = self.0.lock().expect("http2 pool lock");
        map.values().filter(|w| w.strong_count() > 0).count()
    }
}

// === impl Slot ===

impl Slot {
    /// A sender on a connection with a free stream, opening one if there
    /// is none (one opener at a time; the others wait for it). With
    /// `MAX_CONNS` open and all full, the least loaded one (its sender
    /// waits for a stream, within the attempt's timeout).
    async fn sender(&self) -> Result<Sender, String> {
        let mut conns = self.conns.lock().await;
        conns.retain(|l| !l.driver.is_finished());
        let free = conns
            .iter()
            .find(|l| l.streams.load(Ordering::Relaxed) < l.send.current_max_send_streams());
        if let Some(l) = free {
            return Ok(l.sender());
        }
        if conns.len() >= MAX_CONNS {
            let least = conns
                .iter()
                .min_by_key(|l| l.streams.load(Ordering::Relaxed))
                .expect("MAX_CONNS is not 0");
            return Ok(least.sender());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let live = Box::pin(open(&self.key, id, self.epoch)).await?;
        let out = live.sender();
        conns.push(live);
        Ok(out)
    }

    /// Closes connection `id` if it is still open.
    async fn evict(&self, id: u64) {
        self.conns.lock().await.retain(|l| l.id != id);
    }

    /// Called when an attempt that began at `started` timed out: a
    /// connection that neither opened nor answered anything since is
    /// presumed dead (a frozen or vanished proxy, a lost path) and closed,
    /// so the next attempt connects afresh. Other checks' answers keep a
    /// connection open.
    pub fn after_timeout(&self, started: Instant) {
        let since = started.saturating_duration_since(self.epoch).as_nanos() as u64;
        if let Ok(mut conns) = self.conns.try_lock() {
            conns.retain(|l| l.answered.load(Ordering::Relaxed) >= since);
        }
    }
}

// === impl Live ===

impl Live {
    fn sender(&self) -> Sender {
        Sender {
            id: self.id,
            send: self.send.clone(),
            answered: self.answered.clone(),
            streams: self.streams.clone(),
        }
    }
}

/// A new connection: TCP (no Nagle: frames go out as they are written),
/// TLS with ALPN `h2` if configured, the HTTP/2 handshake; its driver runs
/// as a task until the connection ends or the slot drops it.
async fn open(key: &Key, id: u64, epoch: Instant) -> Result<Live, String> {
    let stream = super::tcp::connect(key.target, key.source).await?;
    stream.set_nodelay(true).map_err(|e| super::io_reason(&e))?;
    let (send, driver) = if let Some(tls) = &key.tls {
        let name = match &tls.name {
            Some(h) => ServerName::try_from(h.clone())
                .map_err(|e| format!("tls: bad server name {h}: {e}"))?,
            None => ServerName::IpAddress(key.target.ip().into()),
        };
        let mut config = super::http::tls_config(tls.ca_file.as_deref(), tls.verify)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        let tls_stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, stream)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        if tls_stream.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err("tls: the server did not agree to HTTP/2 (ALPN h2)".into());
        }
        handshake(tls_stream).await?
    } else {
        handshake(stream).await?
    };
    Ok(Live {
        id,
        send,
        answered: Arc::new(AtomicU64::new(epoch.elapsed().as_nanos() as u64)),
        streams: Arc::default(),
        driver,
    })
}

async fn handshake<T>(
    io: T,
) -> Result<(h2::client::SendRequest<Bytes>, tokio::task::AbortHandle), String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, connection) = h2::client::Builder::new()
        // A check sends no body; answers are small.
        .initial_window_size(MAX_BODY as u32)
        .handshake(io)
        .await
        .map_err(|e| reason(&e))?;
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "http2 health check connection ended");
        }
    })
    .abort_handle();
    Ok((send, driver))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(target: &str, tls: bool, host: Option<&str>) -> CheckKind {
        CheckKind::Http {
            target: target.parse().unwrap(),
            tls,
            method: "GET".into(),
            path: "/health".into(),
            host: host.map(Into::into),
            expect_status: vec![200],
            body_contains: None,
            ca_file: None,
            tls_verify: true,
            http2: true,
        }
    }

    #[test]
    fn checks_to_one_proxy_share_a_slot_and_it_goes_with_them() {
        let pool = Pool::default();
        let a = pool.slot(&kind("192.0.2.1:80", false, Some("a.example")), None);
        // Another VIP's name on the same proxy, in clear: the same connection.
        let b = pool.slot(&kind("192.0.2.1:80", false, Some("b.example")), None);
        assert!(Arc::ptr_eq(&a, &b));
        // Another port, another source, or TLS with another name: not.
        let c = pool.slot(&kind("192.0.2.1:81", false, None), None);
        let d = pool.slot(
            &kind("192.0.2.1:80", false, None),
            Some("192.0.2.9".parse().unwrap()),
        );
        let e = pool.slot(&kind("192.0.2.1:80", true, Some("a.example")), None);
        let f = pool.slot(&kind("192.0.2.1:80", true, Some("b.example")), None);
        for (x, y) in [(&a, &c), (&a, &d), (&a, &e), (&e, &f)] {
            assert!(!Arc::ptr_eq(x, y));
        }
        assert_eq!(pool.len(), 5);
        drop((a, c, d, e, f));
        assert_eq!(pool.len(), 1, "b still holds the shared slot");
        drop(b);
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn the_request_carries_the_vips_name_as_authority() {
        let p = prepare(&kind("192.0.2.1:80", false, Some("www.example"))).unwrap();
        assert_eq!(p.uri.to_string(), "http://www.example/health");
        assert_eq!(p.method, ::http::Method::GET);
        let p = prepare(&kind("[2001:db8::1]:443", true, None)).unwrap();
        assert_eq!(p.uri.to_string(), "https://[2001:db8::1]/health");
        let mut bad = kind("192.0.2.1:80", false, Some("www.example"));
        if let CheckKind::Http { method, .. } = &mut bad {
            *method = "GE T".into();
        }
        assert!(prepare(&bad).unwrap_err().starts_with("bad method"));
    }
}
