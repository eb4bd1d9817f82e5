//! VIP addresses and links through rtnetlink. The one module that touches
//! the netlink crates (their API breaks at most releases).
//!
//! Addresses edged adds carry the address protocol [`EDGED_ADDR_PROTO`]
//! (IFA_PROTO), so a restarted edged finds the ones it added before and never
//! removes one an operator put there.

use std::collections::BTreeSet;
use std::net::IpAddr;

use futures::TryStreamExt;
use netlink_packet_route::address::{
    AddressAttribute, AddressHeaderFlags, AddressMessage, AddressProtocol,
};
use rtnetlink::Handle;

use super::{Addresses, Component, EffectError, EffectFuture};

/// IFA_PROTO value marking addresses added by edged (0xed).
pub const EDGED_ADDR_PROTO: u8 = 0xed;

/// The VIP-address driver for one interface.
pub struct NetlinkAddresses {
    handle: Handle,
    ifname: String,
    ifindex: u32,
}

fn err(op: String, e: impl std::fmt::Display) -> EffectError {
    EffectError::new(Component::Addresses, op, e)
}

fn prefix_len(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn address_of(m: &AddressMessage) -> Option<IpAddr> {
    m.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    })
}

fn is_ours(m: &AddressMessage) -> bool {
    m.attributes
        .iter()
        .any(|a| matches!(a, AddressAttribute::Protocol(p) if u8::from(*p) == EDGED_ADDR_PROTO))
}

impl NetlinkAddresses {
    /// Opens a netlink connection (in the calling thread's network namespace)
    /// and resolves the interface.
    pub async fn open(ifname: &str) -> Result<Self, EffectError> {
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|e| err("open netlink socket".into(), e))?;
        tokio::spawn(conn);
        let link = link_named(&handle, ifname)
            .await
            .map_err(|e| err(format!("look up interface {ifname}"), e))?;
        Ok(NetlinkAddresses {
            handle,
            ifname: ifname.into(),
            ifindex: link.header.index,
        })
    }

    /// The addresses on the interface that a previous edged added.
    pub async fn adopt(&self) -> Result<BTreeSet<IpAddr>, EffectError> {
        let msgs = self.dump().await?;
        Ok(msgs
            .iter()
            .filter(|m| is_ours(m))
            .filter_map(address_of)
            .collect())
    }

    async fn dump(&self) -> Result<Vec<AddressMessage>, EffectError> {
        self.handle
            .address()
            .get()
            .set_link_index_filter(self.ifindex)
            .execute()
            .try_collect()
            .await
            .map_err(|e| err(format!("list addresses of {}", self.ifname), e))
    }

    async fn add_one(&self, ip: IpAddr) -> Result<(), EffectError> {
        let op = format!("add {ip}/{} to {}", prefix_len(ip), self.ifname);
        if self.dump().await?.iter().any(|m| address_of(m) == Some(ip)) {
            return Ok(()); // already there (ours from before, or the operator's): leave it
        }
        let mut req = self.handle.address().add(self.ifindex, ip, prefix_len(ip));
        let msg = req.message_mut();
        msg.attributes
            .push(AddressAttribute::Protocol(AddressProtocol::from(
                EDGED_ADDR_PROTO,
            )));
        if ip.is_ipv6() {
            msg.header.flags |= AddressHeaderFlags::Nodad;
        }
        req.execute().await.map_err(|e| err(op, e))
    }

    async fn remove_one(&self, ip: IpAddr) -> Result<(), EffectError> {
        let op = format!("remove {ip}/{} from {}", prefix_len(ip), self.ifname);
        let found = self
            .dump()
            .await?
            .into_iter()
            .find(|m| address_of(m) == Some(ip));
        match found {
            Some(m) if is_ours(&m) => self
                .handle
                .address()
                .del(m)
                .execute()
                .await
                .map_err(|e| err(op, e)),
            _ => Ok(()), // gone already, or not edged's to remove
        }
    }
}

impl Addresses for NetlinkAddresses {
    fn add(&mut self, ip: IpAddr) -> EffectFuture<'_> {
        Box::pin(self.add_one(ip))
    }
    fn remove(&mut self, ip: IpAddr) -> EffectFuture<'_> {
        Box::pin(self.remove_one(ip))
    }
    fn list(&mut self) -> EffectFuture<'_, BTreeSet<IpAddr>> {
        Box::pin(self.adopt())
    }
}

// === links ===

/// The link named `ifname`, in words when it cannot be had.
async fn link_named(
    handle: &Handle,
    ifname: &str,
) -> Result<netlink_packet_route::link::LinkMessage, String> {
    handle
        .link()
        .get()
        .match_name(ifname.to_string())
        .execute()
        .try_next()
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no such interface".to_string())
}

/// Reads which XDP program each link runs.
pub struct Links {
    handle: Handle,
}

impl Links {
    /// Opens a netlink connection in the calling thread's network namespace.
    pub fn open() -> Result<Links, EffectError> {
        let (conn, handle, _) = rtnetlink::new_connection()
            .map_err(|e| EffectError::new(Component::Forwarder, "open netlink socket", e))?;
        tokio::spawn(conn);
        Ok(Links { handle })
    }

    /// The id of the XDP program attached to `ifname` (`None`: none).
    pub async fn xdp_prog(&self, ifname: &str) -> Result<Option<u32>, EffectError> {
        use netlink_packet_route::link::{LinkAttribute, LinkXdp};
        let link = link_named(&self.handle, ifname).await.map_err(|e| {
            EffectError::new(
                Component::Forwarder,
                format!("read the XDP program of {ifname}"),
                e,
            )
        })?;
        Ok(link.attributes.iter().find_map(|a| match a {
            LinkAttribute::Xdp(x) => x.iter().find_map(|x| match x {
                LinkXdp::ProgId(id) if *id != 0 => Some(*id),
                _ => None,
            }),
            _ => None,
        }))
    }
}
