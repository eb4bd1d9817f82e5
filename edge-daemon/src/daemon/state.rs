//! The daemon's state and what changes it: reconcile passes, reloads,
//! operator intents.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use edged_config::Config;

use crate::control::proto::ReloadInfo;
use crate::effects::Addresses;
use crate::intents::Intents;
use crate::metrics::Metrics;
use crate::reconcile::{self, Applied, HealthView, Inputs, Plan};

/// Everything the loop owns.
pub struct State {
    pub config_path: PathBuf,
    pub config: Config,
    pub generation: u64,
    pub intents: Intents,
    pub health: HealthView,
    pub applied: Applied,
    /// VIP addresses; `None` when `node.vip_interface` is null.
    pub addresses: Option<Box<dyn Addresses>>,
    /// The XDP forwarder; `None` without a `forwarder:` section.
    pub forwarder: Option<crate::effects::XdpForwarder>,
    /// BIRD, through its control socket.
    pub announcer: Option<crate::effects::BirdAnnouncer>,
    /// The BGP sessions as last read.
    pub peers: Vec<edged_bgp::PeerStatus>,
    /// Export mismatches found by the last verification.
    pub export_mismatches: Vec<String>,
    pub metrics: Arc<Metrics>,
    /// The health checker's last snapshot (for edgectl and metrics).
    pub checks: Vec<(edged_health::CheckKey, edged_health::CheckStatus)>,
    pub last_plan: Plan,
    pub last_errors: Vec<String>,
    pub last_reload: Option<ReloadInfo>,
    pub started: Instant,
    pub shutting_down: bool,
    ready: bool,
}

impl State {
    pub fn new(
        config_path: PathBuf,
        config: Config,
        intents: Intents,
        addresses: Option<Box<dyn Addresses>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        State {
            config_path,
            config,
            generation: 1,
            intents,
            health: HealthView::default(),
            applied: Applied::default(),
            addresses,
            forwarder: None,
            announcer: None,
            peers: Vec::new(),
            export_mismatches: Vec::new(),
            metrics,
            checks: Vec::new(),
            last_plan: Plan::default(),
            last_errors: Vec::new(),
            last_reload: None,
            started: Instant::now(),
            shutting_down: false,
            ready: false,
        }
    }

    /// One reconcile pass: decide, apply, publish. Returns when the next
    /// time-driven pass is due (a drain deadline).
    pub async fn pass(&mut self) -> Option<SystemTime> {
        let plan = reconcile::step(&Inputs {
            config: &self.config,
            health: &self.health,
            intents: &self.intents,
            applied: &self.applied,
            now: SystemTime::now(),
            shutting_down: self.shutting_down,
        });
        self.last_errors = self.apply(&plan.actions).await;
        for e in &self.last_errors {
            tracing::warn!(error = %e, "effect failed; will retry");
        }
        self.metrics.observe_plan(&plan);
        let wake = plan.wake_at;
        self.last_plan = plan;
        if !self.ready && self.last_errors.is_empty() && !self.shutting_down {
            self.ready = true;
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            tracing::info!("first reconcile done; ready");
        }
        wake
    }

    /// Re-reads the config file. A bad file is rejected and the running
    /// config stays; the error is returned for `edgectl reload`.
    pub async fn reload(&mut self) -> Result<String, String> {
        let now = super::unix_now();
        let mut result = edged_config::load(&self.config_path)
            .map_err(|e| e.to_string())
            .and_then(|new| {
                restart_only_fields(&self.config, &new)?;
                Ok(new)
            });
        // BIRD checks its new config before anything changes; a rejection
        // (file:line:column) rejects the reload.
        if let (Ok(new), Some(a)) = (&result, self.announcer.as_mut())
            && let Err(e) = a.reconfigure(new).await
        {
            result = Err(e.to_string());
        }
        let info = |ok, error| ReloadInfo {
            at: now as u64,
            ok,
            error,
        };
        let result = result.and_then(|new| {
            if let Some(f) = &mut self.forwarder {
                let changed = f.reconfigure(&new).map_err(|e| e.to_string())?;
                for vip in changed {
                    self.applied.tables.remove(&vip);
                    self.applied.handoff.remove(&vip);
                }
            }
            Ok(new)
        });
        match result {
            Ok(new) => {
                let msg = describe_change(&self.config, &new);
                self.config = new;
                self.generation += 1;
                self.metrics.reload(true, now);
                self.last_reload = Some(info(true, None));
                tracing::info!(generation = self.generation, "config reloaded: {msg}");
                Ok(msg)
            }
            Err(e) => {
                self.metrics.reload(false, now);
                self.last_reload = Some(info(false, Some(e.clone())));
                tracing::error!("config reload rejected, running config kept: {e}");
                Err(e)
            }
        }
    }

