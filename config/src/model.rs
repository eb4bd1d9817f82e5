//! The configuration model: one struct per YAML section. Every field has a
//! doc comment and, where optional, an explicit default function.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::types::{Community, LargeCommunity, MacAddr, duration, opt_duration};

/// The whole `edged.yaml`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Identity and local paths of this node.
    pub node: Node,
    /// The XDP data plane. Absent: no forwarder (traffic reaches the proxies
    /// by the kernel's own routing).
    #[serde(default)]
    pub forwarder: Option<Forwarder>,
    /// The local L7 proxy instances traffic is spread over.
    pub proxies: Vec<Proxy>,
    /// The virtual IPs this node serves and announces.
    pub vips: Vec<Vip>,
    /// BGP sessions to the top-of-rack switches, driven through BIRD 2.
    pub bgp: Bgp,
}

// === node ===

/// `node:` identity and local paths.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// BGP router id (an IPv4 address, unique per node).
    pub router_id: Ipv4Addr,
    /// Local autonomous system number (4-byte ASNs allowed).
    pub asn: u32,
    /// Where edged keeps operator intents, BIRD's files and its pid.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Unix socket of the control API used by `edgectl`.
    #[serde(default = "default_control_socket")]
    pub control_socket: PathBuf,
    /// Group allowed to use the control socket (mode 0660); root only when absent.
    #[serde(default)]
    pub control_group: Option<String>,
    /// Address of the Prometheus endpoint (`/metrics`); `null` turns it off.
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: Option<SocketAddr>,
    /// The data plane's counters per VIP (`true`) or summed over every VIP
    /// under `vip="_all"` (`false`); absent: per VIP up to 1,000 VIPs, so
    /// that 100,000 VIPs are not a million series.
    #[serde(default)]
    pub metrics_per_vip: Option<bool>,
    /// How long a drained VIP stays announced with GRACEFUL_SHUTDOWN before
    /// it is withdrawn.
    #[serde(default = "default_drain_time", with = "duration")]
    pub drain_time: Duration,
    /// Interface where edged puts the VIP addresses, so this host's own
    /// stack accepts VIP traffic (host-stack proxies). `null`: edged manages
    /// no addresses (proxies in their own namespaces or hosts hold the VIP on
    /// their loopback, direct server return).
    #[serde(default = "default_vip_interface")]
    pub vip_interface: Option<String>,
    /// Bound on the last step of a stop (withdraw everything, remove the
    /// VIP addresses, stop BIRD).
    #[serde(default = "default_shutdown_timeout", with = "duration")]
    pub shutdown_timeout: Duration,
    /// A stop (SIGTERM, `systemctl stop`, `edgectl stop`) first drains every
    /// VIP as maintenance does (handoff, GRACEFUL_SHUTDOWN for `drain_time`,
    /// then the connections still held), for at most this long, then
    /// withdraws. `0s` withdraws at once, as
    /// `edged --fast-stop` and `edgectl stop --fast` do.
    #[serde(default = "default_stop_timeout", with = "duration")]
    pub stop_timeout: Duration,
    /// After a planned restart (`edgectl stop --restart`, `systemctl
    /// restart`), BIRD keeps the sessions and routes this long, waiting for
    /// the next edged to take them over; if none comes, BIRD stops and the
    /// node fails closed.
    #[serde(default = "default_restart_grace", with = "duration")]
    pub restart_grace: Duration,
}

fn default_stop_timeout() -> Duration {
    Duration::from_secs(90)
}
fn default_restart_grace() -> Duration {
    Duration::from_secs(15)
}

fn default_state_dir() -> PathBuf {
    "/var/lib/edged".into()
}
fn default_control_socket() -> PathBuf {
    "/run/edged/edged.sock".into()
}
fn default_metrics_listen() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 9180)))
}
fn default_drain_time() -> Duration {
    Duration::from_secs(30)
}
fn default_vip_interface() -> Option<String> {
    Some("lo".into())
}
fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(10)
}

// === forwarder ===

