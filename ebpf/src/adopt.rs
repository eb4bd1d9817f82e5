//! What a restarted edged reads back from a re-adopted data plane, and
//! the repair of a detached uplink.
//!
//! After a restart the pinned rings still hold every VIP's table; the
//! proxies in each VIP's active half are read back (with their share of
//! the ring as weight), so the daemon knows which proxies were serving
//! and keeps them until its checks decide, instead of emptying the tables.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::error::map_err;
use crate::{Forwarder, ForwarderError};

// === impl Forwarder: adoption and repair ===

impl Forwarder {
    /// Reads each re-adopted VIP's active table back into its serving set.
    pub(crate) fn recover_rings(&mut self) -> Result<(), ForwarderError> {
        let names: BTreeMap<u32, String> =
            self.proxies.iter().map(|(n, s)| (*s, n.clone())).collect();
        let m = self.spec.table_size;
        let words = crate::load::ring_words(m);
        let addrs: Vec<IpAddr> = self.vips.keys().copied().collect();
        for addr in addrs {
            let id = self.vips[&addr].id;
            let st = self
                .maps
                .vipst
                .get(&id, 0)
                .map_err(map_err("ed_vipst", "get"))?;
            let half = st.active & 1;
            if st.count[half as usize] == 0 {
                continue;
            }
            let held = self.read_ring(id, half)?;
            let mut share: BTreeMap<u32, u32> = BTreeMap::new();
            for (w, word) in (0..words).zip(&held) {
                let slots = (m - w * 8).min(8);
                for i in 0..slots {
                    *share.entry(((word >> (8 * i)) & 0xff) as u32).or_default() += 1;
                }
            }
            let serving: Vec<(String, u32)> = share
                .into_iter()
                .filter_map(|(slot, n)| Some((names.get(&slot)?.clone(), n)))
                .collect();
            let entry = self.vips.get_mut(&addr).expect("listed above");
            entry.serving = serving;
            entry.halves[half as usize] = Some(held);
        }
        Ok(())
    }

    /// The words of one half of VIP `id`'s ring, read from `ed_ring`.
    pub(crate) fn read_ring(&self, id: u32, half: u32) -> Result<Vec<u64>, ForwarderError> {
        let words = crate::load::ring_words(self.spec.table_size);
        let base = (id * 2 + half) * words;
        (base..base + words)
            .map(|i| self.maps.ring.get(&i, 0).map_err(map_err("ed_ring", "get")))
            .collect()
    }

    /// Every VIP's table as the data plane holds it: the serving proxies
    /// and weights last written (or, after a restart, read back from the
    /// ring, with each proxy's share of the ring as its weight).
    pub fn tables(&self) -> BTreeMap<IpAddr, Vec<(String, u32)>> {
        self.vips
            .iter()
            .map(|(a, v)| (*a, v.serving.clone()))
            .collect()
    }

    /// The kernel's id of the XDP program (what an uplink must run).
    pub fn program_id(&self) -> Result<u32, ForwarderError> {
        self.prog
            .info()
            .map(|i| i.id())
            .map_err(|source| ForwarderError::Program {
                op: "read program info",
                source: Box::new(source),
            })
    }

    /// Attaches the program to `uplink` again (its link was found gone or
    /// replaced): the stale pin is removed first.
    pub fn reattach(&mut self, uplink: &str) -> Result<(), ForwarderError> {
        let tag = match self.spec.mode {
            crate::XdpMode::Native => "drv",
            crate::XdpMode::Generic => "skb",
        };
        let pin = self.spec.pin_dir.join(format!("link_{tag}_{uplink}"));
        match std::fs::remove_file(&pin) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ForwarderError::Pin {
                    op: "remove stale link",
                    path: pin,
                    source,
                });
            }
        }
        self.attach_uplinks()
    }
}
