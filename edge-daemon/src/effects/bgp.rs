//! The announcer: edged's config and route decisions onto BIRD 2 through
//! `edged-bgp`, from a task of its own.
//!
//! ```text
//!  loop ──Cmd::Route / Reconfigure / Handover / Shutdown──► task (owns the Speaker)
//!  loop ◄── AnnouncerEvent::Route (each result) ─────────── task
//!  loop ◄── AnnouncerEvent::Observed (every second: BIRD alive, sessions,
//!           protocol states, exports) ───────────────────── task
//! ```
//! Every BIRD command has a deadline of [`edged_bgp::COMMAND_TIMEOUT`]; a
//! hung BIRD is restarted by the task's supervision. The loop never waits
//! on BIRD except for a reload's reconfigure, itself bounded.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use edged_bgp::{
    BgpSpec, BirdMode, DrainPolicy, Exports, KeeperCommand, PeerSpec, PeerStatus,
    RouteState as BirdRoute, Speaker, SupervisorEvent, VipRoute,
};
use edged_config::{BirdMode as CfgMode, Config};
use tokio::sync::{mpsc, oneshot};

use super::{Announcer, Component, EffectError, EffectFuture, ErrorKind};
use crate::reconcile::RouteState;

/// How often the task checks that BIRD answers (a hung BIRD is restarted
/// after [`edged_bgp::speaker::HUNG_AFTER`] unanswered probes: within 3 s).
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// Every how many probes the sessions, protocols and exports are read.
const OBSERVE_EVERY_PROBES: u32 = 2;

/// The bound of a reload's reconfigure (`bird -p`, `configure`).
const RECONFIGURE_BOUND: Duration = Duration::from_secs(10);

fn err(op: impl Into<String>, e: impl std::fmt::Display) -> EffectError {
    EffectError::new(Component::Announcer, op, e)
}

pub use crate::topology::bird_name;

/// The keeper edged runs for its BIRD: itself.
fn keeper() -> KeeperCommand {
    KeeperCommand {
        program: "/proc/self/exe".into(),
        args: vec!["bird-keeper".into()],
    }
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
                keeper: keeper(),
                handover_grace: cfg.node.restart_grace,
            },
            CfgMode::External => BirdMode::External {
                socket: b.external_socket.clone().unwrap_or_default(),
                include_file: b.include_file.clone().unwrap_or_default(),
            },
        },
    }
}

/// BIRD name → config name of every VIP.
fn names(cfg: &Config) -> BTreeMap<String, String> {
    cfg.vips
        .iter()
        .map(|v| (bird_name(&v.name), v.name.clone()))
        .collect()
}

fn to_bird(s: RouteState) -> BirdRoute {
    match s {
        RouteState::Withdrawn => BirdRoute::Withdrawn,
        RouteState::Announced => BirdRoute::Announced,
        RouteState::Draining => BirdRoute::Draining,
    }
}

fn from_bird(s: BirdRoute) -> RouteState {
    match s {
        BirdRoute::Withdrawn => RouteState::Withdrawn,
        BirdRoute::Announced => RouteState::Announced,
        BirdRoute::Draining => RouteState::Draining,
    }
}

/// What the announcer's task tells the loop.
#[derive(Clone, Debug, PartialEq)]
pub enum AnnouncerEvent {
    /// A queued route change was carried out, or failed.
    Route {
        vip: String,
        state: RouteState,
        result: Result<(), EffectError>,
    },
    /// BIRD as it is now.
    Observed(BgpObservation),
}

/// BIRD as read back by the task (VIPs by config name).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BgpObservation {
    /// When.
    pub at: Option<SystemTime>,
    /// BIRD was restarted (dead or hung) on this look: why.
    pub restarted: Option<String>,
    /// Restarts since start.
    pub restarts: u64,
    /// The sessions (empty when they could not be read).
    pub peers: Vec<PeerStatus>,
    /// Each VIP's static protocols as BIRD has them (`None`: not read).
    pub protocols: Option<BTreeMap<String, RouteState>>,
    /// What established sessions export (`None`: not read).
    pub exports: Option<Exports>,
    /// What could not be read, if anything.
    pub error: Option<String>,
}

enum Cmd {
    Route {
        vip: String,
        state: RouteState,
    },
    Reconfigure {
        spec: BgpSpec,
        names: BTreeMap<String, String>,
        reply: oneshot::Sender<Result<(), EffectError>>,
    },
    Handover {
        done: oneshot::Sender<()>,
    },
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// BIRD, driven from a task of its own.
pub struct BirdAnnouncer {
    cmds: mpsc::UnboundedSender<Cmd>,
    adopted: BTreeMap<String, RouteState>,
}

impl BirdAnnouncer {
    /// Generates and checks BIRD's config and starts (or connects to, or
    /// takes over) BIRD; then starts the task. A new BIRD starts with every
    /// VIP withdrawn; a BIRD kept across a planned restart keeps its routes
    /// ([`Announcer::adopted`]).
    pub async fn start(
        cfg: &Config,
        spec: BgpSpec,
    ) -> Result<(BirdAnnouncer, mpsc::UnboundedReceiver<AnnouncerEvent>), EffectError> {
        let names = names(cfg);
        let speaker = Speaker::start(spec)
            .await
            .map_err(|e| err("start BIRD", e))?;
        let adopted = if speaker.adopted() {
            speaker
                .route_states()
                .iter()
                .filter_map(|(b, s)| Some((names.get(b)?.clone(), from_bird(*s))))
                .collect()
        } else {
            BTreeMap::new()
        };
        let (cmds, rx) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::unbounded_channel();
        tokio::spawn(run(speaker, rx, events, names));
        Ok((BirdAnnouncer { cmds, adopted }, events_rx))
    }
}

impl Announcer for BirdAnnouncer {
    fn set_route(&mut self, vip: &str, state: RouteState) {
        let _ = self.cmds.send(Cmd::Route {
            vip: vip.to_string(),
            state,
        });
    }