/// `forwarder:` the XDP flow-hash forwarder.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Forwarder {
    /// Interfaces facing the top-of-rack switches; the XDP program is attached
    /// to each.
    pub uplinks: Vec<String>,
    /// `native` (driver mode) or `generic` (skb mode, slower, works everywhere).
    #[serde(default)]
    pub xdp_mode: XdpMode,
    /// Seed of the flow hash; identical on every node so all nodes pick alike.
    #[serde(default = "default_hash_seed")]
    pub hash_seed: u32,
    /// Maglev lookup table size (of each shared table); must be prime.
    #[serde(default = "default_table_size")]
    pub table_size: u32,
    /// What to do with a VIP packet when no proxy is healthy: `drop` or `pass`.
    #[serde(default)]
    pub no_healthy_proxy: NoHealthy,
    /// Entries of the LRU connection table.
    #[serde(default = "default_conntrack_entries")]
    pub conntrack_entries: u32,
    /// A UDP flow is forgotten after this long without packets.
    #[serde(default = "default_udp_idle_timeout", with = "duration")]
    pub udp_idle_timeout: Duration,
    /// Entries of the table of flows the handoff peers own (least recently
    /// used out first): how many of the peers' connections this node can
    /// send back to them when the top-of-rack moves them here.
    #[serde(default = "default_peer_flows")]
    pub peer_flows: u32,
    /// VIPs the data plane holds (1 to 262,144). Capacities are the maps'
    /// sizes: changing one reloads the data plane at the next start.
    #[serde(default = "default_max_vips")]
    pub max_vips: u32,
    /// Shared Maglev tables (1 to 4,096, at most `max_vips`): VIPs with
    /// the same serving proxies and weights share one; each takes two
    /// tables of `table_size` bytes.
    #[serde(default = "default_max_pools")]
    pub max_pools: u32,
    /// VIP port entries: every VIP's ports plus one per VIP (`max_vips`
    /// to 2,097,152).
    #[serde(default = "default_max_vip_ports")]
    pub max_vip_ports: u32,
    /// bpffs directory where maps and the XDP link are pinned.
    #[serde(default = "default_pin_dir")]
    pub pin_dir: PathBuf,
    /// Connection handoff to the other edge nodes while a VIP is drained.
    /// Absent: a drain moves traffic by BGP alone, and connections in flight
    /// when the top-of-rack switch moves them are reset.
    #[serde(default)]
    pub handoff: Option<Handoff>,
}

/// `forwarder.handoff:` on a drain (or maintenance), the VIP stays
/// announced for `time` while its new TCP connections are sent, encapsulated
/// (IP in IP, by the XDP program), to the peers; connections already here
/// finish here. Then the graceful shutdown and withdrawal run as without
/// handoff, and flows the peers took over reach them directly. Every node
/// lists the others. The fabric must carry packets 20 (IPv4) or 40 (IPv6)
/// bytes larger than the clients' MTU between nodes.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Handoff {
    /// This node's address that peers send handed-off packets to (on an
    /// uplink); the outer source of what this node hands off.
    pub address: IpAddr,
    /// The other edge nodes' `handoff.address` (1 to 8, same family).
    pub peers: Vec<IpAddr>,
    /// How long new connections go to the peers before the graceful
    /// shutdown starts; longer than most requests take.
    #[serde(default = "default_handoff_time", with = "duration")]
    pub time: Duration,
    /// UDP port on which the nodes tell each other the flows they own
    /// (the same on every node), so that a connection the top-of-rack
    /// moves to another node (a drain, a node returning) is sent back to
    /// the node that holds it.
    #[serde(default = "default_handoff_port")]
    pub port: u16,
    /// A file holding the key (16 to 4096 bytes, not readable by others)
    /// that signs those messages; every node has the same. Absent: the
    /// messages are unsigned, and only the peers' addresses are checked.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// After a drained VIP's route is withdrawn, the connections it still
    /// serves (the top-of-rack sends them to the peers, which send them
    /// back here) are waited for at most this long before the drain is
    /// complete and a graceful stop goes on. `0s`: not waited for.
    #[serde(default = "default_connection_timeout", with = "duration")]
    pub connection_timeout: Duration,
    /// A held connection that sends nothing for this long counts as ended
    /// (a client gone without FIN or RST).
    #[serde(default = "default_connection_idle", with = "duration")]
    pub connection_idle: Duration,
}

fn default_connection_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_connection_idle() -> Duration {
    Duration::from_secs(10)
}

fn default_handoff_port() -> u16 {
    7575
}

fn default_handoff_time() -> Duration {
    Duration::from_secs(5)
}

/// XDP attach mode.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// Driver mode; attaching fails if the driver lacks XDP.
    #[default]
    Native,
    /// Generic (skb) mode.
    Generic,
}

/// Verdict for VIP traffic when no proxy serves the VIP.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NoHealthy {
    /// Drop the packet (counted).
    #[default]
    Drop,
    /// Hand it to the host stack (counted).
    Pass,
}

fn default_hash_seed() -> u32 {
    0x5eed_0001
}
fn default_table_size() -> u32 {
    65537
}
fn default_peer_flows() -> u32 {
    1 << 18
}
fn default_max_vips() -> u32 {
    4096
}
fn default_max_pools() -> u32 {
    256
}
fn default_max_vip_ports() -> u32 {
    16384
}
fn default_conntrack_entries() -> u32 {
    1 << 20
}
fn default_udp_idle_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_pin_dir() -> PathBuf {
    "/sys/fs/bpf/edged".into()
}

// === proxies ===

