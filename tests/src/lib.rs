//! Building blocks for namespace labs. Every resource is an RAII guard that
//! removes what it created when dropped, also when a test panics; every name
//! is unique (prefix, pid, counter) so tests run in parallel.
//!
//! ```text
//! NetNs::new("ed")  ──► ip netns add ed<pid><n> ; lo up
//!   drop            ──► kill every process in it ; ip netns del
//! Proc::spawn(cmd)  ──► child process ; drop: SIGKILL + wait
//! TempDir::new("x") ──► /tmp/edged-x-<pid>-<n> ; drop: rm -rf
//! ```

mod bird;
mod guard;
pub mod lab;
pub mod net;
mod nginx;
mod poll;
mod rng;

pub use bird::{BirdTor, Neighbor};
pub use guard::{NetNs, Proc, TempDir, unique};
pub use nginx::{Health, Nginx};
pub use poll::{poll_until, sh, sh_ok};
pub use rng::Rng;
