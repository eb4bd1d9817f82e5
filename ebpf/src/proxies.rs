//! Proxy slots: each proxy's index in `ed_proxy`, which is what the rings
//! and the connection table hold. Slots are stable per name (established
//! flows refer to them) and a freed slot is reused last. Interfaces are
//! resolved in the calling thread's network namespace.

use std::collections::{BTreeMap, BTreeSet};

use aya::maps::PerCpuValues;

use crate::abi::*;
use crate::error::map_err;
use crate::maps::Maps;
use crate::{Delivery, ForwarderError, ProxyTarget, sys};

/// Proxy name -> slot, as the maps hold them.
pub(crate) struct ProxySlots {
    by_name: BTreeMap<String, u32>,
    /// Where the next allocation starts looking (round robin).
    next: u32,
}

/// A checked proxy set, not yet written: every entry resolved, the
/// proxies to remove named.
pub(crate) struct Plan<'a> {
    write: Vec<(&'a ProxyTarget, Proxy, Option<u32>)>,
    pub gone: Vec<String>,
}

impl ProxySlots {
    /// The slots an adopted program's maps hold (empty after a fresh load).
    pub fn recover(maps: &Maps) -> Result<ProxySlots, ForwarderError> {
        let mut slots = ProxySlots {
            by_name: BTreeMap::new(),
            next: 0,
        };
        for slot in 0..PEER_SLOT_BASE {
            let p = maps
                .proxy
                .get(&slot, 0)
                .map_err(map_err("ed_proxy", "get"))?;
            if p.kind == PROXY_NONE {
                continue;
            }
            let n = maps
                .pxname
                .get(&slot, 0)
                .map_err(map_err("ed_pxname", "get"))?;
            let len = n.name.iter().position(|&b| b == 0).unwrap_or(n.name.len());
            let name = String::from_utf8_lossy(&n.name[..len]).into_owned();
            slots.by_name.insert(name, slot);
            slots.next = (slot + 1) % PEER_SLOT_BASE;
        }
        Ok(slots)
    }

    pub fn slot(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// (name, slot), by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.by_name.iter().map(|(n, s)| (n.as_str(), *s))
    }

    /// Checks `proxies` as the next proxy set, writing nothing: resolves
    /// every interface and names the proxies it drops.
    pub fn plan<'a>(&self, proxies: &'a [ProxyTarget]) -> Result<Plan<'a>, ForwarderError> {
        let mut write = Vec::with_capacity(proxies.len());
        for p in proxies {
            let (raw, ifindex) = resolve(p)?;
            write.push((p, raw, ifindex));
        }
        let keep: BTreeSet<&str> = proxies.iter().map(|p| p.name.as_str()).collect();
        if keep.len() > PEER_SLOT_BASE as usize {
            return Err(ForwarderError::Full {
                what: "proxies",
                max: PEER_SLOT_BASE,
            });
        }
        let gone = self
            .by_name
            .keys()
            .filter(|n| !keep.contains(n.as_str()))
            .cloned()
            .collect();
        Ok(Plan { write, gone })
    }

    /// Writes a plan: clears the slots of the proxies it drops (no ring may
    /// point at them any more), then writes every proxy of the set, new
    /// ones into a fresh slot.
    pub fn apply(&mut self, maps: &mut Maps, plan: Plan<'_>) -> Result<(), ForwarderError> {
        for name in plan.gone {
            let slot = self.by_name[&name];
            maps.proxy
                .set(slot, Proxy::default(), 0)
                .map_err(map_err("ed_proxy", "clear"))?;
            self.by_name.remove(&name);
            tracing::info!(proxy = %name, slot, "proxy removed");
        }
        for (p, raw, ifindex) in plan.write {
            let slot = match self.by_name.get(&p.name) {
                Some(s) => *s,
                None => self.alloc(maps)?,
            };
            if let Some(ifindex) = ifindex {
                maps.tx
                    .set(slot, ifindex, None, 0)
                    .map_err(|source| ForwarderError::Devmap {
                        op: format!("set {slot} -> ifindex {ifindex}"),
                        source: Box::new(source),
                    })?;
            }
            let mut name = ProxyName::default();
            name.name[..p.name.len()].copy_from_slice(p.name.as_bytes());
            maps.pxname
                .set(slot, name, 0)
                .map_err(map_err("ed_pxname", "set"))?;
            maps.proxy
                .set(slot, raw, 0)
                .map_err(map_err("ed_proxy", "set"))?;
            if self.by_name.insert(p.name.clone(), slot).is_none() {
                tracing::info!(proxy = %p.name, slot, "proxy added");
            }
        }
        Ok(())
    }

    /// A free slot, its counters zeroed.
    fn alloc(&mut self, maps: &mut Maps) -> Result<u32, ForwarderError> {
        let used: BTreeSet<u32> = self.by_name.values().copied().collect();
        // Round robin from the last allocation: a freed slot is reused last,
        // so stale connection-table entries rarely meet a new proxy.
        for i in 0..PEER_SLOT_BASE {
            let slot = (self.next + i) % PEER_SLOT_BASE;
            if !used.contains(&slot) {
                self.next = (slot + 1) % PEER_SLOT_BASE;
                let zero = PerCpuValues::try_from(vec![ProxyCountersRaw::default(); ncpus()])
                    .map_err(|source| ForwarderError::Cpus { source })?;
                maps.pxcnt
                    .set(slot, zero, 0)
                    .map_err(map_err("ed_pxcnt", "zero"))?;
                return Ok(slot);
            }
        }
        Err(ForwarderError::Full {
            what: "proxies",
            max: PEER_SLOT_BASE,
        })
    }
}

fn resolve(p: &ProxyTarget) -> Result<(Proxy, Option<u32>), ForwarderError> {
    if p.name.is_empty() || p.name.len() > 63 {
        return Err(ForwarderError::ProxyName {
            proxy: p.name.clone(),
        });
    }
    Ok(match &p.delivery {
        Delivery::L2 { ifname, mac } => {
            let ifindex = sys::ifindex(ifname)?;
            let raw = Proxy {
                mac: *mac,
                src_mac: sys::mac(ifname)?,
                ifindex,
                kind: PROXY_L2,
            };
            (raw, Some(ifindex))
        }
        Delivery::HostStack => (
            Proxy {
                kind: PROXY_HOST,
                ..Proxy::default()
            },
            None,
        ),
    })
}

pub(crate) fn ncpus() -> usize {
    aya::util::nr_cpus().unwrap_or(1)
}
