//! HTTP and HTTPS: one HTTP/1.1 request with the VIP's Host header and TLS
//! server name, so it exercises the proxy's route to the application.
//!
//! The client is small and written for this one job: the request is a few
//! bytes written at once; the response head is parsed by `httparse`; the
//! body is framed by Content-Length, chunked encoding, or the end of the
//! connection, and bounded. The connection is kept for the check's next
//! attempt when the response allows it. At 10,000 checks a second this
//! costs a fraction of a general client (no task, channel or header map
//! per request) and a few hundred bytes per kept connection.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::tcp::connect;
use crate::spec::CheckKind;
use std::time::Duration;

/// Bodies longer than this fail the check rather than fill memory.
pub(super) const MAX_BODY: usize = 64 * 1024;

/// Response heads longer than this are not an answer a health check wants.
const MAX_HEAD: usize = 16 * 1024;

/// Headers parsed per response.
const MAX_HEADERS: usize = 48;

/// Starting size of a connection's read buffer (grows while a response
/// needs it, shrinks back after).
const BUF_START: usize = 512;

/// A byte stream: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A kept-alive connection of one check, reused by its next attempt: a
/// fresh TCP (and TLS) handshake per attempt costs several times the
/// request itself.
pub struct HttpConn {
    io: Stream,
    /// Bytes read and not yet consumed (always empty between attempts).
    buf: Vec<u8>,
}

/// The connection's socket.
enum Stream {
    Tcp(tokio::net::TcpStream),
    /// TLS over TCP.
    Tls(Box<dyn Io>),
}

impl Stream {
    fn io(&mut self) -> &mut dyn Io {
        match self {
            Stream::Tcp(s) => s,
            Stream::Tls(s) => s.as_mut(),
        }
    }
}

impl HttpConn {
    /// Plain TCP, not TLS.
    pub fn is_plain(&self) -> bool {
        matches!(self.io, Stream::Tcp(_))
    }

    /// The socket of a plain (not TLS) connection, taken off the runtime's
    /// reactor (for the checker's kept-connection loop).
    pub fn into_plain(self) -> Option<std::net::TcpStream> {
        match self.io {
            Stream::Tcp(s) => s.into_std().ok(),
            Stream::Tls(_) => None,
        }
    }
}

/// How one exchange ended.
pub(crate) enum Failure {
    /// Nothing came back (the reason says how): on a kept connection, the
    /// server closed it while idle; worth one retry on a new connection.
    Stale(String),
    /// A real failure, in words.
    Reason(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Reason(s)
    }
}

/// What an exchange got: the status and whether the connection may be
/// used again. The body (de-chunked) is in `body`.
struct Response {
    status: u16,
    reusable: bool,
}

/// The request bytes of an HTTP check: method, path, the VIP's Host.
pub fn request(kind: &CheckKind) -> Vec<u8> {
    let CheckKind::Http {
        target,
        method,
        path,
        host,
        ..
    } = kind
    else {
        unreachable!("http::request takes an Http check")
    };
    let host = host_name(host.as_deref(), target);
    format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: edged-health\r\n\r\n")
        .into_bytes()
}

/// The Host (HTTP/1.1) or `:authority` (HTTP/2) of a check: the VIP's
/// name if set, else the proxy's address.
pub(super) fn host_name(host: Option<&str>, target: &std::net::SocketAddr) -> String {
    match (host, target) {
        (Some(h), _) => h.to_string(),
        (None, std::net::SocketAddr::V4(a)) => a.ip().to_string(),
        (None, std::net::SocketAddr::V6(a)) => format!("[{}]", a.ip()),
    }
}

/// Whether a check sends HEAD (no body in the answer), and whether it
/// reads the body.
pub(crate) fn head_and_body(kind: &CheckKind) -> (bool, bool) {
    let CheckKind::Http {
        method,
        body_contains,
        ..
    } = kind
    else {
        unreachable!("an HTTP check")
    };
    (method.eq_ignore_ascii_case("HEAD"), body_contains.is_some())
}

/// Whether an answer passes the check: its status, then its body.
pub(crate) fn judge(kind: &CheckKind, status: u16, body: &[u8]) -> Result<(), String> {
    let CheckKind::Http {
        expect_status,
        body_contains,
        ..
    } = kind
    else {
        unreachable!("an HTTP check")
    };
    status_ok(expect_status, status)?;
    body_ok(body_contains.as_deref(), body)
}

