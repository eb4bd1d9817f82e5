//! edged's health checker.
//!
//! ```text
//!  HealthChecker::spawn(checks) ──► one task per check (tokio; no thread per check)
//!     task: spread start, then attempts on a 10 ms grid ─► Prober (tcp | http(s) | dns |
//!           exec, bounded by a semaphore; HTTP(S) keeps its connection between attempts,
//!           reconnects after any failure)
//!           ─► Hysteresis (pure: rise, fall, hold-down) ─► status table ─► HealthEvent on a flip
//!  aggregate(snapshot) (pure) ─► per (VIP, proxy): Serving | NotServing(reason) | unknown
//! ```
//! A proxy serves a VIP while every service of that VIP passes on it.
//! Every attempt's [`Outcome`] (reason, latency) goes to the optional
//! [`Observer`] (metrics); [`CheckStatus`] keeps pass/failure totals.

mod aggregate;
mod hysteresis;
mod jitter;
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
pub use spec::{CheckKey, CheckKind, CheckSpec};
