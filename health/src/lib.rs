//! edged's health checker.
//!
//! ```text
//!  spec ─► HealthChecker (checker.rs: one table, the executors)
//!            ├─ executor/task.rs: a tokio task per check ─► probe/ (tcp, dns, exec) and
//!            │    http/ (h1: a small HTTP/1.1 client on kept connections; h2: shared
//!            │    connections, a stream per attempt; tls; parse: the pure response parser)
//!            └─ executor/kept.rs: plain HTTP/1.1 checks with a kept connection on one
//!                 thread (epoll, a calendar: a write and a read per attempt); back to
//!                 a task through the checker after a failure, a timeout, a close
//!  check.rs: key, spec, schedule (pure: the attempt grid), hysteresis (pure: rise,
//!            fall, hold-down), status cell ─► HealthEvent on a flip (status.rs)
//!  aggregate(snapshot) (pure) ─► per (VIP, proxy): Serving | NotServing(reason) | unknown
//! ```
//! A proxy serves a VIP while every service of that VIP passes on it.
//! Every attempt's [`Outcome`] (a latency and a typed [`Failure`]) goes to
//! the optional [`Observer`] (metrics); [`CheckStatus`] keeps pass/failure
//! totals.

mod aggregate;
mod check;
mod checker;
mod executor;
mod http;
mod hysteresis;
mod outcome;
mod probe;
mod schedule;
mod spec;
mod status;

pub use aggregate::{Verdict, aggregate};
pub use checker::HealthChecker;
pub use http::h2::Pool as Http2Pool;
#[doc(hidden)]
pub use http::parse::{Parsed as ParsedHttpResponse, parse_response as parse_http_response};
pub use hysteresis::{Hysteresis, Phase, State};
pub use outcome::{Failure, Outcome};
pub use probe::{Prober, probe};
pub use schedule::{Schedule, TICK, first_at_or_after, start_offset};
pub use spec::{CheckKey, CheckKind, CheckSpec, DnsCheck, ExecCheck, HttpCheck, Target, TcpCheck};
pub use status::{CheckStatus, HealthEvent, Observer};
