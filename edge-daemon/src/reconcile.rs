//! The reconcile step: desired config + health observations + operator
//! intents + what is applied now → the decision for every VIP and the actions
//! that get there. Pure: no I/O, no clock (the caller passes `now`), no tokio.
//!
//! Rules, in order, for each VIP's route:
//! 1. edged is shutting down → withdrawn.
//! 2. fewer than `min_healthy` proxies serve it → withdrawn at once (no drain wait).
//! 3. maintenance or an operator drain → if it was announced: with
//!    `forwarder.handoff`, still announced for `handoff.time` while its new
//!    connections are handed to the peer nodes; then announced with
//!    GRACEFUL_SHUTDOWN for `drain_time`; then withdrawn. Handoff stays on
//!    while the VIP is held back, and after the withdrawal the drain is
//!    complete only once the connections this node still serves (the
//!    peers send them back here) have ended, or after
//!    `handoff.connection_timeout`.
//! 4. otherwise → announced.
//!
//! A proxy serves a VIP when the health view says so. A proxy whose check
//! has not decided yet (new after a reload or a restart) changes nothing:
//! it stays in the VIP's table if it is there and out if it is not, and it
//! counts toward `min_healthy` only to keep an announced VIP announced. So
//! a cold start announces nothing before its checks pass (fail closed),
//! and a reload or a planned restart withdraws nothing a check did not
//! fail.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use edged_config::Config;
use serde::{Deserialize, Serialize};

use crate::intents::Intents;

/// What BGP should say about a VIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum RouteState {
    /// Not announced.
    Withdrawn,
    /// Announced normally.
    Announced,
    /// Announced with GRACEFUL_SHUTDOWN (and drain MED/prepend) before withdrawal.
    Draining,
}

impl RouteState {
    /// Its name in output (`announced`, ...), as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteState::Withdrawn => "withdrawn",
            RouteState::Announced => "announced",
            RouteState::Draining => "draining",
        }
    }
}

impl std::fmt::Display for RouteState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Health of one proxy for one VIP, as the health checker reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Serve {
    /// Every service of the VIP passes on this proxy.
    Serving,
    /// At least one service fails; the reason names it.
    NotServing(String),
}

/// Health observations: vip name → proxy name → state. A missing entry
/// means no verdict yet.
#[derive(Clone, Debug, Default)]
pub struct HealthView {
    /// Whether a health checker feeds this view at all.
    pub running: bool,
    /// Per VIP, per proxy verdicts.
    pub serve: HashMap<String, HashMap<String, Serve>>,
}

impl HealthView {
    /// The verdict for one proxy of one VIP.
    pub fn get(&self, vip: &str, proxy: &str) -> Option<&Serve> {
        self.serve.get(vip)?.get(proxy)
    }

    /// Records a verdict.
    pub fn set(&mut self, vip: &str, proxy: &str, s: Serve) {
        self.serve
            .entry(vip.to_string())
            .or_default()
            .insert(proxy.to_string(), s);
    }
}

/// What the effect drivers hold now (last successfully applied).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    /// VIP addresses edged has put on the VIP interface.
    pub addresses: BTreeSet<IpAddr>,
    /// Route state per VIP name.
    pub routes: HashMap<String, RouteState>,
    /// Forwarding table (serving proxies and weights) per VIP name.
    pub tables: HashMap<String, Vec<(String, u32)>>,
    /// VIPs whose new connections the forwarder hands to peer nodes.
    pub handoff: BTreeSet<String>,
}

impl Applied {
    /// Records that a driver carried out `action`.
    pub fn record(&mut self, action: &Action) {
        match action {
            Action::AddAddress(ip) => {
                self.addresses.insert(*ip);
            }
            Action::RemoveAddress(ip) => {
                self.addresses.remove(ip);
            }
            Action::SetTable { vip, proxies } => {
                self.tables.insert(vip.clone(), proxies.clone());
            }
            Action::RemoveTable { vip } => {
                self.tables.remove(vip);
                self.handoff.remove(vip);
            }
            Action::Handoff { vip, on: true } => {
                self.handoff.insert(vip.clone());
            }
            Action::Handoff { vip, on: false } => {
                self.handoff.remove(vip);
            }
            Action::Route { vip, state } => {
                self.routes.insert(vip.clone(), *state);
            }
        }
    }
}

/// One change for an effect driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Put a VIP address on the VIP interface.
    AddAddress(IpAddr),
    /// Remove a VIP address edged added.
    RemoveAddress(IpAddr),
    /// Replace a VIP's forwarding table with these proxies and weights.
    SetTable {
        vip: String,
        proxies: Vec<(String, u32)>,
    },
    /// Forget a VIP's forwarding table (VIP removed from config).
    RemoveTable { vip: String },
    /// Hand the VIP's new connections to peer nodes, or stop.
    Handoff { vip: String, on: bool },
    /// Move a VIP's route to this state.
    Route { vip: String, state: RouteState },
}

