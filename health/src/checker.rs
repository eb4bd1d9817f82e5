//! The checker: one table of checks, the executors that run them, an event
//! on every state flip. Dropping the checker stops every check.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, mpsc};
use tokio::task::AbortHandle;

use crate::check::{Check, StatusCell};
use crate::executor::{Ctx, MAX_CONCURRENT, Sink, kept::Kept, now, task};
use crate::hysteresis::Hysteresis;
use crate::schedule::{Schedule, start_offset};
use crate::spec::{CheckKey, CheckSpec};
use crate::status::{CheckStatus, HealthEvent, Observer};

/// A check as the table knows it: one run, under its own key, shared by
/// every key whose check is identical (the cell's aliases).
struct Entry {
    spec: CheckSpec,
    cell: Arc<StatusCell>,
}

/// The running checker.
pub struct HealthChecker {
    checks: Mutex<HashMap<CheckKey, Entry>>,
    ctx: Arc<Ctx>,
    /// The grid's origin.
    epoch: std::time::Instant,
    /// Gives checks the kept-connection loop hands back a task again.
    returns: AbortHandle,
}

impl HealthChecker {
    /// Starts every check on the current tokio runtime.
    pub fn spawn(
        checks: Vec<(CheckKey, CheckSpec)>,
        observer: Option<Observer>,
    ) -> (HealthChecker, mpsc::UnboundedReceiver<HealthEvent>) {
        let (events, rx) = mpsc::unbounded_channel();
        let sink = Sink::new(observer, events);
        let (back, mut back_rx) = mpsc::unbounded_channel::<Box<Check>>();
        let ctx = Arc::new(Ctx {
            limit: Arc::new(Semaphore::new(MAX_CONCURRENT)),
            kept: Kept::start(back, sink.clone()),
            sink,
            pool: Default::default(),
        });
        let c = ctx.clone();
        let returns = tokio::spawn(async move {
            while let Some(check) = back_rx.recv().await {
                task::spawn(check, c.clone());
            }
        })
        .abort_handle();
        let hc = HealthChecker {
            checks: Mutex::new(HashMap::new()),
            ctx,
            epoch: now(),
            returns,
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
    ///
    /// Identical checks (same kind, target, port, Host, path, expectations
    /// and timing) run once, under one of their keys, and every key shares
    /// its status: a hundred VIPs whose checks are the same on one proxy
    /// cost that proxy one check. Exec checks are never shared (the
    /// program is told its VIP).
    pub fn update(&self, checks: Vec<(CheckKey, CheckSpec)>) {
        let mut table = self.checks.lock().expect("checks lock");
        let mut groups: HashMap<CheckSpec, Vec<CheckKey>> = HashMap::new();
        let mut alone: Vec<(CheckKey, CheckSpec)> = Vec::new();
        for (key, spec) in checks {
            if matches!(spec.kind, crate::spec::CheckKind::Exec(_)) {
                alone.push((key, spec));
            } else {
                groups.entry(spec).or_default().push(key);
            }
        }
        // Each group runs under the key it already runs under, if any
        // (a reload keeps it running), else its first.
        let mut aliases: HashMap<CheckKey, Vec<CheckKey>> = HashMap::new();
        let mut wanted: HashMap<CheckKey, CheckSpec> = HashMap::new();
        for (spec, mut keys) in groups {
            keys.sort();
            let lead = keys
                .iter()
                .position(|k| table.get(k).is_some_and(|e| e.spec == spec))
                .unwrap_or(0);
            keys.swap(0, lead);
            wanted.insert(keys[0].clone(), spec);
            aliases.insert(keys[0].clone(), keys);
        }
        for (key, spec) in alone {
            aliases.insert(key.clone(), vec![key.clone()]);
            wanted.insert(key, spec);
        }
        let mut carried: HashMap<CheckKey, (CheckStatus, Hysteresis)> = HashMap::new();
        table.retain(|k, e| {
            let keep = wanted.get(k) == Some(&e.spec);
            if !keep {
                if let Some(new) = wanted.get(k)
                    && new.kind.target() == e.spec.kind.target()
                {
                    let (st, h) = e.cell.get();
                    carried.insert(
                        k.clone(),
                        (st, h.with_thresholds(new.rise, new.fall, new.hold_down)),
                    );
                }
                e.cell.stop();
            }
            keep
        });
        for (key, e) in table.iter() {
            if let Some(keys) = aliases.remove(key) {
                e.cell.set_aliases(keys[1..].to_vec());
            }
        }
        for (key, spec) in wanted {
            if table.contains_key(&key) {
                continue;
            }
            let keys = aliases.remove(&key).unwrap_or_else(|| vec![key.clone()]);
            let (status, hyst) = carried.remove(&key).unwrap_or_else(|| {
                (
                    CheckStatus::default(),
                    Hysteresis::new(spec.rise, spec.fall, spec.hold_down),
                )
            });
            let cell = StatusCell::new(status, hyst.clone());
            cell.set_aliases(keys[1..].to_vec());
            let first = now() + start_offset(&key, spec.interval);
            // A check carried over a reload keeps its phase's period.
            let schedule = Schedule::new(self.epoch, first, spec.period(hyst.phase()));
            let check = Check::new(key.clone(), spec.clone(), schedule, hyst, cell.clone());
            task::spawn(Box::new(check), self.ctx.clone());
            table.insert(key, Entry { spec, cell });
        }
    }

    /// Something outside the checks says `proxy` may have failed (its
    /// process is gone or stopped): every check of it brings its next
    /// attempt forward, in its task or on the kept-connection loop (one
    /// with an attempt in flight is deciding already). A check that is down
    /// keeps to its downinter; one whose early attempt passed recently
    /// is not brought forward again for 10 intervals. Returns how many
    /// checks were told.
    pub fn reprobe(&self, proxy: &str) -> usize {
        let table = self.checks.lock().expect("checks lock");
        let mut n = 0;
        for (k, e) in table.iter() {
            if k.proxy == proxy || e.cell.aliases().iter().any(|a| a.proxy == proxy) {
                e.cell.wake();
                n += 1;
            }
        }
        if n > 0
            && let Some(k) = &self.ctx.kept
        {
            k.reprobe(proxy);
        }
        n
    }

    /// Checks that run: identical ones count once.
    pub fn running(&self) -> usize {
        self.checks.lock().expect("checks lock").len()
    }

    /// Every check's status, by key (a shared run's under each of its keys).
    pub fn snapshot(&self) -> Vec<(CheckKey, CheckStatus)> {
        let table = self.checks.lock().expect("checks lock");
        let mut v: Vec<_> = table
            .iter()
            .flat_map(|(k, e)| {
                let st = e.cell.get().0;
                let keys = std::iter::once(k.clone()).chain(e.cell.aliases());
                keys.map(move |k| (k, st.clone()))
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

impl Drop for HealthChecker {
    fn drop(&mut self) {
        if let Ok(table) = self.checks.lock() {
            for e in table.values() {
                e.cell.stop();
            }
        }
        self.returns.abort();
        if let Some(k) = &self.ctx.kept {
            k.stop();
        }
    }
}
