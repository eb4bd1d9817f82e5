//! Validating the spec, loading the program afresh, removing its pins.

use std::path::{Path, PathBuf};

use aya::EbpfLoader;
use aya::programs::Xdp;

use crate::abi::*;
use crate::spec::{
    LIMIT_MAX_POOLS, LIMIT_MAX_VIP_PORTS, LIMIT_MAX_VIPS, MAX_PEER_FLOWS, MIN_PEER_FLOWS,
};
use crate::{ForwarderError, ForwarderSpec, NoHealthy};

/// Checks a spec against what the loader takes (sizes, pin dir).
pub fn validate(spec: &ForwarderSpec) -> Result<(), ForwarderError> {
    let m = spec.table_size;
    if !(3..=262_139).contains(&m) || !is_prime(m) {
        return Err(ForwarderError::InvalidSpec {
            field: "table_size",
            value: m.to_string(),
            reason: "must be a prime between 3 and 262139 (default 65537)",
        });
    }
    if !(1..=1 << 26).contains(&spec.conntrack_entries) {
        return Err(ForwarderError::InvalidSpec {
            field: "conntrack_entries",
            value: spec.conntrack_entries.to_string(),
            reason: "must be between 1 and 67108864",
        });
    }
    if !(MIN_PEER_FLOWS..=MAX_PEER_FLOWS).contains(&spec.peer_flows) {
        return Err(ForwarderError::InvalidSpec {
            field: "peer_flows",
            value: spec.peer_flows.to_string(),
            reason: "must be between 1024 and 16777216",
        });
    }
    if !(1..=LIMIT_MAX_VIPS).contains(&spec.max_vips) {
        return Err(ForwarderError::InvalidSpec {
            field: "max_vips",
            value: spec.max_vips.to_string(),
            reason: "must be between 1 and 262144",
        });
    }
    if !(1..=LIMIT_MAX_POOLS.min(spec.max_vips)).contains(&spec.max_pools) {
        return Err(ForwarderError::InvalidSpec {
            field: "max_pools",
            value: spec.max_pools.to_string(),
            reason: "must be between 1 and 4096, and at most max_vips",
        });
    }
    if !(spec.max_vips..=LIMIT_MAX_VIP_PORTS).contains(&spec.max_vip_ports) {
        return Err(ForwarderError::InvalidSpec {
            field: "max_vip_ports",
            value: spec.max_vip_ports.to_string(),
            reason: "must be between max_vips and 2097152 (a VIP takes one entry and one a port)",
        });
    }
    if !spec.pin_dir.is_absolute() || spec.pin_dir.parent().is_none() {
        return Err(ForwarderError::InvalidSpec {
            field: "pin_dir",
            value: spec.pin_dir.display().to_string(),
            reason: "must be an absolute directory under /sys/fs/bpf",
        });
    }
    Ok(())
}