/// The decision for one VIP, with the reason operators see.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipDecision {
    /// VIP name.
    pub name: String,
    /// Route state to reach.
    pub route: RouteState,
    /// Why, in words.
    pub reason: String,
    /// Proxies serving the VIP now.
    pub serving: Vec<String>,
    /// Proxies configured for the VIP.
    pub configured: usize,
    /// New connections go to peer nodes (drain with `forwarder.handoff`).
    #[serde(default)]
    pub handoff: bool,
    /// Withdrawn, and the drain still waits for this many established
    /// connections this node serves through its peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holding: Option<u64>,
}

/// The established connections held-back VIPs still serve here, as last
/// read from the data plane.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeldConnections {
    /// By VIP name; a VIP with none is absent.
    pub counts: HashMap<String, u64>,
    /// When they were read (`None`: not since the VIPs were held back).
    pub read_at: Option<SystemTime>,
}

/// Output of one step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// One decision per configured VIP, in config order.
    pub vips: Vec<VipDecision>,
    /// Changes to make, in order: withdrawals and drains, address additions,
    /// table changes, handoff changes, announcements, table and address
    /// removals.
    pub actions: Vec<Action>,
    /// When a drain deadline passes and the step must run again.
    pub wake_at: Option<SystemTime>,
}

/// Everything one step looks at.
pub struct Inputs<'a> {
    pub config: &'a Config,
    pub health: &'a HealthView,
    pub intents: &'a Intents,
    pub applied: &'a Applied,
    pub now: SystemTime,
    /// Withdraw everything now (the last pass of a stop).
    pub shutting_down: bool,
    /// A graceful stop began then: every VIP drains as in maintenance.
    pub stopping_since: Option<SystemTime>,
    /// The connections held-back VIPs still serve.
    pub held: &'a HeldConnections,
    /// The node is still learning which flows its handoff peers own (it
    /// just started): a VIP not announced yet waits, so that the flows
    /// the ToR will move here can be sent back to their owners.
    pub learning_flows: bool,
}

// === step ===

/// One reconcile step.
pub fn step(i: &Inputs<'_>) -> Plan {
    let mut plan = Plan::default();
    let manage_addrs = !i.shutting_down && i.config.node.vip_interface.is_some();
    let mut want = Want::default();
    for vip in &i.config.vips {
        if manage_addrs {
            want.addrs.insert(vip.address);
        }
        let members = members(i.config, vip);
        let split = split_by_health(i, &vip.name, &members);
        let up_now = matches!(
            i.applied.routes.get(&vip.name),
            Some(RouteState::Announced | RouteState::Draining)
        );
        // Pending proxies keep an announced VIP announced; they never
        // announce one.
        let count = if up_now {
            split.serving.len()
        } else {
            split.confirmed
        };
        let Decided {
            route,
            reason,
            wake,
            holding,
        } = decide_route(i, vip, count, members.len(), &split.not_serving);
        let serving = split.serving;
        let handoff = handoff_wanted(i, vip);
        if let Some(w) = wake {
            plan.wake_at = Some(plan.wake_at.map_or(w, |p: SystemTime| p.min(w)));
        }
        plan.vips.push(VipDecision {
            name: vip.name.clone(),
            route,
            reason,
            serving: serving.iter().map(|(n, _)| n.to_string()).collect(),
            configured: members.len(),
            handoff,
            holding,
        });
        if i.config.forwarder.is_some() {
            want.tables.push((&vip.name, serving));
            if handoff {
                want.handoff.insert(&vip.name);
            }
        }
        want.routes.push((&vip.name, route));
    }
    diff(i.applied, &want, &mut plan.actions);
    plan
}

/// What one step wants, borrowing names from the config (no copies until an
/// action needs one).
#[derive(Default)]
struct Want<'a> {
    addrs: BTreeSet<IpAddr>,
    tables: Vec<(&'a str, Vec<(&'a str, u32)>)>,
    routes: Vec<(&'a str, RouteState)>,
    handoff: BTreeSet<&'a str>,
}

/// The proxies configured for a VIP, in config order.
fn members<'a>(cfg: &'a Config, vip: &edged_config::Vip) -> Vec<&'a edged_config::Proxy> {
    crate::topology::members(cfg, vip).collect()
}

/// A VIP's members by health.
struct Split<'a> {
    /// Proxies in the table: those that pass, and those still pending that
    /// were in the table already.
    serving: Vec<(&'a str, u32)>,
    /// Of `serving`, those whose checks pass.
    confirmed: usize,
    /// Why the others do not serve.
    not_serving: Vec<String>,
}

