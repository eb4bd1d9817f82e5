//! Structs shared with the C program (`bpf/edged.h`), byte for byte. The C
//! header has `_Static_assert`s with the same sizes and offsets as below, so
//! neither side can drift without failing to build.

use std::mem::{offset_of, size_of};

/// Bumped with `EDGED_LAYOUT_VERSION` in `bpf/edged.h` on any layout change.
pub const LAYOUT_VERSION: u32 = 12;
pub const CT_WAYS: usize = 4;
/// Bits of a connection-table entry: 9..63 the flow's fingerprint (63
/// always set), 1..8 the proxy slot, 0 the second-chance bit.
pub const CT_FP_MASK: u64 = !0x1ff;
pub const CT_PROXY_SHIFT: u32 = 1;
/// Slots of `ed_proxy`; the last [`MAX_PEERS`] are handoff peers.
pub const MAX_PROXIES: u32 = 256;
/// Peer nodes a drained VIP's new connections can be handed to.
pub const MAX_PEERS: u32 = 8;
/// First peer slot; local proxies use the slots below it.
pub const PEER_SLOT_BASE: u32 = MAX_PROXIES - MAX_PEERS;
pub const VIP_INDEX_COLLIDE: u32 = u32::MAX;
/// Ports a VIP's `ed_vipinfo` entry holds inline.
pub const VIP_PORTS: usize = 8;
/// `VipInfo::flags`: the VIP has more ports than `VIP_PORTS` (in `ed_vips`).
pub const VIP_MANY_PORTS: u32 = 1;
pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;
pub const PROXY_NONE: u32 = 0;
pub const PROXY_L2: u32 = 1;
pub const PROXY_HOST: u32 = 2;
pub const PROXY_PEER: u32 = 3;
pub const NO_HEALTHY_DROP: u32 = 0;
pub const NO_HEALTHY_PASS: u32 = 1;
/// Number of global reason counters (`G_NUM`).
pub const G_NUM: u32 = 9;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EdgedCfg {
    pub version: u32,
    pub table_size: u32,
    pub hash_seed: u32,
    pub max_vips: u32,
    pub udp_timeout_ns: u64,
    pub conntrack_entries: u32,
    pub no_healthy: u32,
    /// Sets of `CT_WAYS` entries in `ed_ct`; a power of two.
    pub ct_buckets: u32,
    /// Entries of `ed_owner` (flows owned by peer nodes).
    pub peer_flows: u32,
    /// `ed_vipidx` has 2^bits slots.
    pub vip_index_bits: u32,
    pub max_pools: u32,
    /// Entries of `ed_vips`.
    pub max_vip_keys: u32,
    pub pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VipKey {
    /// Network order; IPv4 in `addr[0]`.
    pub addr: [u32; 4],
    /// Network order; 0 with proto 0 is the VIP's address-only entry.
    pub port: u16,
    pub proto: u8,
    pub family: u8,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipVal {
    pub vip_id: u32,
    pub flags: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipInfo {
    pub addr: [u32; 4],
    /// 0 = slot unused.
    pub family: u32,
    /// `proto << 16 | port` (network order) of up to `VIP_PORTS` ports; 0
    /// unused.
    pub port: [u32; VIP_PORTS],
    /// `VIP_MANY_PORTS`.
    pub flags: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipState {
    pub pool: u32,
    pub no_healthy: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolState {
    pub active: u32,
    pub count: [u32; 2],
    pub pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Proxy {
    pub mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub ifindex: u32,
    pub kind: u32,
}

/// A set of the connection table: `fingerprint | proxy << 1 | used`, 0 empty.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtBucket {
    pub way: [u64; CT_WAYS],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipCountersRaw {
    pub packets: u64,
    pub bytes: u64,
    pub new_flows: u64,
    pub nonsyn_miss: u64,
    pub drop_no_healthy: u64,
    pub pass_no_healthy: u64,
    pub frag_pass: u64,
    pub icmp_fwd: u64,
    pub ext_pass: u64,
    pub bad_tcp_flags: u64,
    pub second_chance: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyCountersRaw {
    pub packets: u64,
    pub bytes: u64,
    pub new_flows: u64,
}

/// `ed_handoff[0]`: this node's address and its peers' (network order,
/// IPv4 in word 0); `family` 0 turns handoff off.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Handoff {
    pub local: [u32; 4],
    pub family: u32,
    pub count: u32,
    pub peer: [[u32; 4]; MAX_PEERS as usize],
}

/// `ed_held[fingerprint]`: a connection a held-back VIP still serves here.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// The VIP's id; [`HELD_ENDED`] set once the client sent FIN or RST.
    pub vip: u32,
    /// Last seen: `bpf_ktime_get_coarse_ns() >> 20` (CLOCK_MONOTONIC).
    pub last: u32,
}
pub const HELD_ENDED: u32 = 0x8000_0000;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyName {
    pub name: [u8; 64],
}

impl Default for ProxyName {
    fn default() -> Self {
        ProxyName { name: [0; 64] }
    }
}

// SAFETY: all of these are `repr(C)`, `Copy`, have no padding the kernel
// could fill with uninitialised bytes (checked by the sizes below) and every
// bit pattern is a valid value.
unsafe impl aya::Pod for EdgedCfg {}
unsafe impl aya::Pod for VipKey {}
unsafe impl aya::Pod for VipVal {}
unsafe impl aya::Pod for VipState {}
unsafe impl aya::Pod for PoolState {}
unsafe impl aya::Pod for VipInfo {}
unsafe impl aya::Pod for Proxy {}
unsafe impl aya::Pod for CtBucket {}
unsafe impl aya::Pod for VipCountersRaw {}
unsafe impl aya::Pod for ProxyCountersRaw {}
unsafe impl aya::Pod for ProxyName {}
unsafe impl aya::Pod for Handoff {}
unsafe impl aya::Pod for Held {}

// === layout assertions (same numbers as the C `_Static_assert`s) ===

const _: () = {
    assert!(size_of::<EdgedCfg>() == 56);
    assert!(offset_of!(EdgedCfg, udp_timeout_ns) == 16);
    assert!(size_of::<VipKey>() == 20);
    assert!(offset_of!(VipKey, port) == 16);
    assert!(size_of::<VipVal>() == 8);
    assert!(size_of::<VipState>() == 8);
    assert!(size_of::<PoolState>() == 16);
    assert!(size_of::<VipInfo>() == 56);
    assert!(size_of::<Proxy>() == 20);
    assert!(offset_of!(Proxy, ifindex) == 12);
    assert!(size_of::<CtBucket>() == 32);
    assert!(size_of::<VipCountersRaw>() == 88);
    assert!(size_of::<ProxyCountersRaw>() == 24);
    assert!(size_of::<ProxyName>() == 64);
    assert!(size_of::<Handoff>() == 152);
    assert!(size_of::<Held>() == 8);
};
