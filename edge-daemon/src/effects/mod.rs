//! The narrow interfaces through which the daemon changes the world. The
//! reconcile step decides; these do. Production implementations are real
//! (netlink today; the XDP forwarder and the BIRD announcer arrive with their
//! issues); a missing one is `None` and the status says so.

mod bird;
mod netlink;
mod xdp;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

pub use bird::{BirdAnnouncer, bird_name};
pub use netlink::NetlinkAddresses;
pub use xdp::XdpForwarder;

use crate::reconcile::RouteState;

/// A boxed future of one effect.
pub type EffectFuture<'a> = Pin<Box<dyn Future<Output = Result<(), EffectError>> + Send + 'a>>;

/// An effect that failed; the reconcile loop retries it on the next pass.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{component}: {op} failed: {message}")]
pub struct EffectError {
    /// Which driver (`addresses`, `forwarder`, `announcer`).
    pub component: &'static str,
    /// What it was doing, e.g. `add 203.0.113.10/32 to lo`.
    pub op: String,
    /// The cause.
    pub message: String,
}

/// VIP addresses on the VIP interface.
pub trait Addresses: Send {
    /// Puts `ip` (as /32 or /128) on the interface, marked as edged's.
    fn add(&mut self, ip: IpAddr) -> EffectFuture<'_>;
    /// Removes `ip` if edged added it; an address edged did not add stays.
    fn remove(&mut self, ip: IpAddr) -> EffectFuture<'_>;
}

/// The data plane: which proxies serve a VIP, with what weights.
pub trait Forwarder: Send {
    /// Replaces the VIP's table.
    fn set_table(&mut self, vip: &str, proxies: &[(String, u32)]) -> EffectFuture<'_>;
    /// Removes the VIP.
    fn remove_table(&mut self, vip: &str) -> EffectFuture<'_>;
    /// Hands the VIP's new connections to the peer nodes (`on`), or stops.
    fn set_handoff(&mut self, vip: &str, on: bool) -> EffectFuture<'_>;
}

/// BGP: announce, drain or withdraw a VIP.
pub trait Announcer: Send {
    /// Moves the VIP's route to `state`.
    fn set_route(&mut self, vip: &str, state: RouteState) -> EffectFuture<'_>;
}
