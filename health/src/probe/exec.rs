//! exec checks: a program in its own process group, killed with the whole
//! group on timeout and always reaped (no zombie).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::spec::CheckKey;

pub async fn check(
    key: &CheckKey,
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    timeout: Duration,
) -> Result<(), String> {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("EDGED_VIP", &key.vip)
        .env("EDGED_SERVICE", &key.service)
        .env("EDGED_PROXY", &key.proxy)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    // Declared after `child`, so dropped before it: even when this future
    // is cancelled (timeout, reload, checker dropped) the whole group dies;
    // tokio reaps the child (kill_on_drop).
    let group = GroupGuard(child.id().map(|id| Pid::from_raw(id as i32)));
    // Slightly inside the probe's own timeout, so the group is killed here
    // and reaped before the outer timeout fires.
    let waited = tokio::time::timeout(timeout.mul_f64(0.95), child.wait()).await;
    let status = match waited {
        Ok(s) => s.map_err(|e| e.to_string())?,
        Err(_) => {
            group.kill();
            let _ = child.wait().await;
            return Err(format!(
                "timeout after {}ms (process group killed)",
                timeout.as_millis()
            ));
        }
    };
    // Anything the check left running in its group goes too (on drop).
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(c), _) => Err(format!("exit status {c}")),
        (None, Some(s)) => Err(format!("killed by signal {s}")),
        (None, None) => Err("ended without status".into()),
    }
}

// === impl GroupGuard ===

/// Kills the check's process group when dropped.
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    fn kill(&self) {
        if let Some(pg) = self.0 {
            let _ = killpg(pg, Signal::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}
