//! The forwarder driver: edged's config and reconcile actions onto the XDP
//! data plane (`edged-ebpf`). Map writes are synchronous and short (a
//! Maglev build for 65537 slots is about a millisecond), so they run on the
//! loop's task. Each observation tick compares what every uplink runs with
//! edged's program and attaches it again where it was lost.

use std::collections::HashMap;

use edged_config::{
    Config, Delivery as CfgDelivery, NoHealthy as CfgNoHealthy, Protocol, XdpMode as CfgXdpMode,
};
use edged_ebpf::{
    Delivery, ForwarderSpec, HandoffSpec, NoHealthy, Proto, ProxyTarget, VipService, XdpMode,
};

use super::{Component, EffectError, EffectFuture, Forwarder, Links};

/// The XDP data plane, configured from edged's config.
pub struct XdpForwarder {
    inner: edged_ebpf::Forwarder,
    vips: HashMap<String, VipService>,
    links: Links,
    uplinks: Vec<String>,
    mode: &'static str,
    pin_dir: std::path::PathBuf,
    /// Counts held connections on a thread of its own, once asked.
    held: Option<super::held::HeldCounts>,
}

fn err(op: impl Into<String>, e: impl std::fmt::Display) -> EffectError {
    EffectError::new(Component::Forwarder, op, e)
}

/// The forwarder spec of a config that has a `forwarder:` section (what
/// [`crate::specs`] validates).
pub fn spec(cfg: &Config) -> Option<ForwarderSpec> {
    let f = cfg.forwarder.as_ref()?;
    Some(ForwarderSpec {
        uplinks: f.uplinks.clone(),
        mode: match f.xdp_mode {
            CfgXdpMode::Native => XdpMode::Native,
            CfgXdpMode::Generic => XdpMode::Generic,
        },
        pin_dir: f.pin_dir.clone(),
        hash_seed: f.hash_seed,
        table_size: f.table_size,
        no_healthy: no_healthy(f.no_healthy_proxy),
        conntrack_entries: f.conntrack_entries,
        udp_idle_timeout: f.udp_idle_timeout,
        peer_flows: f.peer_flows,
        max_vips: f.max_vips,
        max_pools: f.max_pools,
        max_vip_ports: f.max_vip_ports,
    })
}

fn no_healthy(n: CfgNoHealthy) -> NoHealthy {
    match n {
        CfgNoHealthy::Drop => NoHealthy::Drop,
        CfgNoHealthy::Pass => NoHealthy::Pass,
    }
}

fn targets(cfg: &Config) -> Vec<ProxyTarget> {
    cfg.proxies
        .iter()
        .map(|p| ProxyTarget {
            name: p.name.clone(),
            delivery: match (p.delivery, &p.interface, p.mac) {
                (CfgDelivery::L2, Some(ifname), Some(mac)) => Delivery::L2 {
                    ifname: ifname.clone(),
                    mac: mac.0,
                },
                _ => Delivery::HostStack,
            },
        })
        .collect()
}

fn services(cfg: &Config) -> HashMap<String, VipService> {
    cfg.vips
        .iter()
        .map(|v| {
            let ports = v
                .ports
                .iter()
                .map(|p| {
                    (
                        p.port,
                        if p.protocol == Protocol::Tcp {
                            Proto::Tcp
                        } else {
                            Proto::Udp
                        },
                    )
                })
                .collect();
            (
                v.name.clone(),
                VipService {
                    addr: v.address,
                    ports,
                    no_healthy: v.no_healthy_proxy.map(no_healthy),
                },
            )
        })
        .collect()
}

impl XdpForwarder {
    /// Loads or re-adopts the data plane and registers the proxies.
    /// `None` when the config has no forwarder section.
    pub fn open(cfg: &Config, spec: Option<&ForwarderSpec>) -> Result<Option<Self>, EffectError> {
        let Some(spec) = spec else {
            return Ok(None);
        };
        let inner =
            edged_ebpf::Forwarder::open(spec).map_err(|e| err("open the XDP data plane", e))?;
        let mut f = XdpForwarder {
            inner,
            vips: HashMap::new(),
            links: Links::open()?,
            uplinks: spec.uplinks.clone(),
            mode: match spec.mode {
                XdpMode::Native => "native",
                XdpMode::Generic => "generic",
            },
            pin_dir: spec.pin_dir.clone(),
            held: None,
        };
        Forwarder::reconfigure(&mut f, cfg)?;
        Ok(Some(f))
    }
}

impl Forwarder for XdpForwarder {
    /// After a (re)load: the proxy set, and the VIPs' addresses and ports.
    /// Returns the VIPs whose address or ports changed: their tables were
    /// removed from the data plane and must be written again.
    fn reconfigure(&mut self, cfg: &Config) -> Result<Vec<String>, EffectError> {
        self.inner
            .set_proxies(&targets(cfg))
            .map_err(|e| err("set proxies", e))?;
        let handoff = cfg
            .forwarder
            .as_ref()
            .and_then(|f| f.handoff.as_ref())
            .map(|h| HandoffSpec {
                local: h.address,
                peers: h.peers.clone(),
            });
        self.inner
            .set_handoff(handoff.as_ref())
            .map_err(|e| err("set handoff peers", e))?;
        let new = services(cfg);
        let mut changed = Vec::new();
        for (name, old) in &self.vips {
            let Some(n) = new.get(name) else { continue };
            if (n.addr, &n.ports) != (old.addr, &old.ports) {
                self.inner
                    .remove_vip(old.addr)
                    .map_err(|e| err(format!("remove old {name}"), e))?;
                changed.push(name.clone());
            } else if n.no_healthy != old.no_healthy {
                // The policy alone: in place, the table stays.
                self.inner
                    .set_vip_no_healthy(n)
                    .map_err(|e| err(format!("set the no-healthy policy of {name}"), e))?;
            }
        }
        // VIPs gone from the config stay known until their table is removed.
        for (name, svc) in new {
            self.vips.insert(name, svc);
        }
        Ok(changed)
    }

