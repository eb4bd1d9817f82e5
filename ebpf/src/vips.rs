//! Writing VIPs and their Maglev rings into the maps.
//!
//! A VIP's ring is double-buffered: the new table is written into the half
//! packets do not read, its proxy count set, then `active` flips in one map
//! write. Packets see the old table or the new one, never a mix. The VIP is
//! then indexed: ports bitmap, address, and last the fold index entry.
//!
//! The idle half still holds the table before the current one. A copy of
//! what each half holds is kept here, so a change writes only the words in
//! which the new table differs from the idle half (a proxy joining or
//! leaving moves about 1/N of the slots); a half not known (a new VIP id,
//! after a restart, after a failed write) is written whole.

use std::collections::BTreeSet;
use std::net::IpAddr;

use aya::maps::PerCpuValues;

use crate::abi::*;
use crate::error::map_err;
use crate::proxies::ncpus;
use crate::{Forwarder, ForwarderError, VipService, maglev};

/// A configured VIP: its id (counters, ring) and the keys in `ed_vips`.
pub(crate) struct VipEntry {
    pub id: u32,
    pub keys: BTreeSet<VipKey>,
    /// Last (proxy, weight) set given, to rebuild when a proxy disappears.
    pub serving: Vec<(String, u32)>,
    /// The words each half of the VIP's ring holds in `ed_ring`, if known.
    pub halves: [Option<Vec<u64>>; 2],
}

impl VipEntry {
    pub(crate) fn new(id: u32) -> VipEntry {
        VipEntry {
            id,
            keys: BTreeSet::new(),
            serving: Vec::new(),
            halves: [None, None],
        }
    }
}

// === impl Forwarder: VIPs ===

