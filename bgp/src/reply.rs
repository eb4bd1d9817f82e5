//! Pure parser for BIRD's control-socket replies (no IO, no tokio).
//!
//! Wire format (BIRD `doc/reply_codes`): every line ends with `\n` and is one of
//! - `DDDD-text`  a line of a reply that continues,
//! - `DDDD text`  the last line of a reply (`DDDD` alone is allowed too),
//! - ` text`      a continuation of the previous coded line,
//! - `+DDDD text` / `+text` an asynchronous (spontaneous) line, outside any reply.

use thiserror::Error;

/// Longest line accepted; BIRD's own lines are far shorter.
pub const MAX_LINE: usize = 64 * 1024;

/// A malformed byte sequence on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReplyError {
    #[error("BIRD control line is empty; the socket peer is not BIRD or the stream is out of sync")]
    EmptyLine,
    #[error("BIRD control line {line:?} has no 4-digit code; the socket peer is not BIRD")]
    BadCode { line: String },
    #[error("BIRD control line {line:?} has separator {sep:?} after its code (want '-' or ' ')")]
    BadSeparator { line: String, sep: char },
    #[error("continuation line {line:?} arrived before any coded line; the stream is out of sync")]
    OrphanContinuation { line: String },
    #[error("BIRD control line is {len} bytes, longer than the {max}-byte limit")]
    TooLong { len: usize, max: usize },
    #[error("BIRD control line is not UTF-8")]
    NotUtf8,
}

/// How a single line relates to the reply around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// `DDDD-`: more lines follow.
    More,
    /// `DDDD `: the reply ends here.
    Last,
    /// ` text`: continues the previous coded line.
    Continuation,
    /// `+...`: spontaneous output.
    Async,
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub kind: LineKind,
    /// The code; for a continuation, `None`; for an async line, its code if it has one.
    pub code: Option<u16>,
    pub text: String,
}

/// A complete reply: all lines with the code that applies to each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Code of the last line: the reply's status.
    pub code: u16,
    pub lines: Vec<(u16, String)>,
}

/// What feeding one line produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The reply goes on.
    Pending,
    /// A spontaneous line (not part of the reply).
    Async(String),
    /// The reply is complete.
    Done(Reply),
}

// === impl Line ===

fn code_of(b: &[u8]) -> Option<u16> {
    if b.len() < 4 || !b[..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        b[..4]
            .iter()
            .fold(0u16, |a, d| a * 10 + u16::from(d - b'0')),
    )
}

/// Parse one line (without or with its trailing `\n`).
pub fn parse_line(raw: &[u8]) -> Result<Line, ReplyError> {
    if raw.len() > MAX_LINE {
        return Err(ReplyError::TooLong {
            len: raw.len(),
            max: MAX_LINE,
        });
    }
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let s = std::str::from_utf8(raw).map_err(|_| ReplyError::NotUtf8)?;
    let Some(&first) = raw.first() else {
        return Err(ReplyError::EmptyLine);
    };
    if first == b' ' {
        return Ok(Line {
            kind: LineKind::Continuation,
            code: None,
            text: s[1..].to_string(),
        });
    }
    if first == b'+' {
        let rest = &s[1..];
        let code = code_of(rest.as_bytes());
        let text = if code.is_some() {
            rest[4..].trim_start_matches([' ', '-'])
        } else {
            rest
        };
        return Ok(Line {
            kind: LineKind::Async,
            code,
            text: text.to_string(),
        });
    }
    let code = code_of(raw).ok_or_else(|| ReplyError::BadCode {
        line: s.to_string(),
    })?;
    let (kind, text) = match raw.get(4) {
        None => (LineKind::Last, ""),
        Some(b' ') => (LineKind::Last, &s[5..]),
        Some(b'-') => (LineKind::More, &s[5..]),
        Some(_) => {
            let sep = s[4..].chars().next().unwrap_or('?');
            return Err(ReplyError::BadSeparator {
                line: s.to_string(),
                sep,
            });
        }
    };
    Ok(Line {
        kind,
        code: Some(code),
        text: text.to_string(),
    })
}

// === impl Assembler ===

/// Collects lines into replies. Feed it every line read from the socket.
#[derive(Debug, Default)]
pub struct Assembler {
    lines: Vec<(u16, String)>,
}

impl Assembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed one line; on error the partial reply is discarded.
    pub fn push(&mut self, raw: &[u8]) -> Result<Step, ReplyError> {
        let line = match parse_line(raw) {
            Ok(l) => l,
            Err(e) => {
                self.lines.clear();
                return Err(e);
            }
        };
        match line.kind {
            LineKind::Async => Ok(Step::Async(line.text)),
            LineKind::Continuation => match self.lines.last() {
                Some(&(code, _)) => {
                    self.lines.push((code, line.text));
                    Ok(Step::Pending)
                }
                None => Err(ReplyError::OrphanContinuation { line: line.text }),
            },
            LineKind::More => {
                self.lines.push((line.code.unwrap_or(0), line.text));
                Ok(Step::Pending)
            }
            LineKind::Last => {
                let code = line.code.unwrap_or(0);
                self.lines.push((code, line.text));
                Ok(Step::Done(Reply {
                    code,
                    lines: std::mem::take(&mut self.lines),
                }))
            }
        }
    }
}

// === impl Reply ===

impl Reply {
    /// True for 8xxx (run-time) and 9xxx (parse-time) errors.
    pub fn is_error(&self) -> bool {
        self.code >= 8000
    }

    /// The text of the line(s) carrying the final code.
    pub fn message(&self) -> String {
        let v: Vec<&str> = self
            .lines
            .iter()
            .filter(|(c, _)| *c == self.code)
            .map(|(_, t)| t.as_str())
            .collect();
        v.join("\n")
    }

    /// Text of every line, in order.
    pub fn text_lines(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(|(_, t)| t.as_str())
    }
}

/// A `file:line:column message` location as BIRD prints it for config errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLocation {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// Parse `FILE:LINE:COL MESSAGE` (8002 replies and `bird -p` stderr, with or without `bird: `).
pub fn parse_config_location(text: &str) -> Option<ConfigLocation> {
    let text = text.trim().strip_prefix("bird: ").unwrap_or(text.trim());
    let (loc, message) = text.split_once(' ')?;
    let mut it = loc.rsplitn(3, ':');
    let column = it.next()?.parse().ok()?;
    let line = it.next()?.parse().ok()?;
    let file = it.next()?.to_string();
    Some(ConfigLocation {
        file,
        line,
        column,
        message: message.trim().to_string(),
    })
}
