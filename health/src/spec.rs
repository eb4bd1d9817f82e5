//! What to check: the checker's own input types (the daemon maps its config
//! onto them).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// Identity of one check: a service of a VIP, on one proxy.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct CheckKey {
    pub vip: String,
    pub service: String,
    pub proxy: String,
}

impl std::fmt::Display for CheckKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}@{}", self.vip, self.service, self.proxy)
    }
}

/// How and how often to check.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckSpec {
    pub kind: CheckKind,
    pub interval: Duration,
    /// Less than `interval`.
    pub timeout: Duration,
    /// Consecutive passes to go up.
    pub rise: u32,
    /// Consecutive failures to go down.
    pub fall: u32,
    /// Fraction of the interval by which start and period vary (0.0-0.5).
    pub jitter: f64,
    /// After going down, stay down at least this long.
    pub hold_down: Option<Duration>,
    /// Source address of the check's packets.
    pub source: Option<IpAddr>,
    /// HTTP(S): keep the connection between attempts (a failure drops it).
    /// `false`: a new connection per attempt, so a proxy that stops
    /// accepting is noticed at once, at a higher cost.
    pub reuse_connection: bool,
}

/// The check itself.
#[derive(Clone, Debug, PartialEq)]
pub enum CheckKind {
    /// TCP connect.
    Tcp { target: SocketAddr },
    /// An HTTP(S) request; passes on an expected status (and body text).
    Http {
        target: SocketAddr,
        tls: bool,
        method: String,
        path: String,
        /// Host header and TLS server name (else the target's address).
        host: Option<String>,
        expect_status: Vec<u16>,
        body_contains: Option<String>,
        /// CA bundle (PEM) for TLS; else the webpki roots.
        ca_file: Option<PathBuf>,
        tls_verify: bool,
        /// HTTP/2 on one connection per proxy shared by every check that
        /// goes there (prior knowledge in clear, ALPN `h2` over TLS).
        http2: bool,
    },
    /// A DNS query over UDP; passes on the expected response code.
    Dns {
        target: SocketAddr,
        query_name: String,
        query_type: u16,
        expect_rcode: u8,
    },
    /// A program; passes on exit status 0. Runs with EDGED_VIP,
    /// EDGED_SERVICE, EDGED_PROXY set, without CAP_NET_ADMIN, CAP_SYS_ADMIN,
    /// CAP_PERFMON and CAP_BPF (through `setpriv`); killed with its process
    /// group on timeout.
    Exec {
        program: PathBuf,
        args: Vec<String>,
        env: Vec<(String, String)>,
    },
}

/// What a check probes, without how it judges the answer or how often:
/// two checks with the same target see the same thing, so a reload that
/// changes only the settings keeps the check's state.
#[derive(Clone, Debug, PartialEq)]
pub enum Target<'a> {
    Tcp(SocketAddr),
    Http {
        target: SocketAddr,
        tls: bool,
        method: &'a str,
        path: &'a str,
        host: Option<&'a str>,
    },
    Dns {
        target: SocketAddr,
        query_name: &'a str,
        query_type: u16,
    },
    Exec {
        program: &'a std::path::Path,
        args: &'a [String],
        env: &'a [(String, String)],
    },
}

impl CheckKind {
    /// What the check probes (see [`Target`]).
    pub fn target(&self) -> Target<'_> {
        match self {
            CheckKind::Tcp { target } => Target::Tcp(*target),
            CheckKind::Http {
                target,
                tls,
                method,
                path,
                host,
                ..
            } => Target::Http {
                target: *target,
                tls: *tls,
                method,
                path,
                host: host.as_deref(),
            },
            CheckKind::Dns {
                target,
                query_name,
                query_type,
                ..
            } => Target::Dns {
                target: *target,
                query_name,
                query_type: *query_type,
            },
            CheckKind::Exec { program, args, env } => Target::Exec { program, args, env },
        }
    }
}
