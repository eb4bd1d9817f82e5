//! Writing VIPs into the maps: each VIP's keys, ports and index, and the
//! pool (shared Maglev table, [`crate::pools`]) it points at.
//!
//! A VIP's table change is a move to the pool of its new serving set (one
//! write of its `ed_vipst` entry), or, when it is the only user of its pool
//! or every user moves the same way, a rebuild of that pool in place (one
//! swap). Packets see the old table or the new one, never a mix. A new VIP
//! is indexed last: its entry (address, inline ports), then its index slot.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use aya::maps::PerCpuValues;

use crate::abi::*;
use crate::error::map_err;
use crate::keys::{addr_words, index_slot, inline_ports, key_addr, vip_key};
use crate::maps::Maps;
use crate::pools::{self, Pools};
use crate::proxies::{ProxySlots, ncpus};
use crate::{ForwarderError, VipService};

/// Every configured VIP, by address, and the pools they use. The work of
/// a change is in proportion to it: VIP ids come from a free list, the
/// keys are counted as they change, and each index slot knows its VIPs.
pub(crate) struct VipTables {
    by_addr: BTreeMap<IpAddr, VipEntry>,
    pools: Pools,
    max_vips: u32,
    max_keys: u32,
    index_bits: u32,
    /// Ids below `next_id` not in use.
    free_ids: BTreeSet<u32>,
    next_id: u32,
    /// Entries in `ed_vips`.
    keys_total: usize,
    /// `ed_vipidx` slot -> the VIP ids whose address hashes there.
    slots: HashMap<u32, Vec<u32>>,
}

/// One VIP's change in a batch: the VIP, its serving set (proxy, weight)
/// and its no-healthy policy.
pub(crate) type Change<'a> = (&'a VipService, &'a [(String, u32)], u32);

/// The sizes a [`VipTables`] works within (the loader's spec).
pub(crate) struct Limits {
    pub table_size: u32,
    pub max_vips: u32,
    pub max_pools: u32,
    pub max_keys: u32,
    pub index_bits: u32,
}

/// A configured VIP: its id (counters, state) and the keys in `ed_vips`.
struct VipEntry {
    id: u32,
    keys: BTreeSet<VipKey>,
    /// Last (proxy, weight) set given, to rebuild when a proxy disappears.
    serving: Vec<(String, u32)>,
    /// The pool its `ed_vipst` entry points at (`None` until first set).
    pool: Option<u32>,
    /// The policy its `ed_vipst` entry holds (with `pool`).
    no_healthy: u32,
}

impl VipEntry {
    fn new(id: u32) -> VipEntry {
        VipEntry {
            id,
            keys: BTreeSet::new(),
            serving: Vec::new(),
            pool: None,
            no_healthy: NO_HEALTHY_DROP,
        }
    }
}

impl VipTables {
    /// The VIPs an adopted program's maps hold (none after a fresh load),
    /// each with the serving set its pool's live table shows.
    ///
    /// After a restart the pinned rings still hold every pool's table; the
    /// proxies in each pool's live half are read back (with their share
    /// of the ring as weight), so the daemon knows which proxies were
    /// serving and keeps them until its checks decide, instead of emptying
    /// the tables.
    pub fn recover(
        maps: &Maps,
        limits: Limits,
        proxies: &ProxySlots,
    ) -> Result<VipTables, ForwarderError> {
        let mut tables = VipTables {
            by_addr: BTreeMap::new(),
            pools: Pools::new(limits.table_size, limits.max_pools),
            max_vips: limits.max_vips,
            max_keys: limits.max_keys,
            index_bits: limits.index_bits,
            free_ids: BTreeSet::new(),
            next_id: 0,
            keys_total: 0,
            slots: HashMap::new(),
        };
        let keys: Vec<VipKey> = maps.vips.keys().filter_map(Result::ok).collect();
        for k in keys {
            let v = maps.vips.get(&k, 0).map_err(map_err("ed_vips", "get"))?;
            let e = tables
                .by_addr
                .entry(key_addr(&k))
                .or_insert_with(|| VipEntry::new(v.vip_id));
            e.keys.insert(k);
        }
        tables.keys_total = tables.by_addr.values().map(|v| v.keys.len()).sum();
        let used: BTreeSet<u32> = tables.by_addr.values().map(|v| v.id).collect();
        tables.next_id = used.last().map_or(0, |m| m + 1);
        tables.free_ids = (0..tables.next_id).filter(|i| !used.contains(i)).collect();
        let bits = tables.index_bits;
        for (addr, v) in &tables.by_addr {
            tables
                .slots
                .entry(index_slot(*addr, bits))
                .or_default()
                .push(v.id);
        }
        let names: BTreeMap<u32, &str> = proxies.iter().map(|(n, s)| (s, n)).collect();
        for entry in tables.by_addr.values_mut() {
            let st = maps
                .vipst
                .get(&entry.id, 0)
                .map_err(map_err("ed_vipst", "get"))?;
            if st.pool >= limits.max_pools {
                continue;
            }
            entry.serving = tables.pools.recover(maps, st.pool, &names)?;
            tables.pools.add_user(st.pool);
            entry.pool = Some(st.pool);
            entry.no_healthy = st.no_healthy;
        }
        Ok(tables)
    }

    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    /// Entries in `ed_vips` (ports + 1 per VIP).
    pub fn keys(&self) -> usize {
        self.keys_total
    }

