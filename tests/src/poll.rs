//! Polling with a deadline (never a bare sleep for a condition) and shell
//! helpers.

use std::process::Command;
use std::time::{Duration, Instant};

/// Calls `f` every 10 ms until it returns true or `timeout` passes; returns
/// whether it became true.
pub fn poll_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a command and returns (success, stdout, stderr).
pub fn sh(program: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a command; panics with its stderr if it fails. Returns stdout.
pub fn sh_ok(program: &str, args: &[&str]) -> String {
    let (ok, out, err) = sh(program, args);
    assert!(ok, "{program} {args:?} failed: {err}");
    out
}
