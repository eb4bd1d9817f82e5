//! The daemon: tasks, channels and the reconcile loop.
//!
//! ```text
//!  control socket (bounded) ──Request──┐
//!  signals (HUP/TERM/INT) ─────────────┤
//!  health flips ───────────────────────┤
//!  announcer task (routes, BIRD) ──────┤         ┌──► addresses (netlink)
//!  ticks (observe 1 s, counters 5 s) ──┤         ├──► forwarder (XDP maps)
//!                                      ▼         ├──► announcer task (BIRD)
//!                        ┌─────── loop (owns State) ───────┐
//!                        │ event → reconcile::step → apply │
//!                        └─────────────────────────────────┘
//!  metrics endpoint (bounded) ◄── Arc<Metrics> ── updated after each pass
//! ```
//! The loop is the only place that changes desired or applied state, and
//! nothing it waits on is slow: BIRD is behind its own task, every driver
//! call is short or bounded.
//!
//! Stops: SIGTERM, SIGINT or `edgectl stop` drain every VIP first (as
//! maintenance does), bounded by `node.stop_timeout`, then withdraw;
//! `edged --fast-stop`, a second signal or `edgectl stop --fast` withdraw
//! at once; `edgectl stop --restart` keeps routes, addresses and the data
//! plane for the next edged (BIRD stays with its keeper). A crash fails
//! closed: the keeper ends BIRD the moment edged is gone.

mod apply;
mod observe;
mod queries;
mod reload;
mod state;
mod status;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use edged_files::PrivateDir;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use state::{Clock, Drivers, State, Stopping};

use edged_health::HealthChecker;

use crate::control::{self, proto::StopMode};
use crate::effects::{
    Addresses, BirdAnnouncer, Forwarder, NetlinkAddresses, XdpForwarder, bpffs_is_private,
    raise_fd_limit,
};
use crate::health;
use crate::intents::Intents;
use crate::metrics::Metrics;
use crate::specs::Specs;

/// How often the data plane's counters are read for the metrics.
const COUNTERS_EVERY: Duration = Duration::from_secs(5);

/// How often addresses, the XDP attachment and sysctls are read back.
const OBSERVE_EVERY: Duration = Duration::from_secs(1);

/// How long a starting node waits for its handoff peers' flows before it
/// announces anyway.
const LEARN_FLOWS: Duration = Duration::from_secs(5);

/// How soon a pass with failed effects is retried.
const RETRY: Duration = Duration::from_secs(1);

/// How `run` was asked to behave.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// SIGTERM withdraws at once instead of draining first.
    pub fast_stop: bool,
}

