//! The control API's JSON messages, shared by `edged` and `edgectl`.
//!
//! | method | path                      | reply          |
//! |--------|---------------------------|----------------|
//! | GET    | /v1/status                | [`Status`]     |
//! | GET    | /v1/vips                  | [`Vec<VipInfo>`] |
//! | GET    | /v1/proxies               | [`Vec<ProxyInfo>`] |
//! | GET    | /v1/peers                 | [`Peers`]      |
//! | POST   | /v1/vips/{vip}/drain      | [`Done`]       |
//! | POST   | /v1/vips/{vip}/undrain    | [`Done`]       |
//! | POST   | /v1/maintenance/{on,off}  | [`Done`]       |
//! | POST   | /v1/reload[?dry_run=true] | [`Done`] / [`ConfigDiff`] |
//! | POST   | /v1/diff (body: config)   | [`ConfigDiff`] |
//! | POST   | /v1/stop?mode=graceful\|restart\|fast | [`Done`] |
//! | POST   | /v1/proxies/{p}/weight/{n}| [`Done`]       |
//! | POST   | /v1/proxies/{p}/weight-reset | [`Done`]    |
//!
//! Errors are `{"error": "..."}` with a 4xx/5xx status.

use serde::{Deserialize, Serialize};

use crate::reconcile::RouteState;

/// How edged stops.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StopMode {
    /// Drain every VIP first (handoff, GRACEFUL_SHUTDOWN), bounded by
    /// `node.stop_timeout`; then withdraw and exit.
    #[default]
    Graceful,
    /// A planned restart: keep the routes, the VIP addresses and the data
    /// plane (with every flow) for the next edged; exit.
    Restart,
    /// Withdraw everything at once and exit.
    Fast,
}

/// What a config would change on the running node.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ConfigDiff {
    /// One line per change, for people.
    pub changes: Vec<String>,
    /// Whether the config would be accepted.
    pub valid: bool,
    /// Why not, when it would be refused.
    pub error: Option<String>,
}

/// `edgectl status`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// edged's version.
    pub version: String,
    /// Daemon pid.
    pub pid: u32,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// The config file.
    pub config_path: String,
    /// Incremented on each successful reload.
    pub config_generation: u64,
    /// The last reload attempt.
    pub last_reload: Option<ReloadInfo>,
    /// Unix time maintenance started, if on.
    pub maintenance_since: Option<u64>,
    /// State of each component.
    pub components: Vec<Component>,
    /// Configured VIPs.
    pub vips_total: usize,
    /// VIPs announced (normally or draining), as decided.
    pub vips_announced: usize,
    /// Errors of the last reconcile pass (retried).
    pub last_errors: Vec<String>,
    /// Unix time edged started.
    #[serde(default)]
    pub started_unix: u64,
    /// Drift found and repaired since start (addresses, XDP, BIRD, sysctl).
    #[serde(default)]
    pub drift_repaired: u64,
    /// A stop in progress, in words.
    #[serde(default)]
    pub stopping: Option<String>,
}

/// One reload attempt.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ReloadInfo {
    /// Unix time.
    pub at: u64,
    /// Whether it was applied.
    pub ok: bool,
    /// The error, when rejected.
    pub error: Option<String>,
}

/// State of one component of the node.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Component {
    /// `addresses`, `forwarder`, `health`, `announcer`.
    pub name: String,
    /// `ok`, `error`, `disabled`, `not-available`.
    pub state: String,
    /// Details in words.
    pub detail: String,
}

/// `edgectl vips`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct VipInfo {
    /// Name.
    pub name: String,
    /// Address.
    pub address: String,
    /// `80/tcp`, ...
    pub ports: Vec<String>,
    /// What the node decided.
    pub route: RouteState,
    /// What the announcer applied in BIRD (`None`: no announcer).
    pub applied: Option<RouteState>,
    /// Established sessions of the VIP's family that export it, as last
    /// read from BIRD (`None`: not read yet): what the fabric really has.
    #[serde(default)]
    pub exported: Option<usize>,
    /// Established sessions of the VIP's family.
    #[serde(default)]
    pub sessions_up: Option<usize>,
    /// Why.
    pub reason: String,
    /// Drained by an operator (or maintenance).
    pub drained: bool,
    /// Proxies serving now.
    pub serving: Vec<String>,
    /// Proxies configured.
    pub configured: usize,
    /// Threshold to announce.
    pub min_healthy: u32,
    /// Established connections this node still serves for the VIP while
    /// it is held back (maintenance, a drain, a stop) with handoff peers
    /// (`None`: not counted).
    #[serde(default)]
    pub held: Option<u64>,
    /// The drain waits for those connections (withdrawn, not complete).
    #[serde(default)]
    pub holding: bool,
}

/// `edgectl proxies`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProxyInfo {
    /// Name.
    pub name: String,
    /// Address used by checks.
    pub address: String,
    /// `l2 via IF (MAC)` or `host`.
    pub delivery: String,
    /// Weight in force (a runtime override, else the config's).
    pub weight: u32,
    /// Weight in the config.
    #[serde(default)]
    pub configured_weight: u32,
    /// Data plane counters (`None` without a forwarder).
    #[serde(default)]
    pub traffic: Option<ProxyTraffic>,
    /// Per VIP this proxy is configured for.
    pub vips: Vec<ProxyVip>,
}

/// What the data plane delivered to a proxy.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProxyTraffic {
    pub packets: u64,
    pub bytes: u64,
    pub new_flows: u64,
}

/// A proxy's state for one VIP.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProxyVip {
    /// VIP name.
    pub vip: String,
    /// Serving (`None`: no verdict yet).
    pub serving: Option<bool>,
    /// Failure reason or `ok`.
    pub detail: String,
    /// Each service's check on this proxy.
    #[serde(default)]
    pub checks: Vec<ServiceCheck>,
}

/// One service's check on one proxy.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ServiceCheck {
    /// Service name.
    pub service: String,
    /// `up`, `down` or `unknown`.
    pub state: String,
    /// The last attempt's result (`ok` or the reason).
    pub last: String,
    /// The last attempt's latency.
    pub latency_us: u64,
    /// `steady` (every interval), `fast` (changing: every fastinter),
    /// `down` (every downinter).
    #[serde(default)]
    pub phase: String,
    /// The last change of state: to what, the class of the attempt that
    /// decided it (`refused`, `reset`, `timeout`, `status`, `ok`, ...),
    /// when (unix seconds).
    #[serde(default)]
    pub transition: Option<(String, String, u64)>,
}

/// `edgectl peers`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Peers {
    /// State of the announcer.
    pub announcer: String,
    /// Configured peers.
    pub peers: Vec<PeerInfo>,
    /// Flow ownership shared with the handoff peers (`None` without
    /// `forwarder.handoff`).
    #[serde(default)]
    pub flow_sharing: Option<crate::flowshare::Stats>,
}

/// One BGP peer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PeerInfo {
    /// Name.
    pub name: String,
    /// Address.
    pub address: String,
    /// ASN.
    pub asn: u32,
    /// BGP state (`Established`, `Active`, ...; `unknown` before the first read).
    pub state: String,
    /// Seconds in this state.
    #[serde(default)]
    pub uptime_secs: Option<u64>,
    /// Prefixes exported to the peer.
    #[serde(default)]
    pub exported: Option<u64>,
    /// BIRD's last error for the session.
    #[serde(default)]
    pub last_error: Option<String>,
}

/// Reply of a command that changes something.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Done {
    /// What happened.
    pub message: String,
}

/// Error reply.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ErrorReply {
    /// What went wrong.
    pub error: String,
}
