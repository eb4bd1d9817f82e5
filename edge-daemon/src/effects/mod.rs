//! The narrow interfaces through which the daemon changes and reads the
//! world. The reconcile step decides; these do. Every production driver is
//! real (netlink, the XDP data plane, BIRD, the health checker); a test of
//! the loop passes its own. A component the config turns off is `None`
//! and the status says so.
//!
//! ```text
//!  loop ──add/remove/list──────────► Addresses  (netlink: VIPs on an interface)
//!       ──set_table/handoff/repair─► Forwarder  (XDP maps, attachment)
//!       ──set_route (queued)───────► Announcer ──task──► BIRD ── events ──► loop
//!       ──update/snapshot──────────► Checker    (health checks; flips wake the loop)
//! ```

pub mod bgp;
mod held;
mod host;
mod netlink;
pub mod xdp;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use serde::Serialize;

pub use bgp::{AnnouncerEvent, BgpObservation, BirdAnnouncer, bird_name};
pub use host::{bpffs_is_private, raise_fd_limit, reply_path_sysctls};
pub use netlink::{Links, NetlinkAddresses};
pub use xdp::XdpForwarder;

use crate::reconcile::RouteState;

/// A boxed future of one effect.
pub type EffectFuture<'a, T = ()> =
    Pin<Box<dyn Future<Output = Result<T, EffectError>> + Send + 'a>>;

/// Which driver an error or a repair is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Component {
    Addresses,
    Forwarder,
    Announcer,
}

impl Component {
    /// Its name in status, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Addresses => "addresses",
            Component::Forwarder => "forwarder",
            Component::Announcer => "announcer",
        }
    }
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of failure, for the decision to retry and for the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The driver does not know the VIP (it was removed): not retried.
    UnknownVip,
    /// A full disk or quota.
    NoSpace,
    /// The component did not answer in time.
    Timeout,
    /// The component refused what it was given (BIRD rejected a config).
    Rejected,
    /// Anything else; retried.
    Failed,
}

/// An effect that failed; the reconcile loop retries it on the next pass
/// (unless it is about a VIP the driver no longer knows).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{component}: {op} failed: {message}")]
pub struct EffectError {
    /// Which driver.
    pub component: Component,
    /// What it was doing, e.g. `add 203.0.113.10/32 to lo`.
    pub op: String,
    /// The kind of failure.
    pub kind: ErrorKind,
    /// The cause.
    pub message: String,
}

impl EffectError {
    /// An error of `component` doing `op`; its kind is read from the cause.
    pub fn new(component: Component, op: impl Into<String>, cause: impl std::fmt::Display) -> Self {
        let message = cause.to_string();
        let kind = if message.contains("No space left on device")
            || message.contains("Disk quota exceeded")
        {
            ErrorKind::NoSpace
        } else if message.contains("did not answer") || message.contains("timed out") {
            ErrorKind::Timeout
        } else if message.contains("rejected") {
            ErrorKind::Rejected
        } else {
            ErrorKind::Failed
        };
        EffectError {
            component,
            op: op.into(),
            kind,
            message,
        }
    }

    /// The same error of a stated kind.
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }
}

/// VIP addresses on the VIP interface.
pub trait Addresses: Send {
    /// Puts `ip` (as /32 or /128) on the interface, marked as edged's.
    fn add(&mut self, ip: IpAddr) -> EffectFuture<'_>;
    /// Removes `ip` if edged added it; an address edged did not add stays.
    fn remove(&mut self, ip: IpAddr) -> EffectFuture<'_>;
    /// The addresses on the interface that edged added (the kernel's view).
    fn list(&mut self) -> EffectFuture<'_, BTreeSet<IpAddr>>;
}

/// The data plane: which proxies serve a VIP, with what weights.
/// A count of held connections: when it began, and the counts by VIP name.
pub type HeldCount = (
    std::time::SystemTime,
    std::collections::HashMap<String, u64>,
);

