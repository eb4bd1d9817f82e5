//! The async driver: owns the BIRD connection (and child in managed mode).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Child;

use crate::client::BirdClient;
use crate::error::BgpError;
use crate::lifecycle::{install_managed, launch, render_spec};
use crate::managed::Paths;
use crate::spec::{BgpSpec, BirdMode, RouteState, announce_proto, drain_proto, peer_proto};
use crate::status::{self, ExportMismatch, ExportSets, PeerStatus};

/// Control-socket timeout per command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`Speaker::supervise`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupervisorEvent {
    /// BIRD is alive and answers.
    Healthy,
    /// BIRD had died (managed) or the socket broke; it was restarted/reconnected
    /// and the current announcements re-applied.
    Restarted { reason: String, restarts: u64 },
}

pub(crate) enum Backend {
    Managed {
        bird: PathBuf,
        paths: Paths,
        child: Box<Child>,
    },
    External {
        socket: PathBuf,
        include: PathBuf,
    },
}

/// Drives BIRD: generates its config, toggles VIP routes, verifies exports.
pub struct Speaker {
    pub(crate) spec: BgpSpec,
    pub(crate) states: BTreeMap<String, RouteState>,
    pub(crate) client: BirdClient,
    pub(crate) backend: Backend,
    pub(crate) restarts: u64,
    pub(crate) mismatches: u64,
}

// === impl Speaker ===

impl Speaker {
    /// Generate and check the config, then start the managed BIRD or connect to the external one.
    /// Every VIP starts withdrawn.
    pub async fn start(spec: BgpSpec) -> Result<Speaker, BgpError> {
        spec.validate()?;
        let states = BTreeMap::new();
        let text = render_spec(
            &spec,
            &states,
            matches!(spec.mode, BirdMode::Managed { .. }),
        )?;
        let (client, backend) = match &spec.mode {
            BirdMode::Managed {
                bird_binary,
                state_dir,
            } => {
                let paths = Paths::new(state_dir);
                tokio::fs::create_dir_all(state_dir)
                    .await
                    .map_err(|source| BgpError::Write {
                        path: state_dir.clone(),
                        source,
                    })?;
                install_managed(bird_binary, &paths.config, &text).await?;
                let (client, child) = launch(bird_binary, &paths).await?;
                (
                    client,
                    Backend::Managed {
                        bird: bird_binary.clone(),
                        paths,
                        child: Box::new(child),
                    },
                )
            }
            BirdMode::External {
                socket,
                include_file,
            } => {
                let mut client =
                    BirdClient::connect(socket, crate::speaker::COMMAND_TIMEOUT).await?;
                crate::external::apply(&mut client, include_file, &text).await?;
                let backend = Backend::External {
                    socket: socket.clone(),
                    include: include_file.clone(),
                };
                (client, backend)
            }
        };
        tracing::info!(
            vips = spec.vips.len(),
            peers = spec.peers.len(),
            "BGP speaker started"
        );
        Ok(Speaker {
            spec,
            states,
            client,
            backend,
            restarts: 0,
            mismatches: 0,
        })
    }

    /// Apply a new VIP set / peer set with one `configure`. On error the previous
    /// configuration and announcements stay. VIPs kept keep their state; new ones start withdrawn.
    pub async fn reconfigure(&mut self, spec: BgpSpec) -> Result<(), BgpError> {
        spec.validate()?;
        let names: BTreeSet<&str> = spec.vips.iter().map(|v| v.name.as_str()).collect();
        let states: BTreeMap<String, RouteState> = self
            .states
            .iter()
            .filter(|(k, _)| names.contains(k.as_str()))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let managed = matches!(self.backend, Backend::Managed { .. });
        let text = render_spec(&spec, &states, managed)?;
        match &self.backend {
            Backend::Managed { bird, paths, .. } => {
                install_managed(bird, &paths.config, &text).await?;
                crate::external::configure(&mut self.client, "configure").await?;
            }
            Backend::External { include, .. } => {
                crate::external::apply(&mut self.client, include, &text).await?;
            }
        }
        self.spec = BgpSpec {
            mode: self.spec.mode.clone(),
            ..spec
        };
        self.states = states;
        Ok(())
    }

    /// Announce, drain or withdraw one VIP (enable/disable; no config parse).
    pub async fn set_route(&mut self, vip: &str, state: RouteState) -> Result<(), BgpError> {
        if self.spec.vip(vip).is_none() {
            return Err(BgpError::UnknownVip {
                vip: vip.to_string(),
            });
        }
        let (a, d) = (announce_proto(vip), drain_proto(vip));
        // Enable the new route before disabling the old one: the peer sees an update, not a gap.
        let cmds = match state {
            RouteState::Withdrawn => [format!("disable {a}"), format!("disable {d}")],
            RouteState::Announced => [format!("enable {a}"), format!("disable {d}")],
            RouteState::Draining => [format!("enable {d}"), format!("disable {a}")],
        };
        for cmd in &cmds {
            self.client.command(cmd).await?;
        }
        tracing::debug!(vip, ?state, "route state applied");
        self.states.insert(vip.to_string(), state);
        Ok(())
    }

    /// Current state of a VIP as last applied.
    pub fn route_state(&self, vip: &str) -> RouteState {
        self.states.get(vip).copied().unwrap_or_default()
    }

    /// Compare `show route export PEER` with the expected VIP set (and which of
    /// them carry 65535:0), for every peer. A peer whose session is down gets
    /// nothing, so each expected VIP is reported `Missing`.
    pub async fn verify_exports(&mut self) -> Result<Vec<ExportMismatch>, BgpError> {
        let mut out = Vec::new();
        for peer in self.spec.peers.clone() {
            let v6 = peer.address.is_ipv6();
            let mut expected = ExportSets::default();
            for v in self.spec.vips.iter().filter(|v| v.prefix.is_ipv6() == v6) {
                match self.route_state(&v.name) {
                    RouteState::Withdrawn => {}
                    RouteState::Announced => {
                        expected.all.insert(v.prefix);
                    }
                    RouteState::Draining => {
                        expected.all.insert(v.prefix);
                        expected.graceful.insert(v.prefix);
                    }
                }
            }
            let table = if v6 { "edged6" } else { "edged4" };
            let base = format!("show route table {table} export {}", peer_proto(&peer.name));
            let all = status::parse_route_prefixes(&self.client.command(&base).await?);
            let gs_cmd = format!("{base} where (65535,0) ~ bgp_community");
            let graceful = status::parse_route_prefixes(&self.client.command(&gs_cmd).await?);
            out.extend(status::diff_exports(
                &peer.name,
                &expected,
                &ExportSets { all, graceful },
            ));
        }
        for m in &out {
            tracing::warn!(peer = %m.peer, vip = %m.prefix, kind = ?m.kind, "export mismatch");
        }
        self.mismatches += out.len() as u64;
        Ok(out)
    }

    /// Session state of every configured peer.
    pub async fn peers(&mut self) -> Result<Vec<PeerStatus>, BgpError> {
        let reply = self
            .client
            .command("show protocols all \"edged_p_*\"")
            .await?;
        Ok(status::parse_protocols(&reply, "edged_p_"))
    }
}