/// `proxies[]`: one local L7 proxy instance.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Proxy {
    /// Unique name (`[a-z][a-z0-9_-]*`, at most 32 characters).
    pub name: String,
    /// Address of the instance on its segment, used by health checks.
    pub address: IpAddr,
    /// How packets reach it: `l2` (MAC rewrite on a segment) or `host` (this
    /// host's own stack).
    #[serde(default)]
    pub delivery: Delivery,
    /// With `delivery: l2`: the interface towards the instance.
    #[serde(default)]
    pub interface: Option<String>,
    /// With `delivery: l2`: the instance's MAC address.
    #[serde(default)]
    pub mac: Option<MacAddr>,
    /// Relative share of new flows (0 takes no new flows; at most 10000).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// A proxy on this host whose process edged may watch: when it exits,
    /// every check of the proxy attempts at once (then at `fastinter`),
    /// whatever its interval. Off by default.
    #[serde(default)]
    pub liveness: Option<Liveness>,
}

/// `proxies[].liveness`: how edged knows the proxy's process.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Liveness {
    /// The proxy's pid file (its main process: HAProxy's, nginx's master,
    /// Envoy's), read again when the process it names is gone.
    pub pidfile: PathBuf,
}

/// How a proxy instance is reached.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// Same L2 segment: rewrite the destination MAC and redirect.
    #[default]
    L2,
    /// The host's own network stack (`XDP_PASS`).
    Host,
}

fn default_weight() -> u32 {
    100
}

// === vips ===

/// `vips[]`: one virtual IP.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Vip {
    /// Unique name (`[a-z][a-z0-9_-]*`, at most 32 characters).
    pub name: String,
    /// The VIP (announced as a /32 or /128).
    pub address: IpAddr,
    /// Ports and protocols forwarded to the proxies.
    pub ports: Vec<PortSpec>,
    /// Names of the proxies serving this VIP; absent means all proxies.
    #[serde(default)]
    pub proxies: Option<Vec<String>>,
    /// Announce while at least this many proxies serve the VIP.
    #[serde(default = "default_min_healthy")]
    pub min_healthy: u32,
    /// Host header and TLS SNI for checks that go through the proxy.
    #[serde(default)]
    pub host: Option<String>,
    /// What this VIP's packets meet while no proxy serves it (in flight
    /// while its route is withdrawn): `drop` or `pass`; absent: the
    /// forwarder's `no_healthy_proxy`.
    #[serde(default)]
    pub no_healthy_proxy: Option<NoHealthy>,
    /// BGP communities attached to the route, `ASN:VALUE`.
    #[serde(default)]
    pub communities: Vec<Community>,
    /// BGP large communities attached to the route, `A:B:C`.
    #[serde(default)]
    pub large_communities: Vec<LargeCommunity>,
    /// The services behind the VIP, each checked on every proxy.
    pub services: Vec<Service>,
}

fn default_min_healthy() -> u32 {
    1
}

/// `vips[].ports[]`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    /// Port number (1-65535).
    pub port: u16,
    /// `tcp` or `udp`.
    #[serde(default)]
    pub protocol: Protocol,
}

/// Transport protocol.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// `vips[].services[]`: a service behind the VIP.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Name, unique within the VIP.
    pub name: String,
    /// How to check it on each proxy.
    pub check: Check,
}

