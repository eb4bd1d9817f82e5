//! The probes: one attempt of one check, bounded by its timeout, with a
//! typed failure.

pub(crate) mod dns;
pub(crate) mod exec;
pub(crate) mod tcp;

use std::sync::Arc;
use std::time::Instant;

use crate::http::{self, Judge, h1, h2};
use crate::outcome::{Failure, Outcome};
use crate::spec::{CheckKey, CheckKind, CheckSpec, HttpCheck};

/// Runs one attempt of `spec` for `key` on fresh connections.
pub async fn probe(key: &CheckKey, spec: &CheckSpec) -> Outcome {
    Prober::new(false, h2::Pool::default())
        .probe(key, spec)
        .await
}

/// The attempts of one check: keeps an HTTP connection open from one
/// attempt to the next (a failed or timed-out attempt drops it, so the
/// next one connects afresh), unless made with `reuse` false.
pub struct Prober {
    reuse: bool,
    /// `http2` checks: the connections shared with the checker's other
    /// checks.
    pool: h2::Pool,
    /// What an HTTP check prepares at its first attempt (a check's kind
    /// never changes: a new spec is a new prober).
    http: Option<Prepared>,
    conn: Option<h1::Conn>,
}

/// An HTTP check's request and verdict, built once.
enum Prepared {
    H1 {
        judge: Judge,
        request: Vec<u8>,
    },
    H2 {
        judge: Judge,
        request: h2::Prepared,
        endpoint: Arc<h2::Endpoint>,
    },
}

impl Prepared {
    fn new(h: &HttpCheck, pool: &h2::Pool, spec: &CheckSpec) -> Result<Prepared, Failure> {
        let judge = Judge::new(h);
        Ok(if h.http2 {
            Prepared::H2 {
                judge,
                request: h2::prepare(h)?,
                endpoint: pool.endpoint(h, spec.source),
            }
        } else {
            Prepared::H1 {
                judge,
                request: http::request(h),
            }
        })
    }
}

// === impl Prober ===

impl Prober {
    /// A prober that keeps HTTP connections (`reuse`) or not, whose
    /// `http2` checks share the connections of `pool`.
    pub fn new(reuse: bool, pool: h2::Pool) -> Self {
        Prober {
            reuse,
            pool,
            http: None,
            conn: None,
        }
    }

    /// Runs one attempt of `spec` for `key`, within its timeout.
    pub async fn probe(&mut self, key: &CheckKey, spec: &CheckSpec) -> Outcome {
        let start = Instant::now();
        let timeout = spec.timeout;
        if let CheckKind::Http(h) = &spec.kind
            && self.http.is_none()
        {
            match Prepared::new(h, &self.pool, spec) {
                Ok(p) => self.http = Some(p),
                Err(f) => return Outcome::fail(start.elapsed(), f),
            }
        }
        // Taken out for the attempt: put back only by a completed one.
        let mut conn = self.conn.take();
        let prepared = self.http.as_ref();
        let source = spec.source;
        // Only the HTTP/1.1 exchange (kept connections, the common case at
        // scale) runs inline; the other kinds' larger futures are boxed so
        // the attempt stays small to create and move.
        let attempt = async {
            match (&spec.kind, prepared) {
                (CheckKind::Http(h), Some(Prepared::H1 { judge, request })) => {
                    h1::check(h, judge, request, source, &mut conn).await
                }
                (
                    CheckKind::Http(_),
                    Some(Prepared::H2 {
                        judge,
                        request,
                        endpoint,
                    }),
                ) => Box::pin(h2::check(judge, request, endpoint)).await,
                (CheckKind::Http(_), None) => Err(Failure::Other("unprepared HTTP check".into())),
                (CheckKind::Tcp(t), _) => Box::pin(tcp::check(t.target, source)).await,
                (CheckKind::Dns(d), _) => Box::pin(dns::check(d, source)).await,
                (CheckKind::Exec(e), _) => Box::pin(exec::check(key, e, timeout)).await,
            }
        };
        let result = match tokio::time::timeout(timeout, attempt).await {
            Ok(r) => r,
            Err(_) => {
                conn = None; // mid-request: unusable
                if let Some(Prepared::H2 { endpoint, .. }) = prepared {
                    endpoint.after_timeout(start);
                }
                Err(Failure::Timeout(timeout))
            }
        };
        if result.is_ok() && self.reuse {
            self.conn = conn;
        }
        Outcome {
            latency: start.elapsed(),
            result,
        }
    }

    /// The kept connection of a plain (not TLS) HTTP/1.1 check, with its
    /// request bytes and verdict, taken out of the prober: the checker's
    /// kept-connection loop runs its next attempts.
    pub(crate) fn take_plain(&mut self) -> Option<(std::net::TcpStream, Vec<u8>)> {
        if !self.conn.as_ref()?.is_plain() {
            return None;
        }
        let Some(Prepared::H1 { request, .. }) = &mut self.http else {
            return None;
        };
        let request = std::mem::take(request);
        let socket = self.conn.take()?.into_plain()?;
        Some((socket, request))
    }

    /// Whether this prober still holds a kept connection.
    #[cfg(test)]
    fn has_conn(&self) -> bool {
        self.conn.is_some()
    }
}

#[cfg(test)]
mod tests {
    use crate::{CheckKey, CheckSpec, TcpCheck};
    use std::time::Duration;

    /// At 10,000 attempts a second the attempt's future is created and
    /// moved each time: it stays small (rare paths are boxed).
    #[test]
    fn the_attempt_future_stays_small() {
        let key = CheckKey::new("a", "b", "c");
        let spec = CheckSpec::new(
            TcpCheck::new("127.0.0.1:1".parse().unwrap()),
            Duration::from_secs(2),
            Duration::from_secs(1),
        );
        let mut p = super::Prober::new(true, Default::default());
        assert!(!p.has_conn());
        let f = p.probe(&key, &spec);
        assert!(
            std::mem::size_of_val(&f) <= 1024,
            "{} bytes",
            std::mem::size_of_val(&f)
        );
    }
}
