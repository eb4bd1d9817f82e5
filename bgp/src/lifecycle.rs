//! Lifecycle of the speaker: supervision, restart, shutdown, and the helpers
//! that render, check and launch BIRD.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::process::Child;

use crate::client::BirdClient;
use crate::error::BgpError;
use crate::managed::{self, Paths};
use crate::render::{RenderInput, render};
use crate::speaker::{Backend, COMMAND_TIMEOUT, Speaker, SupervisorEvent};
use crate::spec::{BgpSpec, RouteState};

const START_TIMEOUT: Duration = Duration::from_secs(10);

// === impl Speaker ===

impl Speaker {
    /// Check BIRD once; restart a dead managed BIRD (or reconnect) and re-apply routes.
    pub async fn supervise(&mut self) -> Result<SupervisorEvent, BgpError> {
        let reason = match &mut self.backend {
            Backend::Managed { child, .. } => match child.try_wait() {
                Ok(Some(status)) => Some(format!("BIRD exited with {status}")),
                Ok(None) => None,
                Err(e) => Some(format!("cannot poll BIRD: {e}")),
            },
            Backend::External { .. } => None,
        };
        let reason = match reason {
            Some(r) => r,
            None => match self.client.command("show status").await {
                Ok(_) => return Ok(SupervisorEvent::Healthy),
                Err(e) => format!("control socket failed: {e}"),
            },
        };
        tracing::warn!(reason, "BIRD lost; restarting and re-applying routes");
        self.recover().await?;
        self.restarts += 1;
        Ok(SupervisorEvent::Restarted {
            reason,
            restarts: self.restarts,
        })
    }

    async fn recover(&mut self) -> Result<(), BgpError> {
        let managed = matches!(self.backend, Backend::Managed { .. });
        let text = render_spec(&self.spec, &self.states, managed)?;
        match &mut self.backend {
            Backend::Managed { bird, paths, child } => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                install_managed(bird, &paths.config, &text).await?;
                let (client, new_child) = launch(bird, paths).await?;
                self.client = client;
                **child = new_child;
            }
            Backend::External { socket, include } => {
                self.client = BirdClient::connect(socket, COMMAND_TIMEOUT).await?;
                crate::external::apply(&mut self.client, include, &text).await?;
            }
        }
        Ok(())
    }

    /// Times a dead BIRD was restarted (or the socket reconnected).
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Total export mismatches found by [`Speaker::verify_exports`].
    pub fn export_mismatches_total(&self) -> u64 {
        self.mismatches
    }

    /// PID of the managed BIRD child.
    pub fn bird_pid(&self) -> Option<u32> {
        match &self.backend {
            Backend::Managed { child, .. } => child.id(),
            Backend::External { .. } => None,
        }
    }

    /// The control-socket path.
    pub fn socket_path(&self) -> PathBuf {
        self.client.path().to_path_buf()
    }

    /// Withdraw every VIP, then stop a managed BIRD (sessions close with a Cease).
    pub async fn shutdown(mut self) {
        for pat in ["disable \"edged_a_*\"", "disable \"edged_d_*\""] {
            if let Err(e) = self.client.command(pat).await {
                tracing::warn!(error = %e, "withdraw on shutdown failed");
            }
        }
        if let Backend::Managed { child, .. } = &mut self.backend {
            let _ = self.client.raw_command("down").await;
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}

// === helpers ===

pub(crate) fn render_spec(
    spec: &BgpSpec,
    states: &BTreeMap<String, RouteState>,
    managed: bool,
) -> Result<String, BgpError> {
    let mut passwords = BTreeMap::new();
    for p in &spec.peers {
        if let Some(path) = &p.password_file {
            let text = std::fs::read_to_string(path).map_err(|source| BgpError::PasswordFile {
                peer: p.name.clone(),
                path: path.clone(),
                source,
            })?;
            let pw = text.trim_end_matches(['\n', '\r']);
            if pw.is_empty() || pw.chars().any(|c| c == '"' || c.is_control()) {
                return Err(BgpError::BadPassword {
                    peer: p.name.clone(),
                    path: path.clone(),
                });
            }
            passwords.insert(p.name.clone(), pw.to_string());
        }
    }
    let input = RenderInput {
        states: Some(states),
        passwords: Some(&passwords),
        managed,
    };
    Ok(render(spec, &input))
}

pub(crate) async fn install_managed(
    bird: &std::path::Path,
    config: &std::path::Path,
    text: &str,
) -> Result<(), BgpError> {
    let cand = managed::write_candidate(config, text).await?;
    managed::check_config(bird, &cand).await?;
    managed::commit_candidate(&cand, config).await
}

pub(crate) async fn launch(
    bird: &std::path::Path,
    paths: &Paths,
) -> Result<(BirdClient, Child), BgpError> {
    let mut child = managed::spawn(bird, paths)?;
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(BgpError::ChildExited {
                status: status.to_string(),
            });
        }
        if paths.socket.exists()
            && let Ok(c) = BirdClient::connect(&paths.socket, COMMAND_TIMEOUT).await
        {
            tracing::info!(pid = child.id(), socket = %paths.socket.display(), "managed BIRD started");
            return Ok((c, child));
        }
        if started.elapsed() > START_TIMEOUT {
            let _ = child.kill().await;
            return Err(BgpError::StartTimeout {
                socket: paths.socket.clone(),
                waited: START_TIMEOUT,
            });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
