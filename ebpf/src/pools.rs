//! Pools: one Maglev table per distinct serving set, shared by every VIP
//! that has that set.
//!
//! A VIP's table depends only on its set of (proxy, weight) with a positive
//! weight (`maglev::build` orders backends by name), so VIPs with the same
//! set share one ring in `ed_ring`: built once, reference-counted, freed
//! when its last VIP leaves. A pool's ring is double-buffered like a VIP's
//! was: the idle half is written (only the words that differ), its proxy
//! count set, then `active` flips in one map write. A VIP moves between
//! pools with one write of its `ed_vipst` entry; either way packets see
//! one whole table, and established flows keep their proxy through the
//! connection table.
//!
//! A change every user of a pool shares (a health flip of a proxy all its
//! VIPs use) rebuilds that pool in place: one build and one swap, however
//! many VIPs use it.

use std::collections::{BTreeMap, HashMap};

use crate::abi::*;
use crate::error::map_err;
use crate::maps::Maps;
use crate::proxies::ProxySlots;
use crate::ring::{self, Halves};
use crate::{ForwarderError, maglev};

/// A pool's serving set as its key: positive weights only, by name.
pub(crate) type Content = Vec<(String, u32)>;

/// The content of a serving set (what its table depends on).
pub(crate) fn content(serving: &[(String, u32)]) -> Content {
    let mut c: Content = serving.iter().filter(|(_, w)| *w > 0).cloned().collect();
    c.sort();
    c
}

pub(crate) struct Pools {
    table_size: u32,
    max_pools: u32,
    by_content: HashMap<Content, u32>,
    pools: BTreeMap<u32, Pool>,
    /// `ed_ring` words written since open (what a table change costs).
    words_written: u64,
    /// Tables swapped in (flips of a pool's live half) since open.
    swaps: u64,
}

struct Pool {
    content: Content,
    /// VIPs pointing at it.
    users: u32,
    halves: Halves,
}

impl Pools {
    pub fn new(table_size: u32, max_pools: u32) -> Pools {
        Pools {
            table_size,
            max_pools,
            by_content: HashMap::new(),
            pools: BTreeMap::new(),
            words_written: 0,
            swaps: 0,
        }
    }

    /// Registers pool `id` as a pinned program holds it, read back from
    /// its live half (after a restart); `names` maps proxy slots to names.
    /// Returns its content.
    pub fn recover(
        &mut self,
        maps: &Maps,
        id: u32,
        names: &BTreeMap<u32, &str>,
    ) -> Result<Content, ForwarderError> {
        if let Some(p) = self.pools.get(&id) {
            return Ok(p.content.clone());
        }
        let st = maps
            .poolst
            .get(&id, 0)
            .map_err(map_err("ed_poolst", "get"))?;
        let half = st.active & 1;
        let mut pool = Pool {
            content: Vec::new(),
            users: 0,
            halves: Halves::default(),
        };
        if st.count[half as usize] > 0 {
            let held = ring::read(maps, self.table_size, id, half)?;
            let mut share: BTreeMap<u32, u32> = BTreeMap::new();
            for slot in ring::unpack(&held, self.table_size) {
                *share.entry(slot).or_default() += 1;
            }
            let serving: Vec<(String, u32)> = share
                .into_iter()
                .filter_map(|(slot, n)| Some((names.get(&slot)?.to_string(), n)))
                .collect();
            pool.content = content(&serving);
            pool.halves = Halves::known(half, held);
        }
        self.by_content.entry(pool.content.clone()).or_insert(id);
        let c = pool.content.clone();
        self.pools.insert(id, pool);
        Ok(c)
    }

    pub fn len(&self) -> usize {
        self.pools.len()
    }

    pub fn capacity(&self) -> u32 {
        self.max_pools
    }

    /// When no pool is free: the largest pool whose proxies all serve
    /// `content` (so it never sends a flow to a proxy that does not), if
    /// one has any.
    pub fn best_subset(&self, content: &Content) -> Option<u32> {
        self.pools
            .iter()
            .filter(|(_, p)| {
                !p.content.is_empty()
                    && p.content
                        .iter()
                        .all(|(n, _)| content.iter().any(|(m, _)| m == n))
            })
            .max_by_key(|(_, p)| p.content.len())
            .map(|(id, _)| *id)
    }

    pub fn content_of(&self, id: u32) -> Option<&Content> {
        self.pools.get(&id).map(|p| &p.content)
    }

    pub fn users(&self, id: u32) -> u32 {
        self.pools.get(&id).map_or(0, |p| p.users)
    }

    /// The pool that has `content`, if one does.
    pub fn find(&self, content: &Content) -> Option<u32> {
        self.by_content.get(content).copied()
    }

    /// Counts one more user of pool `id` (a recovered VIP pointing at it).
    pub fn add_user(&mut self, id: u32) {
        if let Some(p) = self.pools.get_mut(&id) {
            p.users += 1;
        }
    }