/// Whether the status is one the check expects (HTTP/1.1 and HTTP/2).
pub(crate) fn status_ok(expect: &[u16], status: u16) -> Result<(), String> {
    if expect.contains(&status) {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

/// Whether the body holds the text the check looks for, if any.
pub(crate) fn body_ok(needle: Option<&str>, body: &[u8]) -> Result<(), String> {
    match needle {
        Some(n) if !String::from_utf8_lossy(body).contains(n) => Err("body mismatch".into()),
        _ => Ok(()),
    }
}

/// One attempt: `req` (from [`request`]) on the kept connection or a new one.
pub async fn check(
    kind: &CheckKind,
    req: &[u8],
    source: Option<IpAddr>,
    conn: &mut Option<HttpConn>,
) -> Result<(), String> {
    let (head_only, want_body) = head_and_body(kind);
    let mut body = Vec::new();
    // Reuse the previous attempt's connection; if the server closed it
    // meanwhile (idle timeout, request limit), one retry on a new
    // connection, so a stale connection is not a failure.
    let (resp, c) = match conn.take() {
        Some(mut c) => match exchange(&mut c, req, head_only, want_body, &mut body).await {
            Ok(r) => (r, c),
            Err(Failure::Stale(_)) => {
                Box::pin(fresh(kind, source, req, head_only, want_body, &mut body)).await?
            }
            Err(Failure::Reason(r)) => return Err(r),
        },
        // Boxed: connecting (TCP, TLS) is rare with kept connections and its
        // future is large; the attempt's own future stays small to move.
        None => Box::pin(fresh(kind, source, req, head_only, want_body, &mut body)).await?,
    };
    if resp.reusable {
        *conn = Some(c);
    }
    judge(kind, resp.status, &body)
}

/// One exchange on a new connection.
async fn fresh(
    kind: &CheckKind,
    source: Option<IpAddr>,
    req: &[u8],
    head_only: bool,
    want_body: bool,
    body: &mut Vec<u8>,
) -> Result<(Response, HttpConn), String> {
    let mut c = open(kind, source).await?;
    match exchange(&mut c, req, head_only, want_body, body).await {
        Ok(r) => Ok((r, c)),
        Err(Failure::Stale(r)) => Err(r),
        Err(Failure::Reason(r)) => Err(r),
    }
}

/// A new connection: TCP, then TLS if configured.
async fn open(kind: &CheckKind, source: Option<IpAddr>) -> Result<HttpConn, String> {
    let CheckKind::Http {
        target,
        tls,
        host,
        ca_file,
        tls_verify,
        ..
    } = kind
    else {
        unreachable!("http::open takes an Http check")
    };
    let stream = connect(*target, source).await?;
    let io = if *tls {
        let name = match host {
            Some(h) => ServerName::try_from(h.clone())
                .map_err(|e| format!("tls: bad server name {h}: {e}"))?,
            None => ServerName::IpAddress(target.ip().into()),
        };
        let config = tls_config(ca_file.as_deref(), *tls_verify)?;
        let tls_stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, stream)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        Stream::Tls(Box::new(tls_stream))
    } else {
        Stream::Tcp(stream)
    };
    Ok(HttpConn {
        io,
        buf: Vec::with_capacity(BUF_START),
    })
}

/// Past this much unconsumed input an answer is refused.
pub(crate) const MAX_BUFFERED: usize = MAX_HEAD + 2 * MAX_BODY;

/// Reads more bytes into `c.buf`; 0 means the peer closed.
async fn fill(c: &mut HttpConn) -> Result<usize, String> {
    if c.buf.len() > MAX_BUFFERED {
        return Err("response too long".into());
    }
    if c.buf.capacity() - c.buf.len() < 256 {
        c.buf.reserve(c.buf.len().max(BUF_START));
    }
    c.io.io()
        .read_buf(&mut c.buf)
        .await
        .map_err(|e| super::io_reason(&e))
}

/// Writes `req`, reads one response. The de-chunked body goes to `body`
/// when `want_body`.
async fn exchange(
    c: &mut HttpConn,
    req: &[u8],
    head_only: bool,
    want_body: bool,
    body: &mut Vec<u8>,
) -> Result<Response, Failure> {
    c.buf.clear();
    // A write or read error before any byte of the answer on a kept
    // connection is what a server's idle close looks like.
    if let Err(e) = c.io.io().write_all(req).await {
        return Err(Failure::Stale(super::io_reason(&e)));
    }
    if let Err(e) = c.io.io().flush().await {
        return Err(Failure::Stale(super::io_reason(&e)));
    }
    let mut eof = false;
    loop {
        if let Some(p) = answered(&c.buf, eof, head_only, want_body, body)? {
            return Ok(finish(&mut c.buf, p, eof));
        }
        match fill(c).await {
            Ok(0) => eof = true,
            Ok(_) => {}
            Err(e) if c.buf.is_empty() => return Err(Failure::Stale(e)),
            Err(e) => return Err(e.into()),
        }
    }
}

/// What the bytes read so far make: a whole answer, more needed (`None`),
/// or a failure (a close before any byte of the answer is stale).
pub(crate) fn answered(
    buf: &[u8],
    eof: bool,
    head_only: bool,
    want_body: bool,
    body: &mut Vec<u8>,
) -> Result<Option<Parsed>, Failure> {
    if (!buf.is_empty() || eof)
        && let Some(p) = parse_response(buf, eof, head_only, want_body, body)?
    {
        return Ok(Some(p));
    }
    if eof {
        let closed = "closed mid-response".to_string();
        return Err(if buf.is_empty() {
            Failure::Stale(closed)
        } else {
            closed.into()
        });
    }
    Ok(None)
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

/// How a check says a timeout.
pub(crate) fn timed_out(timeout: Duration) -> String {
    format!("timeout after {}ms", timeout.as_millis())
}

/// One whole response at the start of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub status: u16,
    /// Where the response ends in the buffer.
    pub end: usize,
    /// The connection may carry another request: keep-alive, framed, and
    /// nothing after the response.
    pub reusable: bool,
}

/// Parses one response (after any 1xx answers) at the start of `buf`;
/// `eof`: the peer has closed, nothing more will come. `Ok(None)`: more
/// bytes are needed. The body, de-chunked, goes to `body` when
/// `want_body`. Pure: the exchange runs it on what it has read so far, the
/// fuzz target on anything.
pub fn parse_response(
    buf: &[u8],
    eof: bool,
    head_only: bool,
    want_body: bool,
    body: &mut Vec<u8>,
) -> Result<Option<Parsed>, String> {
    body.clear();
    let too_long = || format!("body longer than {MAX_BODY} bytes");
    let mut start = 0;
    let (status, head_end, framing, keep_alive) = loop {
        match parse_head(&buf[start..])? {
            Some(Head::Interim(len)) => start += len,
            Some(Head::Final {
                status,
                len,
                framing,
                keep_alive,
            }) => break (status, start + len, framing, keep_alive),
            None if buf.len() - start > MAX_HEAD => {
                return Err("invalid response: head too long".into());
            }
            None => return Ok(None),
        }
    };
    let framing = if head_only || status == 204 || status == 304 {
        Framing::Length(0)
    } else {
        framing
    };
    let (end, keep) = match framing {
        Framing::Length(n) => {
            if n > MAX_BODY {
                return Err(too_long());
            }
            if buf.len() < head_end + n {
                return Ok(None);
            }
            if want_body {
                body.extend_from_slice(&buf[head_end..head_end + n]);
            }
            (head_end + n, keep_alive)
        }
        Framing::Chunked => {
            let (mut at, mut total) = (head_end, 0);
            loop {
                match next_chunk(&buf[at..])? {
                    Chunk::Need => return Ok(None),
                    Chunk::Data { start, len, next } => {
                        total += len;
                        if total > MAX_BODY {
                            return Err(too_long());
                        }
                        if want_body {
                            body.extend_from_slice(&buf[at + start..at + start + len]);
                        }
                        at += next;
                    }
                    Chunk::End { next } => break (at + next, keep_alive),
                }
            }
        }
        Framing::UntilClose => {
            if buf.len() - head_end > MAX_BODY {
                return Err(too_long());
            }
            if !eof {
                return Ok(None);
            }
            if want_body {
                body.extend_from_slice(&buf[head_end..]);
            }
            (buf.len(), false)
        }
    };
    Ok(Some(Parsed {
        status,
        end,
        // Bytes after the response: the server is out of step.
        reusable: keep && end == buf.len(),
    }))
}

/// How the body of a response ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// A 1xx answer of `len` bytes; the real one follows.
    Interim(usize),
    Final {
        status: u16,
        len: usize,
        framing: Framing,
        keep_alive: bool,
    },
}

