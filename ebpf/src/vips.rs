//! Writing VIPs and their Maglev rings into the maps.
//!
//! A VIP's ring is double-buffered: the new table is written into the half
//! packets do not read, its proxy count set, then `active` flips in one map
//! write. Packets see the old table or the new one, never a mix. The VIP is
//! then indexed: ports bitmap, address, and last the fold index entry.
//!
//! What each half of a ring holds is tracked in [`crate::ring`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use aya::maps::PerCpuValues;

use crate::abi::*;
use crate::error::map_err;
use crate::keys::{addr_words, fold16, key_addr, vip_key, write_ports};
use crate::maps::Maps;
use crate::proxies::{ProxySlots, ncpus};
use crate::ring::{self, Halves};
use crate::{ForwarderError, VipService, maglev};

/// Every configured VIP, by address, and what its ring halves hold.
pub(crate) struct VipTables {
    by_addr: BTreeMap<IpAddr, VipEntry>,
    table_size: u32,
    /// `ed_ring` words written since open (what a table change costs).
    words_written: u64,
}

/// A configured VIP: its id (counters, ring) and the keys in `ed_vips`.
struct VipEntry {
    id: u32,
    keys: BTreeSet<VipKey>,
    /// Last (proxy, weight) set given, to rebuild when a proxy disappears.
    serving: Vec<(String, u32)>,
    /// What each half of the VIP's ring holds.
    halves: Halves,
}

impl VipEntry {
    fn new(id: u32) -> VipEntry {
        VipEntry {
            id,
            keys: BTreeSet::new(),
            serving: Vec::new(),
            halves: Halves::default(),
        }
    }
}

