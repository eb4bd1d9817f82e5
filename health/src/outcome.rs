//! What one attempt gave: a latency and a pass or a typed failure. The
//! failure's words are what operators read (`edgectl proxies`, logs); its
//! [`class`](Failure::class) is the bounded label metrics count by.

use std::time::Duration;

use serde::Serialize;

/// Why an attempt failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The proxy refused the connection.
    Refused,
    /// The connection was reset.
    Reset,
    /// The connection was aborted.
    Aborted,
    /// No route to the proxy (`host` or `network` unreachable).
    Unreachable(&'static str),
    /// The check's source address is not on this host.
    SourceUnavailable,
    /// No answer within the check's timeout.
    Timeout(Duration),
    /// An exec check ran past its timeout; its process group was killed.
    ExecTimeout(Duration),
    /// An answer with a status the check does not expect.
    Status(u16),
    /// The body lacks the text the check looks for.
    BodyMismatch,
    /// The body is longer than a check reads.
    BodyTooLong(usize),
    /// The connection closed before the answer was whole.
    Closed,
    /// The answer broke the protocol (HTTP/1.1, HTTP/2): in words.
    Protocol(String),
    /// TLS failed: in words.
    Tls(String),
    /// A DNS answer with another response code.
    DnsRcode(u8),
    /// An exec check exited with this status.
    Exit(i32),
    /// An exec check was killed by this signal.
    Signal(i32),
    /// Anything else (an I/O error, a program that cannot run): in words.
    Other(String),
}

impl Failure {
    /// The failure of an I/O error, the way operators say them.
    pub fn io(e: &std::io::Error) -> Failure {
        use std::io::ErrorKind::*;
        match e.kind() {
            ConnectionRefused => Failure::Refused,
            ConnectionReset => Failure::Reset,
            ConnectionAborted => Failure::Aborted,
            UnexpectedEof => Failure::Closed,
            HostUnreachable => Failure::Unreachable("host"),
            NetworkUnreachable => Failure::Unreachable("network"),
            AddrNotAvailable => Failure::SourceUnavailable,
            TimedOut => Failure::Other("timed out".into()),
            _ => Failure::Other(e.to_string()),
        }
    }

    /// A short class for a bounded metric label: `refused`, `timeout`,
    /// `status`, `body`, `exit`, `tls`, `dns`, `reset`, `closed`, `other`.
    pub fn class(&self) -> &'static str {
        match self {
            Failure::Refused => "refused",
            Failure::Timeout(_) | Failure::ExecTimeout(_) => "timeout",
            Failure::Status(_) => "status",
            Failure::BodyMismatch | Failure::BodyTooLong(_) => "body",
            Failure::Exit(_) | Failure::Signal(_) => "exit",
            Failure::Tls(_) => "tls",
            Failure::DnsRcode(_) => "dns",
            Failure::Reset => "reset",
            Failure::Closed => "closed",
            _ => "other",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused => f.write_str("connection refused"),
            Failure::Reset => f.write_str("reset by peer"),
            Failure::Aborted => f.write_str("connection aborted"),
            Failure::Unreachable(what) => write!(f, "{what} unreachable"),
            Failure::SourceUnavailable => f.write_str("source address not available"),
            Failure::Timeout(t) => write!(f, "timeout after {}ms", t.as_millis()),
            Failure::ExecTimeout(t) => {
                write!(
                    f,
                    "timeout after {}ms (process group killed)",
                    t.as_millis()
                )
            }
            Failure::Status(s) => write!(f, "status {s}"),
            Failure::BodyMismatch => f.write_str("body mismatch"),
            Failure::BodyTooLong(max) => write!(f, "body longer than {max} bytes"),
            Failure::Closed => f.write_str("closed mid-response"),
            Failure::Protocol(s) | Failure::Other(s) => f.write_str(s),
            Failure::Tls(s) => write!(f, "tls: {s}"),
            Failure::DnsRcode(rc) => write!(f, "dns rcode {rc}"),
            Failure::Exit(c) => write!(f, "exit status {c}"),
            Failure::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// Result of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Time the attempt took.
    pub latency: Duration,
    pub result: Result<(), Failure>,
}

impl Outcome {
    /// A pass that took `latency`.
    pub fn pass(latency: Duration) -> Outcome {
        Outcome {
            latency,
            result: Ok(()),
        }
    }

    /// A failure that took `latency`.
    pub fn fail(latency: Duration, failure: Failure) -> Outcome {
        Outcome {
            latency,
            result: Err(failure),
        }
    }

    /// Whether it passed.
    pub fn ok(&self) -> bool {
        self.result.is_ok()
    }

    /// The failure, if it failed.
    pub fn failure(&self) -> Option<&Failure> {
        self.result.as_ref().err()
    }

    /// `ok`, or why not, in words.
    pub fn reason(&self) -> String {
        match &self.result {
            Ok(()) => "ok".into(),
            Err(f) => f.to_string(),
        }
    }
}

/// As `edgectl` shows it: `{"ok", "reason", "latency" (µs)}`.
impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Outcome", 3)?;
        st.serialize_field("ok", &self.ok())?;
        st.serialize_field("reason", &self.reason())?;
        st.serialize_field("latency", &(self.latency.as_micros() as u64))?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_classes() {
        let ms = Duration::from_millis;
        for (f, words, class) in [
            (Failure::Refused, "connection refused", "refused"),
            (Failure::Timeout(ms(200)), "timeout after 200ms", "timeout"),
            (
                Failure::ExecTimeout(ms(500)),
                "timeout after 500ms (process group killed)",
                "timeout",
            ),
            (Failure::Status(503), "status 503", "status"),
            (Failure::BodyMismatch, "body mismatch", "body"),
            (
                Failure::BodyTooLong(65536),
                "body longer than 65536 bytes",
                "body",
            ),
            (Failure::Closed, "closed mid-response", "closed"),
            (Failure::Tls("bad cert".into()), "tls: bad cert", "tls"),
            (Failure::DnsRcode(3), "dns rcode 3", "dns"),
            (Failure::Exit(2), "exit status 2", "exit"),
            (Failure::Signal(9), "killed by signal 9", "exit"),
            (Failure::Reset, "reset by peer", "reset"),
            (Failure::Unreachable("host"), "host unreachable", "other"),
        ] {
            assert_eq!((f.to_string().as_str(), f.class()), (words, class));
        }
        let o = Outcome::fail(ms(1), Failure::Status(500));
        assert_eq!(
            serde_json::to_value(&o).unwrap(),
            serde_json::json!({"ok": false, "reason": "status 500", "latency": 1000})
        );
    }
}
