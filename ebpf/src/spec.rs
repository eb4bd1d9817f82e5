//! What the daemon asks of the forwarder: its own small input types, mapped
//! from edged's config by the daemon.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How the program is attached to the uplinks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver; an error if the driver cannot (no silent fallback).
    Native,
    /// In the kernel's generic (skb) path: works on every interface, slower.
    Generic,
}

/// What a packet to a VIP with no serving proxy gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoHealthy {
    Drop,
    /// To the host's own stack.
    Pass,
}

/// Transport protocol of a VIP port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub(crate) fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }
}

/// The data plane of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwarderSpec {
    /// Interfaces the program is attached to (the ToR-facing uplinks).
    pub uplinks: Vec<String>,
    pub mode: XdpMode,
    /// edged's own directory on bpffs, e.g. `/sys/fs/bpf/edged`.
    pub pin_dir: PathBuf,
    /// Seed of the flow hash: the same on every node, so all pick alike.
    pub hash_seed: u32,
    /// Maglev table size per VIP: a prime, default [`DEFAULT_TABLE_SIZE`].
    pub table_size: u32,
    pub no_healthy: NoHealthy,
    /// Capacity of the LRU connection table.
    pub conntrack_entries: u32,
    /// A UDP flow idle longer than this is picked again.
    pub udp_idle_timeout: Duration,
    /// Capacity of the table of flows owned by peer nodes (least recently
    /// used out first), default [`DEFAULT_PEER_FLOWS`].
    pub peer_flows: u32,
    /// VIPs the maps hold, default [`DEFAULT_MAX_VIPS`].
    pub max_vips: u32,
    /// Shared Maglev tables (pools), default [`DEFAULT_MAX_POOLS`]; each
    /// takes two rings of `table_size` bytes.
    pub max_pools: u32,
    /// (VIP, port) entries, plus one per VIP, default
    /// [`DEFAULT_MAX_VIP_PORTS`].
    pub max_vip_ports: u32,
}

/// Default of [`ForwarderSpec::max_vips`].
pub const DEFAULT_MAX_VIPS: u32 = 4096;
/// Default of [`ForwarderSpec::max_pools`].
pub const DEFAULT_MAX_POOLS: u32 = 256;
/// Default of [`ForwarderSpec::max_vip_ports`].
pub const DEFAULT_MAX_VIP_PORTS: u32 = 16384;
/// Largest [`ForwarderSpec::max_vips`].
pub const LIMIT_MAX_VIPS: u32 = 1 << 18;
/// Largest [`ForwarderSpec::max_pools`].
pub const LIMIT_MAX_POOLS: u32 = 4096;
/// Largest [`ForwarderSpec::max_vip_ports`].
pub const LIMIT_MAX_VIP_PORTS: u32 = 1 << 21;

/// Default capacity of the peer-owned flow table.
pub const DEFAULT_PEER_FLOWS: u32 = 1 << 18;
/// Limits of [`ForwarderSpec::peer_flows`].
pub const MIN_PEER_FLOWS: u32 = 1024;
pub const MAX_PEER_FLOWS: u32 = 1 << 24;

/// Default Maglev table size (prime).
pub const DEFAULT_TABLE_SIZE: u32 = 65537;

impl ForwarderSpec {
    /// A spec with the defaults: native mode, seed 0, table 65537, drop when
    /// no proxy is healthy, 1M connections, UDP idle 30 s, 256 Ki
    /// peer-owned flows, 4,096 VIPs, 256 shared tables, 16,384 VIP ports.
    pub fn new(uplinks: Vec<String>, pin_dir: PathBuf) -> Self {
        ForwarderSpec {
            uplinks,
            mode: XdpMode::Native,
            pin_dir,
            hash_seed: 0,
            table_size: DEFAULT_TABLE_SIZE,
            no_healthy: NoHealthy::Drop,
            conntrack_entries: 1 << 20,
            udp_idle_timeout: Duration::from_secs(30),
            peer_flows: DEFAULT_PEER_FLOWS,
            max_vips: DEFAULT_MAX_VIPS,
            max_pools: DEFAULT_MAX_POOLS,
            max_vip_ports: DEFAULT_MAX_VIP_PORTS,
        }
    }
}

/// How frames reach a proxy instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// On an L2 segment behind `ifname` (in the forwarder's network
    /// namespace): destination MAC rewritten to `mac`, then devmap redirect,
    /// or `XDP_TX` when `ifname` is the ingress uplink.
    L2 { ifname: String, mac: [u8; 6] },
    /// The host's own stack (`XDP_PASS`).
    HostStack,
}

/// One local proxy instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyTarget {
    /// Stable name: Maglev positions and flows follow it.
    pub name: String,
    pub delivery: Delivery,
}

/// A VIP and the ports it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipService {
    pub addr: IpAddr,
    pub ports: Vec<(u16, Proto)>,
    /// What its packets meet while no proxy serves it; `None`: the
    /// forwarder's [`ForwarderSpec::no_healthy`].
    pub no_healthy: Option<NoHealthy>,
}
