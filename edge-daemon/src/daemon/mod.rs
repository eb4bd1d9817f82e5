//! The daemon: tasks, channels and the reconcile loop.
//!
//! ```text
//!  control socket (axum) ──Request──┐
//!  signals (HUP/TERM/INT) ──Signal──┤
//!                                   ▼
//!                        ┌─────── loop (owns State) ───────┐
//!                        │ event → reconcile::step → apply │──► addresses (netlink)
//!                        └─────────────────────────────────┘──► forwarder, announcer (when built)
//!                                   │
//!  metrics endpoint (axum) ◄── Arc<Metrics> ── updated after each pass
//! ```
//! The loop is the only place that changes desired or applied state.

mod apply;
mod queries;
mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use state::State;

use edged_health::HealthChecker;

use crate::control;
use crate::effects::{Addresses, BirdAnnouncer, NetlinkAddresses, XdpForwarder};
use crate::health;
use crate::intents::Intents;
use crate::metrics::Metrics;

/// How often the data plane's counters are read for the metrics.
const COUNTERS_EVERY: Duration = Duration::from_secs(5);

/// How often BIRD is supervised, sessions read and exports verified.
const BGP_CHECK_EVERY: Duration = Duration::from_secs(1);

/// How soon a pass with failed effects is retried.
const RETRY: Duration = Duration::from_secs(1);

/// Runs edged until SIGTERM/SIGINT. `config` has been loaded and validated
/// from `config_path` before anything was bound.
pub async fn run(config_path: PathBuf, config: edged_config::Config) -> anyhow::Result<()> {
    let node = &config.node;
    std::fs::create_dir_all(&node.state_dir)
        .with_context(|| format!("create node.state_dir {}", node.state_dir.display()))?;
    let intents = Intents::load(&node.state_dir)?;
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
    let forwarder = XdpForwarder::open(&config).context("forwarder")?;
    let metrics = Arc::new(Metrics::new());
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
    let mut st = State::new(config_path, config, intents, addresses, metrics.clone());
    st.applied.addresses = adopted;
    st.forwarder = forwarder;
    // BIRD (managed: our child, dies with us) with every VIP withdrawn; the
    // first pass announces what is healthy and not drained.
    st.announcer = Some(BirdAnnouncer::start(&st.config).await.context("bgp")?);
    st.refresh_counters();

    let (checker, mut health_rx) = HealthChecker::spawn(
        health::checks(&st.config),
        Some(health::observer(st.metrics.clone())),
    );
    st.set_checks(checker.snapshot());

    let (tx, mut rx) = mpsc::channel(64);
    let control_task = tokio::spawn(control::serve(listener, tx));
    let metrics_task = metrics_listener.map(|l| tokio::spawn(crate::metrics::serve(l, metrics)));
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    let mut counters_tick = tokio::time::interval(COUNTERS_EVERY);
    let mut bgp_tick = tokio::time::interval(BGP_CHECK_EVERY);
    bgp_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    counters_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watchdog_at = Instant::now();

    tracing::info!(vips = st.config.vips.len(), "edged started");
    loop {
        let wake = st.pass().await;
        if !st.last_errors.is_empty() || wake.is_some() {
            tracing::debug!(?wake, errors = st.last_errors.len(), "next pass scheduled");
        }
        let deadline = next_deadline(
            wake,
            !st.last_errors.is_empty(),
            watchdog.map(|w| watchdog_at + w),
        );
        tokio::select! {
            Some((q, reply)) = rx.recv() => {
                let generation = st.generation;
                let _ = reply.send(st.handle(q).await);
                if st.generation != generation {
                    checker.update(health::checks(&st.config));
                    st.set_checks(checker.snapshot());
                }
            }
            _ = hup.recv() => {
                if st.reload().await.is_ok() {
                    checker.update(health::checks(&st.config));
                    st.set_checks(checker.snapshot());
                }
            }
            Some(_flip) = health_rx.recv() => {
                // Take every flip that is already queued, then one snapshot.
                while health_rx.try_recv().is_ok() {}
                st.set_checks(checker.snapshot());
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = counters_tick.tick() => st.refresh_counters(),
            _ = bgp_tick.tick() => st.check_bgp().await,
            _ = sleep_until(deadline) => {}
        }
        if let Some(w) = watchdog
            && Instant::now() >= watchdog_at + w
        {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            watchdog_at = Instant::now();
        }
    }

    tracing::info!("shutting down: withdrawing, then removing VIP addresses");
    drop(checker);
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let bound = st.config.node.shutdown_timeout;
    st.shutting_down = true;
    if tokio::time::timeout(bound, st.pass()).await.is_err() {
        tracing::error!(
            ?bound,
            "shutdown did not finish within node.shutdown_timeout"
        );
    }
    if let Some(a) = st.announcer.take() {
        a.shutdown().await;
    }
    control_task.abort();
    if let Some(t) = metrics_task {
        t.abort();
    }
    let _ = std::fs::remove_file(&socket_path);
    if st.last_errors.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("shutdown left errors: {}", st.last_errors.join("; "))
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
