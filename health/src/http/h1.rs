//! HTTP/1.1 checks on a task: one request on the check's kept connection
//! (or a new one), its answer read and judged.
//!
//! The client is small and written for this one job: the request is a few
//! bytes written at once; the response is parsed by [`super::parse`]; the
//! connection is kept for the check's next attempt when the response
//! allows it. At 10,000 checks a second this costs a fraction of a general
//! client (no task, channel or header map per request) and a few hundred
//! bytes per kept connection.

use std::net::IpAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::parse::{Parsed, answered};
use super::{ExchangeError, Judge, MAX_BUFFERED, once_more};
use crate::outcome::Failure;
use crate::probe::tcp::connect;
use crate::spec::HttpCheck;

/// Starting size of a connection's read buffer (grows while a response
/// needs it, shrinks back after).
const BUF_START: usize = 512;

/// A byte stream: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A kept-alive connection of one check, reused by its next attempt: a
/// fresh TCP (and TLS) handshake per attempt costs several times the
/// request itself.
pub(crate) struct Conn {
    transport: Transport,
    /// Bytes read and not yet consumed (always empty between attempts).
    buf: Vec<u8>,
}

/// What the connection runs on.
enum Transport {
    Plain(TcpStream),
    Tls(Box<dyn Io>),
}

impl Transport {
    fn io(&mut self) -> &mut dyn Io {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(s) => s.as_mut(),
        }
    }
}

impl Conn {
    /// Whether it is plain TCP.
    pub(crate) fn is_plain(&self) -> bool {
        matches!(self.transport, Transport::Plain(_))
    }

    /// The socket of a plain (not TLS) connection, taken off the runtime's
    /// reactor (for the checker's kept-connection loop).
    pub(crate) fn into_plain(self) -> Option<std::net::TcpStream> {
        match self.transport {
            Transport::Plain(s) => s.into_std().ok(),
            Transport::Tls(_) => None,
        }
    }
}

/// What an exchange got: the status and whether the connection may be
/// used again. The body (de-chunked) is in `body`.
struct Response {
    status: u16,
    reusable: bool,
}

/// One attempt: `req` (the check's request bytes) on the kept connection
/// or a new one, judged by `judge`.
pub(crate) async fn check(
    h: &HttpCheck,
    judge: &Judge,
    req: &[u8],
    source: Option<IpAddr>,
    conn: &mut Option<Conn>,
) -> Result<(), Failure> {
    let mut body = Vec::new();
    // Reuse the previous attempt's connection; a stale one earns one more
    // try on a new connection.
    let (resp, c) = match conn.take() {
        Some(mut c) => {
            let first = exchange(&mut c, req, judge, &mut body)
                .await
                .map(|r| (r, c));
            // Boxed: connecting (TCP, TLS) is rare with kept connections and
            // its future is large; the attempt's own future stays small.
            once_more(first, || Box::pin(fresh(h, judge, source, req, &mut body))).await?
        }
        None => Box::pin(fresh(h, judge, source, req, &mut body))
            .await
            .map_err(|e| match e {
                ExchangeError::Stale(f) | ExchangeError::Failed(f) => f,
            })?,
    };
    if resp.reusable {
        *conn = Some(c);
    }
    judge.answer(resp.status, &body)
}

/// One exchange on a new connection.
async fn fresh(
    h: &HttpCheck,
    judge: &Judge,
    source: Option<IpAddr>,
    req: &[u8],
    body: &mut Vec<u8>,
) -> Result<(Response, Conn), ExchangeError> {
    let mut c = open(h, source).await?;
    let r = exchange(&mut c, req, judge, body).await?;
    Ok((r, c))
}

/// A new connection: TCP, then TLS if configured.
async fn open(h: &HttpCheck, source: Option<IpAddr>) -> Result<Conn, Failure> {
    let stream = connect(h.target, source).await?;
    let transport = if h.tls {
        Transport::Tls(Box::new(super::tls::connect(stream, h, None).await?))
    } else {
        Transport::Plain(stream)
    };
    Ok(Conn {
        transport,
        buf: Vec::with_capacity(BUF_START),
    })
}

/// Reads more bytes into `c.buf`; 0 means the peer closed.
async fn fill(c: &mut Conn) -> Result<usize, Failure> {
    if c.buf.len() > MAX_BUFFERED {
        return Err(Failure::Protocol("response too long".into()));
    }
    if c.buf.capacity() - c.buf.len() < 256 {
        c.buf.reserve(c.buf.len().max(BUF_START));
    }
    c.transport
        .io()
        .read_buf(&mut c.buf)
        .await
        .map_err(|e| Failure::io(&e))
}

/// Writes `req`, reads one response. The de-chunked body goes to `body`
/// when the check reads it.
async fn exchange(
    c: &mut Conn,
    req: &[u8],
    judge: &Judge,
    body: &mut Vec<u8>,
) -> Result<Response, ExchangeError> {
    c.buf.clear();
    // A write or read error before any byte of the answer on a kept
    // connection is what a server's idle close looks like.
    let io = c.transport.io();
    if let Err(e) = io.write_all(req).await {
        return Err(ExchangeError::Stale(Failure::io(&e)));
    }
    if let Err(e) = io.flush().await {
        return Err(ExchangeError::Stale(Failure::io(&e)));
    }
    let mut eof = false;
    loop {
        if let Some(p) = answered(&c.buf, eof, judge.head_only, judge.wants_body(), body)? {
            return Ok(finish(&mut c.buf, p, eof));
        }
        match fill(c).await {
            Ok(0) => eof = true,
            Ok(_) => {}
            Err(e) if c.buf.is_empty() => return Err(ExchangeError::Stale(e)),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The exchange's result; the buffer is left empty (and small) for the
/// next one.
fn finish(buf: &mut Vec<u8>, parsed: Parsed, eof: bool) -> Response {
    buf.clear();
    if buf.capacity() > 4 * BUF_START {
        *buf = Vec::with_capacity(BUF_START);
    }
    Response {
        status: parsed.status,
        reusable: parsed.reusable && !eof,
    }
}