fn is_prime(n: u32) -> bool {
    n >= 2
        && (2..)
            .take_while(|d: &u32| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

pub(crate) fn wanted_cfg(spec: &ForwarderSpec) -> EdgedCfg {
    EdgedCfg {
        version: LAYOUT_VERSION,
        table_size: spec.table_size,
        hash_seed: spec.hash_seed,
        max_vips: spec.max_vips,
        udp_timeout_ns: spec.udp_idle_timeout.as_nanos().min(u64::MAX as u128) as u64,
        conntrack_entries: spec.conntrack_entries,
        no_healthy: match spec.no_healthy {
            NoHealthy::Drop => NO_HEALTHY_DROP,
            NoHealthy::Pass => NO_HEALTHY_PASS,
        },
        ct_buckets: ct_buckets(spec.conntrack_entries),
        peer_flows: spec.peer_flows,
        vip_index_bits: vip_index_bits(spec.max_vips),
        max_pools: spec.max_pools,
        max_vip_keys: spec.max_vip_ports,
        pad: 0,
    }
}

/// Bits of the VIP index: at least 32 slots a VIP (about 3 % of VIPs
/// then share a slot and take the hash map), at least 2^16.
pub(crate) fn vip_index_bits(max_vips: u32) -> u32 {
    let slots = (max_vips as u64 * 32).next_power_of_two();
    (slots.trailing_zeros()).clamp(16, 24)
}

/// What cannot change under a running program (the rest is rewritten).
pub(crate) fn same_layout(a: &EdgedCfg, b: &EdgedCfg) -> bool {
    a.version == b.version
        && a.table_size == b.table_size
        && a.hash_seed == b.hash_seed
        && a.max_vips == b.max_vips
        && a.conntrack_entries == b.conntrack_entries
        && a.ct_buckets == b.ct_buckets
        && a.peer_flows == b.peer_flows
        && a.vip_index_bits == b.vip_index_bits
        && a.max_pools == b.max_pools
        && a.max_vip_keys == b.max_vip_keys
}

/// Words of one Maglev ring (8 one-byte proxy slots per word).
pub(crate) fn ring_words(table_size: u32) -> u32 {
    table_size.div_ceil(8)
}

/// Sets in the connection table: enough for `entries`, a power of two.
pub(crate) fn ct_buckets(entries: u32) -> u32 {
    entries.div_ceil(CT_WAYS as u32).next_power_of_two()
}

pub(crate) fn load_fresh(spec: &ForwarderSpec, obj: &[u8]) -> Result<(), ForwarderError> {
    let dir = &spec.pin_dir;
    std::fs::create_dir_all(dir).map_err(pin_err("create", dir))?;
    let load = |source| ForwarderError::Load {
        source: Box::new(source),
    };
    let shift = 32 - vip_index_bits(spec.max_vips);
    let mut ebpf = EbpfLoader::new()
        .default_map_pin_directory(dir)
        .override_global("edged_vip_index_shift", &shift, true)
        .map_max_entries("ed_ring", spec.max_pools * 2 * ring_words(spec.table_size))
        .map_max_entries("ed_poolst", spec.max_pools)
        .map_max_entries("ed_vips", spec.max_vip_ports)
        .map_max_entries("ed_vipidx", 1 << vip_index_bits(spec.max_vips))
        .map_max_entries("ed_vipinfo", spec.max_vips)
        .map_max_entries("ed_vipst", spec.max_vips)
        .map_max_entries("ed_vipho", spec.max_vips)
        .map_max_entries("ed_vipcnt", spec.max_vips)
        .map_max_entries("ed_ct", ct_buckets(spec.conntrack_entries))
        .map_max_entries("ed_owner", spec.peer_flows)
        .map_max_entries("ed_held", spec.peer_flows)
        .map_max_entries(
            "ed_ctts",
            ct_buckets(spec.conntrack_entries) * CT_WAYS as u32,
        )
        .load(obj)
        .map_err(load)?;
    let prog: &mut Xdp = ebpf
        .program_mut("edged_xdp")
        .ok_or(ForwarderError::MissingProgram("edged_xdp"))?
        .try_into()
        .map_err(|source| ForwarderError::Program {
            op: "find edged_xdp",
            source: Box::new(source),
        })?;
    prog.load().map_err(|source| ForwarderError::Program {
        op: "verify and load",
        source: Box::new(source),
    })?;
    let path = dir.join("prog");
    prog.pin(&path).map_err(|e| ForwarderError::Pin {
        op: "pin program",
        path,
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(())
}

/// Removes the pin dir: unpinning the links detaches the program.
pub(crate) fn remove_pins(dir: &Path) -> Result<(), ForwarderError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ForwarderError::Pin {
            op: "remove",
            path: dir.into(),
            source: e,
        }),
    }
}

pub(crate) fn pin_err(
    op: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> ForwarderError {
    let path: PathBuf = path.into();
    move |source| ForwarderError::Pin { op, path, source }
}
