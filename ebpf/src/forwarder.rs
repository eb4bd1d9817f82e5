//! The data plane as one value: opening (load or re-adopt), changing,
//! reading and removing it.
//!
//! Pin dir layout: one file per map (`ed_*`, pinned by name), `prog`, and
//! one `link_<drv|skb>_<ifname>` per uplink. `ed_cfg` carries the layout
//! version and the sizes; a pin dir whose `ed_cfg` does not match this build
//! and spec is removed (detaching the old program) and loaded afresh.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::load::{load_fresh, remove_pins, same_layout, validate, wanted_cfg};
use crate::maps::Maps;
use crate::program::Program;
use crate::proxies::ProxySlots;
use crate::vips::VipTables;
use crate::{
    Counters, ForwarderError, ForwarderSpec, HandoffSpec, NoHealthy, ProxyTarget, VipService,
    counters, handoff, sys,
};

#[doc(hidden)]
pub mod bench;

pub(crate) static OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/edged_xdp.o"));

/// The running data plane: the XDP program on the uplinks and its maps.
/// Dropping it leaves everything attached and pinned (flows survive a
/// restart); [`Forwarder::teardown`] removes it.
///
/// Each part owns its slice of the maps: `Program` the attachment,
/// `ProxySlots` the proxy slots, `VipTables` the VIPs and their
/// rings; the handoff and the counters are functions of the maps.
pub struct Forwarder {
    spec: ForwarderSpec,
    maps: Maps,
    program: Program,
    proxies: ProxySlots,
    vips: VipTables,
}

impl Forwarder {
    /// Loads and attaches, or re-adopts the pinned program, maps and links
    /// if their layout matches; replaces them cleanly if it does not. A
    /// native attach the driver refuses is an error naming `xdp_mode:
    /// generic`; a missing interface is an error naming the interface.
    pub fn open(spec: &ForwarderSpec) -> Result<Forwarder, ForwarderError> {
        Self::open_object(spec, OBJ)
    }

    #[doc(hidden)]
    pub fn open_object(spec: &ForwarderSpec, obj: &[u8]) -> Result<Forwarder, ForwarderError> {
        validate(spec)?;
        sys::ensure_bpffs(&spec.pin_dir)?;
        let dir = &spec.pin_dir;
        let want = wanted_cfg(spec);
        let adopt = Maps::pinned_cfg(dir).is_some_and(|c| same_layout(&c, &want))
            && dir.join("prog").exists();
        if adopt {
            tracing::info!(pin_dir = %dir.display(), "re-adopting the pinned XDP data plane");
        } else {
            if dir.exists() {
                tracing::warn!(pin_dir = %dir.display(), "pinned data plane has another layout; replacing it");
                remove_pins(dir)?;
            }
            load_fresh(spec, obj)?;
        }
        let mut maps = Maps::open(dir)?;
        maps.cfg
            .set(0, want, 0)
            .map_err(crate::error::map_err("ed_cfg", "write config"))?;
        let mut program = Program::open(dir, spec.mode, &spec.uplinks)?;
        program.attach()?;
        let proxies = ProxySlots::recover(&maps)?;
        let limits = crate::vips::Limits {
            table_size: spec.table_size,
            max_vips: spec.max_vips,
            max_pools: spec.max_pools,
            max_keys: spec.max_vip_ports,
            index_bits: crate::load::vip_index_bits(spec.max_vips),
        };
        let vips = VipTables::recover(&maps, limits, &proxies)?;
        // Handoff flags are not re-adopted: edged decides them again on its
        // first pass (a VIP undrained while edged was down must not keep
        // handing off).
        for (_, id) in vips.ids() {
            handoff::set_vip(&mut maps, id, false)?;
        }
        if proxies.len() > 0 || vips.len() > 0 {
            tracing::info!(
                proxies = proxies.len(),
                vips = vips.len(),
                "re-adopted state"
            );
        }
        Ok(Forwarder {
            spec: spec.clone(),
            maps,
            program,
            proxies,
            vips,
        })
    }

    /// Detaches from every uplink and removes every pin.
    pub fn teardown(self) -> Result<(), ForwarderError> {
        let dir = self.spec.pin_dir.clone();
        drop(self);
        remove_pins(&dir)
    }

    /// The kernel's id of the XDP program (what an uplink must run).
    pub fn program_id(&self) -> Result<u32, ForwarderError> {
        self.program.id()
    }

    /// Attaches the program to `uplink` again (its link was found gone or
    /// replaced): the stale pin is removed first.
    pub fn reattach(&mut self, uplink: &str) -> Result<(), ForwarderError> {
        self.program.reattach(uplink)
    }

    /// Runs the program once on `frame` through `BPF_PROG_TEST_RUN` (a
    /// diagnostic: maps and counters are the live ones). `ingress_ifindex`
    /// must exist in the calling thread's network namespace.
    pub fn test_run(
        &self,
        frame: &[u8],
        ingress_ifindex: Option<u32>,
    ) -> Result<(u32, Vec<u8>), ForwarderError> {
        self.program
            .test_run(frame, ingress_ifindex, 1)
            .map(|(v, out, _)| (v, out))
    }

