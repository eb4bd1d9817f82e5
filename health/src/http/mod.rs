//! HTTP checks: one set of semantics for HTTP/1.1 on a task (`h1`),
//! HTTP/1.1 on the kept-connection loop, and HTTP/2 (`h2`).
//!
//! - The request: the check's method and path, the VIP's Host (HTTP/1.1)
//!   or `:authority` (HTTP/2), else the proxy's address.
//! - The verdict ([`Judge`]): the status must be one the check expects,
//!   then the body (if the check looks for text) must hold it; bodies past
//!   [`MAX_BODY`] fail.
//! - A kept connection found closed before any byte of the answer
//!   ([`ExchangeError::Stale`]) is not a failure: the attempt runs once more
//!   on a new connection (h1, h2: [`once_more`]; the kept loop hands the
//!   check back to its task, which does the same).

pub(crate) mod h1;
pub(crate) mod h2;
pub(crate) mod parse;
pub(crate) mod tls;

use crate::outcome::Failure;
use crate::spec::HttpCheck;

/// Bodies longer than this fail the check rather than fill memory.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// Response heads longer than this are not an answer a health check wants.
pub(crate) const MAX_HEAD: usize = 16 * 1024;

/// Past this much unconsumed input an answer is refused.
pub(crate) const MAX_BUFFERED: usize = MAX_HEAD + 2 * MAX_BODY;

/// How one exchange on one connection failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ExchangeError {
    /// Nothing came back: on a kept connection, the server closed it while
    /// idle (or is going away); worth one more try on a new connection.
    Stale(Failure),
    /// A real failure.
    Failed(Failure),
}

impl From<Failure> for ExchangeError {
    fn from(f: Failure) -> Self {
        ExchangeError::Failed(f)
    }
}

/// The stale-connection rule, once for every executor: a first exchange
/// that ended [stale](ExchangeError::Stale) runs once more through `again`
/// (a new connection); any other end is final.
pub(crate) async fn once_more<T, F, Fut>(
    first: Result<T, ExchangeError>,
    again: F,
) -> Result<T, Failure>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<T, ExchangeError>>,
{
    match first {
        Ok(t) => Ok(t),
        Err(ExchangeError::Failed(f)) => Err(f),
        Err(ExchangeError::Stale(_)) => match again().await {
            Ok(t) => Ok(t),
            Err(ExchangeError::Failed(f) | ExchangeError::Stale(f)) => Err(f),
        },
    }
}

/// The request bytes of an HTTP/1.1 check.
pub(crate) fn request(h: &HttpCheck) -> Vec<u8> {
    format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: edged-health\r\n\r\n",
        h.method,
        h.path,
        authority(h)
    )
    .into_bytes()
}

/// The Host (HTTP/1.1) or `:authority` (HTTP/2) of a check: the VIP's
/// name if set, else the proxy's address.
pub(crate) fn authority(h: &HttpCheck) -> String {
    match (&h.host, h.target) {
        (Some(name), _) => name.clone(),
        (None, std::net::SocketAddr::V4(a)) => a.ip().to_string(),
        (None, std::net::SocketAddr::V6(a)) => format!("[{}]", a.ip()),
    }
}

/// Up to this many expected statuses are kept inline (the common case),
/// so judging a status touches no other cache line.
const INLINE: usize = 4;

/// How an answer is judged: the expected statuses, then the body's text.
#[derive(Clone, Debug)]
pub(crate) struct Judge {
    /// HEAD: no body in the answer whatever its length says.
    pub(crate) head_only: bool,
    inline: [u16; INLINE],
    count: u8,
    more: Vec<u16>,
    needle: Option<Box<str>>,
}

impl Judge {
    pub(crate) fn new(h: &HttpCheck) -> Judge {
        let mut inline = [0; INLINE];
        let (count, more) = if h.expect_status.len() <= INLINE {
            inline[..h.expect_status.len()].copy_from_slice(&h.expect_status);
            (h.expect_status.len() as u8, Vec::new())
        } else {
            (0, h.expect_status.clone())
        };
        Judge {
            head_only: h.method.eq_ignore_ascii_case("HEAD"),
            inline,
            count,
            more,
            needle: h.body_contains.as_deref().map(Into::into),
        }
    }

    /// Whether the body must be read (the check looks for text in it).
    pub(crate) fn wants_body(&self) -> bool {
        self.needle.is_some()
    }

    /// Whether the status is one the check expects.
    pub(crate) fn status(&self, status: u16) -> Result<(), Failure> {
        let expected = if self.more.is_empty() {
            &self.inline[..usize::from(self.count)]
        } else {
            &self.more
        };
        if expected.contains(&status) {
            Ok(())
        } else {
            Err(Failure::Status(status))
        }
    }

    /// Whether the body holds the text the check looks for, if any.
    pub(crate) fn body(&self, body: &[u8]) -> Result<(), Failure> {
        match &self.needle {
            Some(n) if !String::from_utf8_lossy(body).contains(&**n) => Err(Failure::BodyMismatch),
            _ => Ok(()),
        }
    }

    /// The verdict on a whole answer: its status, then its body.
    pub(crate) fn answer(&self, status: u16, body: &[u8]) -> Result<(), Failure> {
        self.status(status)?;
        self.body(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_the_vips_name_or_the_proxys_address() {
        let h = HttpCheck::get("192.0.2.1:80".parse().unwrap()).path("/healthz");
        assert_eq!(
            request(&h),
            b"GET /healthz HTTP/1.1\r\nHost: 192.0.2.1\r\nUser-Agent: edged-health\r\n\r\n"
        );
        assert_eq!(authority(&h.clone().host("www.example")), "www.example");
        let six = HttpCheck::get("[2001:db8::1]:443".parse().unwrap());
        assert_eq!(authority(&six), "[2001:db8::1]");
    }

    #[test]
    fn one_verdict_for_status_and_body() {
        let h = HttpCheck::get("192.0.2.1:80".parse().unwrap());
        let j = Judge::new(&h.clone().expect(&[200, 204]).body("ok"));
        assert_eq!(j.answer(204, b"all ok"), Ok(()));
        assert_eq!(j.answer(503, b"ok"), Err(Failure::Status(503)));
        assert_eq!(j.answer(200, b"down"), Err(Failure::BodyMismatch));
        let many = Judge::new(&h.clone().expect(&[200, 201, 202, 203, 204, 205]));
        assert_eq!(many.status(205), Ok(()));
        assert_eq!(many.status(206), Err(Failure::Status(206)));
        assert!(!many.wants_body() && j.wants_body());
        assert!(Judge::new(&h.method("head")).head_only);
    }
}
