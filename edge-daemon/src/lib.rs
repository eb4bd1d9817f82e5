//! The edged daemon: wiring, the reconcile loop, the control API, metrics,
//! operator intents. The binaries in `src/bin` only parse arguments and call
//! into this library.

pub mod cli;
pub mod control;
pub mod daemon;
pub mod effects;
pub mod flowshare;
pub mod health;
pub mod intents;
pub mod liveness;
pub mod metrics;
pub mod metrics_xdp;
pub mod reconcile;
pub mod specs;
pub mod teardown;
pub mod topology;

#[cfg(test)]
mod reconcile_tests;
