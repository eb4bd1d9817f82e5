//! The checker: one tokio task per check, bounded concurrency, a shared
//! status table, an event on every state flip. Dropping the checker
//! cancels every task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::AbortHandle;

use crate::hysteresis::{Hysteresis, State};
use crate::jitter::{jittered, start_offset};
use crate::probe::{Http2Pool, Outcome, Prober};
use crate::spec::{CheckKey, CheckSpec};

/// At most this many probes run at once (connections, processes).
const MAX_CONCURRENT: usize = 256;

/// Attempts start on a grid of this step (from the checker's start): the
/// checks due in the same step run in one wakeup of the runtime instead of
/// one wakeup each. Each check keeps its own exact period on average; an
/// attempt starts at most one step late.
pub const TICK: std::time::Duration = std::time::Duration::from_millis(10);

/// One check's status, shared by its task (writer) and the table.
type Shared = Arc<Mutex<CheckStatus>>;

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
    handle: AbortHandle,
}

/// The running checker.
pub struct HealthChecker {
    tasks: Mutex<HashMap<CheckKey, Task>>,
    status: Mutex<HashMap<CheckKey, Shared>>,
    events: mpsc::UnboundedSender<HealthEvent>,
    limit: Arc<Semaphore>,
    observer: Option<Observer>,
    /// Origin of the attempt grid.
    epoch: tokio::time::Instant,
    /// The `http2` checks' shared connections.
    pool: Http2Pool,
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
            limit: Arc::new(Semaphore::new(MAX_CONCURRENT)),
            observer,
            epoch: tokio::time::Instant::now(),
            pool: Http2Pool::default(),
        };
        hc.update(checks);
        (hc, rx)
    }

    /// Applies a new set of checks: unchanged ones keep their state and
    /// schedule; changed ones restart from Unknown; removed ones stop.
    pub fn update(&self, checks: Vec<(CheckKey, CheckSpec)>) {
        let mut tasks = self.tasks.lock().expect("tasks lock");
        let mut status = self.status.lock().expect("status lock");
        let wanted: HashMap<CheckKey, CheckSpec> = checks.into_iter().collect();
        tasks.retain(|k, t| {
            let keep = wanted.get(k) == Some(&t.spec);
            if !keep {
                t.handle.abort();
                status.remove(k);
            }
            keep
        });
        for (key, spec) in wanted {
            if tasks.contains_key(&key) {
                continue;
            }
            let shared = Shared::default();
            status.insert(key.clone(), shared.clone());
            let handle = tokio::spawn(run(
                key.clone(),
                spec.clone(),
                shared,
                self.events.clone(),
                Ctx {
                    limit: self.limit.clone(),
                    observer: self.observer.clone(),
                    epoch: self.epoch,
                    pool: self.pool.clone(),
                },
            ))
            .abort_handle();
            tasks.insert(key, Task { spec, handle });
        }
    }

    /// Every check's status.
    pub fn snapshot(&self) -> Vec<(CheckKey, CheckStatus)> {
        let status = self.status.lock().expect("status lock");
        let mut v: Vec<_> = status
            .iter()
            .map(|(k, s)| (k.clone(), s.lock().expect("check status lock").clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

impl Drop for HealthChecker {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.lock() {
            for t in tasks.values() {
                t.handle.abort();
            }
        }
    }
}

/// What every check task shares.
struct Ctx {
    limit: Arc<Semaphore>,
    observer: Option<Observer>,
    epoch: tokio::time::Instant,
    pool: Http2Pool,
}

async fn run(
    key: CheckKey,
    spec: CheckSpec,
    status: Shared,
    events: mpsc::UnboundedSender<HealthEvent>,
    ctx: Ctx,
) {
    let mut hyst = Hysteresis::new(spec.rise, spec.fall, spec.hold_down);
    let mut rng = seed(&key);
    let mut prober = Prober::with_pool(spec.reuse_connection, ctx.pool.clone());
    // The schedule is absolute (start + k periods), each attempt rounded up
    // to the grid, so rounding never accumulates.
    let mut due = tokio::time::Instant::now() + start_offset(&key, spec.interval);
    loop {
        // An attempt that ran past its next slot (a stalled runtime, a slow
        // fork, a queue for the concurrency limit) skips the slots it
        // missed rather than starting the next attempt at once: slots stay
        // one period apart, so `rise` passes span `rise - 1` periods and a
        // stall never turns into a burst.
        due = first_at_or_after(due, spec.interval, tokio::time::Instant::now());
        tokio::time::sleep_until(first_at_or_after(ctx.epoch, TICK, due)).await;
        due += jittered(spec.interval, spec.jitter, next_random(&mut rng));
        let outcome = {
            let _permit = ctx.limit.acquire().await.expect("semaphore never closes");
            prober
                .probe(&key, &spec.kind, spec.timeout, spec.source)
                .await
        };
        if let Some(obs) = &ctx.observer {
            obs(&key, &outcome);
        }
        let flip = hyst.record(outcome.ok, tokio::time::Instant::now().into_std());
        let now = SystemTime::now();
        let event_outcome = flip.map(|_| outcome.clone());
        {
            let mut s = status.lock().expect("check status lock");
            if outcome.ok {
                s.passes += 1;
            } else {
                s.failures += 1;
            }
            s.state = hyst.state();
            if flip.is_some() {
                s.since = Some(now);
            }
            s.last = Some(outcome);
        }
        if let (Some(state), Some(outcome)) = (flip, event_outcome) {
            tracing::info!(vip = %key.vip, service = %key.service, proxy = %key.proxy, ?state, reason = %outcome.reason, "check changed state");
            if events
                .send(HealthEvent {
                    key: key.clone(),
                    state,
                    outcome,
                    at: now,
                })
                .is_err()
            {
                return; // nobody listens any more
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
