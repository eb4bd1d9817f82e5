//! Status is observed, not remembered: every tick the loop reads back what
//! the kernel and BIRD really have (VIP addresses, which program each
//! uplink runs, BIRD's protocol states, the reply-path sysctls), and where
//! that differs from what edged applied, `applied` takes the truth, so the
//! next pass repairs it. Each repair is logged and counted
//! (`edged_drift_repaired_total{what}`).

use std::collections::BTreeSet;

use super::State;
use crate::effects::{AnnouncerEvent, ErrorKind, reply_path_sysctls};
use crate::reconcile::{Action, RouteState};

impl State {
    fn drift(&mut self, what: &'static str) {
        self.drift_repaired += 1;
        self.metrics.drift(what);
    }

    /// Reads the host back: addresses, the XDP attachment, sysctls.
    pub async fn observe_host(&mut self) {
        if let Some(a) = self.drivers.addresses.as_mut() {
            match a.list().await {
                Ok(now) => {
                    let missing: Vec<_> =
                        self.applied.addresses.difference(&now).copied().collect();
                    let unknown: Vec<_> =
                        now.difference(&self.applied.addresses).copied().collect();
                    for ip in missing {
                        tracing::warn!(address = %ip, "a VIP address edged put on the interface is gone; adding it again");
                        self.applied.addresses.remove(&ip);
                        self.drift("address");
                    }
                    for ip in unknown {
                        tracing::warn!(address = %ip, "an address marked as edged's is on the interface; taking it into account");
                        self.applied.addresses.insert(ip);
                        self.drift("address");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the VIP addresses"),
            }
        }
        if let Some(f) = self.drivers.forwarder.as_mut() {
            match f.repair().await {
                Ok(ups) => {
                    for _ in ups {
                        self.drift("xdp");
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot check or repair the XDP attachment"),
            }
        }
        self.reply_path();
    }

    /// With VIPs on this node and L2 proxies, the kernel must accept the
    /// proxies' replies (see [`reply_path_sysctls`]); set and checked at
    /// start, on reload and every tick.
    pub(super) fn reply_path(&mut self) {
        let ifaces = reply_interfaces(&self.config);
        if ifaces.is_empty() || self.host_checks == crate::specs::HostChecks::No {
            return;
        }
        match reply_path_sysctls(&ifaces) {
            Ok(changed) => {
                for c in changed {
                    if self.host_settled {
                        tracing::warn!(setting = %c, "a reply-path setting was changed behind edged's back; set it again");
                        self.drift("sysctl");
                    } else {
                        tracing::info!(setting = %c, "set for replies of L2 proxies through this node");
                    }
                }
            }
            Err(e) => tracing::error!("{e}"),
        }
        self.host_settled = true;
    }

    /// Takes what the announcer's task reports.
    pub fn on_bgp(&mut self, ev: AnnouncerEvent) {
        match ev {
            AnnouncerEvent::Route { vip, state, result } => {
                if self.inflight.get(&vip) == Some(&state) {
                    self.inflight.remove(&vip);
                }
                match result {
                    Ok(()) => {
                        tracing::info!(vip = %vip, ?state, "route applied");
                        self.route_errors.remove(&vip);
                        self.applied.record(&Action::Route { vip, state });
                    }
                    // The VIP left BIRD (removed by a reload): nothing to retry.
                    Err(e) if e.kind == ErrorKind::UnknownVip => {
                        tracing::debug!(vip = %vip, "route change for a VIP BIRD no longer has: dropped");
                        self.applied.routes.remove(&vip);
                        self.route_errors.remove(&vip);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "route change failed; will retry");
                        self.metrics.effect_error(e.component);
                        self.route_errors.insert(vip, e);
                    }
                }
            }
            AnnouncerEvent::Observed(o) => {
                if let Some(reason) = &o.restarted {
                    tracing::warn!(reason = %reason, restarts = o.restarts, "BIRD restarted with the routes it had");
                }
                if let Some(e) = &o.error {
                    tracing::warn!(error = %e, "cannot read BIRD's state");
                }
                if let Some(protocols) = &o.protocols {
                    let busy: BTreeSet<String> = self.inflight.keys().cloned().collect();
                    for (vip, has) in protocols {
                        if busy.contains(vip) {
                            continue;
                        }
                        let applied = self
                            .applied
                            .routes
                            .get(vip)
                            .copied()
                            .unwrap_or(RouteState::Withdrawn);
                        if applied != *has {
                            tracing::warn!(vip = %vip, applied = ?applied, bird = ?has, "BIRD's route differs from what edged applied; applying it again");
                            self.applied.routes.insert(vip.clone(), *has);
                            self.drift("bgp");
                        }
                    }
                }
                if let Some(x) = &o.exports {
                    let old = self
                        .bgp
                        .exports
                        .as_ref()
                        .map(|e| e.mismatches.clone())
                        .unwrap_or_default();
                    for m in x.mismatches.iter().filter(|m| !old.contains(m)) {
                        tracing::error!(peer = %m.peer, prefix = %m.prefix, kind = ?m.kind, "BIRD exports to an established session differ from edged's decision");
                        self.metrics.bgp_export_mismatches.inc();
                    }
                }
                self.metrics.observe_bgp(&o);
                self.bgp = o;
            }
        }
    }
}

/// The interfaces L2 proxies' replies come back on, when the VIPs sit on
/// this node (`node.vip_interface`) and a forwarder delivers to them.
fn reply_interfaces(cfg: &edged_config::Config) -> Vec<String> {
    if cfg.node.vip_interface.is_none() || cfg.forwarder.is_none() {
        return Vec::new();
    }
    let set: BTreeSet<String> = cfg
        .proxies
        .iter()
        .filter(|p| p.delivery == edged_config::Delivery::L2)
        .filter_map(|p| p.interface.clone())
        .collect();
    set.into_iter().collect()
}
