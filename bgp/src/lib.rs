//! edged's BGP: drives a BIRD 2 daemon through its control socket.
//!
//! ```text
//!  daemon reconcile loop ──set_route/reconfigure──▶ Speaker ──unix socket──▶ BIRD ──BGP──▶ ToR
//!                                                     │ managed: spawns `setpriv --pdeathsig KILL bird -f`
//! ```
//! `reply`, `render`, `status` and `spec` are pure; `client`, `managed`,
//! `external` and `speaker` do IO.

pub mod client;
pub mod error;
pub mod external;
mod lifecycle;
pub mod managed;
pub mod render;
pub mod reply;
pub mod speaker;
pub mod spec;
pub mod status;

pub use client::{BirdClient, ClientError};
pub use error::BgpError;
pub use reply::{ConfigLocation, Reply, ReplyError};
pub use speaker::{Speaker, SupervisorEvent};
pub use spec::{BgpSpec, BirdMode, DrainPolicy, PeerSpec, RouteState, SpecError, VipRoute};
pub use status::{ExportMismatch, ExportSets, MismatchKind, PeerStatus};