pub trait Forwarder: Send {
    /// After a (re)load: proxies, VIP addresses and ports, handoff peers.
    /// Returns the VIPs whose tables were dropped and must be written again.
    fn reconfigure(&mut self, cfg: &edged_config::Config) -> Result<Vec<String>, EffectError>;
    /// Replaces the VIP's table.
    fn set_table(&mut self, vip: &str, proxies: &[(String, u32)]) -> EffectFuture<'_>;
    /// Replaces several VIPs' tables, one result each, in order. A driver
    /// with shared tables makes the VIPs that share one and change alike
    /// cost one build and one swap; by default, one by one.
    fn set_tables<'a>(
        &'a mut self,
        batch: &'a [(&'a str, &'a [(String, u32)])],
    ) -> EffectFuture<'a, Vec<Result<(), EffectError>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(batch.len());
            for (vip, proxies) in batch {
                out.push(self.set_table(vip, proxies).await);
            }
            Ok(out)
        })
    }
    /// Removes the VIP.
    fn remove_table(&mut self, vip: &str) -> EffectFuture<'_>;
    /// Hands the VIP's new connections to the peer nodes (`on`), or stops.
    fn set_handoff(&mut self, vip: &str, on: bool) -> EffectFuture<'_>;
    /// Each VIP's table as the data plane holds it (after a restart: read
    /// back from the pinned maps), by VIP name.
    fn tables(&self) -> BTreeMap<String, Vec<(String, u32)>>;
    /// Re-attaches the program to every uplink that lost it (the kernel's
    /// view: which program each uplink runs); returns those uplinks.
    fn repair(&mut self) -> EffectFuture<'_, Vec<String>>;
    /// Counters summed over CPUs.
    fn counters(&self) -> Result<edged_ebpf::Counters, EffectError>;
    /// Asks for a count of the established connections each held-back
    /// VIP still serves here (seen within `idle`, not ended) and returns
    /// the latest one done: when it began, and the counts by VIP name
    /// (VIPs with none absent); `None` until the first is done. The count
    /// runs off the loop.
    fn held_connections(
        &mut self,
        idle: std::time::Duration,
    ) -> Result<Option<HeldCount>, EffectError>;
    /// A line for `edgectl status`.
    fn describe(&self) -> String;
    /// Each table's use against its capacity, and the shared tables
    /// swapped in so far (no map reads); `None` where not kept.
    fn tables_usage(&self) -> Option<(edged_ebpf::Usage, u64)> {
        None
    }
}

/// BGP: routes are queued to a task that owns BIRD, and what happened
/// comes back as [`AnnouncerEvent`]s, so no BIRD command ever blocks the
/// loop (a frozen BIRD costs the loop nothing).
pub trait Announcer: Send {
    /// Queues a route change; its result arrives as [`AnnouncerEvent::Route`].
    fn set_route(&mut self, vip: &str, state: RouteState);
    /// A reload: the new spec, checked by BIRD before anything changes.
    fn reconfigure(
        &mut self,
        cfg: &edged_config::Config,
        spec: edged_bgp::BgpSpec,
    ) -> EffectFuture<'_>;
    /// The route states taken over from a BIRD that was kept running
    /// across a planned restart (empty for a new BIRD), by VIP name.
    fn adopted(&self) -> BTreeMap<String, RouteState>;
    /// A planned restart: BIRD keeps its sessions and routes for the next
    /// edged.
    fn handover(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>>;
    /// Withdraws everything and stops a managed BIRD.
    fn shutdown(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// The health checker as the loop sees it.
pub trait Checker: Send {
    /// A new set of checks (a reload): see [`edged_health::HealthChecker::update`].
    fn update(&mut self, checks: Vec<(edged_health::CheckKey, edged_health::CheckSpec)>);
    /// Every check's status.
    fn snapshot(&self) -> Vec<(edged_health::CheckKey, edged_health::CheckStatus)>;
    /// The proxy's process is gone: its checks attempt at once (see
    /// [`edged_health::HealthChecker::reprobe`]); how many were told.
    fn reprobe(&self, proxy: &str) -> usize;
}

impl Checker for edged_health::HealthChecker {
    fn update(&mut self, checks: Vec<(edged_health::CheckKey, edged_health::CheckSpec)>) {
        edged_health::HealthChecker::update(self, checks)
    }
    fn snapshot(&self) -> Vec<(edged_health::CheckKey, edged_health::CheckStatus)> {
        edged_health::HealthChecker::snapshot(self)
    }
    fn reprobe(&self, proxy: &str) -> usize {
        edged_health::HealthChecker::reprobe(self, proxy)
    }
}
