//! Who runs BIRD, and how a configuration reaches it.
//!
//! - Managed: edged's own BIRD, held by a [keeper](crate::keeper) in the
//!   state directory (`bird.conf`, `bird.ctl`, `bird.pid`, `keeper.sock`).
//!   A config is written as a candidate beside `bird.conf` (never through a
//!   link), checked with `bird -p`, then renamed into place.
//! - External: an operator's BIRD includes edged's file; edged writes it,
//!   runs `configure check` and `configure`, and restores the old file on
//!   a rejection.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use edged_files::PrivateDir;
use tokio::process::{Child, Command};

use crate::client::{BirdClient, COMMAND_TIMEOUT};
use crate::error::BgpError;
use crate::external;
use crate::keeper::{KeeperArgs, KeeperLink};
use crate::managed::{self, Paths};
use crate::spec::{BgpSpec, BirdMode, KeeperCommand};

/// How long BIRD (and its keeper) may take to open their sockets.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Name of the candidate config beside `bird.conf`.
const CANDIDATE: &str = "bird.conf.new";

pub(crate) enum Backend {
    Managed(Box<Managed>),
    External(External),
}

pub(crate) struct Managed {
    bird: PathBuf,
    keeper: KeeperCommand,
    grace: Duration,
    dir: PrivateDir,
    paths: Paths,
    link: Option<KeeperLink>,
    /// The keeper, when this edged started it (reaped when it exits).
    child: Option<Child>,
}

pub(crate) struct External {
    socket: PathBuf,
    include: PathBuf,
}

fn write_err(path: &Path) -> impl FnOnce(edged_files::FileError) -> BgpError + '_ {
    move |e| match e {
        edged_files::FileError::Io { source, path, .. } => BgpError::Write { path, source },
        other => BgpError::Write {
            path: path.to_owned(),
            source: std::io::Error::other(other.to_string()),
        },
    }
}

impl Backend {
    pub(crate) fn new(spec: &BgpSpec) -> Result<Backend, BgpError> {
        Ok(match &spec.mode {
            BirdMode::Managed {
                bird_binary,
                state_dir,
                keeper,
                handover_grace,
            } => {
                let dir = PrivateDir::open(state_dir).map_err(write_err(state_dir))?;
                Backend::Managed(Box::new(Managed {
                    bird: bird_binary.clone(),
                    keeper: keeper.clone(),
                    grace: *handover_grace,
                    paths: Paths::new(state_dir),
                    dir,
                    link: None,
                    child: None,
                }))
            }
            BirdMode::External {
                socket,
                include_file,
            } => Backend::External(External {
                socket: socket.clone(),
                include: include_file.clone(),
            }),
        })
    }

    pub(crate) fn managed(&self) -> bool {
        matches!(self, Backend::Managed(_))
    }

    /// A BIRD that is already running with edged's protocols: a managed one
    /// whose keeper waits for a holder (edged's planned restart), or the
    /// operator's. `None`: nothing to adopt.
    pub(crate) async fn adopt(&mut self) -> Result<Option<BirdClient>, BgpError> {
        match self {
            Backend::Managed(m) => {
                let link = match KeeperLink::connect(&m.paths.keeper) {
                    Ok(Some(link)) => link,
                    Ok(None) => return Ok(None),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot take over the kept BIRD; starting a new one");
                        return Ok(None);
                    }
                };
                match BirdClient::connect(&m.paths.socket, COMMAND_TIMEOUT).await {
                    Ok(c) => {
                        tracing::info!(
                            bird = link.bird_pid,
                            keeper = link.keeper_pid,
                            "took over the running BIRD"
                        );
                        m.link = Some(link);
                        Ok(Some(c))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the kept BIRD does not answer; starting a new one");
                        link.stop(Duration::from_secs(6));
                        Ok(None)
                    }
                }
            }
            Backend::External(x) => {
                Ok(Some(BirdClient::connect(&x.socket, COMMAND_TIMEOUT).await?))
            }
        }
    }

    /// Starts BIRD with `text` (managed) or installs `text` into the
    /// operator's BIRD (external).
    pub(crate) async fn launch(&mut self, text: &str) -> Result<BirdClient, BgpError> {
        match self {
            Backend::Managed(m) => {
                m.install(text).await?;
                m.spawn().await
            }
            Backend::External(x) => x.connect_and_apply(text).await,
        }
    }

    /// Installs `text` into the running BIRD (`configure`).
    pub(crate) async fn apply(
        &mut self,
        client: &mut BirdClient,
        text: &str,
    ) -> Result<(), BgpError> {
        match self {
            Backend::Managed(m) => {
                m.install(text).await?;
                external::configure(client, "configure").await
            }
            Backend::External(x) => external::apply(client, &x.include, text).await,
        }
    }

    /// Why BIRD is gone, if it is (managed: the keeper's connection closed).
    pub(crate) fn gone(&mut self) -> Option<String> {
        match self {
            Backend::Managed(m) => {
                if let Some(c) = &mut m.child {
                    let _ = c.try_wait();
                }
                match m.link.as_mut().map(KeeperLink::alive) {
                    Some(true) => None,
                    Some(false) => Some("BIRD exited (its keeper closed the connection)".into()),
                    None => Some("BIRD is not running".into()),
                }
            }
            Backend::External(_) => None,
        }
    }

    /// Ends a dead or hung BIRD and starts a new one with `text`
    /// (external: reconnects and re-applies).
    pub(crate) async fn relaunch(&mut self, text: &str) -> Result<BirdClient, BgpError> {
        match self {
            Backend::Managed(m) => {
                m.end().await;
                m.install(text).await?;
                m.spawn().await
            }
            Backend::External(x) => x.connect_and_apply(text).await,
        }
    }

    pub(crate) fn bird_pid(&self) -> Option<u32> {
        match self {
            Backend::Managed(m) => m.link.as_ref().map(|l| l.bird_pid as u32),
            Backend::External(_) => None,
        }
    }

    /// A planned restart of edged: the keeper holds BIRD, its sessions and
    /// routes for the next edged (managed); an external BIRD stays as it is.
    pub(crate) fn handover(self) {
        if let Backend::Managed(mut m) = self
            && let Some(link) = m.link.take()
        {
            match link.handover() {
                Ok(()) => {
                    tracing::info!(grace = ?m.grace, "BIRD handed to its keeper for the next edged")
                }
                Err(e) => tracing::error!(error = %e, "handover to the keeper failed; BIRD stops"),
            }
        }
    }

    /// Stops a managed BIRD (after edged withdrew its routes): `down`, then
    /// the keeper ends.
    pub(crate) async fn stop(self, client: &mut BirdClient) {
        if let Backend::Managed(mut m) = self {
            let _ = client.raw_command("down").await;
            if let Some(link) = m.link.take() {
                link.stop(Duration::from_secs(6));
            }
            if let Some(mut c) = m.child.take() {
                let _ = tokio::time::timeout(Duration::from_secs(2), c.wait()).await;
            }
        }
    }
}

