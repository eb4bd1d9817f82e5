//! Prometheus metrics (prometheus-client, no global registry). Every name is
//! prefixed `edged_`; the registry is built here and passed in.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::reconcile::{Plan, RouteState};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VipLabels {
    pub vip: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabels {
    pub component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DriftLabels {
    pub what: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    /// `up` or `down`.
    pub to: String,
    /// The class of the attempt that decided it.
    pub cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    pub peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    pub vip: String,
    pub service: String,
    pub proxy: String,
}

/// The daemon's own metrics.
pub struct Metrics {
    registry: Registry,
    pub reloads: Family<ResultLabels, Counter>,
    pub last_reload_success: Gauge<f64, AtomicU64>,
    pub vip_announced: Family<VipLabels, Gauge>,
    pub vip_draining: Family<VipLabels, Gauge>,
    pub vip_connections_held: Family<VipLabels, Gauge>,
    pub vip_serving_proxies: Family<VipLabels, Gauge>,
    pub effect_errors: Family<ComponentLabels, Counter>,
    pub drift_repaired: Family<DriftLabels, Counter>,
    pub check_transitions: Family<TransitionLabels, Counter>,
    pub check_duration: Histogram,
    pub check_results: Family<OutcomeLabels, Counter>,
    pub check_up: Family<CheckLabels, Gauge>,
    known_vips: Mutex<Vec<String>>,
    known_checks: Mutex<Vec<CheckLabels>>,
    pub bgp_session_up: Family<PeerLabels, Gauge>,
    pub bgp_prefixes_exported: Family<PeerLabels, Gauge>,
    pub bgp_bird_restarts: Counter,
    pub bgp_export_mismatches: Counter,
    bird_restarts_seen: AtomicU64,
    /// The data plane's counters, refreshed by the loop.
    pub xdp: crate::metrics_xdp::SharedSnapshot,
    /// What the flow-sharing task counted (it updates it).
    pub flow_sharing: std::sync::Arc<Mutex<crate::flowshare::Stats>>,
}

impl Metrics {
    /// Registers everything under `edged_`.
    pub fn new() -> Self {
        let mut root = Registry::with_prefix("edged");
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
            })
            .set(1);
        root.register("build_info", "edged build; the value is 1", build);
        let m = Metrics {
            reloads: Family::default(),
            last_reload_success: Gauge::default(),
            vip_announced: Family::default(),
            vip_draining: Family::default(),
            vip_connections_held: Family::default(),
            vip_serving_proxies: Family::default(),
            effect_errors: Family::default(),
            drift_repaired: Family::default(),
            check_transitions: Family::default(),
            check_duration: Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            check_results: Family::default(),
            check_up: Family::default(),
            known_vips: Mutex::new(Vec::new()),
            known_checks: Mutex::new(Vec::new()),
            xdp: Default::default(),
            flow_sharing: Default::default(),
            bgp_session_up: Family::default(),
            bgp_prefixes_exported: Family::default(),
            bgp_bird_restarts: Counter::default(),
            bgp_export_mismatches: Counter::default(),
            bird_restarts_seen: AtomicU64::new(0),
            registry: Registry::default(),
        };
        root.register(
            "config_reloads",
            "Config reloads by result (success, failure)",
            m.reloads.clone(),
        );
        root.register(
            "config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config load",
            m.last_reload_success.clone(),
        );
        root.register(
            "vip_announced",
            "1 while at least one established BGP session exports the VIP (read back from BIRD)",
            m.vip_announced.clone(),
        );
        root.register(
            "vip_draining",
            "1 while the VIP is announced with GRACEFUL_SHUTDOWN",
            m.vip_draining.clone(),
        );
        root.register(
            "vip_connections_held",
            "Established connections a held-back (drained) VIP still serves here",
            m.vip_connections_held.clone(),
        );
        root.register(
            "vip_serving_proxies",
            "Proxies serving the VIP",
            m.vip_serving_proxies.clone(),
        );
        root.register(
            "effect_errors",
            "Failed effects by component (retried)",
            m.effect_errors.clone(),
        );
        root.register(
            "drift_repaired",
            "Differences found between what edged applied and what the kernel or BIRD had, and repaired (address, xdp, bgp, sysctl)",
            m.drift_repaired.clone(),
        );
        root.register(
            "check_transitions",
            "Health checks that changed state, by the state and the class of the attempt that decided it (refused, reset, timeout, status, closed, ok, ...)",
            m.check_transitions.clone(),
        );
        root.register(
            "check_duration_seconds",
            "Duration of health check attempts",
            m.check_duration.clone(),
        );
        root.register(
            "check_results",
            "Health check attempts by outcome class",
            m.check_results.clone(),
        );
        root.register(
            "check_up",
            "1 while the check is up on the proxy",
            m.check_up.clone(),
        );
        root.register(
            "bgp_session_up",
            "1 while the BGP session is Established",
            m.bgp_session_up.clone(),
        );
        root.register(
            "bgp_prefixes_exported",
            "Prefixes exported on the session",
            m.bgp_prefixes_exported.clone(),
        );
        root.register(
            "bgp_bird_restarts",
            "Times edged restarted a dead BIRD",
            m.bgp_bird_restarts.clone(),
        );
        root.register(
            "bgp_export_mismatches",
            "Differences on established sessions between what BIRD exports and what edged applied",
            m.bgp_export_mismatches.clone(),
        );
        root.register_collector(Box::new(crate::metrics_xdp::XdpCollector(m.xdp.clone())));
        root.register_collector(Box::new(crate::metrics_xdp::FlowSharingCollector(
            m.flow_sharing.clone(),
        )));
        Metrics {
            registry: root,
            ..m
        }
    }

    /// Sets the per-VIP gauges from a plan and what BIRD exports; VIPs no
    /// longer configured lose their series.
    pub fn observe_plan(
        &self,
        plan: &Plan,
        bgp: &crate::effects::BgpObservation,
        held: &crate::reconcile::HeldConnections,
    ) {
        let mut known = self.known_vips.lock().expect("metrics lock");
        for gone in known
            .iter()
            .filter(|v| !plan.vips.iter().any(|d| &d.name == *v))
        {
            let l = VipLabels { vip: gone.clone() };
            self.vip_announced.remove(&l);
            self.vip_draining.remove(&l);
            self.vip_connections_held.remove(&l);
            self.vip_serving_proxies.remove(&l);
        }
        *known = plan.vips.iter().map(|d| d.name.clone()).collect();
        for d in &plan.vips {
            let l = VipLabels {
                vip: d.name.clone(),
            };
            let exported = bgp
                .exports
                .as_ref()
                .and_then(|x| x.exported_to.get(&d.name))
                .is_some_and(|n| *n > 0);
            self.vip_announced.get_or_create(&l).set(exported as i64);
            self.vip_draining
                .get_or_create(&l)
                .set((d.route == RouteState::Draining) as i64);
            self.vip_serving_proxies
                .get_or_create(&l)
                .set(d.serving.len() as i64);
            let n = held.counts.get(&d.name).copied().unwrap_or(0);
            self.vip_connections_held.get_or_create(&l).set(n as i64);
        }
    }

    /// Counts one check's change of state, by its cause.
    pub fn transition(&self, e: &edged_health::HealthEvent) {
        let cause = e.outcome.failure().map_or("ok", |f| f.class());
        self.check_transitions
            .get_or_create(&TransitionLabels {
                to: e.state.to_string(),
                cause: cause.into(),
            })
            .inc();
    }

    /// Counts one repair of drift.
    pub fn drift(&self, what: &str) {
        self.drift_repaired
            .get_or_create(&DriftLabels { what: what.into() })
            .inc();
    }

    /// Counts one failed effect.
    pub fn effect_error(&self, component: crate::effects::Component) {
        self.effect_errors
            .get_or_create(&ComponentLabels {
                component: component.as_str().into(),
            })
            .inc();
    }

    /// Records one health check attempt, by its failure's class.
    pub fn observe_check(&self, o: &edged_health::Outcome) {
        self.check_duration.observe(o.latency.as_secs_f64());
        let outcome = o
            .failure()
            .map_or("ok", edged_health::Failure::class)
            .to_string();
        self.check_results
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Sets the per-check state gauges; removed checks lose their series.
    pub fn observe_checks(&self, checks: &[(edged_health::CheckKey, edged_health::CheckStatus)]) {
        let mut known = self.known_checks.lock().expect("metrics lock");
        let now: Vec<CheckLabels> = checks
            .iter()
            .map(|(k, _)| CheckLabels {
                vip: k.vip.clone(),
                service: k.service.clone(),
                proxy: k.proxy.clone(),
            })
            .collect();
        let present: std::collections::HashSet<&CheckLabels> = now.iter().collect();
        for gone in known.iter().filter(|l| !present.contains(l)) {
            self.check_up.remove(gone);
        }
        for (l, (_, s)) in now.iter().zip(checks) {
            self.check_up
                .get_or_create(l)
                .set((s.state == edged_health::State::Up) as i64);
        }
        *known = now;
    }

    /// Sets the session gauges and counts BIRD restarts.
    pub fn observe_bgp(&self, o: &crate::effects::BgpObservation) {
        for p in &o.peers {
            let l = PeerLabels {
                peer: p.name.clone(),
            };
            self.bgp_session_up.get_or_create(&l).set(p.is_up() as i64);
            self.bgp_prefixes_exported
                .get_or_create(&l)
                .set(p.exported as i64);
        }
        let seen = self
            .bird_restarts_seen
            .swap(o.restarts, std::sync::atomic::Ordering::Relaxed);
        if o.restarts > seen {
            self.bgp_bird_restarts.inc_by(o.restarts - seen);
        }
    }

    /// Counts a reload (or the initial load) by result.
    pub fn reload(&self, ok: bool, unix_now: f64) {
        let result = if ok { "success" } else { "failure" };
        self.reloads
            .get_or_create(&ResultLabels {
                result: result.into(),
            })
            .inc();
        if ok {
            self.last_reload_success.set(unix_now);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Serves `GET /metrics` on `listener` (bounded like the control socket).
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: std::sync::Arc<Metrics>,
) -> std::io::Result<()> {
    use axum::http::header::CONTENT_TYPE;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let body = metrics.encode();
            async move {
                (
                    [(
                        CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    body,
                )
            }
        }),
    );
    crate::control::bounded::serve(
        listener,
        app,
        crate::control::bounded::Limits::METRICS,
        Default::default(),
    )
    .await
}
