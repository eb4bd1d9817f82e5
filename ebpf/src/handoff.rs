//! Connection handoff to peer edge nodes (see `bpf/handoff.h`): the peers'
//! addresses go into `ed_handoff` and the last [`MAX_PEERS`] proxy slots;
//! a VIP's flag in `ed_vipho` sends its new TCP connections to them.
//! Changing the peers forgets which flows they own (`ed_owner` holds
//! their indices).

use std::net::IpAddr;

use crate::ForwarderError;
use crate::abi::*;
use crate::error::map_err;
use crate::keys::addr_words;
use crate::maps::Maps;

/// This node's address and the peer nodes' (one family). Peers send their
/// handed-off packets to `local`; only packets from `peers` are unwrapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandoffSpec {
    pub local: IpAddr,
    pub peers: Vec<IpAddr>,
}

/// Sets (or with `None` clears) the peers. Flows already handed to a
/// removed peer fall back to this node's own proxies.
pub(crate) fn set_peers(maps: &mut Maps, spec: Option<&HandoffSpec>) -> Result<(), ForwarderError> {
    let invalid = |value: String, reason| ForwarderError::InvalidSpec {
        field: "handoff",
        value,
        reason,
    };
    let mut raw = Handoff::default();
    if let Some(h) = spec {
        if h.peers.is_empty() || h.peers.len() > MAX_PEERS as usize {
            return Err(invalid(
                format!("{} peers", h.peers.len()),
                "needs 1 to 8 peers",
            ));
        }
        if let Some(p) = h.peers.iter().find(|p| p.is_ipv4() != h.local.is_ipv4()) {
            return Err(invalid(
                p.to_string(),
                "a peer's family differs from the local address's",
            ));
        }
        let (local, family) = addr_words(h.local);
        raw.local = local;
        raw.family = family as u32;
        raw.count = h.peers.len() as u32;
        for (i, p) in h.peers.iter().enumerate() {
            raw.peer[i] = addr_words(*p).0;
        }
    }
    let old = maps
        .handoff
        .get(&0, 0)
        .map_err(map_err("ed_handoff", "get"))?;
    if (old.family, old.count, old.peer) != (raw.family, raw.count, raw.peer) {
        // ed_owner holds peer indices: they mean other peers now.
        crate::flows::clear_owners(&mut maps.owner)?;
    }
    let zero = Handoff::default();
    // Off first, then the slots, then on: packets never see a peer slot
    // without its address (a handed-off flow's packet meeting that
    // instant is dropped and counted as a handoff error).
    maps.handoff
        .set(0, zero, 0)
        .map_err(map_err("ed_handoff", "clear"))?;
    for k in 0..MAX_PEERS {
        let slot = PEER_SLOT_BASE + k;
        let used = k < raw.count;
        let px = Proxy {
            kind: if used { PROXY_PEER } else { PROXY_NONE },
            ..Proxy::default()
        };
        let mut name = ProxyName::default();
        if let (true, Some(h)) = (used, spec) {
            let n = format!("peer {}", h.peers[k as usize]);
            name.name[..n.len()].copy_from_slice(n.as_bytes());
        }
        maps.pxname
            .set(slot, name, 0)
            .map_err(map_err("ed_pxname", "set peer"))?;
        maps.proxy
            .set(slot, px, 0)
            .map_err(map_err("ed_proxy", "set peer"))?;
    }
    if raw.family != 0 {
        maps.handoff
            .set(0, raw, 0)
            .map_err(map_err("ed_handoff", "set"))?;
        tracing::info!(peers = raw.count, "connection handoff peers set");
    }
    Ok(())
}

/// Whether VIP `id`'s new TCP connections go to the peers.
pub(crate) fn set_vip(maps: &mut Maps, id: u32, on: bool) -> Result<(), ForwarderError> {
    maps.vipho
        .set(id, u32::from(on), 0)
        .map_err(map_err("ed_vipho", "set"))
}

/// Whether VIP `id` hands off now (as the map says).
pub(crate) fn vip(maps: &Maps, id: u32) -> Result<bool, ForwarderError> {
    let on = maps.vipho.get(&id, 0).map_err(map_err("ed_vipho", "get"))?;
    Ok(on != 0)
}

/// The connection table's clock: `bpf_ktime_get_coarse_ns() >> 20`.
fn coarse_now() -> u32 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    let ns = (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64);
    (ns >> 20) as u32
}

/// What `ed_held` says: per VIP id, the connections seen within `idle`
/// whose client has not ended them. Entries older than that (and ended
/// ones after a second) are removed as they are read.
pub(crate) fn held(
    map: &mut aya::maps::HashMap<aya::maps::MapData, u64, Held>,
    idle: std::time::Duration,
) -> Result<std::collections::BTreeMap<u32, u64>, ForwarderError> {
    let now = coarse_now();
    let idle = (idle.as_nanos() >> 20).min(u32::MAX as u128 / 2) as u32;
    let ended_gone = (1_000_000_000u32 >> 20).min(idle);
    let mut counts = std::collections::BTreeMap::new();
    let mut stale = Vec::new();
    for item in map.iter() {
        let Ok((fp, h)) = item else { continue };
        let age = now.wrapping_sub(h.last);
        let ended = h.vip & HELD_ENDED != 0;
        if age > idle || (ended && age > ended_gone) {
            stale.push(fp);
        } else if !ended {
            *counts.entry(h.vip).or_insert(0) += 1;
        }
    }
    for fp in stale {
        match map.remove(&fp) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
            Err(e) => return Err(map_err("ed_held", "remove")(e)),
        }
    }
    Ok(counts)
}
