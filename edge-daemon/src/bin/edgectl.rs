//! `edgectl`: the operator CLI, a thin client of edged's control socket.

use std::process::ExitCode;

use clap::Parser;
use edge_daemon::cli::{Edgectl as Cli, EdgectlCommand as Command, OnOff, Output};
use edge_daemon::control::client::{self, ClientError};
use edge_daemon::control::proto::*;
use edge_daemon::reconcile::RouteState;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(&cli)) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edgectl: {e}");
            ExitCode::from(match e {
                ClientError::NotRunning { .. } | ClientError::Denied { .. } => 69, // EX_UNAVAILABLE
                _ => 1,
            })
        }
    }
}

async fn run(cli: &Cli) -> Result<String, ClientError> {
    let (method, path) = match &cli.command {
        Command::Status => ("GET", "/v1/status".to_string()),
        Command::Vips => ("GET", "/v1/vips".into()),
        Command::Proxies => ("GET", "/v1/proxies".into()),
        Command::Peers => ("GET", "/v1/peers".into()),
        Command::Drain { vip } => ("POST", format!("/v1/vips/{vip}/drain")),
        Command::Undrain { vip } => ("POST", format!("/v1/vips/{vip}/undrain")),
        Command::Maintenance { state: OnOff::On } => ("POST", "/v1/maintenance/on".into()),
        Command::Maintenance { state: OnOff::Off } => ("POST", "/v1/maintenance/off".into()),
        Command::Reload => ("POST", "/v1/reload".into()),
        Command::Weight { proxy, weight } if weight == "reset" => {
            ("POST", format!("/v1/proxies/{proxy}/weight-reset"))
        }
        Command::Weight { proxy, weight } => match weight.parse::<u32>() {
            Ok(w) => ("POST", format!("/v1/proxies/{proxy}/weight/{w}")),
            Err(_) => {
                return Err(ClientError::Protocol(format!(
                    "weight `{weight}`: a number 0-10000 or `reset`"
                )));
            }
        },
    };
    let value = client::call(&cli.socket, method, &path).await?;
    if cli.output == Output::Json {
        return Ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&value).expect("json")
        ));
    }
    let bad = |e: serde_json::Error| ClientError::Protocol(e.to_string());
    Ok(match cli.command {
        Command::Status => render::status(&serde_json::from_value(value).map_err(bad)?),
        Command::Vips => render::vips(&serde_json::from_value::<Vec<VipInfo>>(value).map_err(bad)?),
        Command::Proxies => {
            render::proxies(&serde_json::from_value::<Vec<ProxyInfo>>(value).map_err(bad)?)
        }
        Command::Peers => render::peers(&serde_json::from_value(value).map_err(bad)?),
        _ => format!(
            "{}\n",
            serde_json::from_value::<Done>(value).map_err(bad)?.message
        ),
    })
}

mod render {
    use super::*;

    /// Left-aligned columns separated by two spaces.
    fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
        let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: Vec<String>| {
            let mut s = String::new();
            for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
                if i + 1 == cells.len() {
                    s.push_str(c);
                } else {
                    s.push_str(&format!("{c:<w$}  ", w = *w));
                }
            }
            s.trim_end().to_string() + "\n"
        };
        let mut out = line(header.iter().map(|h| h.to_string()).collect());
        for r in rows {
            out.push_str(&line(r));
        }
        out
    }

    pub fn status(s: &Status) -> String {
        let mut out = format!(
            "edged {} (pid {}), up {}s, config {} (generation {})\n",
            s.version, s.pid, s.uptime_secs, s.config_path, s.config_generation
        );
        out += &format!("VIPs: {} announced of {}\n", s.vips_announced, s.vips_total);
        out += &format!(
            "maintenance: {}\n",
            s.maintenance_since
                .map_or("off".to_string(), |t| format!("on since unix {t}"))
        );
        if let Some(r) = &s.last_reload {
            let what = if r.ok {
                "ok".to_string()
            } else {
                format!("rejected: {}", r.error.clone().unwrap_or_default())
            };
            out += &format!("last reload: {what}\n");
        }
        out += "\n";
        out += &table(
            &["COMPONENT", "STATE", "DETAIL"],
            s.components
                .iter()
                .map(|c| vec![c.name.clone(), c.state.clone(), c.detail.clone()])
                .collect(),
        );
        for e in &s.last_errors {
            out += &format!("error (retrying): {e}\n");
        }
        out
    }

    pub fn vips(vips: &[VipInfo]) -> String {
        let route = |r: RouteState| format!("{r:?}").to_lowercase();
        table(
            &[
                "VIP", "ADDRESS", "PORTS", "DECISION", "BGP", "SERVING", "REASON",
            ],
            vips.iter()
                .map(|v| {
                    vec![
                        v.name.clone() + if v.drained { " (drained)" } else { "" },
                        v.address.clone(),
                        v.ports.join(","),
                        route(v.route),
                        v.applied.map_or("n/a".into(), route),
                        format!(
                            "{}/{} (min {})",
                            v.serving.len(),
                            v.configured,
                            v.min_healthy
                        ),
                        v.reason.clone(),
                    ]
                })
                .collect(),
        )
    }

    pub fn proxies(ps: &[ProxyInfo]) -> String {
        let mut rows = Vec::new();
        for p in ps {
            for v in &p.vips {
                let state = match v.serving {
                    Some(true) => "serving",
                    Some(false) => "down",
                    None => "unknown",
                };
                let checks: Vec<String> = v
                    .checks
                    .iter()
                    .map(|c| {
                        format!(
                            "{} {} {:.1}ms",
                            c.service,
                            c.last,
                            c.latency_us as f64 / 1000.0
                        )
                    })
                    .collect();
                rows.push(vec![
                    p.name.clone(),
                    p.address.clone(),
                    p.delivery.clone(),
                    if p.weight == p.configured_weight {
                        p.weight.to_string()
                    } else {
                        format!("{} (config {})", p.weight, p.configured_weight)
                    },
                    p.traffic.as_ref().map_or("-".into(), |t| {
                        format!("{} pkts, {} flows", t.packets, t.new_flows)
                    }),
                    v.vip.clone(),
                    state.into(),
                    checks.join("; "),
                ]);
            }
        }
        table(
            &[
                "PROXY",
                "ADDRESS",
                "DELIVERY",
                "WEIGHT",
                "TRAFFIC",
                "VIP",
                "STATE",
                "CHECKS (last result, latency)",
            ],
            rows,
        )
    }

    pub fn peers(p: &Peers) -> String {
        format!("announcer: {}\n", p.announcer)
            + &table(
                &[
                    "PEER",
                    "ADDRESS",
                    "ASN",
                    "STATE",
                    "UPTIME",
                    "EXPORTED",
                    "LAST ERROR",
                ],
                p.peers
                    .iter()
                    .map(|x| {
                        vec![
                            x.name.clone(),
                            x.address.clone(),
                            x.asn.to_string(),
                            x.state.clone(),
                            x.uptime_secs.map_or("-".into(), |s| format!("{s}s")),
                            x.exported.map_or("-".into(), |n| n.to_string()),
                            x.last_error.clone().unwrap_or_default(),
                        ]
                    })
                    .collect(),
            )
    }
}
