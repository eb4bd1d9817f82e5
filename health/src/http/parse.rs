//! The HTTP/1.1 response parser: pure, incremental (the exchange runs it
//! on what it has read so far, the fuzz target on anything), bounded.
//! After any 1xx answers, one response: its status, where it ends, and
//! whether the connection may carry another request; the body framed by
//! Content-Length, chunked encoding or the end of the connection.

use super::{ExchangeError, MAX_BODY, MAX_HEAD};
use crate::outcome::Failure;

/// Headers parsed per response.
const MAX_HEADERS: usize = 48;

fn invalid(what: &str) -> Failure {
    if what.is_empty() {
        Failure::Protocol("invalid response".into())
    } else {
        Failure::Protocol(format!("invalid response: {what}"))
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
) -> Result<Option<Parsed>, ExchangeError> {
    if (!buf.is_empty() || eof)
        && let Some(p) = parse_response(buf, eof, head_only, want_body, body)?
    {
        return Ok(Some(p));
    }
    if eof {
        return Err(if buf.is_empty() {
            ExchangeError::Stale(Failure::Closed)
        } else {
            ExchangeError::Failed(Failure::Closed)
        });
    }
    Ok(None)
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
) -> Result<Option<Parsed>, Failure> {
    body.clear();
    let too_long = || Failure::BodyTooLong(MAX_BODY);
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
                return Err(invalid("head too long"));
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
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Failure> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut headers);
    let len = match r.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(invalid("")),
    };
    let status = r.code.ok_or_else(|| invalid(""))?;
    if (100..200).contains(&status) && status != 101 {
        return Ok(Some(Head::Interim(len)));
    }
    let mut keep_alive = r.version == Some(1);
    let mut length = None;
    let mut chunked = false;
    for h in r.headers.iter() {
        let v = std::str::from_utf8(h.value).map_err(|_| invalid(""))?;
        if h.name.eq_ignore_ascii_case("content-length") {
            let n: usize = v.trim().parse().map_err(|_| invalid("content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(invalid("content-length"));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            if !chunked {
                return Err(invalid("transfer-encoding"));
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
fn next_chunk(b: &[u8]) -> Result<Chunk, Failure> {
    let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
        return if b.len() > 1024 {
            Err(invalid("chunk size"))
        } else {
            Ok(Chunk::Need)
        };
    };
    let line = std::str::from_utf8(&b[..eol]).map_err(|_| invalid("chunk size"))?;
    let size = line.split(';').next().unwrap_or("").trim();
    let len = usize::from_str_radix(size, 16).map_err(|_| invalid("chunk size"))?;
    if size.is_empty() || size.len() > 8 {
        return Err(invalid("chunk size"));
    }
    if len > MAX_BODY {
        return Err(Failure::BodyTooLong(MAX_BODY));
    }
    let start = eol + 2;
    if len == 0 {
        // Trailers (ignored) up to an empty line.
        let mut at = start;
        loop {
            let Some(e) = b[at..].windows(2).position(|w| w == b"\r\n") else {
                return if b.len() - at > MAX_HEAD {
                    Err(invalid("trailers"))
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
        return Err(invalid("chunk"));
    }
    Ok(Chunk::Data {
        start,
        len,
        next: start + len + 2,
    })
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
            let e = parse_head(bad).unwrap_err().to_string();
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
        assert_eq!(
            next_chunk(b"100000\r\n").unwrap_err(),
            Failure::BodyTooLong(MAX_BODY)
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
