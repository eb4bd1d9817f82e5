//! The health checker, seen from the daemon: config → checks, checker
//! snapshot → the reconcile step's health view, results → metrics.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use edged_config::{CheckKind as CfgKind, Config};
use edged_health::{
    CheckKey, CheckKind, CheckSpec, CheckStatus, DnsCheck, ExecCheck, HttpCheck, Observer,
    TcpCheck, Verdict, aggregate,
};

use crate::metrics::Metrics;
use crate::reconcile::{HealthView, Serve};

/// One check per (VIP, service, proxy serving the VIP).
pub fn checks(cfg: &Config) -> Vec<(CheckKey, CheckSpec)> {
    let mut out = Vec::new();
    for vip in &cfg.vips {
        for p in crate::topology::members(cfg, vip) {
            for svc in &vip.services {
                let c = &svc.check;
                let port = |default: u16| SocketAddr::new(p.address, c.port.unwrap_or(default));
                let http = |tls: bool| HttpCheck {
                    target: port(if tls { 443 } else { 80 }),
                    tls,
                    method: c.method.clone().unwrap_or_else(|| "GET".into()),
                    path: c.path.clone().unwrap_or_else(|| "/".into()),
                    host: c.host.clone().or_else(|| vip.host.clone()),
                    expect_status: c.expect_status.clone().unwrap_or_else(|| vec![200]),
                    body_contains: c.body_contains.clone(),
                    ca_file: c.ca_file.clone(),
                    tls_verify: c.tls_verify.unwrap_or(true),
                    http2: c.http2.unwrap_or(false),
                };
                let kind: CheckKind = match c.kind {
                    CfgKind::Tcp => TcpCheck::new(port(0)).into(),
                    CfgKind::Http => http(false).into(),
                    CfgKind::Https => http(true).into(),
                    CfgKind::Dns => DnsCheck {
                        target: port(53),
                        query_name: c.query_name.clone().unwrap_or_default(),
                        query_type: c.query_type.unwrap_or(1),
                        expect_rcode: c.expect_rcode.unwrap_or(0),
                    }
                    .into(),
                    CfgKind::Exec => {
                        let cmd = c.command.clone().unwrap_or_default();
                        ExecCheck {
                            program: cmd.first().cloned().unwrap_or_default().into(),
                            args: cmd.into_iter().skip(1).collect(),
                            env: c.env.clone().unwrap_or_default().into_iter().collect(),
                        }
                        .into()
                    }
                };
                let key = CheckKey::new(&vip.name, &svc.name, &p.name);
                let spec = CheckSpec {
                    kind,
                    interval: c.interval,
                    timeout: c.timeout,
                    rise: c.rise,
                    fall: c.fall,
                    hold_down: c.hold_down,
                    reuse_connection: c.reuse_connection.unwrap_or(true),
                    fastinter: c.fastinter,
                    downinter: c.downinter,
                    source: c.source,
                };
                out.push((key, spec));
            }
        }
    }
    out
}

/// The reconcile step's view of a checker snapshot.
pub fn view(snapshot: &[(CheckKey, CheckStatus)]) -> HealthView {
    let mut v = HealthView {
        running: true,
        serve: HashMap::new(),
    };
    for ((vip, proxy), verdict) in aggregate(snapshot.iter().map(|(k, s)| (k, s))) {
        let serve = match verdict {
            Verdict::Serving => Serve::Serving,
            Verdict::NotServing(r) => Serve::NotServing(r),
        };
        v.set(&vip, &proxy, serve);
    }
    v
}

/// Feeds every attempt into the metrics.
pub fn observer(metrics: Arc<Metrics>) -> Observer {
    Arc::new(move |_key, outcome| metrics.observe_check(outcome))
}
