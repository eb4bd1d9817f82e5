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
        Command::Reload { dry_run: false } => ("POST", "/v1/reload".into()),
        Command::Reload { dry_run: true } => ("POST", "/v1/reload?dry_run=true".into()),
        Command::Stop { restart, fast } => {
            let mode = if *restart {
                "restart"
            } else if *fast {
                "fast"
            } else {
                "graceful"
            };
            ("POST", format!("/v1/stop?mode={mode}"))
        }
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
    if let Command::Stop { .. } = cli.command {
        wait_gone(&cli.socket).await?;
    }
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
        Command::Reload { dry_run: true } => {
            render::diff(&serde_json::from_value(value).map_err(bad)?)?
        }
        _ => format!(
            "{}\n",
            serde_json::from_value::<Done>(value).map_err(bad)?.message
        ),
    })
}

/// After a stop: waits until edged has let go of its control socket
/// (it removes it as it exits); a drain takes up to node.stop_timeout.
async fn wait_gone(socket: &std::path::Path) -> Result<(), ClientError> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(900);
    while tokio::net::UnixStream::connect(socket).await.is_ok() || socket.exists() {
        if tokio::time::Instant::now() >= deadline {
            return Err(ClientError::Protocol(
                "edged did not exit within 15 minutes".into(),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(())
}

mod render {
    use super::*;

    /// `3m12s ago` for a unix time; `in the future` if the clock went back.
    pub fn ago(unix: u64) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        match now.checked_sub(unix) {
            Some(s) => format!("{} ago", span(s)),
            None => "in the future (clock changed?)".into(),
        }
    }

    /// `2d3h`, `3m12s`, `45s`.
    pub fn span(s: u64) -> String {
        let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
        if d > 0 {
            format!("{d}d{h}h")
        } else if h > 0 {
            format!("{h}h{m}m")
        } else if m > 0 {
            format!("{m}m{sec}s")
        } else {
            format!("{sec}s")
        }
    }

    /// `edgectl reload --dry-run`: the changes, or why the file is refused
    /// (an error: the exit status says so too).
    pub fn diff(d: &ConfigDiff) -> Result<String, ClientError> {
        if !d.valid {
            return Err(ClientError::Daemon {
                status: 422,
                message: format!(
                    "the config would be refused, running config kept:\n{}",
                    d.error.clone().unwrap_or_default()
                ),
            });
        }
        Ok(d.changes.iter().map(|c| format!("{c}\n")).collect())
    }

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
            "edged {} (pid {}), up {}, config {} (generation {})\n",
            s.version,
            s.pid,
            span(s.uptime_secs),
            s.config_path,
            s.config_generation
        );
        out += &format!(
            "VIPs: {} announced of {} (exported on established sessions)\n",
            s.vips_announced, s.vips_total
        );
        out += &format!(
            "maintenance: {}\n",
            s.maintenance_since
                .map_or("off".to_string(), |t| format!("on since {}", ago(t)))
        );
        if let Some(r) = &s.last_reload {
            let what = if r.ok {
                "ok".to_string()
            } else {
                format!("rejected: {}", r.error.clone().unwrap_or_default())
            };
            out += &format!("last reload: {}, {what}\n", ago(r.at));
        }
        if s.drift_repaired > 0 {
            out += &format!("drift repaired since start: {}\n", s.drift_repaired);
        }
        if let Some(st) = &s.stopping {
            out += &format!("stopping: {st}\n");
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
        let route = |r: RouteState| r.to_string();
        table(
            &[
                "VIP", "ADDRESS", "PORTS", "DECISION", "BGP", "SERVING", "HELD", "REASON",
            ],
            vips.iter()
                .map(|v| {
                    vec![
                        v.name.clone() + if v.drained { " (drained)" } else { "" },
                        v.address.clone(),
                        v.ports.join(","),
                        route(v.route),
                        match (v.applied, v.exported, v.sessions_up) {
                            (None, ..) => "n/a".into(),
                            (Some(a), Some(e), Some(up)) => {
                                format!("{} ({e}/{up} sessions)", route(a))
                            }
                            (Some(a), ..) => route(a),
                        },
                        format!(
                            "{}/{} (min {})",
                            v.serving.len(),
                            v.configured,
                            v.min_healthy
                        ),
                        match (v.held, v.holding) {
                            (None, _) => "-".into(),
                            (Some(n), true) => format!("{n} (waiting)"),
                            (Some(n), false) => n.to_string(),
                        },
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
                        let changed = c
                            .transition
                            .as_ref()
                            .map_or(String::new(), |(to, why, at)| {
                                format!(", {to} {} ({why})", ago(*at))
                            });
                        format!(
                            "{} {} {:.1}ms [{}{changed}]",
                            c.service,
                            c.last,
                            c.latency_us as f64 / 1000.0,
                            if c.phase.is_empty() {
                                "steady"
                            } else {
                                &c.phase
                            },
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
                            x.uptime_secs.map_or("-".into(), span),
                            x.exported.map_or("-".into(), |n| n.to_string()),
                            x.last_error.clone().unwrap_or_default(),
                        ]
                    })
                    .collect(),
            )
            + &p.flow_sharing.as_ref().map_or(String::new(), flow_sharing)
    }

    fn flow_sharing(s: &edge_daemon::flowshare::Stats) -> String {
        let mut out = String::from("\nflow sharing with the handoff peers");
        if let Some(e) = &s.error {
            out += &format!(" (stopped, retrying: {e})");
        }
        out.push('\n');
        out += &table(
            &[
                "PEER",
                "FLOWS SENT",
                "FLOWS LEARNED",
                "FULL SYNC",
                "SYNCS SERVED",
                "LOST (REPAIRS)",
                "HEARD",
            ],
            s.peers
                .iter()
                .map(|(a, p)| {
                    vec![
                        a.to_string(),
                        p.flows_sent.to_string(),
                        p.flows_received.to_string(),
                        match (p.synced, p.sync_ms) {
                            (true, Some(ms)) => format!("{} flows in {ms} ms", p.sync_flows),
                            (true, None) => format!("{} flows", p.sync_flows),
                            (false, _) => "waiting".into(),
                        },
                        p.syncs_served.to_string(),
                        format!("{} ({})", p.datagrams_lost, p.repairs),
                        p.last_heard.map_or("never".into(), |t| {
                            let ms = std::time::SystemTime::now()
                                .duration_since(t)
                                .map_or(0, |d| d.as_millis());
                            format!("{ms} ms ago")
                        }),
                    ]
                })
                .collect(),
        );
        out += &format!(
            "new flows told to every peer within {:.1} ms (latest batch)\n",
            s.lag_us as f64 / 1e3
        );
        if !s.rejected.is_empty() {
            let r: Vec<String> = s.rejected.iter().map(|(k, v)| format!("{k} {v}")).collect();
            out += &format!("refused datagrams: {}\n", r.join(", "));
        }
        out
    }
}