fn split_by_health<'a>(
    i: &Inputs<'_>,
    vip: &str,
    members: &[&'a edged_config::Proxy],
) -> Split<'a> {
    let (h, weights) = (i.health, &i.intents.weights);
    let mut out = Split {
        serving: Vec::new(),
        confirmed: 0,
        not_serving: Vec::new(),
    };
    let verdicts = h.serve.get(vip);
    let in_table = |name: &str| {
        i.applied
            .tables
            .get(vip)
            .is_some_and(|t| t.iter().any(|(n, _)| n == name))
    };
    for p in members {
        let name = p.name.as_str();
        let weight = crate::topology::weight(p, weights);
        match verdicts.and_then(|v| v.get(name)) {
            Some(Serve::Serving) => {
                out.serving.push((name, weight));
                out.confirmed += 1;
            }
            Some(Serve::NotServing(r)) => out.not_serving.push(format!("{name}: {r}")),
            None if h.running && in_table(name) => out.serving.push((name, weight)),
            None if h.running => out
                .not_serving
                .push(format!("{name}: no health result yet")),
            None => out
                .not_serving
                .push(format!("{name}: no health checker running")),
        }
    }
    out
}

/// Why a VIP is held back (a stop, then maintenance, then a drain), and
/// since when.
fn held(i: &Inputs<'_>, vip: &str) -> Option<(SystemTime, &'static str)> {
    if let Some(since) = i.stopping_since {
        return Some((since, "edged is stopping"));
    }
    match (&i.intents.maintenance, i.intents.drained.get(vip)) {
        (Some(m), _) => Some((m.since, "maintenance")),
        (None, Some(d)) => Some((d.since, "drained by operator")),
        (None, None) => None,
    }
}

/// How long a held-back VIP hands off before its graceful shutdown.
fn handoff_time(cfg: &Config) -> Option<Duration> {
    Some(cfg.forwarder.as_ref()?.handoff.as_ref()?.time)
}

/// Handoff is on for every held-back VIP when peers are configured: before
/// the route goes it moves new connections, after it catches stragglers.
fn handoff_wanted(i: &Inputs<'_>, vip: &edged_config::Vip) -> bool {
    handoff_time(i.config).is_some() && held(i, &vip.name).is_some()
}

/// A VIP's route, why, when to look again, and the connections a
/// withdrawn VIP's drain still waits for.
struct Decided {
    route: RouteState,
    reason: String,
    wake: Option<SystemTime>,
    holding: Option<u64>,
}

fn decided(route: RouteState, reason: String, wake: Option<SystemTime>) -> Decided {
    Decided {
        route,
        reason,
        wake,
        holding: None,
    }
}

fn decide_route(
    i: &Inputs<'_>,
    vip: &edged_config::Vip,
    serving: usize,
    configured: usize,
    not_serving: &[String],
) -> Decided {
    use RouteState::*;
    if i.shutting_down {
        return decided(Withdrawn, "edged is shutting down".into(), None);
    }
    let count = format!(
        "{serving} of {configured} proxies serve (min_healthy {})",
        vip.min_healthy
    );
    if (serving as u32) < vip.min_healthy {
        return decided(
            Withdrawn,
            format!("{count}: {}", not_serving.join("; ")),
            None,
        );
    }
    let was_up = matches!(i.applied.routes.get(&vip.name), Some(Announced | Draining));
    let Some((began, why)) = held(i, &vip.name) else {
        if i.learning_flows && !was_up {
            return decided(
                Withdrawn,
                format!("{count}; learning the peer nodes' flows before announcing"),
                None,
            );
        }
        return decided(Announced, count, None);
    };
    let mut since = began;
    if let Some(t) = handoff_time(i.config) {
        let until = since + t;
        if was_up && i.now < until {
            let left = until.duration_since(i.now).unwrap_or(Duration::ZERO);
            let reason = format!(
                "{why}: new connections handed to peer nodes, graceful shutdown in {}s",
                left.as_secs_f64().ceil()
            );
            return decided(Announced, reason, Some(until));
        }
        since = until;
    }
    let graceful = i.config.bgp.graceful_shutdown && !i.config.node.drain_time.is_zero();
    let until = since + i.config.node.drain_time;
    if was_up && graceful && i.now < until {
        let left = until.duration_since(i.now).unwrap_or(Duration::ZERO);
        let reason = format!(
            "{why}: graceful shutdown, withdraw in {}s",
            left.as_secs_f64().ceil()
        );
        return decided(Draining, reason, Some(until));
    }
    let withdrawn_at = if graceful { until } else { since };
    holding(i, vip, began, withdrawn_at, why)
}