    fn reconfigure(&mut self, cfg: &Config, spec: BgpSpec) -> EffectFuture<'_> {
        let (reply, rx) = oneshot::channel();
        let names = names(cfg);
        let sent = self.cmds.send(Cmd::Reconfigure { spec, names, reply });
        Box::pin(async move {
            if sent.is_err() {
                return Err(err("reconfigure BIRD", "the announcer task is gone"));
            }
            match tokio::time::timeout(RECONFIGURE_BOUND, rx).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err(err("reconfigure BIRD", "the announcer task is gone")),
                Err(_) => Err(err(
                    "reconfigure BIRD",
                    format!("BIRD did not answer within {RECONFIGURE_BOUND:?}"),
                )
                .with_kind(ErrorKind::Timeout)),
            }
        })
    }

    fn adopted(&self) -> BTreeMap<String, RouteState> {
        self.adopted.clone()
    }

    fn handover(self: Box<Self>) -> Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let (done, rx) = oneshot::channel();
        let _ = self.cmds.send(Cmd::Handover { done });
        Box::pin(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
        })
    }

    fn shutdown(self: Box<Self>) -> Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let (done, rx) = oneshot::channel();
        let _ = self.cmds.send(Cmd::Shutdown { done });
        Box::pin(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), rx).await;
        })
    }
}

// === the task ===

async fn run(
    mut sp: Speaker,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    events: mpsc::UnboundedSender<AnnouncerEvent>,
    mut names: BTreeMap<String, String>,
) {
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut probes = 0u32;
    loop {
        tokio::select! {
            biased;
            cmd = cmds.recv() => match cmd {
                // The daemon is gone without a word: dropping the speaker
                // closes the keeper's hold, and BIRD ends (fail closed).
                None => return,
                Some(Cmd::Route { vip, state }) => {
                    let name = bird_name(&vip);
                    let result = sp
                        .set_route(&name, to_bird(state))
                        .await
                        .map_err(|e| {
                            let kind = match e {
                                edged_bgp::BgpError::UnknownVip { .. } => ErrorKind::UnknownVip,
                                _ => ErrorKind::Failed,
                            };
                            let e = err(format!("set {vip} {state}"), e);
                            if kind == ErrorKind::UnknownVip { e.with_kind(kind) } else { e }
                        });
                    let _ = events.send(AnnouncerEvent::Route { vip, state, result });
                }
                Some(Cmd::Reconfigure { spec, names: new, reply }) => {
                    let r = sp.reconfigure(spec).await.map_err(|e| err("reconfigure BIRD", e));
                    if r.is_ok() {
                        names = new;
                    }
                    let _ = reply.send(r);
                }
                Some(Cmd::Handover { done }) => {
                    sp.handover();
                    let _ = done.send(());
                    return;
                }
                Some(Cmd::Shutdown { done }) => {
                    sp.shutdown().await;
                    let _ = done.send(());
                    return;
                }
            },
            _ = tick.tick() => {
                probes += 1;
                let full = probes.is_multiple_of(OBSERVE_EVERY_PROBES);
                if let Some(o) = observe(&mut sp, &names, full).await {
                    let _ = events.send(AnnouncerEvent::Observed(o));
                }
            }
        }
    }
}

/// Supervises BIRD; with `full`, or after a restart, also reads what it
/// has. `None`: nothing to report.
async fn observe(
    sp: &mut Speaker,
    names: &BTreeMap<String, String>,
    full: bool,
) -> Option<BgpObservation> {
    let mut o = BgpObservation {
        at: Some(SystemTime::now()),
        ..Default::default()
    };
    match sp.supervise().await {
        Ok(SupervisorEvent::Healthy) if !full => return None,
        Ok(SupervisorEvent::Healthy) => {}
        Ok(SupervisorEvent::Restarted { reason, .. }) => o.restarted = Some(reason),
        Err(e) => {
            o.error = Some(format!("BIRD supervision failed: {e}"));
            o.restarts = sp.restarts();
            return Some(o);
        }
    }
    o.restarts = sp.restarts();
    let by_config = |m: BTreeMap<String, usize>| -> BTreeMap<String, usize> {
        m.into_iter()
            .filter_map(|(b, n)| Some((names.get(&b)?.clone(), n)))
            .collect()
    };
    match sp.peers().await {
        Ok(p) => o.peers = p,
        Err(e) => o.error = Some(format!("cannot read BGP sessions: {e}")),
    }
    match sp.protocol_states().await {
        Ok(p) => {
            o.protocols = Some(
                p.into_iter()
                    .filter_map(|(b, s)| Some((names.get(&b)?.clone(), from_bird(s))))
                    .collect(),
            )
        }
        Err(e) => o.error = Some(format!("cannot read BIRD's protocols: {e}")),
    }
    match sp.verify_exports(&o.peers).await {
        Ok(x) => {
            o.exports = Some(Exports {
                exported_to: by_config(x.exported_to),
                mismatches: x.mismatches,
            })
        }
        Err(e) => o.error = Some(format!("cannot verify exports: {e}")),
    }
    // What BIRD was found to have is what the speaker holds from now on.
    if let Some(p) = &o.protocols {
        for (c, s) in p {
            sp.note_state(&bird_name(c), to_bird(*s));
        }
    }
    Some(o)
}
