//! Flow ownership shared between edge nodes.
//!
//! Each node's program queues the fingerprint of every flow it starts
//! serving (`ed_newflow`); edged tells its peers, and writes what the peers
//! tell it into `ed_owner` (fingerprint -> peer). A packet that misses the
//! connection table and is not a bare SYN is sent to the peer that owns
//! its flow, so a connection the top-of-rack moves between nodes (a drain,
//! a node joining) stays with its proxy.
//!
//! A fingerprint is the flow's connection-table fingerprint: the flow hash
//! with the configured seed, the same on every node with the same
//! `hash_seed`.
//!
//! [`Flows`] is a handle of its own on the pinned maps, apart from the
//! [`crate::Forwarder`], so that a task can serve the peers while the
//! daemon loop owns the forwarder.

use std::net::IpAddr;
use std::path::Path;

use aya::maps::{Array, HashMap, MapData, RingBuf};

use crate::ForwarderError;
use crate::abi::*;
use crate::error::map_err;
use crate::keys::{addr_words, word_addr};
use crate::maps::typed;

/// The connections held-back VIPs still serve, counted from a handle of
/// its own on the pinned maps (a walk of `ed_held`: off the daemon's loop).
pub struct HeldCounter {
    held: HashMap<MapData, u64, Held>,
    vipinfo: Array<MapData, VipInfo>,
}

impl HeldCounter {
    /// Opens the maps pinned in `pin_dir` (after [`crate::Forwarder::open`]).
    pub fn open(pin_dir: &Path) -> Result<HeldCounter, ForwarderError> {
        Ok(HeldCounter {
            held: typed(pin_dir, "ed_held")?,
            vipinfo: typed(pin_dir, "ed_vipinfo")?,
        })
    }

    /// The connections each held-back VIP (its handoff flag set) still
    /// serves here, by VIP address: seen within `idle` and not ended by
    /// the client's FIN or RST. Prunes what it no longer counts. VIPs with
    /// none are absent.
    pub fn count(
        &mut self,
        idle: std::time::Duration,
    ) -> Result<std::collections::BTreeMap<IpAddr, u64>, ForwarderError> {
        let by_id = crate::handoff::held(&mut self.held, idle)?;
        let mut out = std::collections::BTreeMap::new();
        for (id, n) in by_id {
            let info = self
                .vipinfo
                .get(&id, 0)
                .map_err(map_err("ed_vipinfo", "get"))?;
            if info.family != 0 {
                out.insert(word_addr(&info.addr, info.family as u8), n);
            }
        }
        Ok(out)
    }
}

/// The flow-sharing maps of a loaded data plane.
pub struct Flows {
    newflow: RingBuf<MapData>,
    owner: HashMap<MapData, u64, u32>,
    ct: Array<MapData, CtBucket>,
    handoff: Array<MapData, Handoff>,
}

impl Flows {
    /// Opens the maps pinned in `pin_dir` (after [`crate::Forwarder::open`]).
    pub fn open(pin_dir: &Path) -> Result<Flows, ForwarderError> {
        Ok(Flows {
            newflow: typed(pin_dir, "ed_newflow")?,
            owner: typed(pin_dir, "ed_owner")?,
            ct: typed(pin_dir, "ed_ct")?,
            handoff: typed(pin_dir, "ed_handoff")?,
        })
    }

    /// Appends the flows this node started serving since the last call.
    pub fn take_new(&mut self, out: &mut Vec<u64>) {
        while let Some(item) = self.newflow.next() {
            if let Ok(b) = <[u8; 8]>::try_from(&item[..]) {
                out.push(u64::from_ne_bytes(b));
            }
        }
    }

    /// Every flow this node serves: the connection-table entries that
    /// point at a local proxy (walks the table: a sync, not a hot path).
    pub fn owned(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for b in self.ct.iter().filter_map(Result::ok) {
            for e in b.way {
                let slot = ((e >> CT_PROXY_SHIFT) & 0xff) as u32;
                if e != 0 && slot < PEER_SLOT_BASE {
                    out.push(e & CT_FP_MASK);
                }
            }
        }
        out
    }

    /// Records that `peer` owns `flows`. `Ok(None)` if `peer` is not a
    /// handoff peer of this node (nothing written); else the number
    /// written.
    pub fn set_owner(
        &mut self,
        peer: IpAddr,
        flows: &[u64],
    ) -> Result<Option<usize>, ForwarderError> {
        let Some(k) = self.peer_index(peer)? else {
            return Ok(None);
        };
        let mut written = 0;
        for fp in flows {
            if *fp & CT_FP_MASK != *fp || *fp >> 63 == 0 {
                continue; // not a fingerprint: never written
            }
            self.owner
                .insert(fp, k, 0)
                .map_err(map_err("ed_owner", "insert"))?;
            written += 1;
        }
        Ok(Some(written))
    }

    /// The peer recorded as the owner of `fp`.
    pub fn owner(&self, fp: u64) -> Result<Option<IpAddr>, ForwarderError> {
        let Ok(k) = self.owner.get(&fp, 0) else {
            return Ok(None);
        };
        let ho = self.handoff_cfg()?;
        Ok((k < ho.count).then(|| word_addr(&ho.peer[k as usize], ho.family as u8)))
    }

    /// Entries in the peer-owned table (walks it: diagnostics only).
    pub fn peer_owned_len(&self) -> usize {
        self.owner.keys().filter(Result::is_ok).count()
    }

    /// Index of `peer` in `ed_handoff` (what `ed_owner` holds).
    fn peer_index(&self, peer: IpAddr) -> Result<Option<u32>, ForwarderError> {
        let ho = self.handoff_cfg()?;
        let (words, family) = addr_words(peer);
        if ho.family != family as u32 {
            return Ok(None);
        }
        Ok((0..ho.count.min(MAX_PEERS)).find(|k| ho.peer[*k as usize] == words))
    }

    fn handoff_cfg(&self) -> Result<Handoff, ForwarderError> {
        self.handoff
            .get(&0, 0)
            .map_err(map_err("ed_handoff", "get"))
    }
}

/// Removes every entry of `ed_owner` (the peer indices changed).
pub(crate) fn clear_owners(owner: &mut HashMap<MapData, u64, u32>) -> Result<(), ForwarderError> {
    let keys: Vec<u64> = owner.keys().filter_map(Result::ok).collect();
    for k in keys {
        match owner.remove(&k) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
            Err(e) => return Err(map_err("ed_owner", "remove")(e)),
        }
    }
    Ok(())
}
