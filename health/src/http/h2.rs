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
use tokio::io::{AsyncRead, AsyncWrite};

use super::{ExchangeError, Judge, MAX_BODY, once_more};
use crate::outcome::Failure;
use crate::spec::HttpCheck;

/// The HTTP/2 connections of one checker, one endpoint per proxy.
#[derive(Clone, Default)]
pub struct Pool(Arc<Mutex<HashMap<Key, Weak<Endpoint>>>>);

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
pub struct Endpoint {
    conns: tokio::sync::Mutex<Vec<Conn>>,
    key: Key,
    /// A check of this endpoint: how to connect (target, TLS name, trust).
    check: HttpCheck,
    epoch: Instant,
    next_id: AtomicU64,
}

/// An open connection.
struct Conn {
    id: u64,
    send: h2::client::SendRequest<Bytes>,
    /// When (ns since the endpoint's epoch) it opened or last answered anything.
    answered: Arc<AtomicU64>,
    /// Our streams open on it now.
    streams: Arc<AtomicUsize>,
    driver: tokio::task::AbortHandle,
}

impl Drop for Conn {
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
struct OpenStream(Arc<AtomicUsize>);

impl OpenStream {
    fn open(count: &Arc<AtomicUsize>) -> OpenStream {
        count.fetch_add(1, Ordering::Relaxed);
        OpenStream(count.clone())
    }
}

impl Drop for OpenStream {
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

/// One attempt of an `http2` check on `endpoint` (its caller reports a
/// timeout with [`Endpoint::after_timeout`]). A connection that could not
/// take the request (going away, closed while idle, refused the stream
/// unprocessed) earns one more try on a new one.
pub(crate) async fn check(
    judge: &Judge,
    req: &Prepared,
    endpoint: &Endpoint,
) -> Result<(), Failure> {
    let first = endpoint.sender().await?;
    let stream = OpenStream::open(&first.streams);
    let r = exchange(first.send, req, judge, &first.answered, endpoint.epoch).await;
    drop(stream);
    once_more(r, || async {
        endpoint.evict(first.id).await;
        let again = endpoint.sender().await?;
        let _stream = OpenStream::open(&again.streams);
        exchange(again.send, req, judge, &again.answered, endpoint.epoch).await
    })
    .await
}

/// The request of an `http2` check: method, `scheme://host/path` (the
/// `:authority` is the VIP's name, as the Host header is on HTTP/1.1).
pub(crate) fn prepare(h: &HttpCheck) -> Result<Prepared, Failure> {
    let authority = super::authority(h);
    let scheme = if h.tls { "https" } else { "http" };
    let uri = format!("{scheme}://{authority}{}", h.path)
        .parse()
        .map_err(|e| Failure::Other(format!("bad request target {authority}{}: {e}", h.path)))?;
    let method = ::http::Method::from_bytes(h.method.as_bytes())
        .map_err(|e| Failure::Other(format!("bad method {}: {e}", h.method)))?;
    Ok(Prepared { method, uri })
}

/// Sends the request on `send`, reads the answer, judges it.
async fn exchange(
    send: h2::client::SendRequest<Bytes>,
    req: &Prepared,
    judge: &Judge,
    answered: &AtomicU64,
    epoch: Instant,
) -> Result<(), ExchangeError> {
    let mut send = send
        .ready()
        .await
        .map_err(|e| ExchangeError::Stale(failure(&e)))?;
    let mut request = ::http::Request::new(());
    *request.method_mut() = req.method.clone();
    *request.uri_mut() = req.uri.clone();
    request.headers_mut().insert(
        ::http::header::USER_AGENT,
        ::http::HeaderValue::from_static("edged-health"),
    );
    let (response, _) = send
        .send_request(request, true)
        .map_err(|e| ExchangeError::Stale(failure(&e)))?;
    let response = response.await.map_err(|e| {
        // Refused before any processing, or cut by GOAWAY: the server did
        // not look at it; anything else is the server's answer.
        if e.is_go_away() || e.reason() == Some(h2::Reason::REFUSED_STREAM) || e.is_io() {
            ExchangeError::Stale(failure(&e))
        } else {
            ExchangeError::Failed(failure(&e))
        }
    })?;
    answered.store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
    judge.status(response.status().as_u16())?;
    // Read the body to its end (bounded): a stream left half-read would be
    // cancelled with a RST_STREAM, a frame more each way.
    let mut body = response.into_body();
    let mut seen: Vec<u8> = Vec::new();
    let mut len = 0usize;
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| ExchangeError::Failed(failure(&e)))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        len += chunk.len();
        if len > MAX_BODY {
            if judge.wants_body() {
                return Err(Failure::BodyTooLong(MAX_BODY).into());
            }
            break;
        }
        if judge.wants_body() {
            seen.extend_from_slice(&chunk);
        }
    }
    Ok(judge.body(&seen)?)
}

/// The failure of an HTTP/2 error.
fn failure(e: &h2::Error) -> Failure {
    if let Some(io) = e.get_io() {
        return Failure::io(io);
    }
    Failure::Protocol(match e.reason() {
        Some(r) if e.is_go_away() => format!("connection closed by server ({r:?})"),
        Some(r) if e.is_reset() && e.is_remote() => format!("stream reset by server ({r:?})"),
        _ => format!("http2: {e}"),
    })
}