    /// Restarts a dead BIRD, reads the sessions and checks what is
    /// exported against what was decided.
    pub async fn check_bgp(&mut self) {
        let Some(a) = self.announcer.as_mut() else {
            return;
        };
        match a.supervise().await {
            Ok(Some(event)) => tracing::warn!("{event}"),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "BIRD supervision failed"),
        }
        match a.peers().await {
            Ok(p) => self.peers = p,
            Err(e) => tracing::warn!(error = %e, "cannot read BGP sessions"),
        }
        match a.verify().await {
            Ok(m) => {
                for x in m.iter().filter(|x| !self.export_mismatches.contains(x)) {
                    tracing::error!(mismatch = %x, "BIRD exports differ from edged's decision");
                    self.metrics.bgp_export_mismatches.inc();
                }
                self.export_mismatches = m;
            }
            Err(e) => tracing::warn!(error = %e, "cannot verify exports"),
        }
        self.metrics.observe_bgp(&self.peers, a.restarts());
    }

    /// Reads the data plane's counters into the metrics snapshot.
    pub fn refresh_counters(&mut self) {
        let Some(f) = &self.forwarder else { return };
        match f.counters() {
            Ok(counters) => {
                let names = self
                    .config
                    .vips
                    .iter()
                    .map(|v| (v.address, v.name.clone()))
                    .collect();
                let snap = crate::metrics_xdp::XdpSnapshot { counters, names };
                *self.metrics.xdp.lock().expect("xdp snapshot lock") = Some(snap);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read forwarder counters"),
        }
    }

    /// Takes a new snapshot of the health checker into the health view.
    pub fn set_checks(
        &mut self,
        snapshot: Vec<(edged_health::CheckKey, edged_health::CheckStatus)>,
    ) {
        self.health = crate::health::view(&snapshot);
        self.metrics.observe_checks(&snapshot);
        self.checks = snapshot;
    }

    /// Persists new intents; in memory only once they are on disk.
    pub fn set_intents(&mut self, new: Intents) -> Result<(), String> {
        new.save(&self.config.node.state_dir)
            .map_err(|e| e.to_string())?;
        self.intents = new;
        Ok(())
    }
}

/// Fields bound at start; changing them needs a restart.
fn restart_only_fields(old: &Config, new: &Config) -> Result<(), String> {
    let (o, n) = (&old.node, &new.node);
    // Handoff peers may change on reload (a node added to the rack).
    let bound = |c: &Config| {
        c.forwarder.clone().map(|mut f| {
            f.handoff = None;
            f
        })
    };
    let checks = [
        ("node.state_dir", o.state_dir != n.state_dir),
        ("node.control_socket", o.control_socket != n.control_socket),
        ("node.control_group", o.control_group != n.control_group),
        ("node.metrics_listen", o.metrics_listen != n.metrics_listen),
        ("node.vip_interface", o.vip_interface != n.vip_interface),
        ("forwarder", bound(old) != bound(new)),
    ];
    match checks.iter().find(|(_, changed)| *changed) {
        Some((field, _)) => Err(format!(
            "{field}: cannot change on reload; restart edged to apply it"
        )),
        None => Ok(()),
    }
}

fn describe_change(old: &Config, new: &Config) -> String {
    let names = |c: &Config| {
        c.vips
            .iter()
            .map(|v| v.name.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let (a, b) = (names(old), names(new));
    let added = b.difference(&a).count();
    let removed = a.difference(&b).count();
    let changed = new
        .vips
        .iter()
        .filter(|v| old.vips.iter().any(|o| o.name == v.name && o != *v))
        .count();
    if old == new {
        "no change".into()
    } else {
        format!("{added} VIPs added, {removed} removed, {changed} changed")
    }
}
