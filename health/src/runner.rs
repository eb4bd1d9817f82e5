//! The checker: one tokio task per check, bounded concurrency, a shared
//! status table, an event on every state flip. Dropping the checker
//! cancels every task.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::AbortHandle;

use crate::hysteresis::{Hysteresis, State};
use crate::jitter::{jittered, start_offset};
use crate::kept::Kept;
use crate::probe::{Http2Pool, Outcome, Prober};
use crate::spec::{CheckKey, CheckSpec};

/// At most this many probes run at once (connections, processes).
const MAX_CONCURRENT: usize = 256;

/// Attempts start on a grid of this step (from the checker's start): the
/// checks due in the same step run in one wakeup of the runtime instead of
/// one wakeup each. Each check keeps its own exact period on average; an
/// attempt starts at most one step late.
pub const TICK: std::time::Duration = std::time::Duration::from_millis(10);

/// One check's status, shared by wherever the check runs (writer) and the
/// table, with its stop switch beside it (one allocation: the check reads
/// the switch in the cache line it writes its status to).
type Shared = Arc<Cell>;

/// The state of one check, as `edgectl proxies` shows it.
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

struct Task {
    spec: CheckSpec,
    shared: Shared,
}

/// The shared part of one check.
pub(crate) struct Cell {
    /// Removed or changed by a reload, or the checker dropped: the check
    /// stops wherever it runs (a task is also aborted).
    stopped: AtomicBool,
    /// The status, and a copy of the check's hysteresis as of its last
    /// attempt (what a reload that keeps the target carries over).
    status: Mutex<(CheckStatus, Hysteresis)>,
    /// The check's task while it has one (the kept-connection loop hands
    /// it back to a new one after a failure).
    task: Mutex<Option<AbortHandle>>,
}

