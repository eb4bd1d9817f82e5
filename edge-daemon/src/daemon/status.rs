//! `edgectl status`: each component as the kernel and BIRD report it.

use super::State;
use super::queries::unix;
use crate::control::proto::{Component, Status};

impl State {
    pub(super) fn status(&self) -> Status {
        let announced = self
            .config
            .vips
            .iter()
            .filter(|v| self.exported(&v.name).is_some_and(|n| n > 0))
            .count();
        let component = |name: &str, state: &str, detail: String| Component {
            name: name.into(),
            state: state.into(),
            detail,
        };
        let failing =
            |c: crate::effects::Component| self.last_errors.iter().any(|e| e.component == c);
        let components = vec![
            match &self.config.node.vip_interface {
                None => component(
                    "addresses",
                    "disabled",
                    "node.vip_interface is null: the proxies hold the VIPs".into(),
                ),
                Some(ifname) => {
                    let want = if self.shutting_down {
                        0
                    } else {
                        self.config.vips.len()
                    };
                    let have = self.applied.addresses.len();
                    component(
                        "addresses",
                        if failing(crate::effects::Component::Addresses) || have != want {
                            "error"
                        } else {
                            "ok"
                        },
                        format!(
                            "{have} of {want} VIP addresses on {ifname} (read back every second)"
                        ),
                    )
                }
            },
            match (&self.drivers.forwarder, &self.config.forwarder) {
                (_, None) => component(
                    "forwarder",
                    "disabled",
                    "no forwarder section in the config".into(),
                ),
                (None, Some(_)) => {
                    component("forwarder", "error", "the data plane did not load".into())
                }
                (Some(f), Some(_)) => component(
                    "forwarder",
                    if failing(crate::effects::Component::Forwarder) {
                        "error"
                    } else {
                        "ok"
                    },
                    f.describe(),
                ),
            },
            {
                let count = |st: edged_health::State| {
                    self.checks.iter().filter(|(_, s)| s.state == st).count()
                };
                let (up, down) = (
                    count(edged_health::State::Up),
                    count(edged_health::State::Down),
                );
                let unknown = self.checks.len() - up - down;
                let state = if down > 0 { "degraded" } else { "ok" };
                let detail = format!(
                    "{} checks: {up} up, {down} down, {unknown} no verdict yet",
                    self.checks.len()
                );
                component("health", state, detail)
            },
            match &self.drivers.announcer {
                None => component("announcer", "error", "BIRD is not running".into()),
                Some(_) => {
                    let up = self.bgp.peers.iter().filter(|p| p.is_up()).count();
                    let mismatches = self
                        .bgp
                        .exports
                        .as_ref()
                        .map(|x| x.mismatches.as_slice())
                        .unwrap_or(&[]);
                    let state = if failing(crate::effects::Component::Announcer)
                        || !mismatches.is_empty()
                        || self.bgp.error.is_some()
                    {
                        "error"
                    } else if up < self.config.bgp.peers.len() {
                        "degraded"
                    } else {
                        "ok"
                    };
                    let mut detail = format!(
                        "BIRD: {up} of {} sessions established",
                        self.config.bgp.peers.len()
                    );
                    if let Some(m) = mismatches.first() {
                        detail +=
                            &format!("; export mismatch: peer {} {} {}", m.peer, m.prefix, m.kind);
                    }
                    if let Some(e) = &self.bgp.error {
                        detail += &format!("; {e}");
                    }
                    component("announcer", state, detail)
                }
            },
        ];
        Status {
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().as_secs(),
            config_path: self.config_path.display().to_string(),
            config_generation: self.generation,
            last_reload: self.last_reload.clone(),
            maintenance_since: self.intents.maintenance.map(|m| unix(m.since)),
            components,
            vips_total: self.config.vips.len(),
            vips_announced: announced,
            last_errors: self.last_errors.iter().map(ToString::to_string).collect(),
            started_unix: unix(self.started_at),
            drift_repaired: self.drift_repaired,
            stopping: self.stopping.as_ref().map(|s| {
                format!(
                    "draining every VIP before the stop, at most until unix {}",
                    unix(s.until)
                )
            }),
        }
    }

    /// Established sessions that export the VIP, as last read (`None`
    /// before the first read or without an announcer).
    pub(super) fn exported(&self, vip: &str) -> Option<usize> {
        self.drivers.announcer.as_ref()?;
        let x = self.bgp.exports.as_ref()?;
        Some(x.exported_to.get(vip).copied().unwrap_or(0))
    }

    /// Established sessions of the address family of `v`.
    pub(super) fn sessions_up(&self, v: &edged_config::Vip) -> Option<usize> {
        self.drivers.announcer.as_ref()?;
        self.bgp.at?;
        let six = v.address.is_ipv6();
        Some(
            self.config
                .bgp
                .peers
                .iter()
                .filter(|p| p.address.is_ipv6() == six)
                .filter(|p| {
                    let name = crate::topology::bird_name(&p.name);
                    self.bgp.peers.iter().any(|s| s.name == name && s.is_up())
                })
                .count(),
        )
    }
}