    fn set_table(&mut self, vip: &str, proxies: &[(String, u32)]) -> EffectFuture<'_> {
        let r = match self.vips.get(vip) {
            Some(svc) => self
                .inner
                .set_vip(svc, proxies)
                .map_err(|e| err(format!("set table of {vip}"), e)),
            None => Err(err(
                format!("set table of {vip}"),
                "VIP not in the forwarder's config",
            )
            .with_kind(super::ErrorKind::UnknownVip)),
        };
        Box::pin(std::future::ready(r))
    }

    fn set_tables<'a>(
        &'a mut self,
        batch: &'a [(&'a str, &'a [(String, u32)])],
    ) -> EffectFuture<'a, Vec<Result<(), EffectError>>> {
        let known: Vec<usize> = (0..batch.len())
            .filter(|&i| self.vips.contains_key(batch[i].0))
            .collect();
        let entries: Vec<(&VipService, &[(String, u32)])> = known
            .iter()
            .map(|&i| (&self.vips[batch[i].0], batch[i].1))
            .collect();
        let mut set = self.inner.set_vips(&entries).into_iter();
        let mut known = known.into_iter().peekable();
        let out = batch
            .iter()
            .enumerate()
            .map(|(i, (vip, _))| {
                if known.next_if_eq(&i).is_some() {
                    let r = set.next().expect("one result per entry");
                    r.map_err(|e| err(format!("set table of {vip}"), e))
                } else {
                    Err(err(
                        format!("set table of {vip}"),
                        "VIP not in the forwarder's config",
                    )
                    .with_kind(super::ErrorKind::UnknownVip))
                }
            })
            .collect();
        Box::pin(std::future::ready(Ok(out)))
    }

    fn set_handoff(&mut self, vip: &str, on: bool) -> EffectFuture<'_> {
        let r = match self.vips.get(vip) {
            Some(svc) => self
                .inner
                .set_vip_handoff(svc.addr, on)
                .map_err(|e| err(format!("set handoff of {vip}"), e)),
            None => Err(err(
                format!("set handoff of {vip}"),
                "VIP not in the forwarder's config",
            )
            .with_kind(super::ErrorKind::UnknownVip)),
        };
        Box::pin(std::future::ready(r))
    }

    fn remove_table(&mut self, vip: &str) -> EffectFuture<'_> {
        let r = match self.vips.remove(vip) {
            Some(svc) => self
                .inner
                .remove_vip(svc.addr)
                .map_err(|e| err(format!("remove {vip}"), e)),
            None => Ok(()),
        };
        Box::pin(std::future::ready(r))
    }

    fn tables(&self) -> std::collections::BTreeMap<String, Vec<(String, u32)>> {
        let by_addr = self.inner.tables();
        self.vips
            .iter()
            .filter_map(|(name, svc)| {
                let t = by_addr.get(&svc.addr)?;
                Some((name.clone(), t.clone()))
            })
            .collect()
    }

    fn repair(&mut self) -> EffectFuture<'_, Vec<String>> {
        Box::pin(async move {
            let ours = self
                .inner
                .program_id()
                .map_err(|e| err("read the program id", e))?;
            let mut repaired = Vec::new();
            for up in self.uplinks.clone() {
                let running = self.links.xdp_prog(&up).await?;
                if running == Some(ours) {
                    continue;
                }
                tracing::warn!(uplink = %up, ?running, ours, "the uplink lost edged's XDP program; attaching it again");
                self.inner
                    .reattach(&up)
                    .map_err(|e| err(format!("re-attach XDP to {up}"), e))?;
                repaired.push(up);
            }
            Ok(repaired)
        })
    }

    fn counters(&self) -> Result<edged_ebpf::Counters, EffectError> {
        self.inner.counters().map_err(|e| err("read counters", e))
    }

    fn held_connections(
        &mut self,
        idle: std::time::Duration,
    ) -> Result<Option<super::HeldCount>, EffectError> {
        if self.held.is_none() {
            let counts = super::held::HeldCounts::start(self.pin_dir.clone())
                .map_err(|e| err("start counting held connections", e))?;
            self.held = Some(counts);
        }
        let counts = self.held.as_ref().expect("started above");
        let Some((began, by_addr)) = counts
            .ask(idle)
            .map_err(|e| err("count the held connections", e))?
        else {
            return Ok(None);
        };
        let by_name = self
            .vips
            .iter()
            .filter_map(|(name, svc)| Some((name.clone(), *by_addr.get(&svc.addr)?)))
            .collect();
        Ok(Some((began, by_name)))
    }

    fn tables_usage(&self) -> Option<(edged_ebpf::Usage, u64)> {
        Some((self.inner.usage(), self.inner.table_swaps()))
    }

    fn describe(&self) -> String {
        let u = self.inner.usage();
        format!(
            "XDP ({}) on {}; VIPs {}/{}, ports {}/{}, shared tables {}/{}, proxies {}/{}",
            self.mode,
            self.uplinks.join(","),
            u.vips.0,
            u.vips.1,
            u.vip_ports.0,
            u.vip_ports.1,
            u.pools.0,
            u.pools.1,
            u.proxies.0,
            u.proxies.1,
        )
    }
}