impl Cell {
    fn new(status: CheckStatus, hyst: Hysteresis) -> Cell {
        Cell {
            stopped: AtomicBool::new(false),
            status: Mutex::new((status, hyst)),
            task: Mutex::new(None),
        }
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        if let Some(h) = self.task.lock().expect("task lock").take() {
            h.abort();
        }
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

/// The running checker.
pub struct HealthChecker {
    tasks: Mutex<HashMap<CheckKey, Task>>,
    status: Mutex<HashMap<CheckKey, Shared>>,
    events: mpsc::UnboundedSender<HealthEvent>,
    ctx: Arc<Ctx>,
}

impl HealthChecker {
    /// Starts every check on the current tokio runtime.
    pub fn spawn(
        checks: Vec<(CheckKey, CheckSpec)>,
        observer: Option<Observer>,
    ) -> (HealthChecker, mpsc::UnboundedReceiver<HealthEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let hc = HealthChecker {
            tasks: Mutex::new(HashMap::new()),
            status: Mutex::new(HashMap::new()),
            events: tx,
            ctx: Arc::new(Ctx {
                limit: Arc::new(Semaphore::new(MAX_CONCURRENT)),
                observer,
                epoch: tokio::time::Instant::now(),
                pool: Http2Pool::default(),
                kept: Kept::start(),
            }),
        };
        hc.update(checks);
        (hc, rx)
    }

    /// Applies a new set of checks. Health belongs to what is checked, not
    /// to the file: an unchanged check keeps running untouched; a check
    /// whose target is the same but whose settings changed (interval,
    /// timeout, rise, fall, expected status...) restarts on the new
    /// settings with its state, history and totals; a new target starts
    /// Unknown (pending); a removed check stops.
    pub fn update(&self, checks: Vec<(CheckKey, CheckSpec)>) {
        let mut tasks = self.tasks.lock().expect("tasks lock");
        let mut status = self.status.lock().expect("status lock");
        let wanted: HashMap<CheckKey, CheckSpec> = checks.into_iter().collect();
        let mut carried: HashMap<CheckKey, (CheckStatus, Hysteresis)> = HashMap::new();
        tasks.retain(|k, t| {
            let keep = wanted.get(k) == Some(&t.spec);
            if !keep {
                if let Some(new) = wanted.get(k)
                    && new.kind.target() == t.spec.kind.target()
                {
                    let (st, h) = t.shared.status.lock().expect("check status lock").clone();
                    carried.insert(
                        k.clone(),
                        (st, h.with_thresholds(new.rise, new.fall, new.hold_down)),
                    );
                }
                t.shared.stop();
                status.remove(k);
            }
            keep
        });
        for (key, spec) in wanted {
            if tasks.contains_key(&key) {
                continue;
            }
            let (st, hyst) = carried.remove(&key).unwrap_or_else(|| {
                (
                    CheckStatus::default(),
                    Hysteresis::new(spec.rise, spec.fall, spec.hold_down),
                )
            });
            let shared = Arc::new(Cell::new(st, hyst.clone()));
            status.insert(key.clone(), shared.clone());
            let check = Check {
                hyst,
                rng: seed(&key),
                // The schedule is absolute (start + k periods), each attempt
                // rounded up to the grid, so rounding never accumulates.
                due: tokio::time::Instant::now() + start_offset(&key, spec.interval),
                planned: None,
                key: key.clone(),
                spec: spec.clone(),
                shared: shared.clone(),
                events: self.events.clone(),
                ctx: self.ctx.clone(),
            };
            Box::new(check).spawn();
            tasks.insert(key, Task { spec, shared });
        }
    }

    /// Every check's status.
    pub fn snapshot(&self) -> Vec<(CheckKey, CheckStatus)> {
        let status = self.status.lock().expect("status lock");
        let mut v: Vec<_> = status
            .iter()
            .map(|(k, s)| {
                (
                    k.clone(),
                    s.status.lock().expect("check status lock").0.clone(),
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

impl Drop for HealthChecker {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.lock() {
            for t in tasks.values() {
                t.shared.stop();
            }
        }
        if let Some(k) = &self.ctx.kept {
            k.stop();
        }
    }
}

/// What every check shares.
struct Ctx {
    limit: Arc<Semaphore>,
    observer: Option<Observer>,
    epoch: tokio::time::Instant,
    pool: Http2Pool,
    /// The kept-connection loop (if it could start).
    kept: Option<Kept>,
}

/// One check's state, wherever it runs: its own task (connecting, TLS,
/// HTTP/2, the other kinds, after a failure), or the kept-connection loop
/// (a plain HTTP/1.1 check whose connection is kept, the common case at
/// scale).
pub(crate) struct Check {
    key: CheckKey,
    pub(crate) spec: CheckSpec,
    hyst: Hysteresis,
    rng: u64,
    /// The next slot (before rounding to the grid).
    due: tokio::time::Instant,
    /// The next attempt's start, once known.
    planned: Option<tokio::time::Instant>,
    shared: Shared,
    events: mpsc::UnboundedSender<HealthEvent>,
    ctx: Arc<Ctx>,
}

impl Check {
    /// When the next attempt starts: the next slot, rounded up to the grid
    /// (the slot after it becomes `due`); the same answer until the
    /// attempt has [started](Check::started), wherever the check runs
    /// meanwhile. An attempt that ran past its next slot (a stalled
    /// runtime, a slow fork, a queue for the concurrency limit) skips the
    /// slots it missed rather than starting the next attempt at once: slots
    /// stay one period apart, so `rise` passes span `rise - 1` periods and
    /// a stall never turns into a burst.
    pub(crate) fn next_start(&mut self) -> tokio::time::Instant {
        if let Some(start) = self.planned {
            return start;
        }
        // A slot missed by less than a tick still runs (late by that much):
        // the kept-connection loop finds a timeout on the grid, up to a
        // tick after the attempt's end, which can be the next slot. What
        // counts is when the slot starts, on the grid: a slot rounds up to
        // the grid by up to a tick, so it is missed only when its rounded
        // start is more than a tick in the past.
        let now = tokio::time::Instant::now();
        let rounding = self.grid(self.due).saturating_duration_since(self.due);
        let missed = now.checked_sub(TICK + rounding).unwrap_or(now);
        self.due = first_at_or_after(self.due, self.spec.interval, missed);
        let start = self.grid(self.due);
        self.due += jittered(
            self.spec.interval,
            self.spec.jitter,
            next_random(&mut self.rng),
        );
        self.planned = Some(start);
        start
    }

    /// The planned attempt has begun.
    pub(crate) fn started(&mut self) {
        self.planned = None;
    }

    /// The first point of the checker's grid at or after `t`.
    pub(crate) fn grid(&self, t: tokio::time::Instant) -> tokio::time::Instant {
        first_at_or_after(self.ctx.epoch, TICK, t)
    }

    /// The next attempt comes at the next tick, outside the schedule (a
    /// kept connection was found closed: nothing was decided).
    pub(crate) fn retry_now(&mut self) {
        self.planned = Some(self.grid(tokio::time::Instant::now()));
    }

    /// Takes one attempt's outcome: observer, hysteresis, status, and an
    /// event on a flip. False: nobody listens any more; the check stops.
    pub(crate) fn record(&mut self, outcome: Outcome) -> bool {
        let key = &self.key;
        if self.shared.stopped() {
            return false; // removed or changed by a reload
        }
        if let Some(obs) = &self.ctx.observer {
            obs(key, &outcome);
        }
        let mut guard = self.shared.status.lock().expect("check status lock");
        let flip = self
            .hyst
            .record(outcome.ok, tokio::time::Instant::now().into_std());
        guard.1.clone_from(&self.hyst);
        let s = &mut guard.0;
        let now = SystemTime::now();
        let event_outcome = flip.map(|_| outcome.clone());
        if outcome.ok {
            s.passes += 1;
        } else {
            s.failures += 1;
        }
        s.state = self.hyst.state();
        if flip.is_some() {
            s.since = Some(now);
        }
        match &mut s.last {
            // Another pass: the kept reason is the same "ok" (its string,
            // cold in the cache at 10,000 checks a second, is not touched).
            Some(last) if last.ok && outcome.ok => last.latency = outcome.latency,
            last => *last = Some(outcome),
        }
        drop(guard);
        if let (Some(state), Some(outcome)) = (flip, event_outcome) {
            tracing::info!(vip = %key.vip, service = %key.service, proxy = %key.proxy, ?state, reason = %outcome.reason, "check changed state");
            let event = HealthEvent {
                key: key.clone(),
                state,
                outcome,
                at: now,
            };
            if self.events.send(event).is_err() {
                return false;
            }
        }
        true
    }

    /// Runs the check in a task of its own (unless it was stopped).
    pub(crate) fn spawn(self: Box<Self>) {
        let shared = self.shared.clone();
        let mut task = shared.task.lock().expect("task lock");
        if !shared.stopped() {
            *task = Some(tokio::spawn(run(*self)).abort_handle());
        }
    }
}

/// A check's task: attempts on its schedule until its HTTP/1.1 connection
/// is kept, then the kept-connection loop takes it over.
async fn run(mut c: Check) {
    let mut prober = Prober::with_pool(c.spec.reuse_connection, c.ctx.pool.clone());
    let mut adopt = c.spec.reuse_connection && c.ctx.kept.is_some();
    loop {
        tokio::time::sleep_until(c.next_start()).await;
        c.started();
        let outcome = {
            let _permit = c.ctx.limit.acquire().await.expect("semaphore never closes");
            prober
                .probe(&c.key, &c.spec.kind, c.spec.timeout, c.spec.source)
                .await
        };
        if !c.record(outcome) {
            return; // nobody listens any more
        }
        if adopt
            && let Some(kept) = c.ctx.kept.clone()
            && let Some((socket, request)) = prober.take_plain()
        {
            match kept.adopt(Box::new(c), socket, request) {
                Ok(()) => return,
                // The loop is gone: go on here (on a new connection).
                Err(back) => {
                    c = *back;
                    adopt = false;
                }
            }
        }
    }
}

/// The first point of `origin + k × step` (k ≥ 0) at or after `t` (with
/// a zero step: `t` if later than `origin`). Both the attempt grid and
/// the skipping of missed slots.
fn first_at_or_after(
    origin: tokio::time::Instant,
    step: std::time::Duration,
    t: tokio::time::Instant,
) -> tokio::time::Instant {
    if step.is_zero() {
        return origin.max(t);
    }
    let since = t.saturating_duration_since(origin).as_nanos();
    let step = step.as_nanos();
    origin + std::time::Duration::from_nanos((since.div_ceil(step) * step) as u64)
}

fn seed(key: &CheckKey) -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(key) | 1
}

/// xorshift64: cheap per-check randomness for the period jitter.
fn next_random(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn skip_missed_keeps_the_phase_and_never_goes_back() {
        let skip_missed = |due, now, period| first_at_or_after(due, period, now);
        let t0 = tokio::time::Instant::now();
        let p = Duration::from_millis(250);
        let ms = Duration::from_millis;
        // On time or early: unchanged.
        assert_eq!(skip_missed(t0 + p, t0, p), t0 + p);
        assert_eq!(skip_missed(t0, t0, p), t0);
        // Behind by less than a period: the next slot.
        assert_eq!(skip_missed(t0, t0 + ms(143), p), t0 + p);
        // Behind by several periods: the first slot not in the past.
        assert_eq!(skip_missed(t0, t0 + ms(600), p), t0 + ms(750));
        // Exactly on a later slot: that slot.
        assert_eq!(skip_missed(t0, t0 + ms(500), p), t0 + ms(500));
        // A zero period cannot loop: now.
        assert_eq!(skip_missed(t0, t0 + ms(7), Duration::ZERO), t0 + ms(7));
    }

    #[test]
    fn attempts_round_up_to_the_grid() {
        let t0 = tokio::time::Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(first_at_or_after(t0, TICK, t0), t0);
        assert_eq!(first_at_or_after(t0, TICK, t0 + ms(1)), t0 + ms(10));
        assert_eq!(first_at_or_after(t0, TICK, t0 + ms(20)), t0 + ms(20));
    }
}
