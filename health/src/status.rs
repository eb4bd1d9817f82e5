//! What the checker tells: each check's state as `edgectl proxies` shows
//! it, and an event on every state flip. Pure data.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use crate::hysteresis::{Phase, State};
use crate::outcome::Outcome;
use crate::spec::CheckKey;

/// The state of one check.
#[derive(Clone, Debug, Serialize)]
pub struct CheckStatus {
    pub state: State,
    /// The last attempt.
    pub last: Option<Outcome>,
    /// When the state last changed, and the class of the attempt that
    /// changed it (`ok`, `refused`, `reset`, `timeout`, `status`, ...).
    pub since: Option<SystemTime>,
    pub cause: Option<&'static str>,
    /// How often it runs now: every interval, every fastinter while it
    /// changes, every downinter while down.
    pub phase: Phase,
    /// Attempts that passed / failed since the check was added.
    pub passes: u64,
    pub failures: u64,
}

impl Default for CheckStatus {
    fn default() -> Self {
        CheckStatus {
            state: State::Unknown,
            last: None,
            since: None,
            cause: None,
            phase: Phase::Steady,
            passes: 0,
            failures: 0,
        }
    }
}

/// A state flip.
#[derive(Clone, Debug)]
pub struct HealthEvent {
    pub key: CheckKey,
    pub state: State,
    /// The attempt that decided it.
    pub outcome: Outcome,
    pub at: SystemTime,
}

/// Called with every attempt's result (metrics).
pub type Observer = Arc<dyn Fn(&CheckKey, &Outcome) + Send + Sync>;
