//! What the checker tells: each check's state as `edgectl proxies` shows
//! it, and an event on every state flip. Pure data.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use crate::hysteresis::State;
use crate::outcome::Outcome;
use crate::spec::CheckKey;

/// The state of one check.
#[derive(Clone, Debug, Serialize)]
pub struct CheckStatus {
    pub state: State,
    /// The last attempt.
    pub last: Option<Outcome>,
    /// When the state last changed.
    pub since: Option<SystemTime>,
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