/// `check:` one health check, run against every proxy serving the VIP.
/// Fields that belong to one kind are rejected on the others.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// `tcp`, `http`, `https`, `dns` or `exec`.
    pub kind: CheckKind,
    /// Port on the proxy (default: 80 http, 443 https, 53 dns; required for tcp).
    #[serde(default)]
    pub port: Option<u16>,
    /// Time between checks.
    #[serde(default = "default_interval", with = "duration")]
    pub interval: Duration,
    /// Time a check may take; must be less than the interval.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
    /// Consecutive passes before a down check counts as up.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Consecutive failures before an up check counts as down.
    #[serde(default = "default_fall")]
    pub fall: u32,
    /// After going down, stay down at least this long (flap damping).
    #[serde(default, with = "opt_duration")]
    pub hold_down: Option<Duration>,
    /// While the check is changing state (an up check failing, a new
    /// one passing), attempts come this often, until it is decided
    /// (HAProxy's `fastinter`); a kept connection the proxy closes starts
    /// an attempt at once.
    #[serde(default = "default_fastinter", with = "duration")]
    pub fastinter: Duration,
    /// While the check is down, attempts come this often (default: the
    /// interval; HAProxy's `downinter`).
    #[serde(default, with = "opt_duration")]
    pub downinter: Option<Duration>,
    /// Source address of the check's packets.
    #[serde(default)]
    pub source: Option<IpAddr>,
    /// http/https: request method.
    #[serde(default)]
    pub method: Option<String>,
    /// http/https: request path.
    #[serde(default)]
    pub path: Option<String>,
    /// http/https: accepted status codes (default `[200]`).
    #[serde(default)]
    pub expect_status: Option<Vec<u16>>,
    /// http/https: the body must contain this text.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// http/https: Host header and SNI; defaults to the VIP's `host`.
    #[serde(default)]
    pub host: Option<String>,
    /// http/https: keep the connection between attempts (default true); false
    /// opens a new one per attempt (notices a proxy that stops accepting at
    /// once, costs more CPU).
    #[serde(default)]
    pub reuse_connection: Option<bool>,
    /// http/https: speak HTTP/2 (default false): every check to the same
    /// proxy port shares one connection and each attempt is a stream on
    /// it (one socket per proxy instead of one per check; the only way to
    /// check an HTTP/2-only listener such as a gRPC endpoint).
    /// Clear text uses prior knowledge (h2c), TLS needs ALPN `h2`; the
    /// proxy's listener must accept HTTP/2 (nginx `http2`, HAProxy
    /// `proto h2` or its automatic h2c detection, Envoy `http2_protocol_options`).
    #[serde(default)]
    pub http2: Option<bool>,
    /// https: CA bundle to verify the proxy's certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// https: verify the certificate (default true).
    #[serde(default)]
    pub tls_verify: Option<bool>,
    /// dns: name to query.
    #[serde(default)]
    pub query_name: Option<String>,
    /// dns: query type number (default 1, A).
    #[serde(default)]
    pub query_type: Option<u16>,
    /// dns: expected response code (default 0, NOERROR).
    #[serde(default)]
    pub expect_rcode: Option<u8>,
    /// exec: program (absolute path) and arguments.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// exec: extra environment (EDGED_VIP, EDGED_SERVICE, EDGED_PROXY are always set).
    #[serde(default)]
    pub env: Option<std::collections::BTreeMap<String, String>>,
}

/// Kind of a health check.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// TCP connect.
    Tcp,
    /// HTTP request.
    Http,
    /// HTTP over TLS.
    Https,
    /// DNS query over UDP.
    Dns,
    /// A command; exit status 0 passes.
    Exec,
}

fn default_fastinter() -> Duration {
    Duration::from_millis(10)
}

fn default_interval() -> Duration {
    Duration::from_secs(2)
}
fn default_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
}

// === bgp ===

/// `bgp:` sessions to the top-of-rack switches, through BIRD 2.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Bgp {
    /// `managed`: edged runs its own BIRD child; `external`: edged writes an
    /// include file for an existing BIRD and uses its control socket.
    #[serde(default)]
    pub mode: BirdMode,
    /// The BIRD binary (managed mode).
    #[serde(default = "default_bird_binary")]
    pub bird_binary: PathBuf,
    /// External mode: the operator's BIRD control socket.
    #[serde(default)]
    pub external_socket: Option<PathBuf>,
    /// External mode: the file edged writes for the operator's BIRD to include.
    #[serde(default)]
    pub include_file: Option<PathBuf>,
    /// On drain, re-announce with GRACEFUL_SHUTDOWN (65535:0) before withdrawing.
    #[serde(default = "default_true")]
    pub graceful_shutdown: bool,
    /// On drain, also set this MED.
    #[serde(default)]
    pub drain_med: Option<u32>,
    /// On drain, also prepend the local ASN this many times (0-8).
    #[serde(default)]
    pub drain_prepend: u8,
    /// The BGP neighbours.
    pub peers: Vec<Peer>,
}

/// Whether edged runs BIRD itself.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BirdMode {
    /// edged starts and supervises its own BIRD.
    #[default]
    Managed,
    /// An operator-run BIRD.
    External,
}

fn default_bird_binary() -> PathBuf {
    "/usr/sbin/bird".into()
}
fn default_true() -> bool {
    true
}

/// `bgp.peers[]`: one BGP neighbour.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// Unique name (`[a-z][a-z0-9_-]*`, at most 32 characters).
    pub name: String,
    /// Neighbour address; its family decides which VIPs go to it.
    pub address: IpAddr,
    /// Neighbour ASN.
    pub asn: u32,
    /// Local address of the session.
    #[serde(default)]
    pub source_address: Option<IpAddr>,
    /// Hold time (0, or at least 3s).
    #[serde(default = "default_hold_time", with = "duration")]
    pub hold_time: Duration,
    /// Keepalive interval (default a third of the hold time).
    #[serde(default, with = "opt_duration")]
    pub keepalive: Option<Duration>,
    /// Run BFD on the session.
    #[serde(default)]
    pub bfd: bool,
    /// File holding the TCP MD5 password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Multihop session with this TTL.
    #[serde(default)]
    pub multihop: Option<u8>,
    /// GTSM (RFC 5082) TTL security.
    #[serde(default)]
    pub ttl_security: bool,
}

fn default_hold_time() -> Duration {
    Duration::from_secs(9)
}