/// Parses a response head at the start of `buf`; `None` while incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut headers);
    let len = match r.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("invalid response".into()),
    };
    let status = r.code.ok_or("invalid response")?;
    if (100..200).contains(&status) && status != 101 {
        return Ok(Some(Head::Interim(len)));
    }
    let mut keep_alive = r.version == Some(1);
    let mut length = None;
    let mut chunked = false;
    for h in r.headers.iter() {
        let v = std::str::from_utf8(h.value).map_err(|_| "invalid response")?;
        if h.name.eq_ignore_ascii_case("content-length") {
            let n: usize = v
                .trim()
                .parse()
                .map_err(|_| "invalid response: content-length")?;
            if length.is_some_and(|l| l != n) {
                return Err("invalid response: content-length".into());
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            if !chunked {
                return Err("invalid response: transfer-encoding".into());
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in v.split(',') {
                let t = token.trim();
                if t.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if t.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    // Chunked wins over a length (RFC 9112 6.3), and then the connection
    // is not trusted for another request.
    let framing = match (chunked, length) {
        (true, Some(_)) => {
            keep_alive = false;
            Framing::Chunked
        }
        (true, None) => Framing::Chunked,
        (false, Some(n)) => Framing::Length(n),
        (false, None) => Framing::UntilClose,
    };
    Ok(Some(Head::Final {
        status,
        len,
        framing,
        keep_alive,
    }))
}

#[derive(Debug, PartialEq, Eq)]
enum Chunk {
    /// More bytes needed.
    Need,
    /// Data at `start..start + len`; the next chunk starts at `next`.
    Data {
        start: usize,
        len: usize,
        next: usize,
    },
    /// The last chunk and trailers end at `next`.
    End { next: usize },
}

/// Parses the chunk at the start of `b`.
fn next_chunk(b: &[u8]) -> Result<Chunk, String> {
    let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
        return if b.len() > 1024 {
            Err("invalid response: chunk size".into())
        } else {
            Ok(Chunk::Need)
        };
    };
    let line = std::str::from_utf8(&b[..eol]).map_err(|_| "invalid response: chunk size")?;
    let size = line.split(';').next().unwrap_or("").trim();
    let len = usize::from_str_radix(size, 16).map_err(|_| "invalid response: chunk size")?;
    if size.is_empty() || size.len() > 8 {
        return Err("invalid response: chunk size".into());
    }
    if len > MAX_BODY {
        return Err(format!("body longer than {MAX_BODY} bytes"));
    }
    let start = eol + 2;
    if len == 0 {
        // Trailers (ignored) up to an empty line.
        let mut at = start;
        loop {
            let Some(e) = b[at..].windows(2).position(|w| w == b"\r\n") else {
                return if b.len() - at > MAX_HEAD {
                    Err("invalid response: trailers".into())
                } else {
                    Ok(Chunk::Need)
                };
            };
            at += e + 2;
            if e == 0 {
                return Ok(Chunk::End { next: at });
            }
        }
    }
    if b.len() < start + len + 2 {
        return Ok(Chunk::Need);
    }
    if &b[start + len..start + len + 2] != b"\r\n" {
        return Err("invalid response: chunk".into());
    }
    Ok(Chunk::Data {
        start,
        len,
        next: start + len + 2,
    })
}

pub(super) fn tls_config(
    ca_file: Option<&std::path::Path>,
    verify: bool,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?;
    if !verify {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("tls: ca_file {}: {e}", path.display()))?;
            for c in certs {
                let c = c.map_err(|e| format!("tls: ca_file {}: {e}", path.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("tls: ca_file {}: {e}", path.display()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// `tls_verify: false`: the operator chose to accept any certificate.
#[derive(Debug)]
struct NoVerify;

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(b: &[u8]) -> Head {
        parse_head(b).unwrap().unwrap()
    }

    #[test]
    fn heads_give_status_framing_and_keep_alive() {
        let h = head(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
        assert_eq!(
            h,
            Head::Final {
                status: 200,
                len: 38,
                framing: Framing::Length(3),
                keep_alive: true
            }
        );
        let h = head(
            b"HTTP/1.1 503 x\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n",
        );
        assert!(matches!(
            h,
            Head::Final {
                status: 503,
                framing: Framing::Chunked,
                keep_alive: false,
                ..
            }
        ));
        // HTTP/1.0: closes unless asked to keep alive; no length: until close.
        let h = head(b"HTTP/1.0 200 OK\r\n\r\n");
        assert!(matches!(
            h,
            Head::Final {
                framing: Framing::UntilClose,
                keep_alive: false,
                ..
            }
        ));
        let h = head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
        assert!(matches!(
            h,
            Head::Final {
                keep_alive: true,
                ..
            }
        ));
        // Chunked and a length: chunked, and the connection is not reused.
        let h = head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(matches!(
            h,
            Head::Final {
                framing: Framing::Chunked,
                keep_alive: false,
                ..
            }
        ));
        assert_eq!(head(b"HTTP/1.1 100 Continue\r\n\r\n"), Head::Interim(25));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(), None);
    }

    #[test]
    fn bad_heads_are_invalid_responses() {
        for bad in [
            &b"\x00\x01garbage\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
        ] {
            let e = parse_head(bad).unwrap_err();
            assert!(e.starts_with("invalid response"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn chunks_parse_incrementally_and_bad_ones_fail() {
        let body = b"4;ext=1\r\nabcd\r\n0\r\nX-Trailer: 1\r\n\r\nrest";
        assert_eq!(
            next_chunk(body).unwrap(),
            Chunk::Data {
                start: 9,
                len: 4,
                next: 15
            }
        );
        assert_eq!(
            next_chunk(&body[15..]).unwrap(),
            Chunk::End { next: 3 + 14 + 2 }
        );
        for cut in 0..15 {
            assert_eq!(next_chunk(&body[..cut]).unwrap(), Chunk::Need, "cut {cut}");
        }
        assert_eq!(next_chunk(b"0\r\nX: 1\r\n").unwrap(), Chunk::Need);
        for bad in [&b"zz\r\n"[..], b"\r\n", b"4\r\nabcdXY", b"fffffffff\r\n"] {
            assert!(next_chunk(bad).is_err(), "{bad:?}");
        }
        assert!(
            next_chunk(b"100000\r\n")
                .unwrap_err()
                .starts_with("body longer")
        );
    }

    const ANSWERS: [&[u8]; 4] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n1;a=b\r\n!\r\n0\r\nT: 1\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nall ok\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ];

    #[test]
    fn every_prefix_needs_more_and_the_whole_answer_parses() {
        let want = [
            (200, &b"ok\n"[..], true),
            (503, b"ok!", true),
            (200, b"all ok\n", false),
            (204, b"", true),
        ];
        let mut body = Vec::new();
        for (a, (status, text, reusable)) in ANSWERS.iter().zip(want) {
            for cut in 0..a.len() {
                assert_eq!(
                    parse_response(&a[..cut], false, false, true, &mut body),
                    Ok(None),
                    "{a:?} cut at {cut}"
                );
            }
            let p = parse_response(a, true, false, true, &mut body)
                .unwrap()
                .unwrap();
            assert_eq!(
                (p.status, body.as_slice(), p.end),
                (status, text, a.len()),
                "{a:?}"
            );
            if reusable {
                let p = parse_response(a, false, false, true, &mut body)
                    .unwrap()
                    .unwrap();
                assert!(p.reusable, "{a:?}");
                // Bytes after the answer: complete, but not reusable.
                let mut more = a.to_vec();
                more.extend_from_slice(b"HTTP/1.1 200");
                let p = parse_response(&more, false, false, true, &mut body)
                    .unwrap()
                    .unwrap();
                assert!(!p.reusable && p.end == a.len(), "{a:?}");
            }
        }
        // HEAD: no body whatever the length says.
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
        let p = parse_response(head, false, true, true, &mut body)
            .unwrap()
            .unwrap();
        assert_eq!((p.end, p.reusable), (head.len(), true));
    }

    #[test]
    fn seeded_garbage_and_mutations_never_panic_and_stay_bounded() {
        let mut rng = edged_testlab::Rng(0x5eed_0000_4774_0001);
        let mut body = Vec::new();
        for _ in 0..20_000 {
            let mut b = ANSWERS[rng.below(ANSWERS.len())].to_vec();
            for _ in 0..1 + rng.below(4) {
                match rng.below(4) {
                    0 if !b.is_empty() => {
                        let at = rng.below(b.len());
                        b[at] = rng.next_u64() as u8;
                    }
                    0 | 1 => b.truncate(rng.below(b.len() + 1)),
                    2 => {
                        let at = rng.below(b.len() + 1);
                        let junk: Vec<u8> =
                            (0..rng.below(16)).map(|_| rng.next_u64() as u8).collect();
                        b.splice(at..at, junk);
                    }
                    _ => b = (0..rng.below(200)).map(|_| rng.next_u64() as u8).collect(),
                }
            }
            let eof = rng.below(2) == 1;
            if let Ok(Some(p)) = parse_response(&b, eof, false, true, &mut body) {
                assert!(p.end <= b.len() && body.len() <= MAX_BODY);
            }
            // A prefix called complete stays complete, with the same end
            // (what the fuzz target checks on arbitrary input).
            let cut = rng.below(b.len() + 1);
            if let Ok(Some(p)) = parse_response(&b[..cut], false, false, true, &mut body) {
                let w = parse_response(&b, true, false, true, &mut body);
                assert_eq!(
                    w.map(|w| w.map(|w| (w.status, w.end))),
                    Ok(Some((p.status, p.end)))
                );
            }
        }
    }
}
