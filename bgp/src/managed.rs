//! Files of a managed BIRD, its config check, and the removal of a BIRD a
//! crashed run left behind.
//!
//! BIRD runs under its [keeper](crate::keeper) as
//! `setpriv --pdeathsig KILL -- bird -f -c .. -s .. -P ..`: `setpriv`
//! (util-linux, in Debian 12's essential set) sets PR_SET_PDEATHSIG and then
//! execs BIRD, so no `unsafe` `pre_exec` hook is needed.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::error::BgpError;
use crate::reply::parse_config_location;

/// Paths inside the managed state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub pid: PathBuf,
    /// The keeper's socket.
    pub keeper: PathBuf,
}

impl Paths {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            config: dir.join("bird.conf"),
            socket: dir.join("bird.ctl"),
            pid: dir.join("bird.pid"),
            keeper: dir.join("keeper.sock"),
        }
    }
}

/// Parse-check a config file with `bird -p`.
pub async fn check_config(bird: &Path, config: &Path) -> Result<(), BgpError> {
    let out = Command::new(bird)
        .arg("-p")
        .arg("-c")
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| BgpError::Spawn {
            binary: bird.into(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_string();
    match parse_config_location(&first) {
        Some(loc) => Err(BgpError::ConfigRejected(loc)),
        None => Err(BgpError::CheckFailed {
            path: config.into(),
            output: stderr.trim().to_string(),
        }),
    }
}

/// Kill a BIRD left over from a previous run on this state directory (its pid
/// file names a live `bird` whose command line uses our socket), so two BIRDs
/// never announce for one node.
pub fn kill_stale(paths: &Paths) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(&paths.pid)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let sock = paths.socket.as_os_str().as_encoded_bytes();
    let is_bird = args.first().is_some_and(|a| a.ends_with(b"bird"));
    if !is_bird || !args.contains(&sock) {
        return None;
    }
    tracing::warn!(pid, socket = %paths.socket.display(), "killing BIRD left over from a previous run");
    let pid = nix::unistd::Pid::from_raw(pid);
    nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL).ok()?;
    Some(pid.as_raw())
}
