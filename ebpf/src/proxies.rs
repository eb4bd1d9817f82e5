//! Writing proxies into the maps. Interfaces are resolved in the calling
//! thread's network namespace; slots are stable per name (the connection
//! table refers to them) and reused last.

use std::collections::BTreeSet;
use std::net::IpAddr;

use aya::maps::PerCpuValues;

use crate::abi::*;
use crate::error::map_err;
use crate::{Delivery, Forwarder, ForwarderError, ProxyTarget, sys};

// === impl Forwarder: proxies ===

impl Forwarder {
    /// Makes `proxies` the proxy set: new ones get a slot, known ones keep
    /// theirs (established flows refer to it), absent ones are removed from
    /// every VIP's table, then from the data plane. Interfaces are resolved
    /// in the calling thread's network namespace. On error nothing changed.
    pub fn set_proxies(&mut self, proxies: &[ProxyTarget]) -> Result<(), ForwarderError> {
        let mut resolved = Vec::with_capacity(proxies.len());
        for p in proxies {
            resolved.push((p, resolve(p)?));
        }
        let keep: BTreeSet<&str> = proxies.iter().map(|p| p.name.as_str()).collect();
        let gone: Vec<String> = self
            .proxies
            .keys()
            .filter(|n| !keep.contains(n.as_str()))
            .cloned()
            .collect();
        if keep.len() > PEER_SLOT_BASE as usize {
            return Err(ForwarderError::Full {
                what: "proxies",
                max: PEER_SLOT_BASE,
            });
        }
        if !gone.is_empty() {
            let vips: Vec<(IpAddr, Vec<(String, u32)>)> = self
                .vips
                .iter()
                .filter(|(_, v)| v.serving.iter().any(|(n, _)| gone.contains(n)))
                .map(|(a, v)| {
                    (
                        *a,
                        v.serving
                            .iter()
                            .filter(|(n, _)| !gone.contains(n))
                            .cloned()
                            .collect(),
                    )
                })
                .collect();
            for (addr, serving) in vips {
                self.write_ring(addr, &serving)?;
            }
            for name in gone {
                let slot = self.proxies[&name];
                self.maps
                    .proxy
                    .set(slot, Proxy::default(), 0)
                    .map_err(map_err("ed_proxy", "clear"))?;
                self.proxies.remove(&name);
                tracing::info!(proxy = %name, slot, "proxy removed");
            }
        }
        for (p, (raw, ifindex)) in resolved {
            let slot = match self.proxies.get(&p.name) {
                Some(s) => *s,
                None => self.alloc_proxy_slot()?,
            };
            if let Some(ifindex) = ifindex {
                self.maps.tx.set(slot, ifindex, None, 0).map_err(|source| {
                    ForwarderError::Devmap {
                        op: format!("set {slot} -> ifindex {ifindex}"),
                        source: Box::new(source),
                    }
                })?;
            }
            let mut name = ProxyName::default();
            name.name[..p.name.len()].copy_from_slice(p.name.as_bytes());
            self.maps
                .pxname
                .set(slot, name, 0)
                .map_err(map_err("ed_pxname", "set"))?;
            self.maps
                .proxy
                .set(slot, raw, 0)
                .map_err(map_err("ed_proxy", "set"))?;
            if self.proxies.insert(p.name.clone(), slot).is_none() {
                tracing::info!(proxy = %p.name, slot, "proxy added");
            }
        }
        Ok(())
    }

    fn alloc_proxy_slot(&mut self) -> Result<u32, ForwarderError> {
        let used: BTreeSet<u32> = self.proxies.values().copied().collect();
        // Round robin from the last allocation: a freed slot is reused last,
        // so stale connection-table entries rarely meet a new proxy.
        for i in 0..PEER_SLOT_BASE {
            let slot = (self.next_slot + i) % PEER_SLOT_BASE;
            if !used.contains(&slot) {
                self.next_slot = (slot + 1) % PEER_SLOT_BASE;
                let zero = PerCpuValues::try_from(vec![ProxyCountersRaw::default(); ncpus()])
                    .map_err(|source| ForwarderError::Cpus { source })?;
                self.maps
                    .pxcnt
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
