//! edged's BGP: drives a BIRD 2 daemon through its control socket.
//!
//! ```text
//!  daemon ──set_route/reconfigure──▶ Speaker ──unix socket──▶ BIRD ──BGP──▶ ToR
//!                                       │ managed: keeper (holds BIRD across a planned
//!                                       │ restart, kills it when edged dies)
//!                                       └─▶ setpriv --pdeathsig KILL bird -f
//! ```
//! `reply`, `render`, `status` and `spec` are pure; `client`, `backend`,
//! `keeper`, `managed`, `external` and `speaker` do IO.

mod backend;
pub mod client;
pub mod error;
pub mod external;
pub mod keeper;
pub mod managed;
pub mod render;
pub mod reply;
pub mod speaker;
pub mod spec;
pub mod status;

pub use client::{BirdClient, ClientError};
pub use error::BgpError;
pub use reply::{ConfigLocation, Reply, ReplyError};
pub use speaker::{COMMAND_TIMEOUT, Exports, Speaker, SupervisorEvent};
pub use spec::{
    BgpSpec, BirdMode, DrainPolicy, KeeperCommand, PeerSpec, RouteState, SpecError, VipRoute,
};
pub use status::{ExportMismatch, ExportSets, MismatchKind, PeerStatus};