/// A withdrawn, held-back VIP: its drain is complete once a reading of
/// the data plane taken after the withdrawal, and at least
/// `connection_idle` after the hold began (so that every connection alive
/// then has been seen since), counts no connection; or at
/// `connection_timeout` after the withdrawal.
fn holding(
    i: &Inputs<'_>,
    vip: &edged_config::Vip,
    began: SystemTime,
    withdrawn_at: SystemTime,
    why: &str,
) -> Decided {
    let Some(h) = i.config.forwarder.as_ref().and_then(|f| f.handoff.as_ref()) else {
        return decided(RouteState::Withdrawn, why.into(), None);
    };
    let deadline = withdrawn_at + h.connection_timeout;
    if i.now >= deadline {
        return decided(RouteState::Withdrawn, why.into(), None);
    }
    let n = i.held.counts.get(&vip.name).copied().unwrap_or(0);
    let fresh = withdrawn_at.max(began + h.connection_idle);
    if n == 0 && i.held.read_at.is_some_and(|t| t >= fresh) {
        return decided(RouteState::Withdrawn, why.into(), None);
    }
    let left = deadline.duration_since(i.now).unwrap_or(Duration::ZERO);
    Decided {
        route: RouteState::Withdrawn,
        reason: format!(
            "{why}: withdrawn; still serving {n} established connections through the peer nodes (at most {}s more)",
            left.as_secs_f64().ceil()
        ),
        wake: Some(deadline),
        holding: Some(n),
    }
}

fn diff(applied: &Applied, want: &Want<'_>, out: &mut Vec<Action>) {
    let configured: HashSet<&str> = want.routes.iter().map(|(v, _)| *v).collect();
    let current = |vip: &str| applied.routes.get(vip).copied();
    let mut retreat = Vec::new();
    let mut announce = Vec::new();
    for (vip, state) in &want.routes {
        if current(vip).unwrap_or(RouteState::Withdrawn) != *state {
            let a = Action::Route {
                vip: vip.to_string(),
                state: *state,
            };
            match state {
                RouteState::Announced => announce.push(a),
                _ => retreat.push(a),
            }
        }
    }
    // Removed VIPs, sorted so that a plan is the same on every run.
    let mut gone: Vec<&String> = applied
        .routes
        .iter()
        .filter(|(v, s)| !configured.contains(v.as_str()) && **s != RouteState::Withdrawn)
        .map(|(v, _)| v)
        .collect();
    gone.sort();
    let withdraw = |v: &String| Action::Route {
        vip: v.clone(),
        state: RouteState::Withdrawn,
    };
    retreat.extend(gone.into_iter().map(withdraw));

    // Traffic is moved away first, then what serves it is added, then
    // traffic is invited, then what is no longer used is removed, once
    // every route that must go is gone (a withdrawal is confirmed by the
    // announcer in a later pass).
    let removals_wait = !retreat.is_empty();
    out.extend(retreat);
    let added = want.addrs.difference(&applied.addresses);
    out.extend(added.map(|a| Action::AddAddress(*a)));
    for (vip, table) in &want.tables {
        let same = applied.tables.get(*vip).is_some_and(|t| {
            t.len() == table.len() && t.iter().zip(table).all(|(a, b)| a.0 == b.0 && a.1 == b.1)
        });
        if !same {
            let proxies = table.iter().map(|(n, w)| (n.to_string(), *w)).collect();
            out.push(Action::SetTable {
                vip: vip.to_string(),
                proxies,
            });
        }
    }
    let handoff_on = want
        .handoff
        .iter()
        .filter(|v| !applied.handoff.contains(**v));
    out.extend(handoff_on.map(|v| Action::Handoff {
        vip: v.to_string(),
        on: true,
    }));
    let tabled: HashSet<&str> = want.tables.iter().map(|(v, _)| *v).collect();
    let handoff_off = applied
        .handoff
        .iter()
        .filter(|v| !want.handoff.contains(v.as_str()) && tabled.contains(v.as_str()));
    out.extend(handoff_off.map(|v| Action::Handoff {
        vip: v.clone(),
        on: false,
    }));
    out.extend(announce);
    if removals_wait {
        return;
    }
    let mut untabled: Vec<&String> = applied
        .tables
        .keys()
        .filter(|v| !tabled.contains(v.as_str()))
        .collect();
    untabled.sort();
    out.extend(
        untabled
            .into_iter()
            .map(|v| Action::RemoveTable { vip: v.clone() }),
    );
    let removed = applied.addresses.difference(&want.addrs);
    out.extend(removed.map(|a| Action::RemoveAddress(*a)));
}
