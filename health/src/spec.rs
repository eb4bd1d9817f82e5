//! What to check: the checker's own input types (the daemon maps its config
//! onto them), with constructors for the common cases.

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

impl CheckKey {
    /// The check of `service` of `vip` on `proxy`.
    pub fn new(vip: &str, service: &str, proxy: &str) -> CheckKey {
        CheckKey {
            vip: vip.into(),
            service: service.into(),
            proxy: proxy.into(),
        }
    }
}

impl std::fmt::Display for CheckKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}@{}", self.vip, self.service, self.proxy)
    }
}

/// How and how often to check.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CheckSpec {
    pub kind: CheckKind,
    pub interval: Duration,
    /// Less than `interval`.
    pub timeout: Duration,
    /// Consecutive passes to go up.
    pub rise: u32,
    /// Consecutive failures to go down.
    pub fall: u32,
    /// After going down, stay down at least this long.
    pub hold_down: Option<Duration>,
    /// Source address of the check's packets.
    pub source: Option<IpAddr>,
    /// HTTP(S): keep the connection between attempts (a failure drops it).
    /// `false`: a new connection per attempt, so a proxy that stops
    /// accepting is noticed at once, at a higher cost.
    pub reuse_connection: bool,
    /// While the check is changing (failing while up, passing while not
    /// yet decided), attempts come this often instead of every `interval`.
    pub fastinter: Duration,
    /// While the check is down, attempts come this often (`None`: every
    /// `interval`); never faster, however it fares.
    pub downinter: Option<Duration>,
}

impl CheckSpec {
    /// `kind` every `interval` with `timeout`, rise 2, fall 3, kept
    /// connections.
    pub fn new(kind: impl Into<CheckKind>, interval: Duration, timeout: Duration) -> CheckSpec {
        CheckSpec {
            kind: kind.into(),
            interval,
            timeout,
            rise: 2,
            fall: 3,
            hold_down: None,
            source: None,
            reuse_connection: true,
            fastinter: Duration::from_millis(10),
            downinter: None,
        }
    }

    /// The period a check in `phase` runs at.
    pub fn period(&self, phase: crate::hysteresis::Phase) -> Duration {
        use crate::hysteresis::Phase;
        match phase {
            Phase::Steady => self.interval,
            Phase::Fast => self.fastinter.min(self.interval),
            Phase::Down => self.downinter.unwrap_or(self.interval),
        }
    }

    /// The same with other rise and fall.
    pub fn rise_fall(mut self, rise: u32, fall: u32) -> CheckSpec {
        self.rise = rise;
        self.fall = fall;
        self
    }
}

/// The check itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CheckKind {
    /// TCP connect.
    Tcp(TcpCheck),
    /// An HTTP(S) request; passes on an expected status (and body text).
    Http(HttpCheck),
    /// A DNS query over UDP; passes on the expected response code.
    Dns(DnsCheck),
    /// A program; passes on exit status 0.
    Exec(ExecCheck),
}

/// A TCP connect to `target`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TcpCheck {
    pub target: SocketAddr,
}

impl TcpCheck {
    /// Connects to `target`.
    pub fn new(target: SocketAddr) -> TcpCheck {
        TcpCheck { target }
    }
}

/// An HTTP(S) request to a proxy, with the VIP's Host (and TLS name), so
/// it exercises the proxy's route to the application.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpCheck {
    pub target: SocketAddr,
    pub tls: bool,
    pub method: String,
    pub path: String,
    /// Host header and TLS server name (else the target's address).
    pub host: Option<String>,
    pub expect_status: Vec<u16>,
    pub body_contains: Option<String>,
    /// CA bundle (PEM) for TLS; else the webpki roots.
    pub ca_file: Option<PathBuf>,
    pub tls_verify: bool,
    /// HTTP/2 on one connection per proxy shared by every check that goes
    /// there (prior knowledge in clear, ALPN `h2` over TLS).
    pub http2: bool,
}

impl HttpCheck {
    /// `GET /` to `target` in clear, expecting 200.
    pub fn get(target: SocketAddr) -> HttpCheck {
        HttpCheck {
            target,
            tls: false,
            method: "GET".into(),
            path: "/".into(),
            host: None,
            expect_status: vec![200],
            body_contains: None,
            ca_file: None,
            tls_verify: true,
            http2: false,
        }
    }

    /// The request path.
    pub fn path(mut self, path: &str) -> HttpCheck {
        self.path = path.into();
        self
    }

    /// The Host header and TLS name.
    pub fn host(mut self, host: &str) -> HttpCheck {
        self.host = Some(host.into());
        self
    }

    /// The method.
    pub fn method(mut self, method: &str) -> HttpCheck {
        self.method = method.into();
        self
    }

    /// The statuses that pass.
    pub fn expect(mut self, statuses: &[u16]) -> HttpCheck {
        self.expect_status = statuses.to_vec();
        self
    }

    /// Text the body must hold.
    pub fn body(mut self, text: &str) -> HttpCheck {
        self.body_contains = Some(text.into());
        self
    }

    /// Over TLS, trusting `ca_file` (else the webpki roots).
    pub fn tls(mut self, ca_file: Option<PathBuf>) -> HttpCheck {
        self.tls = true;
        self.ca_file = ca_file;
        self
    }

    /// HTTP/2 on a connection shared per proxy.
    pub fn http2(mut self) -> HttpCheck {
        self.http2 = true;
        self
    }
}

/// A DNS query over UDP.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DnsCheck {
    pub target: SocketAddr,
    pub query_name: String,
    pub query_type: u16,
    pub expect_rcode: u8,
}

impl DnsCheck {
    /// An A query for `name`, expecting NOERROR.
    pub fn a(target: SocketAddr, name: &str) -> DnsCheck {
        DnsCheck {
            target,
            query_name: name.into(),
            query_type: 1,
            expect_rcode: 0,
        }
    }
}

/// A program; passes on exit status 0. Runs with EDGED_VIP, EDGED_SERVICE,
/// EDGED_PROXY set, in its own process group (killed with it on timeout),
/// without the capabilities edged holds for the data plane and routes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExecCheck {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl ExecCheck {
    /// `program args...`.
    pub fn new(program: &str, args: &[&str]) -> ExecCheck {
        ExecCheck {
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
        }
    }
}

macro_rules! into_kind {
    ($($t:ident => $v:ident),*) => {
        $(impl From<$t> for CheckKind {
            fn from(c: $t) -> CheckKind {
                CheckKind::$v(c)
            }
        })*
    };
}

into_kind!(TcpCheck => Tcp, HttpCheck => Http, DnsCheck => Dns, ExecCheck => Exec);

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
            CheckKind::Tcp(t) => Target::Tcp(t.target),
            CheckKind::Http(h) => Target::Http {
                target: h.target,
                tls: h.tls,
                method: &h.method,
                path: &h.path,
                host: h.host.as_deref(),
            },
            CheckKind::Dns(d) => Target::Dns {
                target: d.target,
                query_name: &d.query_name,
                query_type: d.query_type,
            },
            CheckKind::Exec(e) => Target::Exec {
                program: &e.program,
                args: &e.args,
                env: &e.env,
            },
        }
    }
}
