//! Answers to control API queries, from the loop's state.

use std::time::SystemTime;

use serde::Serialize;

use super::State;
use crate::control::proto::*;
use crate::control::{ApiError, Query};
use crate::intents::Since;
use crate::reconcile::{RouteState, Serve};

type Answer = Result<serde_json::Value, ApiError>;

fn json<T: Serialize>(v: T) -> Answer {
    Ok(serde_json::to_value(v).expect("control replies always serialize"))
}

fn done(message: String) -> Answer {
    json(Done { message })
}

pub(super) fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl State {
    /// Answers one query; intents and reloads change state here. A stop is
    /// the loop's to carry out ([`super::run`]).
    pub async fn handle(&mut self, q: Query) -> Answer {
        match q {
            Query::Status => json(self.status()),
            Query::Vips => json(self.vips()),
            Query::Proxies => {
                self.refresh_counters();
                json(self.proxies())
            }
            Query::Peers => json(self.peers()),
            Query::Drain(v) => self.drain(&v, true),
            Query::Undrain(v) => self.drain(&v, false),
            Query::Maintenance(on) => self.maintenance(on),
            Query::Weight(proxy, w) => self.weight(&proxy, w),
            Query::Reload { dry_run: true } => json(self.dry_run()),
            Query::Reload { dry_run: false } => match self.reload().await {
                Ok(msg) => done(format!("reloaded: {msg}")),
                Err(e) => Err(ApiError {
                    status: 422,
                    message: format!("reload rejected, running config kept:\n{e}"),
                }),
            },
            Query::Diff(text) => json(self.diff_text(&text)),
            Query::Stop(_) => Err(ApiError {
                status: 500,
                message: "stop is handled by the loop".into(),
            }),
        }
    }

    fn vip_name(&self, name_or_addr: &str) -> Result<String, ApiError> {
        self.config
            .vips
            .iter()
            .find(|v| v.name == name_or_addr || v.address.to_string() == name_or_addr)
            .map(|v| v.name.clone())
            .ok_or_else(|| ApiError {
                status: 404,
                message: format!("no VIP named `{name_or_addr}` (see edgectl vips)"),
            })
    }

    fn drain(&mut self, vip: &str, on: bool) -> Answer {
        let name = self.vip_name(vip)?;
        let mut next = self.intents.clone();
        let changed = if on {
            !next.drained.contains_key(&name)
                && next
                    .drained
                    .insert(
                        name.clone(),
                        Since {
                            since: (self.clock)(),
                        },
                    )
                    .is_none()
        } else {
            next.drained.remove(&name).is_some()
        };
        let verb = if on { "drained" } else { "undrained" };
        if !changed {
            return done(format!("{name}: already {verb}"));
        }
        self.set_intents(next).map_err(|e| ApiError {
            status: 500,
            message: e,
        })?;
        tracing::info!(vip = %name, "{verb} by operator");
        done(format!("{name}: {verb}"))
    }

    fn weight(&mut self, proxy: &str, w: Option<u32>) -> Answer {
        if !self.config.proxies.iter().any(|p| p.name == proxy) {
            return Err(ApiError {
                status: 404,
                message: format!("no proxy named `{proxy}` (see edgectl proxies)"),
            });
        }
        if let Some(w) = w
            && w > edged_config::MAX_WEIGHT
        {
            let max = edged_config::MAX_WEIGHT;
            return Err(ApiError {
                status: 400,
                message: format!("weight {w} is above the maximum {max}"),
            });
        }
        let mut next = self.intents.clone();
        match w {
            Some(w) => next.weights.insert(proxy.to_string(), w),
            None => next.weights.remove(proxy),
        };
        self.set_intents(next).map_err(|e| ApiError {
            status: 500,
            message: e,
        })?;
        tracing::info!(proxy, ?w, "runtime weight changed by operator");
        match w {
            Some(w) => done(format!(
                "{proxy}: weight {w} (runtime; edgectl weight {proxy} reset to undo)"
            )),
            None => done(format!("{proxy}: weight back to the config's")),
        }
    }

    fn maintenance(&mut self, on: bool) -> Answer {
        let mut next = self.intents.clone();
        if on == next.maintenance.is_some() {
            return done(format!(
                "maintenance already {}",
                if on { "on" } else { "off" }
            ));
        }
        next.maintenance = on.then(|| Since {
            since: (self.clock)(),
        });
        self.set_intents(next).map_err(|e| ApiError {
            status: 500,
            message: e,
        })?;
        tracing::info!(on, "maintenance changed by operator");
        done(format!(
            "maintenance {}",
            if on { "on: draining every VIP" } else { "off" }
        ))
    }

    fn vips(&self) -> Vec<VipInfo> {
        self.config
            .vips
            .iter()
            .filter_map(|v| {
                let d = self.last_plan.vips.iter().find(|d| d.name == v.name)?;
                Some(VipInfo {
                    name: v.name.clone(),
                    address: v.address.to_string(),
                    ports: v
                        .ports
                        .iter()
                        .map(|p| format!("{}/{}", p.port, p.protocol))
                        .collect(),
                    route: d.route,
                    exported: self.exported(&v.name),
                    sessions_up: self.sessions_up(v),
                    applied: self.drivers.announcer.as_ref().map(|_| {
                        self.applied
                            .routes
                            .get(&v.name)
                            .copied()
                            .unwrap_or(RouteState::Withdrawn)
                    }),
                    reason: d.reason.clone(),
                    drained: self.intents.maintenance.is_some()
                        || self.intents.drained.contains_key(&v.name),
                    serving: d.serving.clone(),
                    configured: d.configured,
                    min_healthy: v.min_healthy,
                    held: (d.handoff && self.held.read_at.is_some())
                        .then(|| self.held.counts.get(&v.name).copied().unwrap_or(0)),
                    holding: d.holding.is_some(),
                })
            })
            .collect()
    }

    fn proxies(&self) -> Vec<ProxyInfo> {
        self.config
            .proxies
            .iter()
            .map(|p| ProxyInfo {
                name: p.name.clone(),
                address: p.address.to_string(),
                delivery: match (p.delivery, &p.interface, p.mac) {
                    (edged_config::Delivery::Host, ..) => "host".into(),
                    (_, Some(i), Some(m)) => format!("l2 via {i} ({m})"),
                    _ => "l2".into(),
                },
                weight: crate::topology::weight(p, &self.intents.weights),
                configured_weight: p.weight,
                traffic: self.counters.lock().ok().and_then(|snap| {
                    let c = snap
                        .as_ref()?
                        .counters
                        .proxies
                        .iter()
                        .find(|c| c.name == p.name)?
                        .clone();
                    Some(ProxyTraffic {
                        packets: c.packets,
                        bytes: c.bytes,
                        new_flows: c.new_flows,
                    })
                }),
                vips: self
                    .config
                    .vips
                    .iter()
                    .filter(|v| crate::topology::serves(v, p))
                    .map(|v| {
                        let (serving, detail) = match self.health.get(&v.name, &p.name) {
                            Some(Serve::Serving) => (Some(true), "ok".to_string()),
                            Some(Serve::NotServing(r)) => (Some(false), r.clone()),
                            None => (None, "no health result".to_string()),
                        };
                        let checks = self
                            .checks
                            .iter()
                            .filter(|(k, _)| k.vip == v.name && k.proxy == p.name)
                            .map(|(k, s)| ServiceCheck {
                                service: k.service.clone(),
                                state: s.state.to_string(),
                                last: s.last.as_ref().map_or("not run yet".into(), |o| o.reason()),
                                latency_us: s
                                    .last
                                    .as_ref()
                                    .map_or(0, |o| o.latency.as_micros() as u64),
                                phase: s.phase.to_string(),
                                transition: s.since.map(|t| {
                                    (
                                        s.state.to_string(),
                                        s.cause.unwrap_or("ok").to_string(),
                                        t.duration_since(SystemTime::UNIX_EPOCH)
                                            .map_or(0, |d| d.as_secs()),
                                    )
                                }),
                            })
                            .collect();
                        ProxyVip {
                            vip: v.name.clone(),
                            serving,
                            detail,
                            checks,
                        }
                    })
                    .collect(),
            })
            .collect()
    }

    fn peers(&self) -> Peers {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let fresh = self
            .bgp
            .at
            .is_some_and(|t| t.elapsed().is_ok_and(|e| e.as_secs() < 5));
        Peers {
            announcer: match (&self.drivers.announcer, fresh, &self.bgp.error) {
                (None, ..) => "not running".into(),
                (Some(_), false, _) => "no answer from BIRD in the last 5 s".into(),
                (Some(_), true, Some(e)) => format!("error: {e}"),
                (Some(_), true, None) => "ok".into(),
            },
            peers: self
                .config
                .bgp
                .peers
                .iter()
                .map(|p| {
                    let live = self
                        .bgp
                        .peers
                        .iter()
                        .find(|s| s.name == crate::topology::bird_name(&p.name));
                    PeerInfo {
                        name: p.name.clone(),
                        address: p.address.to_string(),
                        asn: p.asn,
                        state: live.map_or("unknown".into(), |s| s.bgp_state.clone()),
                        uptime_secs: live
                            .and_then(|s| s.since_unix)
                            .map(|t| now.saturating_sub(t)),
                        exported: live.map(|s| s.exported),
                        last_error: live.and_then(|s| s.last_error.clone()),
                    }
                })
                .collect(),
            flow_sharing: {
                let s = self.flow_sharing.lock().expect("stats lock");
                (!s.peers.is_empty()).then(|| s.clone())
            },
        }
    }
}