    /// Makes `proxies` the proxy set: new ones get a slot, known ones keep
    /// theirs (established flows refer to it), absent ones are removed from
    /// every VIP's table, then from the data plane. Interfaces are resolved
    /// in the calling thread's network namespace. On error nothing changed.
    pub fn set_proxies(&mut self, proxies: &[ProxyTarget]) -> Result<(), ForwarderError> {
        let plan = self.proxies.plan(proxies)?;
        self.vips
            .without_proxies(&mut self.maps, &self.proxies, &plan.gone)?;
        self.proxies.apply(&mut self.maps, plan)
    }

    /// Builds the VIP's weighted Maglev table over `serving` (proxy name,
    /// weight) and swaps it in atomically, then makes the VIP's ports match
    /// `vip.ports`. An empty or all-zero `serving` means no healthy proxy.
    pub fn set_vip(
        &mut self,
        vip: &VipService,
        serving: &[(String, u32)],
    ) -> Result<(), ForwarderError> {
        let no_healthy = self.no_healthy(vip);
        self.vips
            .set(&mut self.maps, &self.proxies, no_healthy, vip, serving)
    }

    /// [`Forwarder::set_vip`] for each entry, with one result each, in
    /// order; VIPs that share a pool and all change the same way (a health
    /// flip of a proxy they all use) cost one table build and one swap
    /// together.
    pub fn set_vips(
        &mut self,
        batch: &[(&VipService, &[(String, u32)])],
    ) -> Vec<Result<(), ForwarderError>> {
        let batch: Vec<_> = batch
            .iter()
            .map(|(vip, serving)| (*vip, *serving, self.no_healthy(vip)))
            .collect();
        self.vips.set_many(&mut self.maps, &self.proxies, &batch)
    }

    /// Applies `vip.no_healthy` (what its packets meet while no proxy
    /// serves it) to a VIP already set; its table stays.
    pub fn set_vip_no_healthy(&mut self, vip: &VipService) -> Result<(), ForwarderError> {
        let policy = self.no_healthy(vip);
        self.vips.set_no_healthy(&mut self.maps, vip.addr, policy)
    }

    /// What the VIP's packets meet when its pool has no healthy proxy.
    fn no_healthy(&self, vip: &VipService) -> u32 {
        match vip.no_healthy.unwrap_or(self.spec.no_healthy) {
            NoHealthy::Drop => crate::abi::NO_HEALTHY_DROP,
            NoHealthy::Pass => crate::abi::NO_HEALTHY_PASS,
        }
    }

    /// What each table holds against its capacity.
    pub fn usage(&self) -> crate::Usage {
        counters::usage(&self.vips, &self.proxies)
    }

    /// Shared tables built and swapped in since this value was opened.
    pub fn table_swaps(&self) -> u64 {
        self.vips.swaps()
    }

    /// Removes the VIP: its packets are passed untouched from then on.
    pub fn remove_vip(&mut self, addr: IpAddr) -> Result<(), ForwarderError> {
        self.vips.remove(&mut self.maps, addr)
    }

    /// Every VIP's table as the data plane holds it: the serving proxies
    /// and weights last written (or, after a restart, read back from the
    /// ring, with each proxy's share of the ring as its weight).
    pub fn tables(&self) -> BTreeMap<IpAddr, Vec<(String, u32)>> {
        self.vips.tables()
    }

    /// Sets (or with `None` clears) the peers. Flows already handed to a
    /// removed peer fall back to this node's own proxies.
    pub fn set_handoff(&mut self, spec: Option<&HandoffSpec>) -> Result<(), ForwarderError> {
        handoff::set_peers(&mut self.maps, spec)
    }

    /// Whether the VIP's new TCP connections go to the peers.
    pub fn set_vip_handoff(&mut self, addr: IpAddr, on: bool) -> Result<(), ForwarderError> {
        let Some(id) = self.vips.id(addr) else {
            return Err(ForwarderError::InvalidSpec {
                field: "handoff",
                value: addr.to_string(),
                reason: "not a VIP of the forwarder",
            });
        };
        handoff::set_vip(&mut self.maps, id, on)?;
        tracing::info!(vip = %addr, on, "VIP connection handoff");
        Ok(())
    }

    /// Whether the VIP hands off now (as the map says).
    pub fn vip_handoff(&self, addr: IpAddr) -> Result<bool, ForwarderError> {
        match self.vips.id(addr) {
            Some(id) => handoff::vip(&self.maps, id),
            None => Ok(false),
        }
    }

    /// Everything the data plane counted since it was loaded.
    pub fn counters(&self) -> Result<Counters, ForwarderError> {
        counters::read(&self.maps, &self.vips, &self.proxies)
    }

    /// Number of flows in the connection table (walks it: diagnostics only).
    pub fn conntrack_len(&self) -> usize {
        counters::conntrack_len(&self.maps)
    }
}