    /// A reference on the pool with `content`: the one that has it, or a
    /// new pool with its table built and live.
    pub fn acquire(
        &mut self,
        maps: &mut Maps,
        proxies: &ProxySlots,
        content: &Content,
    ) -> Result<u32, ForwarderError> {
        if let Some(id) = self.find(content) {
            self.add_user(id);
            return Ok(id);
        }
        let id = (0..self.max_pools)
            .find(|i| !self.pools.contains_key(i))
            .ok_or(ForwarderError::Full {
                what: "shared tables (pools)",
                max: self.max_pools,
            })?;
        maps.poolst
            .set(id, PoolState::default(), 0)
            .map_err(map_err("ed_poolst", "reset"))?;
        let mut pool = Pool {
            content: Vec::new(),
            users: 0,
            halves: Halves::default(),
        };
        self.write(maps, proxies, id, &mut pool, content)?;
        pool.users = 1;
        self.by_content.insert(content.clone(), id);
        self.pools.insert(id, pool);
        Ok(id)
    }

    /// Drops a reference on pool `id`; a pool no VIP uses is freed.
    pub fn release(&mut self, id: u32) {
        let Some(p) = self.pools.get_mut(&id) else {
            return;
        };
        p.users = p.users.saturating_sub(1);
        if p.users == 0 {
            let p = self.pools.remove(&id).expect("present");
            if self.by_content.get(&p.content) == Some(&id) {
                self.by_content.remove(&p.content);
            }
        }
    }

    /// Builds `content` into pool `id` in place and swaps it in: every user
    /// of the pool moves at once. The caller knows that every user wants
    /// `content` and that no other pool has it.
    pub fn rebuild(
        &mut self,
        maps: &mut Maps,
        proxies: &ProxySlots,
        id: u32,
        content: &Content,
    ) -> Result<(), ForwarderError> {
        let mut pool = self.pools.remove(&id).expect("known pool");
        let old = pool.content.clone();
        let r = self.write(maps, proxies, id, &mut pool, content);
        if r.is_ok() {
            if self.by_content.get(&old) == Some(&id) {
                self.by_content.remove(&old);
            }
            self.by_content.insert(content.clone(), id);
        }
        self.pools.insert(id, pool);
        r
    }

    /// Every pool whose content has one of `gone`, with what is left.
    pub fn without(&self, gone: &[String]) -> Vec<(u32, Content)> {
        self.pools
            .iter()
            .filter(|(_, p)| p.content.iter().any(|(n, _)| gone.contains(n)))
            .map(|(id, p)| {
                let rest = p.content.iter().filter(|(n, _)| !gone.contains(n));
                (*id, rest.cloned().collect())
            })
            .collect()
    }

    pub fn forget_halves(&mut self) {
        for p in self.pools.values_mut() {
            p.halves.forget();
        }
    }

    pub fn words_written(&self) -> u64 {
        self.words_written
    }

    pub fn swaps(&self) -> u64 {
        self.swaps
    }

    /// The proxy slot of each position of pool `id`'s live table.
    pub fn active_ring(&self, maps: &Maps, id: u32) -> Result<Vec<u32>, ForwarderError> {
        let st = maps
            .poolst
            .get(&id, 0)
            .map_err(map_err("ed_poolst", "get"))?;
        let words = ring::read(maps, self.table_size, id, st.active & 1)?;
        Ok(ring::unpack(&words, self.table_size).collect())
    }

    /// Writes the idle half of pool `id`'s ring (the words that differ from
    /// what it holds) and flips to it.
    fn write(
        &mut self,
        maps: &mut Maps,
        proxies: &ProxySlots,
        id: u32,
        pool: &mut Pool,
        content: &Content,
    ) -> Result<(), ForwarderError> {
        let m = self.table_size;
        let backends: Vec<(&str, u32)> = content.iter().map(|(n, w)| (n.as_str(), *w)).collect();
        // Each backend's slot once, not a name lookup per ring position.
        let slots: Vec<u32> = backends
            .iter()
            .map(|(n, _)| {
                proxies.slot(n).ok_or_else(|| ForwarderError::UnknownProxy {
                    proxy: n.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        let table = maglev::build(m, &backends);
        let words = ring::pack(&table, |b| slots[b as usize]);
        let mut st = maps
            .poolst
            .get(&id, 0)
            .map_err(map_err("ed_poolst", "get"))?;
        let half = 1 - (st.active & 1);
        // An empty table (no healthy proxy) leaves the words as they are.
        if !words.is_empty() {
            self.words_written += pool.halves.write(maps, m, id, half, words)?;
        }
        st.count[half as usize] = backends.len() as u32;
        maps.poolst
            .set(id, st, 0)
            .map_err(map_err("ed_poolst", "prepare"))?;
        st.active = half;
        maps.poolst
            .set(id, st, 0)
            .map_err(map_err("ed_poolst", "flip"))?;
        self.swaps += 1;
        pool.content = content.clone();
        Ok(())
    }
}
