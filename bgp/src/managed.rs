//! Files and child process of a managed BIRD.
//!
//! The child is started as `setpriv --pdeathsig KILL -- bird -f -c .. -s .. -P ..`.
//! `setpriv` (util-linux, in Debian 12's essential set) sets PR_SET_PDEATHSIG and
//! then execs BIRD, so no `unsafe` `pre_exec` hook is needed. The death signal
//! fires when the *thread* that spawned the child exits: start the Speaker from a
//! runtime whose threads live as long as the daemon (never inside `spawn_blocking`).

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncWriteExt as _;
use tokio::process::{Child, Command};

use crate::error::BgpError;
use crate::reply::parse_config_location;

/// Paths inside the managed state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub pid: PathBuf,
}

impl Paths {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            config: dir.join("bird.conf"),
            socket: dir.join("bird.ctl"),
            pid: dir.join("bird.pid"),
        }
    }
}

/// Write `text` to `path.new` (mode 0600: it may hold MD5 passwords) and return that path.
pub async fn write_candidate(path: &Path, text: &str) -> Result<PathBuf, BgpError> {
    let mut cand = path.as_os_str().to_owned();
    cand.push(".new");
    let cand = PathBuf::from(cand);
    let err = |source| BgpError::Write {
        path: cand.clone(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true).mode(0o600);
    let mut f = tokio::fs::OpenOptions::from(opts)
        .open(&cand)
        .await
        .map_err(err)?;
    f.write_all(text.as_bytes()).await.map_err(err)?;
    f.sync_all().await.map_err(err)?;
    Ok(cand)
}

/// Atomically move a checked candidate into place.
pub async fn commit_candidate(cand: &Path, path: &Path) -> Result<(), BgpError> {
    tokio::fs::rename(cand, path)
        .await
        .map_err(|source| BgpError::Write {
            path: path.into(),
            source,
        })
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

/// Find `setpriv` in PATH.
fn setpriv() -> Result<PathBuf, BgpError> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join("setpriv"))
        .find(|p| p.is_file())
        .ok_or(BgpError::SetprivMissing)
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

/// Start BIRD in the foreground with a parent-death SIGKILL.
pub fn spawn(bird: &Path, paths: &Paths) -> Result<Child, BgpError> {
    kill_stale(paths);
    let _ = std::fs::remove_file(&paths.socket);
    let mut cmd = Command::new(setpriv()?);
    cmd.args(["--pdeathsig", "KILL", "--"])
        .arg(bird)
        .arg("-f")
        .arg("-c")
        .arg(&paths.config)
        .arg("-s")
        .arg(&paths.socket)
        .arg("-P")
        .arg(&paths.pid)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd.spawn().map_err(|source| BgpError::Spawn {
        binary: bird.into(),
        source,
    })
}
