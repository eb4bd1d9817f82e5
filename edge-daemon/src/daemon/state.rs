//! The daemon's state and the passes that change it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use edged_config::Config;
use edged_files::PrivateDir;

use crate::control::proto::ReloadInfo;
use crate::effects::{Addresses, Announcer, BgpObservation, Checker, EffectError, Forwarder};
use crate::intents::Intents;
use crate::metrics::Metrics;
use crate::reconcile::{self, Applied, HealthView, HeldConnections, Inputs, Plan, RouteState};
use crate::specs::Specs;

/// The drivers the loop changes the world through (each `None` when the
/// config turns its component off or it could not start).
pub struct Drivers {
    pub addresses: Option<Box<dyn Addresses>>,
    pub forwarder: Option<Box<dyn Forwarder>>,
    pub announcer: Option<Box<dyn Announcer>>,
    pub checker: Box<dyn Checker>,
}

/// The loop's clock (wall time: drains and intents are wall-clock
/// deadlines); a test passes its own.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// A stop in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stopping {
    /// When the drain began.
    pub since: SystemTime,
    /// When it ends, whatever is left.
    pub until: SystemTime,
    /// The VIPs that were serving when it began (announced, or withdrawn
    /// and still holding connections): the stop waits for their held
    /// connections too, not for those of VIPs that served nothing.
    pub serving: BTreeSet<String>,
}

/// Everything the loop owns.
pub struct State {
    pub config_path: PathBuf,
    pub config: Config,
    /// The validated component specs of `config`.
    pub specs: Specs,
    pub generation: u64,
    /// What the flow-sharing task counted (it runs beside the loop).
    pub flow_sharing: std::sync::Arc<std::sync::Mutex<crate::flowshare::Stats>>,
    /// Until then VIPs not yet announced wait for the peers' flows
    /// (`None`: not waiting).
    pub learn_until: Option<SystemTime>,
    pub intents: Intents,
    /// The state directory, opened once (intents are written into it).
    pub state_dir: PrivateDir,
    pub health: HealthView,
    /// The connections held-back VIPs still serve, as last read.
    pub held: HeldConnections,
    /// What the drivers hold, as last confirmed or observed.
    pub applied: Applied,
    pub drivers: Drivers,
    /// Route changes sent to the announcer and not yet confirmed.
    pub inflight: BTreeMap<String, RouteState>,
    /// Route changes the announcer reported failed (retried each pass).
    pub route_errors: BTreeMap<String, EffectError>,
    /// The reply-path sysctls were set once: a later change is drift.
    pub host_settled: bool,
    /// BIRD as last read back.
    pub bgp: BgpObservation,
    /// The data plane's counters as last read (the metrics collector reads
    /// the same snapshot).
    pub counters: crate::metrics_xdp::SharedSnapshot,
    pub metrics: Arc<Metrics>,
    /// The health checker's last snapshot (for edgectl and metrics).
    pub checks: Vec<(edged_health::CheckKey, edged_health::CheckStatus)>,
    pub last_plan: Plan,
    pub last_errors: Vec<EffectError>,
    pub last_reload: Option<ReloadInfo>,
    pub started: Instant,
    pub started_at: SystemTime,
    /// Drift repaired since start.
    pub drift_repaired: u64,
    /// A graceful stop draining the node.
    pub stopping: Option<Stopping>,
    /// The last pass: withdraw everything.
    pub shutting_down: bool,
    /// Now.
    pub clock: Clock,
    /// Whether reloads check host facts (interfaces, groups, files) and the
    /// loop keeps host settings (reply-path sysctls); `No` in loop tests.
    pub host_checks: crate::specs::HostChecks,
    ready: bool,
}