// === impl Pool ===

impl Pool {
    /// The endpoint of the proxy `h` goes to, from `source`.
    pub(crate) fn endpoint(&self, h: &HttpCheck, source: Option<IpAddr>) -> Arc<Endpoint> {
        let key = Key {
            target: h.target,
            source,
            tls: h.tls.then(|| TlsKey {
                name: h.host.clone(),
                ca_file: h.ca_file.clone(),
                verify: h.tls_verify,
            }),
        };
        let mut map = self.0.lock().expect("http2 pool lock");
        if let Some(e) = map.get(&key).and_then(Weak::upgrade) {
            return e;
        }
        // Forget the proxies no check goes to any more.
        map.retain(|_, w| w.strong_count() > 0);
        let e = Arc::new(Endpoint {
            conns: tokio::sync::Mutex::new(Vec::new()),
            key: key.clone(),
            check: h.clone(),
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
        });
        map.insert(key, Arc::downgrade(&e));
        e
    }

    /// How many proxies have an endpoint in use.
    #[cfg(test)]
    fn len(&self) -> usize {
        let map = self.0.lock().expect("http2 pool lock");
        map.values().filter(|w| w.strong_count() > 0).count()
    }
}

// === impl Endpoint ===

impl Endpoint {
    /// A sender on a connection with a free stream, opening one if there
    /// is none (one opener at a time; the others wait for it). With
    /// `MAX_CONNS` open and all full, the least loaded one (its sender
    /// waits for a stream, within the attempt's timeout).
    async fn sender(&self) -> Result<Sender, Failure> {
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
        let live = Box::pin(open(&self.key, &self.check, id, self.epoch)).await?;
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

// === impl Conn ===

impl Conn {
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
/// as a task until the connection ends or the endpoint drops it.
async fn open(key: &Key, h: &HttpCheck, id: u64, epoch: Instant) -> Result<Conn, Failure> {
    let stream = crate::probe::tcp::connect(key.target, key.source).await?;
    stream.set_nodelay(true).map_err(|e| Failure::io(&e))?;
    let (send, driver) = if key.tls.is_some() {
        handshake(super::tls::connect(stream, h, Some(b"h2")).await?).await?
    } else {
        handshake(stream).await?
    };
    Ok(Conn {
        id,
        send,
        answered: Arc::new(AtomicU64::new(epoch.elapsed().as_nanos() as u64)),
        streams: Arc::default(),
        driver,
    })
}

async fn handshake<T>(
    io: T,
) -> Result<(h2::client::SendRequest<Bytes>, tokio::task::AbortHandle), Failure>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, connection) = h2::client::Builder::new()
        // A check sends no body; answers are small.
        .initial_window_size(MAX_BODY as u32)
        .handshake(io)
        .await
        .map_err(|e| failure(&e))?;
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

    fn check(target: &str, tls: bool, host: Option<&str>) -> HttpCheck {
        let mut h = HttpCheck::get(target.parse().unwrap())
            .path("/health")
            .http2();
        h.tls = tls;
        h.host = host.map(Into::into);
        h
    }

    #[test]
    fn checks_to_one_proxy_share_an_endpoint_and_it_goes_with_them() {
        let pool = Pool::default();
        let a = pool.endpoint(&check("192.0.2.1:80", false, Some("a.example")), None);
        // Another VIP's name on the same proxy, in clear: the same connection.
        let b = pool.endpoint(&check("192.0.2.1:80", false, Some("b.example")), None);
        assert!(Arc::ptr_eq(&a, &b));
        // Another port, another source, or TLS with another name: not.
        let c = pool.endpoint(&check("192.0.2.1:81", false, None), None);
        let d = pool.endpoint(
            &check("192.0.2.1:80", false, None),
            Some("192.0.2.9".parse().unwrap()),
        );
        let e = pool.endpoint(&check("192.0.2.1:80", true, Some("a.example")), None);
        let f = pool.endpoint(&check("192.0.2.1:80", true, Some("b.example")), None);
        for (x, y) in [(&a, &c), (&a, &d), (&a, &e), (&e, &f)] {
            assert!(!Arc::ptr_eq(x, y));
        }
        assert_eq!(pool.len(), 5);
        drop((a, c, d, e, f));
        assert_eq!(pool.len(), 1, "b still holds the shared endpoint");
        drop(b);
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn the_request_carries_the_vips_name_as_authority() {
        let p = prepare(&check("192.0.2.1:80", false, Some("www.example"))).unwrap();
        assert_eq!(p.uri.to_string(), "http://www.example/health");
        assert_eq!(p.method, ::http::Method::GET);
        let p = prepare(&check("[2001:db8::1]:443", true, None)).unwrap();
        assert_eq!(p.uri.to_string(), "https://[2001:db8::1]/health");
        let bad = check("192.0.2.1:80", false, Some("www.example")).method("GE T");
        assert!(
            prepare(&bad)
                .unwrap_err()
                .to_string()
                .starts_with("bad method")
        );
    }
}