impl VipTables {
    /// The VIPs an adopted program's maps hold (none after a fresh load),
    /// each with the serving set its active table shows.
    ///
    /// After a restart the pinned rings still hold every VIP's table; the
    /// proxies in each VIP's active half are read back (with their share
    /// of the ring as weight), so the daemon knows which proxies were
    /// serving and keeps them until its checks decide, instead of emptying
    /// the tables.
    pub fn recover(
        maps: &Maps,
        table_size: u32,
        proxies: &ProxySlots,
    ) -> Result<VipTables, ForwarderError> {
        let mut tables = VipTables {
            by_addr: BTreeMap::new(),
            table_size,
            words_written: 0,
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
        let names: BTreeMap<u32, &str> = proxies.iter().map(|(n, s)| (s, n)).collect();
        let m = table_size;
        for entry in tables.by_addr.values_mut() {
            let st = maps
                .vipst
                .get(&entry.id, 0)
                .map_err(map_err("ed_vipst", "get"))?;
            let half = st.active & 1;
            if st.count[half as usize] == 0 {
                continue;
            }
            let held = ring::read(maps, m, entry.id, half)?;
            let mut share: BTreeMap<u32, u32> = BTreeMap::new();
            for slot in ring::unpack(&held, m) {
                *share.entry(slot).or_default() += 1;
            }
            entry.serving = share
                .into_iter()
                .filter_map(|(slot, n)| Some((names.get(&slot)?.to_string(), n)))
                .collect();
            entry.halves = Halves::known(half, held);
        }
        Ok(tables)
    }

    pub fn len(&self) -> usize {
        self.by_addr.len()
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
        self.words_written
    }

    /// Forgets what the ring halves hold: the next change of each VIP's
    /// table writes its idle half whole (as after a restart).
    pub fn forget_halves(&mut self) {
        for v in self.by_addr.values_mut() {
            v.halves.forget();
        }
    }

    /// The proxy slot of each position of the VIP's active table, read back
    /// from `ed_ring`; `None` for an unknown VIP.
    pub fn active_ring(
        &self,
        maps: &Maps,
        addr: IpAddr,
    ) -> Result<Option<Vec<u32>>, ForwarderError> {
        let Some(v) = self.by_addr.get(&addr) else {
            return Ok(None);
        };
        let st = maps
            .vipst
            .get(&v.id, 0)
            .map_err(map_err("ed_vipst", "get"))?;
        let words = ring::read(maps, self.table_size, v.id, st.active & 1)?;
        Ok(Some(ring::unpack(&words, self.table_size).collect()))
    }

    /// Builds the VIP's weighted Maglev table over `serving` (proxy name,
    /// weight) and swaps it in atomically, then makes the VIP's ports match
    /// `vip.ports`. An empty or all-zero `serving` means no healthy proxy.
    pub fn set(
        &mut self,
        maps: &mut Maps,
        proxies: &ProxySlots,
        vip: &VipService,
        serving: &[(String, u32)],
    ) -> Result<(), ForwarderError> {
        let others: usize = self
            .by_addr
            .iter()
            .filter(|(a, _)| **a != vip.addr)
            .map(|(_, v)| v.keys.len())
            .sum();
        if others + vip.ports.len() + 1 > MAX_VIP_KEYS as usize {
            return Err(ForwarderError::Full {
                what: "VIP ports (all VIPs)",
                max: MAX_VIP_KEYS,
            });
        }
        if let Some((name, _)) = serving.iter().find(|(n, _)| proxies.slot(n).is_none()) {
            return Err(ForwarderError::UnknownProxy {
                proxy: name.clone(),
            });
        }
        if !self.by_addr.contains_key(&vip.addr) {
            let id = self.alloc_id(maps)?;
            self.by_addr.insert(vip.addr, VipEntry::new(id));
        }
        self.write_ring(maps, proxies, vip.addr, serving)?;
        let id = self.by_addr[&vip.addr].id;
        let mut want: BTreeSet<VipKey> = vip
            .ports
            .iter()
            .map(|(port, proto)| vip_key(vip.addr, *port, proto.number()))
            .collect();
        want.insert(vip_key(vip.addr, 0, 0));
        for k in &want {
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
        let entry = self.by_addr.get_mut(&vip.addr).expect("inserted above");
        let old = std::mem::take(&mut entry.keys);
        for k in old.difference(&want) {
            maps.vips
                .remove(k)
                .map_err(map_err("ed_vips", "remove stale port"))?;
        }
        let (addr, family) = addr_words(vip.addr);
        let info = VipInfo {
            addr,
            family: family as u32,
        };
        maps.vipinfo
            .set(id, info, 0)
            .map_err(map_err("ed_vipinfo", "set"))?;
        write_ports(maps, id, &old, &want)?;
        self.by_addr
            .get_mut(&vip.addr)
            .expect("inserted above")
            .keys = want;
        self.write_index(maps, vip.addr)?;
        tracing::info!(vip = %vip.addr, id, proxies = serving.len(), "VIP table set");
        Ok(())
    }

    /// Removes the VIP: its packets are passed untouched from then on.
    pub fn remove(&mut self, maps: &mut Maps, addr: IpAddr) -> Result<(), ForwarderError> {
        let Some(entry) = self.by_addr.remove(&addr) else {
            return Ok(());
        };
        self.write_index(maps, addr)?;
        for k in &entry.keys {
            maps.vips
                .remove(k)
                .map_err(map_err("ed_vips", format!("remove {addr}")))?;
        }
        write_ports(maps, entry.id, &entry.keys, &BTreeSet::new())?;
        maps.vipinfo
            .set(entry.id, VipInfo::default(), 0)
            .map_err(map_err("ed_vipinfo", "clear"))?;
        maps.vipst
            .set(entry.id, VipState::default(), 0)
            .map_err(map_err("ed_vipst", "reset"))?;
        maps.vipho
            .set(entry.id, 0, 0)
            .map_err(map_err("ed_vipho", "reset"))?;
        tracing::info!(vip = %addr, "VIP removed");
        Ok(())
    }

    /// Rebuilds, without the proxies in `gone`, the table of every VIP that
    /// one of them serves (before their slots are cleared).
    pub fn without_proxies(
        &mut self,
        maps: &mut Maps,
        proxies: &ProxySlots,
        gone: &[String],
    ) -> Result<(), ForwarderError> {
        if gone.is_empty() {
            return Ok(());
        }
        let changed: Vec<(IpAddr, Vec<(String, u32)>)> = self
            .by_addr
            .iter()
            .filter(|(_, v)| v.serving.iter().any(|(n, _)| gone.contains(n)))
            .map(|(a, v)| {
                let rest = v.serving.iter().filter(|(n, _)| !gone.contains(n));
                (*a, rest.cloned().collect())
            })
            .collect();
        for (addr, serving) in changed {
            self.write_ring(maps, proxies, addr, &serving)?;
        }
        Ok(())
    }

    /// Writes the idle half of the VIP's ring (the words that differ from
    /// what it holds) and flips to it.
    fn write_ring(
        &mut self,
        maps: &mut Maps,
        proxies: &ProxySlots,
        addr: IpAddr,
        serving: &[(String, u32)],
    ) -> Result<(), ForwarderError> {
        let m = self.table_size;
        let entry = self.by_addr.get_mut(&addr).expect("known VIP");
        let id = entry.id;
        let backends: Vec<(&str, u32)> = serving.iter().map(|(n, w)| (n.as_str(), *w)).collect();
        let table = maglev::build(m, &backends);
        // Each backend's slot once, not a name lookup per ring position.
        let slots: Vec<u32> = backends
            .iter()
            .map(|(n, _)| proxies.slot(n).expect("checked by the caller"))
            .collect();
        let words = ring::pack(&table, |b| slots[b as usize]);
        let mut st = maps.vipst.get(&id, 0).map_err(map_err("ed_vipst", "get"))?;
        let half = 1 - (st.active & 1);
        // An empty table (no healthy proxy) leaves the words as they are.
        if !words.is_empty() {
            self.words_written += entry.halves.write(maps, m, id, half, words)?;
        }
        st.count[half as usize] = backends.iter().filter(|(_, w)| *w > 0).count() as u32;
        st.no_healthy = maps
            .cfg
            .get(&0, 0)
            .map_err(map_err("ed_cfg", "get"))?
            .no_healthy;
        maps.vipst
            .set(id, st, 0)
            .map_err(map_err("ed_vipst", "prepare"))?;
        st.active = half;
        maps.vipst
            .set(id, st, 0)
            .map_err(map_err("ed_vipst", "flip"))?;
        entry.serving = serving.to_vec();
        Ok(())
    }

    /// A free VIP id, its counters and ring state reset.
    fn alloc_id(&self, maps: &mut Maps) -> Result<u32, ForwarderError> {
        let used: BTreeSet<u32> = self.by_addr.values().map(|v| v.id).collect();
        let id = (0..MAX_VIPS)
            .find(|i| !used.contains(i))
            .ok_or(ForwarderError::Full {
                what: "VIPs",
                max: MAX_VIPS,
            })?;
        let zero = PerCpuValues::try_from(vec![VipCountersRaw::default(); ncpus()])
            .map_err(|source| ForwarderError::Cpus { source })?;
        maps.vipcnt
            .set(id, zero, 0)
            .map_err(map_err("ed_vipcnt", "zero"))?;
        maps.vipst
            .set(id, VipState::default(), 0)
            .map_err(map_err("ed_vipst", "reset"))?;
        Ok(id)
    }

    /// Points the fold of `addr` at its VIP, at nothing, or at the hash
    /// map when several VIPs share the fold.
    fn write_index(&self, maps: &mut Maps, addr: IpAddr) -> Result<(), ForwarderError> {
        let fold = fold16(addr);
        let ids: Vec<u32> = self
            .by_addr
            .iter()
            .filter(|(a, _)| fold16(**a) == fold)
            .map(|(_, v)| v.id)
            .collect();
        let value = match ids.as_slice() {
            [] => 0,
            [id] => id + 1,
            _ => VIP_INDEX_COLLIDE,
        };
        maps.vipidx
            .set(fold, value, 0)
            .map_err(map_err("ed_vipidx", "set"))
    }
}
