//! The control API: HTTP/JSON on a local Unix socket (root, or a configured
//! group, mode 0660). The server turns each request into a [`Query`] for the
//! daemon loop and waits for its answer.

pub mod bounded;
pub mod client;
pub mod proto;
mod server;

pub use server::{ApiError, Query, Request, bind, serve};
