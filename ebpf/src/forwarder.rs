//! Loading, attaching, re-adopting and removing the data plane.
//!
//! Pin dir layout: one file per map (`ed_*`, pinned by name), `prog`, and
//! one `link_<drv|skb>_<ifname>` per uplink. `ed_cfg` carries the layout
//! version and the sizes; a pin dir whose `ed_cfg` does not match this build
//! and spec is removed (detaching the old program) and loaded afresh.

use std::collections::BTreeMap;
use std::net::IpAddr;

use aya::programs::links::FdLink;
use aya::programs::{ProgramError, Xdp, XdpMode as AyaMode};
use aya_obj::programs::XdpAttachType;

use crate::load::{load_fresh, pin_err, remove_pins, same_layout, test_run, validate, wanted_cfg};
use crate::maps::Maps;
use crate::{ForwarderError, ForwarderSpec, XdpMode, sys};

pub(crate) static OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/edged_xdp.o"));

/// The running data plane: the XDP program on the uplinks and its maps.
/// Dropping it leaves everything attached and pinned (flows survive a
/// restart); [`Forwarder::teardown`] removes it.
pub struct Forwarder {
    pub(crate) spec: ForwarderSpec,
    pub(crate) maps: Maps,
    pub(crate) prog: Xdp,
    /// Proxy name -> slot (index in `ed_proxy`, what the rings hold).
    pub(crate) proxies: BTreeMap<String, u32>,
    pub(crate) next_slot: u32,
    pub(crate) vips: BTreeMap<IpAddr, crate::vips::VipEntry>,
    /// `ed_ring` words written since open (what a table change costs).
    pub(crate) ring_words_written: u64,
}

// === impl Forwarder: open, teardown ===

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
        let prog = Xdp::from_pin(dir.join("prog"), XdpAttachType::Interface).map_err(|source| {
            ForwarderError::Program {
                op: "open pinned program",
                source: Box::new(source),
            }
        })?;
        let mut fwd = Forwarder {
            spec: spec.clone(),
            maps,
            prog,
            proxies: BTreeMap::new(),
            next_slot: 0,
            vips: BTreeMap::new(),
            ring_words_written: 0,
        };
        fwd.attach_uplinks()?;
        fwd.recover()?;
        fwd.recover_rings()?;
        Ok(fwd)
    }

    /// Detaches from every uplink and removes every pin.
    pub fn teardown(self) -> Result<(), ForwarderError> {
        let dir = self.spec.pin_dir.clone();
        drop(self);
        remove_pins(&dir)
    }

    /// Runs the program once on `frame` through `BPF_PROG_TEST_RUN` (a
    /// diagnostic: maps and counters are the live ones). `ingress_ifindex`
    /// must exist in the calling thread's network namespace.
    pub fn test_run(
        &self,
        frame: &[u8],
        ingress_ifindex: Option<u32>,
    ) -> Result<(u32, Vec<u8>), ForwarderError> {
        test_run(&self.prog, frame, ingress_ifindex, 1).map(|(v, out, _)| (v, out))
    }

    pub(crate) fn attach_uplinks(&mut self) -> Result<(), ForwarderError> {
        let dir = self.spec.pin_dir.clone();
        let (tag, flags) = match self.spec.mode {
            XdpMode::Native => ("drv", AyaMode::Driver),
            XdpMode::Generic => ("skb", AyaMode::Skb),
        };
        let wanted: Vec<String> = self
            .spec
            .uplinks
            .iter()
            .map(|u| format!("link_{tag}_{u}"))
            .collect();
        let entries = std::fs::read_dir(&dir).map_err(pin_err("read", &dir))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("link_") && !wanted.contains(&name) {
                tracing::info!(link = %name, "detaching XDP from an interface no longer configured");
                std::fs::remove_file(entry.path()).map_err(pin_err("remove", &entry.path()))?;
            }
        }
        for (uplink, pin) in self.spec.uplinks.clone().iter().zip(&wanted) {
            let path = dir.join(pin);
            if path.exists() {
                continue;
            }
            let id = self.prog.attach(uplink, flags).map_err(|source| {
                // A missing interface is no driver's refusal.
                let missing = matches!(source, ProgramError::UnknownInterface { .. });
                match self.spec.mode {
                    XdpMode::Native if !missing => ForwarderError::AttachNative {
                        iface: uplink.clone(),
                        source: Box::new(source),
                    },
                    _ => ForwarderError::Attach {
                        iface: uplink.clone(),
                        mode: tag,
                        source: Box::new(source),
                    },
                }
            })?;
            let link = self
                .prog
                .take_link(id)
                .map_err(|source| ForwarderError::Program {
                    op: "take XDP link",
                    source: Box::new(source),
                })?;
            let fd = FdLink::try_from(link).map_err(|e| ForwarderError::Pin {
                op: "convert link of",
                path: path.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
            fd.pin(&path).map_err(|e| ForwarderError::Pin {
                op: "pin link",
                path: path.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
            tracing::info!(uplink = %uplink, mode = tag, "XDP attached");
        }
        Ok(())
    }
}
