//! exec checks: a program in its own process group, killed with the whole
//! group on timeout and always reaped (no zombie), run without the
//! capabilities edged holds for the data plane and the routes.
//!
//! ```text
//!  edged ──spawn (setpgid)──► setpriv --bounding-set -net_admin,... --inh-caps -all
//!                                     --ambient-caps -all -- PROGRAM ARGS
//!                              └─exec─► PROGRAM (same pid, same group)
//! ```
//! `setpriv` (util-linux, as for BIRD) drops CAP_NET_ADMIN, CAP_SYS_ADMIN,
//! CAP_PERFMON and CAP_BPF from the bounding set, so that no exec of the
//! program or its children gets them back, and clears the inheritable and
//! ambient sets. Shrinking a bounding set takes CAP_SETPCAP, and without it
//! `setpriv` runs the program with the set whole and reports nothing: so a
//! check that could not be confined fails, naming the capability, and its
//! program does not run.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::outcome::Failure;
use crate::spec::{CheckKey, ExecCheck};

/// One run of `e`'s program for `key`, within `timeout`.
pub(crate) async fn check(key: &CheckKey, e: &ExecCheck, timeout: Duration) -> Result<(), Failure> {
    let (program, args, env) = (e.program.as_path(), &e.args, &e.env);
    // The program must be there: `setpriv` would otherwise report it only
    // as an exit status (127).
    match std::fs::metadata(program) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {}
        Ok(_) => {
            return Err(Failure::Other(format!(
                "cannot run {}: not an executable file",
                program.display()
            )));
        }
        Err(e) => {
            return Err(Failure::Other(format!(
                "cannot run {}: {e}",
                program.display()
            )));
        }
    }
    let bounding = confinement().map_err(Failure::Other)?;
    let mut cmd = tokio::process::Command::new(setpriv());
    if !bounding.is_empty() {
        cmd.arg("--bounding-set").arg(bounding);
    }
    let mut child = cmd
        .args(["--inh-caps", "-all", "--ambient-caps", "-all", "--"])
        .arg(program)
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
        .map_err(|e| {
            Failure::Other(format!(
                "cannot run {} (util-linux): {e}",
                setpriv().display()
            ))
        })?;
    // Declared after `child`, so dropped before it: even when this future
    // is cancelled (timeout, reload, checker dropped) the whole group dies;
    // tokio reaps the child (kill_on_drop).
    let group = GroupGuard(child.id().map(|id| Pid::from_raw(id as i32)));
    // Slightly inside the probe's own timeout, so the group is killed here
    // and reaped before the outer timeout fires.
    let waited = tokio::time::timeout(timeout.mul_f64(0.95), child.wait()).await;
    let status = match waited {
        Ok(s) => s.map_err(|e| Failure::Other(e.to_string()))?,
        Err(_) => {
            group.kill();
            let _ = child.wait().await;
            return Err(Failure::ExecTimeout(timeout));
        }
    };
    // Anything the check left running in its group goes too (on drop).
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(c), _) => Err(Failure::Exit(c)),
        (None, Some(s)) => Err(Failure::Signal(s)),
        (None, None) => Err(Failure::Other("ended without status".into())),
    }
}

/// Capabilities no exec check gets (bit, `setpriv` name): network
/// configuration, BPF and perf events, and CAP_SYS_ADMIN, which kernels
/// before 5.8 take in place of CAP_BPF and CAP_PERFMON.
const DROPPED: [(u32, &str); 4] = [
    (12, "net_admin"),
    (21, "sys_admin"),
    (38, "perfmon"),
    (39, "bpf"),
];

/// The capability that shrinks a bounding set.
const CAP_SETPCAP: u32 = 8;

/// The `--bounding-set` argument for this thread (the one that forks): the
/// dropped capabilities it still has there (none: nothing to drop, and no
/// CAP_SETPCAP needed); an error when it has some and cannot drop them.
fn confinement() -> Result<String, String> {
    let status = std::fs::read_to_string("/proc/thread-self/status")
        .map_err(|e| format!("cannot read /proc/thread-self/status to confine the check: {e}"))?;
    let mask = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .ok_or_else(|| format!("no {name} in /proc/thread-self/status"))
    };
    let (bounding, effective) = (mask("CapBnd")?, mask("CapEff")?);
    let held: Vec<&str> = DROPPED
        .iter()
        .filter(|(bit, _)| bounding & (1 << bit) != 0)
        .map(|(_, name)| *name)
        .collect();
    if !held.is_empty() && effective & (1 << CAP_SETPCAP) == 0 {
        return Err(format!(
            "cannot drop CAP_{} from the check: edged lacks CAP_SETPCAP (add it to \
             CapabilityBoundingSet of edged.service)",
            held.join(", CAP_").to_uppercase()
        ));
    }
    Ok(held
        .iter()
        .map(|n| format!("-{n}"))
        .collect::<Vec<_>>()
        .join(","))
}

/// `setpriv` from PATH, else /usr/bin/setpriv.
fn setpriv() -> &'static Path {
    static SETPRIV: OnceLock<PathBuf> = OnceLock::new();
    SETPRIV.get_or_init(|| {
        let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
        std::env::split_paths(&path)
            .map(|d| d.join("setpriv"))
            .find(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("/usr/bin/setpriv"))
    })
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