// === impl External ===

impl External {
    /// Connects to the operator's BIRD and installs `text` there.
    async fn connect_and_apply(&self, text: &str) -> Result<BirdClient, BgpError> {
        let mut c = BirdClient::connect(&self.socket, COMMAND_TIMEOUT).await?;
        external::apply(&mut c, &self.include, text).await?;
        Ok(c)
    }
}

// === impl Managed ===

impl Managed {
    /// Candidate beside `bird.conf`, `bird -p`, rename.
    async fn install(&self, text: &str) -> Result<(), BgpError> {
        let cand = self.paths.dir.join(CANDIDATE);
        self.dir
            .write(CANDIDATE, text.as_bytes(), 0o600)
            .map_err(write_err(&cand))?;
        managed::check_config(&self.bird, &cand).await?;
        self.dir
            .rename(CANDIDATE, "bird.conf")
            .map_err(write_err(&self.paths.config))
    }

    /// Starts a keeper with BIRD under it and takes its hold.
    async fn spawn(&mut self) -> Result<BirdClient, BgpError> {
        managed::kill_stale(&self.paths);
        let _ = self.dir.remove("bird.ctl");
        let _ = self.dir.remove("keeper.sock");
        let mut bird: Vec<String> = vec![self.bird.display().to_string()];
        for a in [
            OsString::from("-f"),
            "-c".into(),
            self.paths.config.clone().into(),
            "-s".into(),
            self.paths.socket.clone().into(),
            "-P".into(),
            self.paths.pid.clone().into(),
        ] {
            bird.push(a.to_string_lossy().into_owned());
        }
        let args = KeeperArgs {
            socket: self.paths.keeper.clone(),
            grace: self.grace,
            bird,
        };
        let mut cmd = Command::new(&self.keeper.program);
        cmd.args(&self.keeper.args)
            .args(args.to_args())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().map_err(|source| BgpError::Spawn {
            binary: self.keeper.program.clone(),
            source,
        })?;
        let started = Instant::now();
        let link = loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(BgpError::ChildExited {
                    status: status.to_string(),
                });
            }
            if let Ok(Some(link)) = KeeperLink::connect(&self.paths.keeper) {
                break link;
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill().await;
                return Err(BgpError::StartTimeout {
                    socket: self.paths.keeper.clone(),
                    waited: START_TIMEOUT,
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        self.child = Some(child);
        self.link = Some(link);
        loop {
            if self.gone().is_some() {
                return Err(BgpError::ChildExited {
                    status: "BIRD exited during start".into(),
                });
            }
            if self.paths.socket.exists()
                && let Ok(c) = BirdClient::connect(&self.paths.socket, COMMAND_TIMEOUT).await
            {
                tracing::info!(pid = ?self.link.as_ref().map(|l| l.bird_pid), socket = %self.paths.socket.display(), "managed BIRD started");
                return Ok(c);
            }
            if started.elapsed() > START_TIMEOUT {
                self.end().await;
                return Err(BgpError::StartTimeout {
                    socket: self.paths.socket.clone(),
                    waited: START_TIMEOUT,
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn gone(&mut self) -> Option<()> {
        match self.link.as_mut().map(KeeperLink::alive) {
            Some(true) => None,
            _ => Some(()),
        }
    }

    /// Kills BIRD and its keeper (a hung or dead BIRD), waiting briefly for
    /// the keeper to go.
    async fn end(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        if let Some(mut link) = self.link.take() {
            let _ = kill(Pid::from_raw(link.bird_pid), Signal::SIGKILL);
            let t0 = Instant::now();
            while link.alive() && t0.elapsed() < Duration::from_secs(2) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if link.alive() {
                let _ = kill(Pid::from_raw(link.keeper_pid), Signal::SIGKILL);
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), c.wait()).await;
        }
        managed::kill_stale(&self.paths);
    }
}
