//! Reloads: the new file goes through the one validation, then is applied
//! as a difference. Health stays with each check's target; nothing is
//! withdrawn unless a check fails or the operator removed it. A dry run
//! says what a reload would change without changing anything.

use std::collections::{BTreeMap, BTreeSet};

use edged_config::Config;
use edged_health::{CheckKey, CheckSpec};

use super::State;
use crate::control::proto::{ConfigDiff, ReloadInfo};
use crate::reconcile::{self, Action, Inputs, RouteState};
use crate::specs::{self, HostChecks, Specs};

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
        ("bgp.mode", old.bgp.mode != new.bgp.mode),
    ];
    match checks.iter().find(|(_, changed)| *changed) {
        Some((field, _)) => Err(format!(
            "{field}: cannot change on reload; restart edged to apply it"
        )),
        None => Ok(()),
    }
}

impl State {
    /// Re-reads the config file. A bad file is rejected and the running
    /// config stays; the error is returned for `edgectl reload`.
    pub async fn reload(&mut self) -> Result<String, String> {
        let now = super::unix_now();
        let result = self.try_reload().await;
        let info = |ok, error| ReloadInfo {
            at: now as u64,
            ok,
            error,
        };
        match result {
            Ok(msg) => {
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

    async fn try_reload(&mut self) -> Result<String, String> {
        let (new, new_specs) =
            specs::load(&self.config_path, self.host_checks).map_err(|e| e.to_string())?;
        restart_only_fields(&self.config, &new)?;
        let summary = std::iter::once(counts(&self.config, &new))
            .chain(self.describe(&new, &new_specs))
            .collect::<Vec<_>>()
            .join("; ");
        // BIRD checks its new config before anything changes; a rejection
        // (file:line:column) rejects the reload.
        if new_specs.bgp != self.specs.bgp
            && let Some(a) = self.drivers.announcer.as_mut()
        {
            a.reconfigure(&new, new_specs.bgp.clone())
                .await
                .map_err(|e| e.to_string())?;
        }
        if let Some(f) = self.drivers.forwarder.as_mut() {
            let changed = f.reconfigure(&new).map_err(|e| e.to_string())?;
            for vip in changed {
                self.applied.tables.remove(&vip);
                self.applied.handoff.remove(&vip);
            }
        }
        // A VIP removed from the config left BIRD with the reconfigure: its
        // route is gone; nothing more is to be done about it there.
        let kept: BTreeSet<&str> = new.vips.iter().map(|v| v.name.as_str()).collect();
        self.applied.routes.retain(|v, _| kept.contains(v.as_str()));
        self.inflight.retain(|v, _| kept.contains(v.as_str()));
        self.drivers.checker.update(new_specs.checks.clone());
        self.config = new;
        self.specs = new_specs;
        self.generation += 1;
        self.refresh_health();
        self.reply_path();
        Ok(summary)
    }

    /// What the config file would change, without changing anything.
    pub fn dry_run(&self) -> ConfigDiff {
        match specs::load(&self.config_path, self.host_checks) {
            Ok((new, new_specs)) => self.diff_with(new, new_specs),
            Err(e) => invalid(e.to_string()),
        }
    }

    /// What `text` would change on this node, were it the config file.
    pub fn diff_text(&self, text: &str) -> ConfigDiff {
        let parsed = edged_config::parse(text)
            .map_err(|e| e.to_string())
            .and_then(|cfg| {
                let s = specs::specs(&cfg)
                    .map_err(|e| edged_config::ConfigError::Invalid { errors: e }.to_string())?;
                let host = match self.host_checks {
                    HostChecks::Yes => specs::host_facts(&cfg),
                    HostChecks::No => Vec::new(),
                };
                if !host.is_empty() {
                    return Err(edged_config::ConfigError::Invalid { errors: host }.to_string());
                }
                Ok((cfg, s))
            });
        match parsed {
            Ok((new, new_specs)) => self.diff_with(new, new_specs),
            Err(e) => invalid(e),
        }
    }

    fn diff_with(&self, new: Config, new_specs: Specs) -> ConfigDiff {
        if let Err(e) = restart_only_fields(&self.config, &new) {
            return invalid(e);
        }
        let mut changes = self.describe(&new, &new_specs);
        if changes.is_empty() {
            changes.push("no change".into());
        }
        ConfigDiff {
            changes,
            valid: true,
            error: None,
        }
    }

    /// The changes from the running config to `new`, in words: VIPs,
    /// checks, BGP, and then what the first pass on `new` would do to
    /// routes, tables and addresses given health and intents as they are.
    fn describe(&self, new: &Config, new_specs: &Specs) -> Vec<String> {
        let mut out = Vec::new();
        let old_vips: BTreeMap<&str, &edged_config::Vip> = self
            .config
            .vips
            .iter()
            .map(|v| (v.name.as_str(), v))
            .collect();
        let new_vips: BTreeMap<&str, &edged_config::Vip> =
            new.vips.iter().map(|v| (v.name.as_str(), v)).collect();
        for (name, v) in &new_vips {
            match old_vips.get(name) {
                None => out.push(format!(
                    "VIP {name} ({}) added: announced once its checks pass",
                    v.address
                )),
                Some(o) if o.address != v.address || o.ports != v.ports => out.push(format!(
                    "VIP {name}: address or ports changed ({} → {}); its table is written again",
                    o.address, v.address
                )),
                Some(o) if o != v => out.push(format!("VIP {name}: settings changed")),
                Some(_) => {}
            }
        }
        for name in old_vips.keys().filter(|n| !new_vips.contains_key(*n)) {
            out.push(format!(
                "VIP {name} removed: withdrawn, then its table and address go"
            ));
        }
        checks_diff(&self.specs.checks, &new_specs.checks, &mut out);
        bgp_diff(&self.config, new, &mut out);
        // What the first pass would do.
        let plan = reconcile::step(&Inputs {
            config: new,
            health: &self.health,
            intents: &self.intents,
            applied: &self.applied,
            now: (self.clock)(),
            shutting_down: false,
            stopping_since: self.stopping.as_ref().map(|s| s.since),
            held: &self.held,
            learning_flows: false,
        });
        for a in &plan.actions {
            out.push(match a {
                Action::Route { vip, state } => format!(
                    "route {vip}: {} → {}",
                    self.applied
                        .routes
                        .get(vip)
                        .copied()
                        .unwrap_or(RouteState::Withdrawn),
                    state
                ),
                Action::SetTable { vip, proxies } => format!(
                    "table {vip}: [{}] → [{}]",
                    table(
                        self.applied
                            .tables
                            .get(vip)
                            .map(Vec::as_slice)
                            .unwrap_or(&[])
                    ),
                    table(proxies)
                ),
                Action::RemoveTable { vip } => format!("table {vip}: removed"),
                Action::AddAddress(ip) => format!("address {ip}: added"),
                Action::RemoveAddress(ip) => format!("address {ip}: removed"),
                Action::Handoff { vip, on } => {
                    format!("handoff {vip}: {}", if *on { "on" } else { "off" })
                }
            });
        }
        out
    }
}

/// `2 VIPs added, 0 removed, 1 changed` (or `no change`).
fn counts(old: &Config, new: &Config) -> String {
    if old == new {
        return "no change".into();
    }
    let names = |c: &Config| {
        c.vips
            .iter()
            .map(|v| v.name.clone())
            .collect::<BTreeSet<_>>()
    };
    let (a, b) = (names(old), names(new));
    let changed = new
        .vips
        .iter()
        .filter(|v| old.vips.iter().any(|o| o.name == v.name && o != *v))
        .count();
    format!(
        "{} VIPs added, {} removed, {changed} changed",
        b.difference(&a).count(),
        a.difference(&b).count()
    )
}

fn invalid(error: String) -> ConfigDiff {
    ConfigDiff {
        changes: Vec::new(),
        valid: false,
        error: Some(error),
    }
}

fn table(t: &[(String, u32)]) -> String {
    t.iter()
        .map(|(n, w)| format!("{n} {w}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn checks_diff(
    old: &[(CheckKey, CheckSpec)],
    new: &[(CheckKey, CheckSpec)],
    out: &mut Vec<String>,
) {
    let old: BTreeMap<&CheckKey, &CheckSpec> = old.iter().map(|(k, s)| (k, s)).collect();
    let new: BTreeMap<&CheckKey, &CheckSpec> = new.iter().map(|(k, s)| (k, s)).collect();
    let (mut settings, mut targets, mut added, mut removed) = (0, 0, 0, 0);
    for (k, s) in &new {
        match old.get(k) {
            None => added += 1,
            Some(o) if o.kind.target() != s.kind.target() => targets += 1,
            Some(o) if o != s => settings += 1,
            Some(_) => {}
        }
    }
    for k in old.keys() {
        if !new.contains_key(k) {
            removed += 1;
        }
    }
    if settings > 0 {
        out.push(format!(
            "{settings} checks: new settings, same target (state kept)"
        ));
    }
    if targets > 0 {
        out.push(format!(
            "{targets} checks: new target (pending until decided; serving proxies keep serving)"
        ));
    }
    if added > 0 {
        out.push(format!("{added} checks added (pending until decided)"));
    }
    if removed > 0 {
        out.push(format!("{removed} checks removed"));
    }
}

fn bgp_diff(old: &Config, new: &Config, out: &mut Vec<String>) {
    let names = |c: &Config| -> BTreeMap<String, edged_config::Peer> {
        c.bgp
            .peers
            .iter()
            .map(|p| (p.name.clone(), p.clone()))
            .collect()
    };
    let (o, n) = (names(old), names(new));
    for (name, p) in &n {
        match o.get(name) {
            None => out.push(format!(
                "BGP peer {name} ({}, AS {}) added",
                p.address, p.asn
            )),
            Some(q) if q != p => out.push(format!(
                "BGP peer {name}: settings changed (session restarts)"
            )),
            Some(_) => {}
        }
    }
    for name in o.keys().filter(|k| !n.contains_key(*k)) {
        out.push(format!("BGP peer {name} removed"));
    }
    let attrs = |c: &Config| {
        (
            c.bgp.graceful_shutdown,
            c.bgp.drain_med,
            c.bgp.drain_prepend,
            c.vips
                .iter()
                .map(|v| {
                    (
                        v.name.clone(),
                        v.communities.clone(),
                        v.large_communities.clone(),
                    )
                })
                .collect::<Vec<_>>(),
        )
    };
    if attrs(old) != attrs(new) {
        out.push("BGP attributes (drain policy or communities) changed".into());
    }
}