    /// Pools in use.
    pub fn pools(&self) -> usize {
        self.pools.len()
    }

    pub fn capacity(&self) -> (u32, u32, u32) {
        (self.max_vips, self.pools.capacity(), self.max_keys)
    }

    pub fn id(&self, addr: IpAddr) -> Option<u32> {
        self.by_addr.get(&addr).map(|v| v.id)
    }

    /// (address, id), by address.
    pub fn ids(&self) -> impl Iterator<Item = (IpAddr, u32)> + '_ {
        self.by_addr.iter().map(|(a, v)| (*a, v.id))
    }

    /// Every VIP's serving set as last written (or read back).
    pub fn tables(&self) -> BTreeMap<IpAddr, Vec<(String, u32)>> {
        self.by_addr
            .iter()
            .map(|(a, v)| (*a, v.serving.clone()))
            .collect()
    }

    pub fn words_written(&self) -> u64 {
        self.pools.words_written()
    }

    pub fn swaps(&self) -> u64 {
        self.pools.swaps()
    }

    /// The pool the VIP points at.
    pub fn pool_of(&self, addr: IpAddr) -> Option<u32> {
        self.by_addr.get(&addr).and_then(|v| v.pool)
    }

    /// Forgets what the ring halves hold: the next change of each pool's
    /// table writes its idle half whole (as after a restart).
    pub fn forget_halves(&mut self) {
        self.pools.forget_halves();
    }

    /// The proxy slot of each position of the VIP's live table, read back
    /// from `ed_ring`; `None` for an unknown VIP or one not yet set.
    pub fn active_ring(
        &self,
        maps: &Maps,
        addr: IpAddr,
    ) -> Result<Option<Vec<u32>>, ForwarderError> {
        match self.pool_of(addr) {
            Some(pool) => self.pools.active_ring(maps, pool).map(Some),
            None => Ok(None),
        }
    }

    /// Sets each VIP's table over its `serving` (proxy name, weight), its
    /// no-healthy policy and its ports, as [`VipTables::set`] one by one,
    /// except that a pool whose every user is in `batch` with the same new
    /// serving set is rebuilt in place: one build and one swap for all of
    /// them. One result per entry, in order.
    pub fn set_many(
        &mut self,
        maps: &mut Maps,
        proxies: &ProxySlots,
        batch: &[Change<'_>],
    ) -> Vec<Result<(), ForwarderError>> {
        // Old pool -> (new content, entries moving from it), for the VIPs
        // that exist and whose content changes.
        let mut moving: BTreeMap<u32, (Option<pools::Content>, Vec<usize>)> = BTreeMap::new();
        for (i, (vip, serving, _)) in batch.iter().enumerate() {
            let Some(pool) = self.pool_of(vip.addr) else {
                continue;
            };
            let c = pools::content(serving);
            if self.pools.content_of(pool) == Some(&c) {
                continue;
            }
            let e = moving
                .entry(pool)
                .or_insert_with(|| (Some(c.clone()), Vec::new()));
            if e.0.as_ref() != Some(&c) {
                e.0 = None; // its users go different ways
            }
            e.1.push(i);
        }
        for (pool, (c, who)) in moving {
            let Some(c) = c else { continue };
            if who.len() as u32 != self.pools.users(pool) || self.pools.find(&c).is_some() {
                continue;
            }
            if batch_checks(self, proxies, batch, &who).is_err() {
                continue; // each reports its own error below
            }
            if let Err(e) = self.pools.rebuild(maps, proxies, pool, &c) {
                tracing::warn!(pool, error = %e, "pool rebuild failed; its VIPs are set one by one");
            }
        }
        batch
            .iter()
            .map(|(vip, serving, no_healthy)| self.set(maps, proxies, *no_healthy, vip, serving))
            .collect()
    }

    /// Builds the VIP's weighted Maglev table over `serving` (proxy name,
    /// weight), or points it at the pool that has it, then makes the VIP's
    /// ports match `vip.ports`. An empty or all-zero `serving` means no
    /// healthy proxy; its packets then meet `no_healthy`.
    pub fn set(
        &mut self,
        maps: &mut Maps,
        proxies: &ProxySlots,
        no_healthy: u32,
        vip: &VipService,
        serving: &[(String, u32)],
    ) -> Result<(), ForwarderError> {
        self.check(proxies, vip, serving)?;
        let new = !self.by_addr.contains_key(&vip.addr);
        if new {
            let id = self.alloc_id(maps)?;
            self.by_addr.insert(vip.addr, VipEntry::new(id));
        }
        let r = self.point(maps, proxies, no_healthy, vip.addr, serving);
        if r.is_err()
            && new
            && let Some(e) = self.by_addr.remove(&vip.addr)
        {
            self.free_ids.insert(e.id);
        }
        r?;
        self.write_keys(maps, vip)?;
        let entry = &self.by_addr[&vip.addr];
        tracing::debug!(vip = %vip.addr, id = entry.id, pool = ?entry.pool, proxies = serving.len(), "VIP table set");
        Ok(())
    }

    /// Sets what the VIP's packets meet while its pool has no healthy
    /// proxy; a VIP not set yet gets it with its first table.
    pub fn set_no_healthy(
        &mut self,
        maps: &mut Maps,
        addr: IpAddr,
        no_healthy: u32,
    ) -> Result<(), ForwarderError> {
        let Some(entry) = self.by_addr.get(&addr) else {
            return Ok(());
        };
        let Some(pool) = entry.pool else {
            return Ok(());
        };
        maps.vipst
            .set(entry.id, VipState { pool, no_healthy }, 0)
            .map_err(map_err("ed_vipst", "set"))?;
        self.by_addr.get_mut(&addr).expect("known").no_healthy = no_healthy;
        Ok(())
    }

    /// Refuses what the maps cannot take, before anything is written.
    fn check(
        &self,
        proxies: &ProxySlots,
        vip: &VipService,
        serving: &[(String, u32)],
    ) -> Result<(), ForwarderError> {
        let own = self.by_addr.get(&vip.addr).map_or(0, |v| v.keys.len());
        if self.keys_total - own + vip.ports.len() + 1 > self.max_keys as usize {
            return Err(ForwarderError::Full {
                what: "VIP ports (all VIPs)",
                max: self.max_keys,
            });
        }
        if let Some((name, _)) = serving.iter().find(|(n, _)| proxies.slot(n).is_none()) {
            return Err(ForwarderError::UnknownProxy {
                proxy: name.clone(),
            });
        }
        Ok(())
    }

    /// Points the VIP at the pool of `serving`: the one it has (nothing to
    /// do), its own pool rebuilt in place (it is the only user and no other
    /// pool has that set), or the pool that has it (made if none does).
    fn point(
        &mut self,
        maps: &mut Maps,
        proxies: &ProxySlots,
        no_healthy: u32,
        addr: IpAddr,
        serving: &[(String, u32)],
    ) -> Result<(), ForwarderError> {
        let c = pools::content(serving);
        let entry = &self.by_addr[&addr];
        let (id, old, policy) = (entry.id, entry.pool, entry.no_healthy);
        // Set when the VIP had to take a table of some of its proxies: its
        // serving set then reads as that table's, so that the daemon sees
        // the difference and asks again.
        let mut degraded = None;
        let pool = match old {
            Some(p) if self.pools.content_of(p) == Some(&c) => p,
            Some(p) if self.pools.users(p) == 1 && self.pools.find(&c).is_none() => {
                self.pools.rebuild(maps, proxies, p, &c)?;
                p
            }
            _ => match self.pools.acquire(maps, proxies, &c) {
                Ok(p) => p,
                Err(ForwarderError::Full { .. }) if !c.is_empty() => {
                    // Every pool in use: the largest one whose proxies all
                    // serve this VIP, rather than keeping a table that may
                    // hold a failed proxy.
                    let Some(p) = self.pools.best_subset(&c) else {
                        return Err(ForwarderError::Full {
                            what: "shared tables (pools)",
                            max: self.pools.capacity(),
                        });
                    };
                    tracing::warn!(vip = %addr, pool = p, "no shared table free: the VIP uses a table of some of its proxies");
                    self.pools.add_user(p);
                    degraded = self.pools.content_of(p).cloned();
                    p
                }
                Err(e) => return Err(e),
            },
        };
        if Some(pool) != old || policy != no_healthy {
            let st = VipState { pool, no_healthy };
            if let Err(e) = maps.vipst.set(id, st, 0) {
                if Some(pool) != old {
                    self.pools.release(pool);
                }
                return Err(map_err("ed_vipst", "set")(e));
            }
            if let Some(p) = old.filter(|p| *p != pool) {
                self.pools.release(p);
            }
            let entry = self.by_addr.get_mut(&addr).expect("known");
            entry.pool = Some(pool);
            entry.no_healthy = no_healthy;
        }
        self.by_addr.get_mut(&addr).expect("known").serving =
            degraded.unwrap_or_else(|| serving.to_vec());
        Ok(())
    }

    /// Makes the VIP's keys, address and ports in the maps match `vip`;
    /// writes nothing when they already do.
    fn write_keys(&mut self, maps: &mut Maps, vip: &VipService) -> Result<(), ForwarderError> {
        let entry = &self.by_addr[&vip.addr];
        let id = entry.id;
        let mut want: BTreeSet<VipKey> = vip
            .ports
            .iter()
            .map(|(port, proto)| vip_key(vip.addr, *port, proto.number()))
            .collect();
        want.insert(vip_key(vip.addr, 0, 0));
        if entry.keys == want {
            return Ok(());
        }
        for k in want.difference(&entry.keys) {
            maps.vips
                .insert(
                    k,
                    VipVal {
                        vip_id: id,
                        flags: 0,
                    },
                    0,
                )
                .map_err(map_err(
                    "ed_vips",
                    format!("insert {} port {}", vip.addr, u16::from_be(k.port)),
                ))?;
        }
        let (addr, family) = addr_words(vip.addr);
        let (port, flags) = inline_ports(&want);
        let info = VipInfo {
            addr,
            family: family as u32,
            port,
            flags,
        };
        maps.vipinfo
            .set(id, info, 0)
            .map_err(map_err("ed_vipinfo", "set"))?;
        let entry = self.by_addr.get_mut(&vip.addr).expect("known");
        let old = std::mem::replace(&mut entry.keys, want);
        let fresh = old.is_empty();
        self.keys_total = self.keys_total + entry.keys.len() - old.len();
        for k in old.difference(&entry.keys) {
            maps.vips
                .remove(k)
                .map_err(map_err("ed_vips", "remove stale port"))?;
        }
        if fresh {
            let slot = index_slot(vip.addr, self.index_bits);
            self.slots.entry(slot).or_default().push(id);
            self.write_index(maps, slot)?;
        }
        Ok(())
    }

    /// Removes the VIP: its packets are passed untouched from then on.
    pub fn remove(&mut self, maps: &mut Maps, addr: IpAddr) -> Result<(), ForwarderError> {
        let Some(entry) = self.by_addr.remove(&addr) else {
            return Ok(());
        };
        let slot = index_slot(addr, self.index_bits);
        if let Some(ids) = self.slots.get_mut(&slot) {
            ids.retain(|i| *i != entry.id);
            if ids.is_empty() {
                self.slots.remove(&slot);
            }
        }
        self.write_index(maps, slot)?;
        self.keys_total -= entry.keys.len();
        self.free_ids.insert(entry.id);
        for k in &entry.keys {
            maps.vips
                .remove(k)
                .map_err(map_err("ed_vips", format!("remove {addr}")))?;
        }
        maps.vipinfo
            .set(entry.id, VipInfo::default(), 0)
            .map_err(map_err("ed_vipinfo", "clear"))?;
        maps.vipst
            .set(entry.id, unset(), 0)
            .map_err(map_err("ed_vipst", "reset"))?;
        maps.vipho
            .set(entry.id, 0, 0)
            .map_err(map_err("ed_vipho", "reset"))?;
        if let Some(p) = entry.pool {
            self.pools.release(p);
        }
        tracing::info!(vip = %addr, "VIP removed");
        Ok(())
    }

    /// Takes the proxies in `gone` out of every pool that has one of them
    /// (before their slots are cleared): a pool whose rest no other pool
    /// has is rebuilt in place; the VIPs of one whose rest another has move
    /// to that one.
    pub fn without_proxies(
        &mut self,
        maps: &mut Maps,
        proxies: &ProxySlots,
        gone: &[String],
    ) -> Result<(), ForwarderError> {
        if gone.is_empty() {
            return Ok(());
        }
        for (pool, rest) in self.pools.without(gone) {
            if self.pools.find(&rest).is_none() {
                self.pools.rebuild(maps, proxies, pool, &rest)?;
            } else {
                let users: Vec<IpAddr> = self
                    .by_addr
                    .iter()
                    .filter(|(_, v)| v.pool == Some(pool))
                    .map(|(a, _)| *a)
                    .collect();
                for addr in users {
                    let no_healthy = self.by_addr[&addr].no_healthy;
                    self.point(maps, proxies, no_healthy, addr, &rest)?;
                }
            }
        }
        for v in self.by_addr.values_mut() {
            v.serving.retain(|(n, _)| !gone.contains(n));
        }
        Ok(())
    }

    /// A free VIP id, its counters and state reset.
    fn alloc_id(&mut self, maps: &mut Maps) -> Result<u32, ForwarderError> {
        let id = match self.free_ids.first() {
            Some(id) => *id,
            None if self.next_id < self.max_vips => self.next_id,
            None => {
                return Err(ForwarderError::Full {
                    what: "VIPs",
                    max: self.max_vips,
                });
            }
        };
        let zero = PerCpuValues::try_from(vec![VipCountersRaw::default(); ncpus()])
            .map_err(|source| ForwarderError::Cpus { source })?;
        maps.vipcnt
            .set(id, zero, 0)
            .map_err(map_err("ed_vipcnt", "zero"))?;
        maps.vipst
            .set(id, unset(), 0)
            .map_err(map_err("ed_vipst", "reset"))?;
        if !self.free_ids.remove(&id) {
            self.next_id += 1;
        }
        Ok(id)
    }

    /// Points index slot `slot` at its VIP, at nothing, or at the hash map
    /// when several VIPs share it.
    fn write_index(&self, maps: &mut Maps, slot: u32) -> Result<(), ForwarderError> {
        let value = match self.slots.get(&slot).map(Vec::as_slice) {
            None | Some([]) => 0,
            Some([id]) => id + 1,
            Some(_) => VIP_INDEX_COLLIDE,
        };
        maps.vipidx
            .set(slot, value, 0)
            .map_err(map_err("ed_vipidx", "set"))
    }
}

/// The state of a VIP id with no pool (its packets, if any reached it,
/// would be dropped as having no healthy proxy).
fn unset() -> VipState {
    VipState {
        pool: u32::MAX,
        no_healthy: NO_HEALTHY_DROP,
    }
}

/// Whether every entry `who` of `batch` would be accepted.
fn batch_checks(
    tables: &VipTables,
    proxies: &ProxySlots,
    batch: &[Change<'_>],
    who: &[usize],
) -> Result<(), ForwarderError> {
    who.iter()
        .try_for_each(|&i| tables.check(proxies, batch[i].0, batch[i].1))
}
