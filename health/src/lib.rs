//! edged's health checker.
//!
//! ```text
//!  HealthChecker::spawn(checks) ──► one task per check (tokio; no thread per check)
//!     task: spread start, then attempts on a 10 ms grid ─► Prober (tcp | http(s) | dns |
//!           exec, bounded by a semaphore; HTTP(S) keeps its connection between attempts,
//!           reconnects after any failure)
//!     a plain HTTP/1.1 check whose connection is kept ─► the kept-connection loop (one
//!           thread, one epoll set, a calendar: a write and a read per attempt, no task);
//!           back to a task after a failure, a timeout or a closed connection
//!           ─► Hysteresis (pure: rise, fall, hold-down) ─► status table ─► HealthEvent on a flip
//!  aggregate(snapshot) (pure) ─► per (VIP, proxy): Serving | NotServing(reason) | unknown
//! ```
//! A proxy serves a VIP while every service of that VIP passes on it.
//! Every attempt's [`Outcome`] (reason, latency) goes to the optional
//! [`Observer`] (metrics); [`CheckStatus`] keeps pass/failure totals.

mod aggregate;
mod hysteresis;
mod jitter;
mod kept;
mod probe;
mod runner;
mod spec;

pub use aggregate::{Verdict, aggregate};
pub use hysteresis::{Hysteresis, State};
pub use jitter::{jittered, start_offset};
pub use probe::{Http2Pool, Outcome, Prober, probe};
#[doc(hidden)]
pub use probe::{Parsed as ParsedHttpResponse, parse_http_response};
pub use runner::{CheckStatus, HealthChecker, HealthEvent, Observer};
pub use spec::{CheckKey, CheckKind, CheckSpec, Target};
