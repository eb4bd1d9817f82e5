//! One check: what it is (key, spec), when it runs (its schedule), how it
//! decides (hysteresis), and its status cell, which the checker's table
//! shares. The check knows no executor: a tokio task or the
//! kept-connection loop runs its attempts and hands it each outcome.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::task::AbortHandle;

use crate::hysteresis::Hysteresis;
use crate::outcome::Outcome;
use crate::schedule::Schedule;
use crate::spec::{CheckKey, CheckSpec};
use crate::status::{CheckStatus, HealthEvent};

/// The part of a check the checker's table shares with wherever the check
/// runs: its status, a copy of its hysteresis as of its last attempt (what
/// a reload that keeps the target carries over), its stop switch, and its
/// task while it has one. One allocation: the check reads the switch in
/// the cache line it writes its status to.
pub(crate) struct StatusCell {
    /// Removed or changed by a reload, or the checker dropped: the check
    /// stops wherever it runs (a task is also aborted).
    stopped: AtomicBool,
    status: Mutex<(CheckStatus, Hysteresis)>,
    task: Mutex<Option<AbortHandle>>,
    /// Something outside the check says its target may have failed (its
    /// process is gone): the check's task brings its next attempt forward.
    wake: tokio::sync::Notify,
    /// The other keys whose check this run is (identical checks share
    /// one run): each is told of a flip too.
    aliases: Mutex<Vec<CheckKey>>,
}

impl StatusCell {
    pub(crate) fn new(status: CheckStatus, hyst: Hysteresis) -> Arc<StatusCell> {
        Arc::new(StatusCell {
            stopped: AtomicBool::new(false),
            status: Mutex::new((status, hyst)),
            task: Mutex::new(None),
            wake: tokio::sync::Notify::new(),
            aliases: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn set_aliases(&self, keys: Vec<CheckKey>) {
        *self.aliases.lock().expect("aliases lock") = keys;
    }

    pub(crate) fn aliases(&self) -> Vec<CheckKey> {
        self.aliases.lock().expect("aliases lock").clone()
    }

    /// Stops the check wherever it runs.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        if let Some(h) = self.task.lock().expect("task lock").take() {
            h.abort();
        }
    }

    pub(crate) fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Asks the check's task to bring its next attempt forward.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Until [`StatusCell::wake`] is called (at once if it was meanwhile).
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// The status, and the hysteresis of the last attempt.
    pub(crate) fn get(&self) -> (CheckStatus, Hysteresis) {
        self.status.lock().expect("check status lock").clone()
    }

    /// Records the check's task (or aborts it at once if the check was
    /// stopped meanwhile).
    pub(crate) fn set_task(&self, task: AbortHandle) {
        let mut t = self.task.lock().expect("task lock");
        if self.stopped() {
            task.abort();
        } else {
            *t = Some(task);
        }
    }
}

/// What an outcome did to the check.
pub(crate) enum Recorded {
    /// The check was stopped: it runs no more.
    Stopped,
    /// Counted; no flip.
    Counted,
    /// Its state flipped.
    Flipped(HealthEvent),
}

/// One check, wherever it runs.
pub(crate) struct Check {
    pub(crate) key: CheckKey,
    pub(crate) spec: CheckSpec,
    pub(crate) schedule: Schedule,
    hyst: Hysteresis,
    cell: Arc<StatusCell>,
}

impl Check {
    pub(crate) fn new(
        key: CheckKey,
        spec: CheckSpec,
        schedule: Schedule,
        hyst: Hysteresis,
        cell: Arc<StatusCell>,
    ) -> Check {
        Check {
            key,
            spec,
            schedule,
            hyst,
            cell,
        }
    }

    /// Something suggests its target just failed (its kept connection
    /// closed, its process is gone or stopped): the next attempt comes at
    /// once, unless the check is down (its rate is `downinter`'s) or an
    /// early attempt found the target well recently
    /// ([`crate::Schedule::reprobe`]). Whether it was brought forward.
    pub(crate) fn reprobe(&mut self, now: Instant) -> bool {
        self.hyst.phase() != crate::hysteresis::Phase::Down && self.schedule.reprobe(now)
    }

    /// Whether a reload or the checker's end stopped it.
    pub(crate) fn stopped(&self) -> bool {
        self.cell.stopped()
    }

    pub(crate) fn cell(&self) -> &Arc<StatusCell> {
        &self.cell
    }

    /// Takes one attempt's outcome at `now`: hysteresis, status, the
    /// schedule of the phase it leaves the check in, and the event of a
    /// flip.
    pub(crate) fn record(&mut self, outcome: Outcome, now: Instant) -> Recorded {
        if self.cell.stopped() {
            return Recorded::Stopped;
        }
        let mut guard = self.cell.status.lock().expect("check status lock");
        let before = self.hyst.phase();
        let flip = self.hyst.record(outcome.ok(), now);
        self.schedule.ended(outcome.ok(), now);
        let phase = self.hyst.phase();
        if phase != before {
            self.schedule.every(self.spec.period(phase), now);
            guard.0.phase = phase;
        }
        guard.1.clone_from(&self.hyst);
        let s = &mut guard.0;
        let wall = SystemTime::now();
        let event_outcome = flip.map(|_| outcome.clone());
        if outcome.ok() {
            s.passes += 1;
        } else {
            s.failures += 1;
        }
        s.state = self.hyst.state();
        if flip.is_some() {
            s.since = Some(wall);
            s.cause = Some(outcome.failure().map_or("ok", |f| f.class()));
        }
        match &mut s.last {
            // Another pass: only the latency changes (the rest, cold in the
            // cache at 10,000 checks a second, is not touched).
            Some(last) if last.ok() && outcome.ok() => last.latency = outcome.latency,
            last => *last = Some(outcome),
        }
        drop(guard);
        match (flip, event_outcome) {
            (Some(state), Some(outcome)) => {
                let key = &self.key;
                tracing::info!(vip = %key.vip, service = %key.service, proxy = %key.proxy, ?state, reason = %outcome.reason(), "check changed state");
                Recorded::Flipped(HealthEvent {
                    key: key.clone(),
                    state,
                    outcome,
                    at: wall,
                })
            }
            _ => Recorded::Counted,
        }
    }
}
