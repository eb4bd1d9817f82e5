//! The probes: one attempt of one check, bounded by its timeout, with a
//! specific reason on failure.

mod dns;
mod exec;
pub(crate) mod http;
mod http2;

pub use http::{Parsed, parse_response as parse_http_response};
pub use http2::Pool as Http2Pool;
mod tcp;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::spec::{CheckKey, CheckKind};

/// Result of one attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub ok: bool,
    /// `ok`, or why not: "connection refused", "timeout after 500ms",
    /// "status 503", "body mismatch", "exit status 2", ...
    pub reason: String,
    /// Time the attempt took.
    #[serde(serialize_with = "as_micros")]
    pub latency: Duration,
}

fn as_micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_micros() as u64)
}

/// Runs one attempt of `kind` for `key`, within `timeout`, on fresh
/// connections.
pub async fn probe(
    key: &CheckKey,
    kind: &CheckKind,
    timeout: Duration,
    source: Option<IpAddr>,
) -> Outcome {
    Prober::default().probe(key, kind, timeout, source).await
}

/// The attempts of one check: keeps an HTTP connection open from one
/// attempt to the next (a failed or timed-out attempt drops it, so the
/// next one connects afresh), unless made with `reuse` false.
pub struct Prober {
    http: Option<http::HttpConn>,
    reuse: bool,
    /// The HTTP request, rendered at the first attempt (a check's kind
    /// never changes: a new spec is a new prober).
    request: Vec<u8>,
    /// `http2` checks: the connections shared with the checker's other
    /// checks, and this check's proxy's one (taken at the first attempt).
    pool: http2::Pool,
    http2: Option<(Arc<http2::Slot>, http2::Prepared)>,
}

impl Default for Prober {
    fn default() -> Self {
        Prober::new(true)
    }
}

// === impl Prober ===

impl Prober {
    /// A prober that keeps HTTP connections (`reuse`) or not.
    pub fn new(reuse: bool) -> Self {
        Prober::with_pool(reuse, Http2Pool::default())
    }

    /// A prober whose `http2` checks share the connections of `pool`.
    pub fn with_pool(reuse: bool, pool: Http2Pool) -> Self {
        Prober {
            http: None,
            reuse,
            request: Vec::new(),
            pool,
            http2: None,
        }
    }

    /// Runs one attempt of `kind` for `key`, within `timeout`.
    pub async fn probe(
        &mut self,
        key: &CheckKey,
        kind: &CheckKind,
        timeout: Duration,
        source: Option<IpAddr>,
    ) -> Outcome {
        let start = Instant::now();
        // Taken out for the attempt: put back only by a completed one.
        let mut conn = self.http.take();
        let h2 = matches!(kind, CheckKind::Http { http2: true, .. });
        if h2 && self.http2.is_none() {
            match http2::prepare(kind) {
                Ok(p) => self.http2 = Some((self.pool.slot(kind, source), p)),
                Err(reason) => {
                    return Outcome {
                        ok: false,
                        reason,
                        latency: start.elapsed(),
                    };
                }
            }
        } else if !h2 && self.request.is_empty() && matches!(kind, CheckKind::Http { .. }) {
            self.request = http::request(kind);
        }
        let request = &self.request;
        let shared = self.http2.as_ref();
        // Only the HTTP exchange (kept connections, the common case at
        // scale) runs inline; the other kinds' larger futures are boxed so
        // the attempt stays small to create and move.
        let attempt = async {
            match kind {
                CheckKind::Tcp { target } => Box::pin(tcp::check(*target, source)).await,
                CheckKind::Http { http2: true, .. } => {
                    let (slot, req) = shared.expect("prepared above");
                    Box::pin(http2::check(kind, req, slot)).await
                }
                CheckKind::Http { .. } => http::check(kind, request, source, &mut conn).await,
                CheckKind::Dns {
                    target,
                    query_name,
                    query_type,
                    expect_rcode,
                } => {
                    Box::pin(dns::check(
                        *target,
                        source,
                        query_name,
                        *query_type,
                        *expect_rcode,
                    ))
                    .await
                }
                CheckKind::Exec { program, args, env } => {
                    Box::pin(exec::check(key, program, args, env, timeout)).await
                }
            }
        };
        let result = match tokio::time::timeout(timeout, attempt).await {
            Ok(r) => r,
            Err(_) => {
                conn = None; // mid-request: unusable
                if let Some((slot, _)) = shared {
                    slot.after_timeout(start);
                }
                Err(http::timed_out(timeout))
            }
        };
        let latency = start.elapsed();
        match result {
            Ok(()) => {
                if self.reuse {
                    self.http = conn;
                }
                Outcome {
                    ok: true,
                    reason: "ok".into(),
                    latency,
                }
            }
            Err(reason) => Outcome {
                ok: false,
                reason,
                latency,
            },
        }
    }

    /// The kept connection of a plain (not TLS) HTTP/1.1 check, with its
    /// request bytes, taken out of the prober: the checker's kept-connection
    /// loop runs its next attempts.
    pub(crate) fn take_plain(&mut self) -> Option<(std::net::TcpStream, Vec<u8>)> {
        if !self.http.as_ref()?.is_plain() {
            return None;
        }
        let socket = self.http.take()?.into_plain()?;
        Some((socket, std::mem::take(&mut self.request)))
    }
}

/// Words for an I/O error, the way operators say them.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset => "reset by peer".into(),
        ConnectionAborted => "connection aborted".into(),
        UnexpectedEof => "closed mid-response".into(),
        TimedOut => "timed out".into(),
        HostUnreachable => "host unreachable".into(),
        NetworkUnreachable => "network unreachable".into(),
        AddrNotAvailable => "source address not available".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use crate::{CheckKey, CheckKind};

    /// At 10,000 attempts a second the attempt's future is created and
    /// moved each time: it stays small (rare paths are boxed).
    #[test]
    fn the_attempt_future_stays_small() {
        let key = CheckKey {
            vip: "a".into(),
            service: "b".into(),
            proxy: "c".into(),
        };
        let kind = CheckKind::Tcp {
            target: "127.0.0.1:1".parse().unwrap(),
        };
        let mut p = super::Prober::new(true);
        let f = p.probe(&key, &kind, std::time::Duration::from_secs(1), None);
        assert!(
            std::mem::size_of_val(&f) <= 1024,
            "{} bytes",
            std::mem::size_of_val(&f)
        );
    }
}
