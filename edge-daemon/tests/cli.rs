//! `edged check` and `edgectl` without a daemon; no root needed.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

#[test]
fn check_accepts_every_example_and_names_the_host_facts_it_lacks() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples");
    let check = |path: &Path, extra: &[&str]| {
        Command::new(EDGED)
            .arg("check")
            .args(extra)
            .arg("--config")
            .arg(path)
            .output()
            .unwrap()
    };
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let out = check(&path, &["--no-host-checks"]);
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // On this machine the full example's group, files and interfaces
        // do not exist: start-up would refuse it, so `edged check` does.
        if path.ends_with("full.yaml") {
            let out = check(&path, &[]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(64), "{err}");
            for field in [
                "node.control_group",
                "bgp.peers[0].password_file",
                "check.ca_file",
            ] {
                assert!(err.contains(field), "{field} not named:\n{err}");
            }
        }
    }
}

#[test]
fn check_rejects_a_broken_file_with_64_and_the_field() {
    let dir = edged_testlab::TempDir::new("chk");
    let path = dir.path().join("bad.yaml");
    let good = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/minimal.yaml"),
    )
    .unwrap();
    std::fs::write(
        &path,
        good.replace("path: /healthz", "path: /healthz\n          interval: 0s"),
    )
    .unwrap();
    let out = Command::new(EDGED)
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "vips[0].services[0].check.interval: must be greater than 0 (line 26, column 21)"
        ),
        "{err}"
    );

    let out = Command::new(EDGED)
        .arg("check")
        .arg("--config")
        .arg(dir.path().join("missing.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config"));
}

#[test]
fn edgectl_without_a_daemon_says_so() {
    let out = Command::new(EDGECTL)
        .args(["--socket", "/nonexistent/edged.sock", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is edged running?"), "{err}");
}
