//! `systemd/edged.service` passes `systemd-analyze verify` with no warning
//! and keeps the settings operators rely on.

use std::process::Command;

#[test]
fn unit_verifies_cleanly() {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../systemd/edged.service"
    ))
    .unwrap();
    for needle in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=",
        "Restart=on-failure",
        "ProtectSystem=strict",
        "StateDirectory=edged",
        "ExecStartPre=/usr/sbin/edged check",
    ] {
        assert!(src.contains(needle), "unit lacks {needle}");
    }
    // Every capability granted is explained in a comment.
    let caps = src
        .lines()
        .find(|l| l.starts_with("CapabilityBoundingSet="))
        .unwrap();
    for cap in caps
        .trim_start_matches("CapabilityBoundingSet=")
        .split_whitespace()
    {
        assert!(
            src.lines().any(|l| l.starts_with('#') && l.contains(cap)),
            "{cap} is not explained"
        );
    }
    // Verify a copy whose binary paths point at the one just built.
    let dir = edged_testlab::TempDir::new("unit");
    let unit = dir.path().join("edged.service");
    std::fs::write(
        &unit,
        src.replace("/usr/sbin/edged", env!("CARGO_BIN_EXE_edged")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian package systemd) must be installed: make deps");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {err}"
    );
}