/// Runs edged until it is stopped. `config` and `specs` went through the
/// one validation ([`crate::specs::load`]) before anything was bound.
pub async fn run(
    config_path: PathBuf,
    config: edged_config::Config,
    specs: Specs,
    opts: Options,
) -> anyhow::Result<()> {
    let node = &config.node;
    let fds = raise_fd_limit();
    tracing::info!(fds, "descriptor limit");
    if config.forwarder.is_some()
        && let Some(why) = bpffs_is_private()
    {
        tracing::warn!(
            "edged runs in a mount namespace of its own ({why}): its bpffs pins are \
             invisible to the host and gone when it exits, so a restart cannot keep the data \
             plane; enter only the network namespace (nsenter --net=, or systemd's \
             NetworkNamespacePath=)"
        );
    }
    let state_dir = PrivateDir::open(&node.state_dir).context("node.state_dir")?;
    let intents = Intents::load(&state_dir)?;
    let (addresses, adopted): (Option<Box<dyn Addresses>>, _) = match &node.vip_interface {
        Some(ifname) => {
            let a = NetlinkAddresses::open(ifname)
                .await
                .context("node.vip_interface")?;
            let adopted = a.adopt().await?;
            (Some(Box::new(a)), adopted)
        }
        None => (None, Default::default()),
    };
    // Load or re-adopt the XDP data plane (pinned: flows survive a restart).
    let forwarder = XdpForwarder::open(&config, specs.forwarder.as_ref()).context("forwarder")?;
    let tables = forwarder.as_ref().map(|f| f.tables()).unwrap_or_default();
    let metrics = Arc::new(Metrics::new());
    // Tell the handoff peers which flows are ours, learn theirs (asks each
    // for a full sync first).
    let sharing_stats = metrics.flow_sharing.clone();
    let mut sharing = crate::flowshare::Sharing::start(&config, &sharing_stats)
        .map_err(|e| anyhow::anyhow!("forwarder.handoff.key_file: {e}"))?;
    metrics.reload(true, unix_now());

    let listener = control::bind(&node.control_socket, node.control_group.as_deref()).await?;
    let metrics_listener = match node.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("node.metrics_listen: bind {addr}"))?,
        ),
        None => None,
    };
    let socket_path = node.control_socket.clone();
    // BIRD: a new one with every VIP withdrawn, or the one a planned
    // restart left with its keeper, routes and all.
    let (announcer, mut bgp_rx) = BirdAnnouncer::start(&config, specs.bgp.clone())
        .await
        .context("bgp")?;
    let adopted_routes = crate::effects::Announcer::adopted(&announcer);
    let (checker, mut health_rx) = HealthChecker::spawn(
        specs.checks.clone(),
        Some(health::observer(metrics.clone())),
    );
    let drivers = Drivers {
        addresses,
        forwarder: forwarder.map(|f| Box::new(f) as Box<dyn Forwarder>),
        announcer: Some(Box::new(announcer)),
        checker: Box::new(checker),
    };
    let mut st = State::new(
        config_path,
        config,
        specs,
        intents,
        state_dir,
        drivers,
        metrics.clone(),
    );
    if sharing.is_some() {
        // VIPs wait (at most LEARN_FLOWS) for the peers' flows: the ToR
        // moves some of their connections here once this node announces.
        st.learn_until = Some((st.clock)() + LEARN_FLOWS);
    }
    st.adopt(adopted, tables, adopted_routes);
    if !st.applied.routes.is_empty() {
        tracing::info!(
            routes = st.applied.routes.len(),
            tables = st.applied.tables.len(),
            "took over a running node: routes and tables stay until the checks decide"
        );
    }
    st.reply_path();
    st.refresh_counters();
    st.refresh_health();

    let (tx, mut rx) = mpsc::channel(64);
    let (gone_tx, mut gone_rx) = mpsc::unbounded_channel::<String>();
    let mut liveness = crate::liveness::Liveness::start(&st.config, &gone_tx);
    let answering = control::bounded::Answering::default();
    let control_task = tokio::spawn(control::serve(listener, tx, answering.clone()));
    let metrics_task = metrics_listener.map(|l| tokio::spawn(crate::metrics::serve(l, metrics)));
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    let mut counters_tick = tokio::time::interval(COUNTERS_EVERY);
    let mut observe_tick = tokio::time::interval(OBSERVE_EVERY);
    observe_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    counters_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watchdog_at = Instant::now();

    let mut sharing_generation = st.generation;
    tracing::info!(vips = st.config.vips.len(), "edged started");
    let mode = loop {
        let wake = st.pass().await;
        if st.drained() {
            tracing::info!("every VIP drained; stopping");
            break StopMode::Fast;
        }
        let deadline = next_deadline(
            wake,
            !st.last_errors.is_empty(),
            watchdog.map(|w| watchdog_at + w),
        );
        let stop = tokio::select! {
            Some((q, reply)) = rx.recv() => match q {
                control::Query::Stop(mode) => {
                    let _ = reply.send(Ok(serde_json::json!({ "message": stop_message(mode) })));
                    Some(mode)
                }
                q => {
                    let _ = reply.send(st.handle(q).await);
                    None
                }
            },
            _ = hup.recv() => {
                let _ = st.reload().await;
                None
            }
            Some(flip) = health_rx.recv() => {
                // Take every flip that is already queued, then one snapshot.
                st.metrics.transition(&flip);
                while let Ok(flip) = health_rx.try_recv() {
                    st.metrics.transition(&flip);
                }
                st.refresh_health();
                None
            }
            Some(proxy) = gone_rx.recv() => {
                let n = st.drivers.checker.reprobe(&proxy);
                tracing::info!(%proxy, checks = n, "checking a proxy whose process is gone");
                None
            }
            Some(ev) = bgp_rx.recv() => {
                st.on_bgp(ev);
                while let Ok(ev) = bgp_rx.try_recv() {
                    st.on_bgp(ev);
                }
                None
            }
            _ = term.recv() => Some(signal_stop(&st, opts)),
            _ = int.recv() => Some(signal_stop(&st, opts)),
            _ = counters_tick.tick() => {
                st.refresh_counters();
                None
            }
            _ = observe_tick.tick() => {
                st.observe_host().await;
                st.refresh_held();
                None
            }
            _ = sleep_until(deadline) => None,
        };
        if st.generation != sharing_generation {
            sharing_generation = st.generation;
            crate::flowshare::Sharing::follow(&mut sharing, &st.config, &sharing_stats).await;
            liveness.follow(&st.config, &gone_tx);
        }
        if let Some(w) = watchdog
            && Instant::now() >= watchdog_at + w
        {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            watchdog_at = Instant::now();
        }
        if let Some(mode) = stop {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
            if let Some(mode) = st.begin_stop(mode) {
                break mode;
            }
        }
    };

    // No more control requests: clients get "shutting down" at once.
    drop(rx);
    control_task.abort();
    // The replies already given (the one to `edgectl stop` among them)
    // reach their clients before anything stops.
    answering.drained(Duration::from_secs(1)).await;
    let result = match mode {
        StopMode::Restart => {
            tracing::info!(
                grace = ?st.config.node.restart_grace,
                "planned restart: routes, VIP addresses and the data plane stay for the next edged"
            );
            if let Some(a) = st.drivers.announcer.take() {
                a.handover().await;
            }
            Ok(())
        }
        StopMode::Graceful | StopMode::Fast => {
            tracing::info!("shutting down: withdrawing, then removing VIP addresses");
            withdraw_all(&mut st, &mut bgp_rx).await;
            if let Some(a) = st.drivers.announcer.take() {
                a.shutdown().await;
            }
            if st.last_errors.is_empty() {
                Ok(())
            } else {
                let errors: Vec<String> = st.last_errors.iter().map(ToString::to_string).collect();
                Err(anyhow::anyhow!(
                    "shutdown left errors: {}",
                    errors.join("; ")
                ))
            }
        }
    };
    if let Some(t) = metrics_task {
        t.abort();
    }
    let _ = std::fs::remove_file(&socket_path);
    result
}

