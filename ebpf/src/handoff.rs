//! Connection handoff to peer edge nodes (see `bpf/handoff.h`): the peers'
//! addresses go into `ed_handoff` and the last [`MAX_PEERS`] proxy slots;
//! a VIP's flag in `ed_vipho` sends its new TCP connections to them.

use std::net::IpAddr;

use crate::abi::*;
use crate::error::map_err;
use crate::vips::addr_words;
use crate::{Forwarder, ForwarderError};

/// This node's address and the peer nodes' (one family). Peers send their
/// handed-off packets to `local`; only packets from `peers` are unwrapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandoffSpec {
    pub local: IpAddr,
    pub peers: Vec<IpAddr>,
}

// === impl Forwarder: handoff ===

impl Forwarder {
    /// Sets (or with `None` clears) the peers. Flows already handed to a
    /// removed peer fall back to this node's own proxies.
    pub fn set_handoff(&mut self, spec: Option<&HandoffSpec>) -> Result<(), ForwarderError> {
        let invalid = |value: String, reason| ForwarderError::InvalidSpec {
            field: "handoff",
            value,
            reason,
        };
        let mut raw = Handoff::default();
        if let Some(h) = spec {
            if h.peers.is_empty() || h.peers.len() > MAX_PEERS as usize {
                return Err(invalid(
                    format!("{} peers", h.peers.len()),
                    "needs 1 to 8 peers",
                ));
            }
            if let Some(p) = h.peers.iter().find(|p| p.is_ipv4() != h.local.is_ipv4()) {
                return Err(invalid(
                    p.to_string(),
                    "a peer's family differs from the local address's",
                ));
            }
            let (local, family) = addr_words(h.local);
            raw.local = local;
            raw.family = family as u32;
            raw.count = h.peers.len() as u32;
            for (i, p) in h.peers.iter().enumerate() {
                raw.peer[i] = addr_words(*p).0;
            }
        }
        let zero = Handoff::default();
        // Off first, then the slots, then on: packets never see a peer slot
        // without its address (a handed-off flow's packet meeting that
        // instant is dropped and counted as a handoff error).
        self.maps
            .handoff
            .set(0, zero, 0)
            .map_err(map_err("ed_handoff", "clear"))?;
        for k in 0..MAX_PEERS {
            let slot = PEER_SLOT_BASE + k;
            let used = k < raw.count;
            let px = Proxy {
                kind: if used { PROXY_PEER } else { PROXY_NONE },
                ..Proxy::default()
            };
            let mut name = ProxyName::default();
            if let (true, Some(h)) = (used, spec) {
                let n = format!("peer {}", h.peers[k as usize]);
                name.name[..n.len()].copy_from_slice(n.as_bytes());
            }
            self.maps
                .pxname
                .set(slot, name, 0)
                .map_err(map_err("ed_pxname", "set peer"))?;
            self.maps
                .proxy
                .set(slot, px, 0)
                .map_err(map_err("ed_proxy", "set peer"))?;
        }
        if raw.family != 0 {
            self.maps
                .handoff
                .set(0, raw, 0)
                .map_err(map_err("ed_handoff", "set"))?;
            tracing::info!(peers = raw.count, "connection handoff peers set");
        }
        Ok(())
    }

    /// Whether the VIP's new TCP connections go to the peers.
    pub fn set_vip_handoff(&mut self, addr: IpAddr, on: bool) -> Result<(), ForwarderError> {
        let Some(v) = self.vips.get(&addr) else {
            return Err(ForwarderError::InvalidSpec {
                field: "handoff",
                value: addr.to_string(),
                reason: "not a VIP of the forwarder",
            });
        };
        self.maps
            .vipho
            .set(v.id, u32::from(on), 0)
            .map_err(map_err("ed_vipho", "set"))?;
        tracing::info!(vip = %addr, on, "VIP connection handoff");
        Ok(())
    }

    /// Whether the VIP hands off now (as the map says).
    pub fn vip_handoff(&self, addr: IpAddr) -> Result<bool, ForwarderError> {
        let Some(v) = self.vips.get(&addr) else {
            return Ok(false);
        };
        let on = self
            .maps
            .vipho
            .get(&v.id, 0)
            .map_err(map_err("ed_vipho", "get"))?;
        Ok(on != 0)
    }
}
