//! The two executors of checks, and what they share.
//!
//! ```text
//!  checker ──spawn──► task (tokio): connecting, TLS, HTTP/2, TCP, DNS, exec,
//!                     every attempt after a failure
//!     task ──a plain HTTP/1.1 check with a kept connection──► kept loop
//!                     (one thread, epoll: a write and a read per attempt)
//!     kept loop ──after a failure, a timeout or a closed connection──►
//!                     returns channel ──► the checker's return task ──spawn──► task
//! ```
//! Both hand each outcome to the [`Sink`]: the observer (metrics), the
//! check's own record, the checker's events. The kept loop never spawns:
//! checks leave it through the returns channel.

pub(crate) mod kept;
mod slots;
pub(crate) mod task;

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Semaphore, mpsc};

use crate::check::{Check, Recorded};
use crate::http::h2::Pool;
use crate::outcome::Outcome;
use crate::status::{HealthEvent, Observer};

/// At most this many probes run at once (connections, processes).
pub(crate) const MAX_CONCURRENT: usize = 256;

/// Where every attempt's outcome goes.
#[derive(Clone)]
pub(crate) struct Sink {
    observer: Option<Observer>,
    events: mpsc::UnboundedSender<HealthEvent>,
}

impl Sink {
    pub(crate) fn new(
        observer: Option<Observer>,
        events: mpsc::UnboundedSender<HealthEvent>,
    ) -> Sink {
        Sink { observer, events }
    }

    /// Takes `outcome` for `check` at `now`: the observer first (a
    /// panicking observer poisons no lock), then the check's record, then
    /// the event of a flip. False: the check is to stop (stopped, or
    /// nobody listens any more).
    pub(crate) fn take(&self, check: &mut Check, outcome: Outcome, now: Instant) -> bool {
        if check.stopped() {
            return false;
        }
        if let Some(obs) = &self.observer {
            obs(&check.key, &outcome);
        }
        match check.record(outcome, now) {
            Recorded::Stopped => false,
            Recorded::Counted => true,
            Recorded::Flipped(event) => {
                for key in check.cell().aliases() {
                    let ev = HealthEvent {
                        key,
                        ..event.clone()
                    };
                    if self.events.send(ev).is_err() {
                        return false;
                    }
                }
                self.events.send(event).is_ok()
            }
        }
    }
}

/// What every check's task shares.
pub(crate) struct Ctx {
    pub(crate) limit: Arc<Semaphore>,
    pub(crate) sink: Sink,
    pub(crate) pool: Pool,
    /// The kept-connection loop (if it could start).
    pub(crate) kept: Option<kept::Kept>,
}

/// The tokio clock's now, as the pure schedule takes it (paused time in
/// tests included).
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