fn stop_message(mode: StopMode) -> &'static str {
    match mode {
        StopMode::Graceful => "stopping: draining every VIP, then withdrawing",
        StopMode::Restart => "restarting: routes and flows stay for the next edged",
        StopMode::Fast => "stopping: withdrawing every VIP now",
    }
}

/// SIGTERM or SIGINT: a graceful stop, or at once with `--fast-stop` or
/// when a stop is already draining.
fn signal_stop(st: &State, opts: Options) -> StopMode {
    if opts.fast_stop || st.stopping.is_some() {
        StopMode::Fast
    } else {
        StopMode::Graceful
    }
}

/// The last passes: every route withdrawn (confirmed by BIRD), then the
/// tables and addresses removed; bounded by `node.shutdown_timeout`.
async fn withdraw_all(
    st: &mut State,
    bgp_rx: &mut mpsc::UnboundedReceiver<crate::effects::AnnouncerEvent>,
) {
    let bound = st.config.node.shutdown_timeout;
    let deadline = Instant::now() + bound;
    st.shutting_down = true;
    loop {
        st.pass().await;
        let settled = st.last_plan.actions.is_empty() && st.inflight.is_empty();
        if settled && st.last_errors.is_empty() {
            return;
        }
        tokio::select! {
            Some(ev) = bgp_rx.recv() => st.on_bgp(ev),
            _ = tokio::time::sleep(RETRY) => {}
            _ = tokio::time::sleep_until(deadline) => {
                tracing::error!(?bound, "shutdown did not finish within node.shutdown_timeout");
                return;
            }
        }
    }
}

fn next_deadline(
    wake: Option<SystemTime>,
    retry: bool,
    watchdog: Option<Instant>,
) -> Option<Instant> {
    let now = Instant::now();
    let from_wall = wake.map(|w| {
        now + w
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    });
    [from_wall, retry.then(|| now + RETRY), watchdog]
        .into_iter()
        .flatten()
        .min()
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