impl State {
    /// A state for `config`; `applied` holds what was adopted from a
    /// previous edged (addresses, tables, routes).
    pub fn new(
        config_path: PathBuf,
        config: Config,
        specs: Specs,
        intents: Intents,
        state_dir: PrivateDir,
        drivers: Drivers,
        metrics: Arc<Metrics>,
    ) -> Self {
        State {
            config_path,
            config,
            specs,
            generation: 1,
            flow_sharing: metrics.flow_sharing.clone(),
            learn_until: None,
            intents,
            state_dir,
            health: HealthView::default(),
            held: HeldConnections::default(),
            applied: Applied::default(),
            drivers,
            inflight: BTreeMap::new(),
            route_errors: BTreeMap::new(),
            host_settled: false,
            bgp: BgpObservation::default(),
            counters: metrics.xdp.clone(),
            metrics,
            checks: Vec::new(),
            last_plan: Plan::default(),
            last_errors: Vec::new(),
            last_reload: None,
            started: Instant::now(),
            started_at: SystemTime::now(),
            clock: Arc::new(SystemTime::now),
            host_checks: crate::specs::HostChecks::Yes,
            drift_repaired: 0,
            stopping: None,
            shutting_down: false,
            ready: false,
        }
    }

    /// Starts from what a previous edged left, as the drivers read it
    /// back: its VIP addresses, the tables of the VIPs still configured,
    /// the routes of a BIRD kept across a planned restart.
    pub fn adopt(
        &mut self,
        addresses: std::collections::BTreeSet<std::net::IpAddr>,
        tables: BTreeMap<String, Vec<(String, u32)>>,
        routes: BTreeMap<String, RouteState>,
    ) {
        let configured: std::collections::BTreeSet<&str> =
            self.config.vips.iter().map(|v| v.name.as_str()).collect();
        self.applied.addresses = addresses;
        self.applied.tables = tables
            .into_iter()
            .filter(|(v, t)| configured.contains(v.as_str()) && !t.is_empty())
            .collect();
        self.applied.routes = routes
            .into_iter()
            .filter(|(v, _)| configured.contains(v.as_str()))
            .collect();
    }

    /// One reconcile pass: decide, apply, publish. Returns when the next
    /// time-driven pass is due (a drain deadline).
    pub async fn pass(&mut self) -> Option<SystemTime> {
        let learning = self.learning_flows();
        let plan = reconcile::step(&Inputs {
            config: &self.config,
            health: &self.health,
            intents: &self.intents,
            applied: &self.applied,
            now: (self.clock)(),
            shutting_down: self.shutting_down,
            stopping_since: self.stopping.as_ref().map(|s| s.since),
            held: &self.held,
            learning_flows: learning,
        });
        self.last_errors = self.apply(&plan.actions).await;
        for e in &self.last_errors {
            tracing::warn!(error = %e, "effect failed; will retry");
        }
        self.metrics.observe_plan(&plan, &self.bgp, &self.held);
        let mut wake = plan.wake_at;
        if learning {
            // Look again soon: the peers' answers come from another task.
            let soon = (self.clock)() + std::time::Duration::from_millis(50);
            wake = Some(wake.map_or(soon, |w| w.min(soon)));
        }
        self.last_plan = plan;
        if !self.ready && self.last_errors.is_empty() && !self.shutting_down {
            self.ready = true;
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            tracing::info!("first reconcile done; ready");
        }
        match &self.stopping {
            Some(s) => Some(wake.map_or(s.until, |w| w.min(s.until))),
            None => wake,
        }
    }

    /// Whether announcements still wait for the peers' flows: until every
    /// handoff peer answered the full sync, or `learn_until` passed.
    fn learning_flows(&mut self) -> bool {
        let Some(until) = self.learn_until else {
            return false;
        };
        let synced = {
            let s = self.flow_sharing.lock().expect("stats lock");
            s.peers.values().all(|p| p.synced)
        };
        if synced || (self.clock)() >= until {
            if synced {
                tracing::info!("learned every peer's flows; VIPs may be announced");
            } else {
                tracing::warn!("not every handoff peer sent its flows in time; announcing anyway");
            }
            self.learn_until = None;
            return false;
        }
        true
    }

    /// A stop was asked for. A graceful one starts draining every VIP
    /// (`None`: the loop goes on until [`State::drained`]); any other, or a
    /// graceful one with `node.stop_timeout: 0s`, ends the loop now.
    pub fn begin_stop(
        &mut self,
        mode: crate::control::proto::StopMode,
    ) -> Option<crate::control::proto::StopMode> {
        use crate::control::proto::StopMode;
        match mode {
            StopMode::Graceful if !self.config.node.stop_timeout.is_zero() => {
                let now = (self.clock)();
                tracing::info!(bound = ?self.config.node.stop_timeout, "stopping: draining every VIP first");
                let serving = self
                    .last_plan
                    .vips
                    .iter()
                    .filter(|d| {
                        d.holding.is_some()
                            || matches!(
                                self.applied.routes.get(&d.name),
                                Some(RouteState::Announced | RouteState::Draining)
                            )
                    })
                    .map(|d| d.name.clone())
                    .collect();
                self.stopping = Some(Stopping {
                    since: now,
                    until: now + self.config.node.stop_timeout,
                    serving,
                });
                None
            }
            StopMode::Graceful => Some(StopMode::Fast),
            mode => Some(mode),
        }
    }

