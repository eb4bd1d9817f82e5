//! edged's health checker.
//!
//! ```text
//!  HealthChecker::spawn(checks) ──► one task per check (tokio; no thread per check)
//!     task: jittered start ─► probe (tcp | http(s) | dns | exec, bounded by a semaphore)
//!           ─► Hysteresis (pure: rise, fall, hold-down) ─► status table ─► HealthEvent on a flip
//!  aggregate(snapshot) (pure) ─► per (VIP, proxy): Serving | NotServing(reason) | unknown
//! ```
//! A proxy serves a VIP while every service of that VIP passes on it.

mod aggregate;
mod hysteresis;
mod jitter;
mod probe;
mod runner;
mod spec;

pub use aggregate::{Verdict, aggregate};
pub use hysteresis::{Hysteresis, State};
pub use jitter::{jittered, start_offset};
pub use probe::{Outcome, probe};
pub use runner::{CheckStatus, HealthChecker, HealthEvent, Observer};
pub use spec::{CheckKey, CheckKind, CheckSpec};
