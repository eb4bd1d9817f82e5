//! The speaker: edged's one handle on BIRD. It renders the config, toggles
//! each VIP's static protocols, reads sessions and exports back, supervises
//! BIRD (restarting a dead or hung one with the routes it had), and either
//! stops BIRD or hands it to the next edged.
//!
//! Every command has a deadline of [`COMMAND_TIMEOUT`]; a BIRD that leaves
//! [`HUNG_AFTER`] probes in a row unanswered is hung and is restarted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::backend::Backend;
pub use crate::client::COMMAND_TIMEOUT;
use crate::client::{BirdClient, ClientError};
use crate::error::BgpError;
use crate::render::{RenderInput, render};
use crate::spec::{BgpSpec, RouteState, announce_proto, drain_proto, peer_proto};
use crate::status::{self, ExportMismatch, ExportSets, PeerStatus};

/// Unanswered `show status` probes in a row after which BIRD counts as hung.
pub const HUNG_AFTER: u32 = 2;

/// What [`Speaker::supervise`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupervisorEvent {
    /// BIRD is alive and answers.
    Healthy,
    /// BIRD had died, hung, or the socket broke; it was restarted (or
    /// reconnected) and the current announcements re-applied.
    Restarted { reason: String, restarts: u64 },
}

/// What BIRD exports, read back and compared with what was applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exports {
    /// Differences on established sessions (a session that is down exports
    /// nothing and is a session state, not a mismatch).
    pub mismatches: Vec<ExportMismatch>,
    /// Per VIP name: established sessions that export it.
    pub exported_to: BTreeMap<String, usize>,
}

/// Drives BIRD: generates its config, toggles VIP routes, verifies exports.
pub struct Speaker {
    spec: BgpSpec,
    states: BTreeMap<String, RouteState>,
    client: BirdClient,
    backend: Backend,
    restarts: u64,
    mismatches: u64,
    unanswered: u32,
    adopted: bool,
}

// === impl Speaker: start, reconfigure, stop ===

impl Speaker {
    /// Validates the spec, then takes over a running BIRD with edged's
    /// protocols (a planned restart: sessions and routes stay as they are,
    /// see [`Speaker::adopted`]) or starts a new one with every VIP
    /// withdrawn.
    pub async fn start(spec: BgpSpec) -> Result<Speaker, BgpError> {
        spec.validate()?;
        let mut backend = Backend::new(&spec)?;
        let managed = backend.managed();
        if let Some(mut client) = backend.adopt().await? {
            let names: BTreeSet<&str> = spec.vips.iter().map(|v| v.name.as_str()).collect();
            let states: BTreeMap<String, RouteState> = read_states(&mut client)
                .await?
                .into_iter()
                .filter(|(k, _)| names.contains(k.as_str()))
                .collect();
            let text = render_spec(&spec, &states, managed)?;
            backend.apply(&mut client, &text).await?;
            let announced = states
                .values()
                .filter(|s| **s != RouteState::Withdrawn)
                .count();
            tracing::info!(
                vips = spec.vips.len(),
                announced,
                "BGP speaker took over BIRD's routes"
            );
            return Ok(Speaker::new(spec, states, client, backend, true));
        }
        let states = BTreeMap::new();
        let text = render_spec(&spec, &states, managed)?;
        let client = backend.launch(&text).await?;
        tracing::info!(
            vips = spec.vips.len(),
            peers = spec.peers.len(),
            "BGP speaker started"
        );
        Ok(Speaker::new(spec, states, client, backend, false))
    }

    fn new(
        spec: BgpSpec,
        states: BTreeMap<String, RouteState>,
        client: BirdClient,
        backend: Backend,
        adopted: bool,
    ) -> Speaker {
        Speaker {
            spec,
            states,
            client,
            backend,
            restarts: 0,
            mismatches: 0,
            unanswered: 0,
            adopted,
        }
    }