    /// Whether a graceful stop has nothing left to drain (or ran out of
    /// time): every route withdrawn, and no VIP that was serving when the
    /// stop began still holds established connections.
    pub fn drained(&self) -> bool {
        let Some(s) = &self.stopping else {
            return false;
        };
        let all_down = self.config.vips.iter().all(|v| {
            self.applied
                .routes
                .get(&v.name)
                .is_none_or(|r| *r == RouteState::Withdrawn)
        });
        let holding = self
            .last_plan
            .vips
            .iter()
            .any(|d| d.holding.is_some() && s.serving.contains(&d.name));
        (all_down && !holding) || (self.clock)() >= s.until
    }

    /// Takes the latest count of the connections held-back VIPs still
    /// serve and asks for the next (on the 1 s observation tick, and only
    /// while a VIP is held back; the count walks the data plane's table of
    /// them, off the loop).
    pub fn refresh_held(&mut self) {
        let idle = self
            .config
            .forwarder
            .as_ref()
            .and_then(|f| f.handoff.as_ref())
            .map(|h| h.connection_idle);
        let any_held = self.last_plan.vips.iter().any(|d| d.handoff);
        let (Some(idle), true) = (idle, any_held) else {
            self.held = HeldConnections::default();
            return;
        };
        let Some(f) = self.drivers.forwarder.as_mut() else {
            // No data plane: nothing is served here to wait for.
            self.held = HeldConnections {
                counts: Default::default(),
                read_at: Some((self.clock)()),
            };
            return;
        };
        match f.held_connections(idle) {
            Ok(Some((began, counts))) => {
                self.held = HeldConnections {
                    counts,
                    read_at: Some(began),
                };
            }
            // The first count is not done yet.
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the held connections"),
        }
    }

    /// Takes a new snapshot of the health checker into the health view.
    pub fn refresh_health(&mut self) {
        let snapshot = self.drivers.checker.snapshot();
        self.health = crate::health::view(&snapshot);
        self.metrics.observe_checks(&snapshot);
        self.checks = snapshot;
    }

    /// Reads the data plane's counters into the metrics snapshot.
    pub fn refresh_counters(&mut self) {
        let Some(f) = &self.drivers.forwarder else {
            return;
        };
        match f.counters() {
            Ok(counters) => {
                let names = self
                    .config
                    .vips
                    .iter()
                    .map(|v| (v.address, v.name.clone()))
                    .collect();
                let per_vip = self
                    .config
                    .node
                    .metrics_per_vip
                    .unwrap_or(self.config.vips.len() <= crate::metrics_xdp::PER_VIP_UP_TO);
                let snap = crate::metrics_xdp::XdpSnapshot {
                    counters,
                    names,
                    per_vip,
                };
                *self.counters.lock().expect("xdp snapshot lock") = Some(snap);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read forwarder counters"),
        }
    }

    /// Puts the data plane's table figures (used, capacity, swaps) into
    /// the metrics snapshot at once, without the counters' map reads: a
    /// pass that changed tables shows in the metrics now, not at the next
    /// counters tick.
    pub fn refresh_tables(&mut self) {
        let Some(f) = &self.drivers.forwarder else {
            return;
        };
        let Some((usage, swaps)) = f.tables_usage() else {
            return;
        };
        let mut snap = self.counters.lock().expect("xdp snapshot lock");
        if let Some(s) = snap.as_mut() {
            s.counters.usage = usage;
            s.counters.table_swaps = swaps;
        }
    }

    /// Persists new intents; in memory only once they are on disk.
    pub fn set_intents(&mut self, new: Intents) -> Result<(), String> {
        new.save(&self.state_dir).map_err(|e| e.to_string())?;
        self.intents = new;
        Ok(())
    }
}