impl Forwarder {
    /// Builds the VIP's weighted Maglev table over `serving` (proxy name,
    /// weight) and swaps it in atomically, then makes the VIP's ports match
    /// `vip.ports`. An empty or all-zero `serving` means no healthy proxy.
    pub fn set_vip(
        &mut self,
        vip: &VipService,
        serving: &[(String, u32)],
    ) -> Result<(), ForwarderError> {
        let others: usize = self
            .vips
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
        if let Some((name, _)) = serving.iter().find(|(n, _)| !self.proxies.contains_key(n)) {
            return Err(ForwarderError::UnknownProxy {
                proxy: name.clone(),
            });
        }
        if !self.vips.contains_key(&vip.addr) {
            let id = self.alloc_vip_id()?;
            self.vips.insert(vip.addr, VipEntry::new(id));
        }
        self.write_ring(vip.addr, serving)?;
        let id = self.vips[&vip.addr].id;
        let mut want: BTreeSet<VipKey> = vip
            .ports
            .iter()
            .map(|(port, proto)| vip_key(vip.addr, *port, proto.number()))
            .collect();
        want.insert(vip_key(vip.addr, 0, 0));
        for k in &want {
            self.maps
                .vips
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
        let old = std::mem::take(&mut self.vips.get_mut(&vip.addr).expect("inserted above").keys);
        for k in old.difference(&want) {
            self.maps
                .vips
                .remove(k)
                .map_err(map_err("ed_vips", "remove stale port"))?;
        }
        let (addr, family) = addr_words(vip.addr);
        let info = VipInfo {
            addr,
            family: family as u32,
        };
        self.maps
            .vipinfo
            .set(id, info, 0)
            .map_err(map_err("ed_vipinfo", "set"))?;
        self.write_ports(id, &old, &want)?;
        self.vips.get_mut(&vip.addr).expect("inserted above").keys = want;
        self.write_index(vip.addr)?;
        tracing::info!(vip = %vip.addr, id, proxies = serving.len(), "VIP table set");
        Ok(())
    }

    /// Removes the VIP: its packets are passed untouched from then on.
    pub fn remove_vip(&mut self, addr: IpAddr) -> Result<(), ForwarderError> {
        let Some(entry) = self.vips.remove(&addr) else {
            return Ok(());
        };
        self.write_index(addr)?;
        for k in &entry.keys {
            self.maps
                .vips
                .remove(k)
                .map_err(map_err("ed_vips", format!("remove {addr}")))?;
        }
        self.write_ports(entry.id, &entry.keys, &BTreeSet::new())?;
        self.maps
            .vipinfo
            .set(entry.id, VipInfo::default(), 0)
            .map_err(map_err("ed_vipinfo", "clear"))?;
        self.maps
            .vipst
            .set(entry.id, VipState::default(), 0)
            .map_err(map_err("ed_vipst", "reset"))?;
        self.maps
            .vipho
            .set(entry.id, 0, 0)
            .map_err(map_err("ed_vipho", "reset"))?;
        tracing::info!(vip = %addr, "VIP removed");
        Ok(())
    }

    /// Writes the idle half of the VIP's ring (the words that differ from
    /// what it holds) and flips to it.
    pub(crate) fn write_ring(
        &mut self,
        addr: IpAddr,
        serving: &[(String, u32)],
    ) -> Result<(), ForwarderError> {
        let id = self.vips[&addr].id;
        let m = self.spec.table_size;
        let backends: Vec<(&str, u32)> = serving.iter().map(|(n, w)| (n.as_str(), *w)).collect();
        let table = maglev::build(m, &backends);
        // Each backend's slot once, not a name lookup per ring position.
        let slots: Vec<u32> = backends.iter().map(|(n, _)| self.proxies[*n]).collect();
        let words = pack(&table, |b| slots[b as usize]);
        let mut st = self
            .maps
            .vipst
            .get(&id, 0)
            .map_err(map_err("ed_vipst", "get"))?;
        let half = 1 - (st.active & 1);
        // An empty table (no healthy proxy) leaves the words as they are.
        if !words.is_empty() {
            let base = (id * 2 + half) * crate::load::ring_words(m);
            // Unknown until every word is written: an error leaves it so.
            let held = self.vips.get_mut(&addr).expect("known VIP").halves[half as usize].take();
            for (w, word) in words.iter().enumerate() {
                if held.as_ref().is_some_and(|h| h[w] == *word) {
                    continue;
                }
                self.maps
                    .ring
                    .set(base + w as u32, *word, 0)
                    .map_err(map_err("ed_ring", "set"))?;
                self.ring_words_written += 1;
            }
            self.vips.get_mut(&addr).expect("known VIP").halves[half as usize] = Some(words);
        }
        st.count[half as usize] = backends.iter().filter(|(_, w)| *w > 0).count() as u32;
        st.no_healthy = self
            .maps
            .cfg
            .get(&0, 0)
            .map_err(map_err("ed_cfg", "get"))?
            .no_healthy;
        self.maps
            .vipst
            .set(id, st, 0)
            .map_err(map_err("ed_vipst", "prepare"))?;
        st.active = half;
        self.maps
            .vipst
            .set(id, st, 0)
            .map_err(map_err("ed_vipst", "flip"))?;
        self.vips.get_mut(&addr).expect("known VIP").serving = serving.to_vec();
        Ok(())
    }

    fn alloc_vip_id(&mut self) -> Result<u32, ForwarderError> {
        let used: BTreeSet<u32> = self.vips.values().map(|v| v.id).collect();
        let id = (0..MAX_VIPS)
            .find(|i| !used.contains(i))
            .ok_or(ForwarderError::Full {
                what: "VIPs",
                max: MAX_VIPS,
            })?;
        let zero = PerCpuValues::try_from(vec![VipCountersRaw::default(); ncpus()])
            .map_err(|source| ForwarderError::Cpus { source })?;
        self.maps
            .vipcnt
            .set(id, zero, 0)
            .map_err(map_err("ed_vipcnt", "zero"))?;
        self.maps
            .vipst
            .set(id, VipState::default(), 0)
            .map_err(map_err("ed_vipst", "reset"))?;
        Ok(id)
    }

    /// Points the fold of `addr` at its VIP, at nothing, or at the hash
    /// map when several VIPs share the fold.
    fn write_index(&mut self, addr: IpAddr) -> Result<(), ForwarderError> {
        let fold = fold16(addr);
        let ids: Vec<u32> = self
            .vips
            .iter()
            .filter(|(a, _)| fold16(**a) == fold)
            .map(|(_, v)| v.id)
            .collect();
        let value = match ids.as_slice() {
            [] => 0,
            [id] => id + 1,
            _ => VIP_INDEX_COLLIDE,
        };
        self.maps
            .vipidx
            .set(fold, value, 0)
            .map_err(map_err("ed_vipidx", "set"))
    }

    /// Rewrites the port-bitmap words that `old` or `new` touch.
    fn write_ports(
        &mut self,
        id: u32,
        old: &BTreeSet<VipKey>,
        new: &BTreeSet<VipKey>,
    ) -> Result<(), ForwarderError> {
        let word = |k: &VipKey| {
            let port = u16::from_be(k.port) as u32;
            (
                (id * 2 + (k.proto == 17) as u32) * PORT_WORDS + (port >> 6),
                port & 63,
            )
        };
        let mut words: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
        for k in old.iter().filter(|k| k.proto != 0) {
            words.entry(word(k).0).or_insert(0);
        }
        for k in new.iter().filter(|k| k.proto != 0) {
            let (w, b) = word(k);
            *words.entry(w).or_insert(0) |= 1 << b;
        }
        for (w, bits) in words {
            self.maps
                .ports
                .set(w, bits, 0)
                .map_err(map_err("ed_ports", "set"))?;
        }
        Ok(())
    }
}

/// A Maglev table as `ed_ring` words: 8 one-byte proxy slots per word, slot
/// `i` in byte `i % 8` of word `i / 8`; `slot` maps a backend index to its
/// proxy slot.
fn pack(table: &[u32], slot: impl Fn(u32) -> u32) -> Vec<u64> {
    table
        .chunks(8)
        .map(|chunk| {
            chunk
                .iter()
                .enumerate()
                .fold(0u64, |word, (i, b)| word | (slot(*b) as u64) << (8 * i))
        })
        .collect()
}

/// The address words as the program reads them from the packet.
pub(crate) fn addr_words(addr: IpAddr) -> ([u32; 4], u8) {
    let w = |b: &[u8]| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
    match addr {
        IpAddr::V4(a) => ([w(&a.octets()), 0, 0, 0], FAMILY_V4),
        IpAddr::V6(a) => {
            let o = a.octets();
            (
                [w(&o[0..4]), w(&o[4..8]), w(&o[8..12]), w(&o[12..16])],
                FAMILY_V6,
            )
        }
    }
}

pub(crate) fn vip_key(addr: IpAddr, port: u16, proto: u8) -> VipKey {
    let (addr, family) = addr_words(addr);
    VipKey {
        addr,
        port: port.to_be(),
        proto,
        family,
    }
}

/// The 16-bit fold of the destination, as `vip_match` in the C.
fn fold16(addr: IpAddr) -> u32 {
    let (w, _) = addr_words(addr);
    let x = w[0] ^ w[1] ^ w[2] ^ w[3];
    (x ^ (x >> 16)) & 0xffff
}