    /// Whether this speaker took over a running BIRD (its route states are
    /// BIRD's, not all withdrawn).
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// Applies a new VIP set / peer set with one `configure`. On error the
    /// previous configuration and announcements stay. Kept VIPs keep their
    /// state; new ones start withdrawn; removed ones are gone from BIRD.
    pub async fn reconfigure(&mut self, spec: BgpSpec) -> Result<(), BgpError> {
        spec.validate()?;
        let names: BTreeSet<&str> = spec.vips.iter().map(|v| v.name.as_str()).collect();
        let states: BTreeMap<String, RouteState> = self
            .states
            .iter()
            .filter(|(k, _)| names.contains(k.as_str()))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let text = render_spec(&spec, &states, self.backend.managed())?;
        self.backend.apply(&mut self.client, &text).await?;
        self.spec = BgpSpec {
            mode: self.spec.mode.clone(),
            ..spec
        };
        self.states = states;
        Ok(())
    }

    /// A planned restart of edged: BIRD, its sessions and its routes stay
    /// with the keeper for the next edged ([`Speaker::start`] takes them
    /// over). A crash of edged still ends BIRD at once.
    pub fn handover(self) {
        self.backend.handover();
    }

    /// Withdraws every VIP, then stops a managed BIRD (sessions close with
    /// a Cease).
    pub async fn shutdown(mut self) {
        for pat in ["disable \"edged_a_*\"", "disable \"edged_d_*\""] {
            if let Err(e) = self.client.command(pat).await {
                tracing::warn!(error = %e, "withdraw on shutdown failed");
            }
        }
        self.backend.stop(&mut self.client).await;
    }
}

// === impl Speaker: routes ===

impl Speaker {
    /// Announces, drains or withdraws one VIP (enable/disable; no config parse).
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

    /// A VIP's state as last applied.
    pub fn route_state(&self, vip: &str) -> RouteState {
        self.states.get(vip).copied().unwrap_or_default()
    }

    /// Every VIP's state as last applied (missing: withdrawn).
    pub fn route_states(&self) -> &BTreeMap<String, RouteState> {
        &self.states
    }

    /// What BIRD's static protocols say now, for every configured VIP:
    /// the truth against which the applied states are checked.
    pub async fn protocol_states(&mut self) -> Result<BTreeMap<String, RouteState>, BgpError> {
        let mut seen = read_states(&mut self.client).await?;
        Ok(self
            .spec
            .vips
            .iter()
            .map(|v| (v.name.clone(), seen.remove(&v.name).unwrap_or_default()))
            .collect())
    }

    /// Corrects a VIP's recorded state after BIRD was found to differ (the
    /// caller re-applies what it wants).
    pub fn note_state(&mut self, vip: &str, state: RouteState) {
        self.states.insert(vip.to_string(), state);
    }
}

// === impl Speaker: observation ===

impl Speaker {
    /// Session state of every configured peer.
    pub async fn peers(&mut self) -> Result<Vec<PeerStatus>, BgpError> {
        let reply = self
            .client
            .command("show protocols all \"edged_p_*\"")
            .await?;
        Ok(status::parse_protocols(&reply, "edged_p_"))
    }

    /// Compares `show route export PEER` with the applied VIP set (and which
    /// of them carry 65535:0), for every established peer in `sessions`.
    pub async fn verify_exports(&mut self, sessions: &[PeerStatus]) -> Result<Exports, BgpError> {
        let mut out = Exports::default();
        let by_prefix: BTreeMap<std::net::IpAddr, &str> = self
            .spec
            .vips
            .iter()
            .map(|v| (v.prefix, v.name.as_str()))
            .collect();
        for peer in self.spec.peers.clone() {
            let up = sessions.iter().any(|s| s.name == peer.name && s.is_up());
            if !up {
                continue;
            }
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
            for p in &all {
                if let Some(name) = by_prefix.get(p) {
                    *out.exported_to.entry(name.to_string()).or_default() += 1;
                }
            }
            out.mismatches.extend(status::diff_exports(
                &peer.name,
                &expected,
                &ExportSets { all, graceful },
            ));
        }
        self.mismatches += out.mismatches.len() as u64;
        Ok(out)
    }

