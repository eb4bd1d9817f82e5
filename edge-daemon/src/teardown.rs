//! `edged teardown`: takes away what a stopped edged leaves on the host on
//! purpose, for the next edged, when no next edged will come (the package
//! is being removed):
//!
//! ```text
//!  control socket answers? ── yes ─► refuse: edged runs (stop it first)
//!  managed BIRD still held by its keeper (a planned restart's)? ─► keeper: stop
//!  VIP addresses marked as edged's (IFA_PROTO 0xed) on node.vip_interface ─► remove
//!  forwarder.pin_dir ─► remove link_* pins (detaches XDP), then the maps, the dir
//! ```
//! A graceful stop withdraws the routes and removes the addresses itself,
//! but keeps the XDP program attached and pinned (a start re-adopts it and
//! every flow); a planned restart or a crash keeps more. Nothing here
//! touches what edged did not make: the operator's addresses, another
//! directory under bpffs, an external BIRD.

use std::path::{Path, PathBuf};
use std::time::Duration;

use edged_bgp::BirdMode;

use crate::effects::{Addresses, NetlinkAddresses};
use crate::specs::Specs;

/// Why a teardown did not finish.
#[derive(Debug, thiserror::Error)]
pub enum TeardownError {
    /// edged answers on its control socket: tearing down under it would
    /// cut its data plane.
    #[error(
        "edged is running ({socket} answers); stop it first (systemctl stop edged, or edgectl stop)"
    )]
    Running {
        /// node.control_socket.
        socket: PathBuf,
    },
    /// A step failed; the ones before it are done.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The VIP addresses could not be listed or removed.
    #[error("{0}")]
    Addresses(String),
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TeardownError {
    let path = path.to_path_buf();
    move |source| TeardownError::Io { op, path, source }
}

/// Runs the teardown for `cfg` and its `specs`; returns what it did, one
/// line each.
pub async fn run(cfg: &edged_config::Config, specs: &Specs) -> Result<Vec<String>, TeardownError> {
    let socket = &cfg.node.control_socket;
    if tokio::net::UnixStream::connect(socket).await.is_ok() {
        return Err(TeardownError::Running {
            socket: socket.clone(),
        });
    }
    let mut done = Vec::new();
    if let BirdMode::Managed { state_dir, .. } = &specs.bgp.mode {
        let path = state_dir.join("keeper.sock");
        if let Some(link) = edged_bgp::keeper::KeeperLink::connect(&path)
            .map_err(io("take over BIRD's keeper at", &path))?
        {
            let bird = link.bird_pid;
            // BIRD gets SIGTERM (a Cease to its peers), SIGKILL after 5 s.
            link.stop(Duration::from_secs(7));
            done.push(format!(
                "stopped BIRD (pid {bird}), kept for a planned restart"
            ));
        }
    }
    // No interface, no address of ours on it.
    let vip_if = cfg.node.vip_interface.as_ref();
    if let Some(ifname) = vip_if.filter(|i| nix::net::if_::if_nametoindex(i.as_str()).is_ok()) {
        let failed = |e: crate::effects::EffectError| TeardownError::Addresses(e.to_string());
        let mut addrs = NetlinkAddresses::open(ifname).await.map_err(failed)?;
        for ip in addrs.adopt().await.map_err(failed)? {
            addrs.remove(ip).await.map_err(failed)?;
            done.push(format!("removed VIP address {ip} from {ifname}"));
        }
    }
    if let Some(f) = &specs.forwarder {
        done.extend(remove_pins(&f.pin_dir)?);
    }
    Ok(done)
}

/// Removes the link pins first (the last reference to a bpf_link: the
/// program detaches from that interface), then the rest and the directory.
fn remove_pins(dir: &Path) -> Result<Vec<String>, TeardownError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("read", dir)(e)),
    };
    let mut done = Vec::new();
    let mut pins = 0;
    for entry in entries {
        let entry = entry.map_err(io("read", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        pins += 1;
        if name.starts_with("link_") {
            std::fs::remove_file(entry.path()).map_err(io("remove", &entry.path()))?;
            done.push(format!("detached XDP: removed {}", entry.path().display()));
        }
    }
    std::fs::remove_dir_all(dir).map_err(io("remove", dir))?;
    done.push(format!("removed {} ({pins} pins)", dir.display()));
    Ok(done)
}
