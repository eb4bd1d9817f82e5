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
use edged_files::PrivateDir;

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
/// If BIRD rejects it, the previous include file is restored. The file is
/// written beside itself and renamed, never through a link.
pub async fn apply(client: &mut BirdClient, include: &Path, text: &str) -> Result<(), BgpError> {
    let (dir, name) = include_dir(include)?;
    let previous = dir.read(&name, 64 << 20).ok().flatten();
    write(&dir, &name, include, text.as_bytes())?;
    let checked = match check(
        "configure check",
        client.raw_command("configure check").await?,
    ) {
        Ok(_) => Ok(()),
        Err(e) => Err(BgpError::from(e)),
    };
    if let Err(e) = checked {
        let restore = match previous {
            Some(bytes) => write(&dir, &name, include, &bytes),
            None => dir.remove(&name).map_err(|e| BgpError::Write {
                path: include.into(),
                source: std::io::Error::other(e.to_string()),
            }),
        };
        if let Err(re) = restore {
            tracing::error!(error = %re, path = %include.display(), "cannot restore include file");
        }
        return Err(reject(e));
    }
    configure(client, "configure").await
}

fn include_dir(include: &Path) -> Result<(PrivateDir, String), BgpError> {
    let bad = || BgpError::Write {
        path: include.into(),
        source: std::io::Error::other("not a file path"),
    };
    let parent = include.parent().ok_or_else(bad)?;
    let name = include
        .file_name()
        .ok_or_else(bad)?
        .to_string_lossy()
        .into_owned();
    let dir = PrivateDir::open_shared(parent).map_err(|e| BgpError::Write {
        path: parent.into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok((dir, name))
}

fn write(dir: &PrivateDir, name: &str, path: &Path, bytes: &[u8]) -> Result<(), BgpError> {
    dir.write(name, bytes, 0o640).map_err(|e| match e {
        edged_files::FileError::Io { source, .. } => BgpError::Write {
            path: path.into(),
            source,
        },
        other => BgpError::Write {
            path: path.into(),
            source: std::io::Error::other(other.to_string()),
        },
    })
}

fn reject(e: BgpError) -> BgpError {
    match e {
        BgpError::Client(crate::client::ClientError::Config(loc)) => BgpError::ConfigRejected(loc),
        other => other,
    }
}