    /// The export mismatches on every established session (reads the
    /// sessions first).
    pub async fn export_mismatches(&mut self) -> Result<Vec<ExportMismatch>, BgpError> {
        let peers = self.peers().await?;
        Ok(self.verify_exports(&peers).await?.mismatches)
    }

    /// Checks BIRD once; restarts a dead or hung managed BIRD (or
    /// reconnects to an external one) and re-applies the routes.
    pub async fn supervise(&mut self) -> Result<SupervisorEvent, BgpError> {
        let reason = match self.backend.gone() {
            Some(r) => r,
            None => match self.probe().await {
                None => return Ok(SupervisorEvent::Healthy),
                Some(r) => r,
            },
        };
        tracing::warn!(reason, "BIRD lost; restarting and re-applying routes");
        let text = render_spec(&self.spec, &self.states, self.backend.managed())?;
        self.client = self.backend.relaunch(&text).await?;
        self.unanswered = 0;
        self.restarts += 1;
        Ok(SupervisorEvent::Restarted {
            reason,
            restarts: self.restarts,
        })
    }

    /// `show status` until it answers or [`HUNG_AFTER`] probes in a row
    /// went unanswered; `None` when BIRD answers.
    async fn probe(&mut self) -> Option<String> {
        loop {
            match self.client.command("show status").await {
                Ok(_) => {
                    self.unanswered = 0;
                    return None;
                }
                Err(ClientError::Timeout { .. }) => {
                    self.unanswered += 1;
                    if self.unanswered >= HUNG_AFTER {
                        return Some(format!(
                            "BIRD left {HUNG_AFTER} probes of {COMMAND_TIMEOUT:?} unanswered (hung or frozen)"
                        ));
                    }
                }
                Err(e) => return Some(format!("control socket failed: {e}")),
            }
        }
    }

    /// Times a dead or hung BIRD was restarted (or the socket reconnected).
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Total export mismatches found by [`Speaker::verify_exports`].
    pub fn export_mismatches_total(&self) -> u64 {
        self.mismatches
    }

    /// PID of the managed BIRD.
    pub fn bird_pid(&self) -> Option<u32> {
        self.backend.bird_pid()
    }

    /// The control-socket path.
    pub fn socket_path(&self) -> PathBuf {
        self.client.path().to_path_buf()
    }
}

// === helpers ===

async fn read_states(client: &mut BirdClient) -> Result<BTreeMap<String, RouteState>, BgpError> {
    let cmd = "show protocols \"edged_*\"";
    let reply = client.raw_command(cmd).await?;
    // 8003 "No protocols match": none of edged's protocols exist yet.
    if reply.code == 8003 {
        return Ok(BTreeMap::new());
    }
    let reply = crate::client::check(cmd, reply)?;
    Ok(status::parse_route_protocols(&reply))
}

pub(crate) fn render_spec(
    spec: &BgpSpec,
    states: &BTreeMap<String, RouteState>,
    managed: bool,
) -> Result<String, BgpError> {
    let mut passwords = BTreeMap::new();
    for p in &spec.peers {
        if let Some(path) = &p.password_file {
            let text = std::fs::read_to_string(path).map_err(|source| BgpError::PasswordFile {
                peer: p.name.clone(),
                path: path.clone(),
                source,
            })?;
            let pw = text.trim_end_matches(['\n', '\r']);
            if pw.is_empty() || pw.chars().any(|c| c == '"' || c.is_control()) {
                return Err(BgpError::BadPassword {
                    peer: p.name.clone(),
                    path: path.clone(),
                });
            }
            passwords.insert(p.name.clone(), pw.to_string());
        }
    }
    let input = RenderInput {
        states: Some(states),
        passwords: Some(&passwords),
        managed,
    };
    Ok(render(spec, &input))
}
