//! `configure` handling and the external-mode include file.
//!
//! External mode: the operator adds to their `bird.conf`
//! ```text
//! include "/var/lib/edged/edged-bird.conf";
//! ```
//! edged owns that file (tables `edged4`/`edged6`, filters and protocols named
//! `edged_*`) and runs `configure check` then `configure` on the operator's socket.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::client::{BirdClient, check};
use crate::error::BgpError;
use crate::managed;

const RECONFIG_WAIT: Duration = Duration::from_secs(30);

/// Send a `configure` command and wait until the new configuration is active.
pub async fn configure(client: &mut BirdClient, cmd: &str) -> Result<(), BgpError> {
    let reply = check(cmd, client.raw_command(cmd).await?)?;
    match reply.code {
        // 0003 Reconfigured, 0018/0019: confirmed / nothing to do.
        3 | 18 | 19 => return Ok(()),
        // 0004 in progress, 0005 queued.
        4 | 5 => {}
        code => {
            let message = reply.message();
            return Err(BgpError::Unexpected {
                command: cmd.into(),
                code,
                message,
            });
        }
    }
    let started = Instant::now();
    loop {
        let status = client.command("show status").await?;
        if !status.message().contains("Reconfiguration in progress") {
            return Ok(());
        }
        if started.elapsed() > RECONFIG_WAIT {
            let message = format!("still reconfiguring after {RECONFIG_WAIT:?}");
            return Err(BgpError::Unexpected {
                command: cmd.into(),
                code: 4,
                message,
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Replace the include file, let BIRD check the whole config, then configure.
/// If BIRD rejects it, the previous include file is restored.
pub async fn apply(client: &mut BirdClient, include: &Path, text: &str) -> Result<(), BgpError> {
    let previous = tokio::fs::read(include).await.ok();
    let cand = managed::write_candidate(include, text).await?;
    managed::commit_candidate(&cand, include).await?;
    let checked = match check(
        "configure check",
        client.raw_command("configure check").await?,
    ) {
        Ok(_) => Ok(()),
        Err(e) => Err(BgpError::from(e)),
    };
    if let Err(e) = checked {
        let restore = match previous {
            Some(bytes) => tokio::fs::write(include, bytes).await,
            None => tokio::fs::remove_file(include).await,
        };
        if let Err(re) = restore {
            tracing::error!(error = %re, path = %include.display(), "cannot restore include file");
        }
        return Err(reject(e));
    }
    configure(client, "configure").await
}

fn reject(e: BgpError) -> BgpError {
    match e {
        BgpError::Client(crate::client::ClientError::Config(loc)) => BgpError::ConfigRejected(loc),
        other => other,
    }
}
