//! The announcer: edged's config and route decisions onto BIRD 2 through
//! `edged-bgp` (managed child by default, or an operator's BIRD).

use edged_bgp::{
    BgpSpec, BirdMode, DrainPolicy, PeerSpec, PeerStatus, RouteState as BirdRoute, Speaker,
    VipRoute,
};
use edged_config::{BirdMode as CfgMode, Config};

use super::{Announcer, EffectError, EffectFuture};
use crate::reconcile::RouteState;

fn err(op: impl Into<String>, e: impl std::fmt::Display) -> EffectError {
    EffectError {
        component: "announcer",
        op: op.into(),
        message: e.to_string(),
    }
}

/// A config name as BIRD takes it (`[a-z0-9_]`; the config allows `-`,
/// and validation keeps the mapped names unique).
pub fn bird_name(name: &str) -> String {
    name.replace('-', "_")
}

/// The announcer's spec of a config.
pub fn spec(cfg: &Config) -> BgpSpec {
    let b = &cfg.bgp;
    BgpSpec {
        router_id: cfg.node.router_id,
        local_asn: cfg.node.asn,
        peers: b
            .peers
            .iter()
            .map(|p| PeerSpec {
                name: bird_name(&p.name),
                address: p.address,
                asn: p.asn,
                source_address: p.source_address,
                hold_time: p.hold_time.as_secs() as u16,
                keepalive: p.keepalive.map(|k| k.as_secs() as u16),
                bfd: p.bfd,
                password_file: p.password_file.clone(),
                multihop: p.multihop,
                ttl_security: p.ttl_security,
            })
            .collect(),
        vips: cfg
            .vips
            .iter()
            .map(|v| VipRoute {
                name: bird_name(&v.name),
                prefix: v.address,
                communities: v.communities.iter().map(|c| (c.0, c.1)).collect(),
                large_communities: v
                    .large_communities
                    .iter()
                    .map(|c| (c.0, c.1, c.2))
                    .collect(),
            })
            .collect(),
        drain: DrainPolicy {
            med: b.drain_med,
            prepend: b.drain_prepend,
        },
        mode: match b.mode {
            CfgMode::Managed => BirdMode::Managed {
                bird_binary: b.bird_binary.clone(),
                state_dir: cfg.node.state_dir.join("bird"),
            },
            CfgMode::External => BirdMode::External {
                socket: b.external_socket.clone().unwrap_or_default(),
                include_file: b.include_file.clone().unwrap_or_default(),
            },
        },
    }
}

/// BIRD, driven through its control socket.
pub struct BirdAnnouncer {
    speaker: Speaker,
    spec: BgpSpec,
}

impl BirdAnnouncer {
    /// Generates and checks BIRD's config, starts (or connects to) BIRD.
    /// Every VIP starts withdrawn.
    pub async fn start(cfg: &Config) -> Result<Self, EffectError> {
        let spec = spec(cfg);
        std::fs::create_dir_all(cfg.node.state_dir.join("bird"))
            .map_err(|e| err("create the BIRD state dir", e))?;
        let speaker = Speaker::start(spec.clone())
            .await
            .map_err(|e| err("start BIRD", e))?;
        Ok(BirdAnnouncer { speaker, spec })
    }

    /// After a reload: reconfigures BIRD only if the VIP set or the peers
    /// changed. A config BIRD rejects is an error and changes nothing.
    pub async fn reconfigure(&mut self, cfg: &Config) -> Result<bool, EffectError> {
        let new = spec(cfg);
        if new == self.spec {
            return Ok(false);
        }
        self.speaker
            .reconfigure(new.clone())
            .await
            .map_err(|e| err("reconfigure BIRD", e))?;
        self.spec = new;
        Ok(true)
    }

    /// Restarts a dead BIRD (re-applying the routes); returns what happened.
    pub async fn supervise(&mut self) -> Result<Option<String>, EffectError> {
        match self
            .speaker
            .supervise()
            .await
            .map_err(|e| err("supervise BIRD", e))?
        {
            edged_bgp::SupervisorEvent::Healthy => Ok(None),
            edged_bgp::SupervisorEvent::Restarted { reason, restarts } => Ok(Some(format!(
                "BIRD restarted ({reason}); {restarts} restarts so far"
            ))),
        }
    }

    /// The sessions.
    pub async fn peers(&mut self) -> Result<Vec<PeerStatus>, EffectError> {
        self.speaker
            .peers()
            .await
            .map_err(|e| err("read BGP sessions", e))
    }

    /// What BIRD really exports that it should not, or does not that it should.
    pub async fn verify(&mut self) -> Result<Vec<String>, EffectError> {
        let m = self
            .speaker
            .verify_exports()
            .await
            .map_err(|e| err("verify exports", e))?;
        Ok(m.iter()
            .map(|m| format!("peer {}: {} {:?}", m.peer, m.prefix, m.kind))
            .collect())
    }

    /// BIRD restarts since start.
    pub fn restarts(&self) -> u64 {
        self.speaker.restarts()
    }

    /// Withdraws everything and stops a managed BIRD.
    pub async fn shutdown(self) {
        self.speaker.shutdown().await;
    }
}

impl Announcer for BirdAnnouncer {
    fn set_route(&mut self, vip: &str, state: RouteState) -> EffectFuture<'_> {
        let name = bird_name(vip);
        let to = match state {
            RouteState::Withdrawn => BirdRoute::Withdrawn,
            RouteState::Announced => BirdRoute::Announced,
            RouteState::Draining => BirdRoute::Draining,
        };
        Box::pin(async move {
            self.speaker
                .set_route(&name, to)
                .await
                .map_err(|e| err(format!("set {name} {state:?}"), e))
        })
    }
}
