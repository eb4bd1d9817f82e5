//! edged's XDP data plane.
//!
//! - `bpf/edged_xdp.bpf.c`: the program (parsing, VIP match, connection
//!   table, Maglev pick, L2 delivery, ICMP errors, handoff to peer nodes,
//!   counters), built by
//!   `build.rs` with clang and embedded here.
//! - [`Forwarder`]: loads or re-adopts it (pinned under edged's bpffs dir),
//!   writes proxies, VIPs and Maglev tables, reads counters.
//! - [`maglev`]: the pure weighted Maglev table builder.
//!
//! Network namespaces: interface names and devmap entries are resolved in
//! the network namespace of the calling thread.

pub mod abi;
mod counters;
mod error;
mod flows;
mod forwarder;
mod handoff;
mod keys;
mod load;
pub mod maglev;
mod maps;
mod pools;
mod program;
mod proxies;
mod ring;
mod spec;
mod sys;
mod vips;

pub use counters::{Counters, GlobalCounters, ProxyCounters, Usage, VipCounters};
pub use error::ForwarderError;
pub use flows::{Flows, HeldCounter};
pub use forwarder::Forwarder;
#[doc(hidden)]
pub use forwarder::bench;
pub use handoff::HandoffSpec;
pub use load::validate as validate_spec;
pub use spec::{
    DEFAULT_MAX_POOLS, DEFAULT_MAX_VIP_PORTS, DEFAULT_MAX_VIPS, DEFAULT_PEER_FLOWS,
    DEFAULT_TABLE_SIZE, Delivery, ForwarderSpec, LIMIT_MAX_POOLS, LIMIT_MAX_VIP_PORTS,
    LIMIT_MAX_VIPS, MAX_PEER_FLOWS, MIN_PEER_FLOWS, NoHealthy, Proto, ProxyTarget, VipService,
    XdpMode,
};

// The daemon moves the forwarder into its effect driver.
const _: () = {
    const fn send<T: Send>() {}
    send::<Forwarder>();
};
