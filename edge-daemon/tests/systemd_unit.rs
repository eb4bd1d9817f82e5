//! `systemd/edged.service` passes `systemd-analyze verify` with no warning,
//! keeps the settings operators rely on, and scores at most 3.0 in
//! `systemd-analyze security --offline=yes`; and the decisions of its
//! ExecStop script, `systemd/edged-stop`.
//!
//! No systemd runs as PID 1 here, so nothing starts the unit: the stop and
//! restart paths themselves are tested against a real edged elsewhere
//! (`tests/tests/faults.rs`, `tests/teardown.rs`, `scripts/test-deb.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const EDGED: &str = env!("CARGO_BIN_EXE_edged");
const EDGECTL: &str = env!("CARGO_BIN_EXE_edgectl");

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn unit() -> String {
    std::fs::read_to_string(repo("systemd/edged.service")).unwrap()
}

/// The value of `Key=` (the last one, as systemd reads it).
fn setting<'a>(src: &'a str, key: &str) -> Option<&'a str> {
    src.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .next_back()
}

/// A copy of the unit whose programs are the ones just built (and the
/// script from the tree), as `edged.service` in `dir`.
fn unit_copy(dir: &Path) -> PathBuf {
    let path = dir.join("edged.service");
    let text = unit()
        .replace("/usr/sbin/edged", EDGED)
        .replace("/usr/bin/edgectl", EDGECTL)
        .replace(
            "/usr/lib/edged/edged-stop",
            repo("systemd/edged-stop").to_str().unwrap(),
        );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn unit_verifies_cleanly() {
    let src = unit();
    for needle in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "ProtectSystem=strict",
        "StateDirectory=edged",
        "ExecStartPre=/usr/sbin/edged check",
    ] {
        assert!(src.contains(needle), "unit lacks {needle}");
    }
    // Every capability granted is explained in a comment.
    let caps = setting(&src, "CapabilityBoundingSet").unwrap();
    for cap in caps.split_whitespace() {
        assert!(
            src.lines().any(|l| l.starts_with('#') && l.contains(cap)),
            "{cap} is not explained"
        );
    }
    // Verify a copy whose programs point at the ones just built. The man
    // pages of Documentation= come with the package (test-deb.sh verifies
    // the installed unit with them).
    let dir = edged_testlab::TempDir::new("unit");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(unit_copy(dir.path()))
        .output()
        .expect("systemd-analyze (Debian package systemd) must be installed: make deps");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {err}"
    );
}

/// The stop and reload settings of the stop/restart design.
#[test]
fn stop_and_reload_go_through_edgectl() {
    let src = unit();
    // BIRD must outlive edged through a planned restart.
    assert_eq!(setting(&src, "KillMode"), Some("process"));
    assert_eq!(setting(&src, "ExecReload"), Some("/usr/bin/edgectl reload"));
    assert!(!src.contains("kill -HUP"), "reload still by signal");
    assert_eq!(
        setting(&src, "ExecStop"),
        Some("/usr/lib/edged/edged-stop %n /etc/edged/edged.yaml")
    );
    // Long enough for the default graceful stop: drain (stop_timeout),
    // then withdraw and stop BIRD (shutdown_timeout), and a margin.
    let cfg = edged_config::parse(
        &std::fs::read_to_string(repo("config/examples/minimal.yaml")).unwrap(),
    )
    .unwrap();
    let stop = cfg.node.stop_timeout + cfg.node.shutdown_timeout;
    let timeout = setting(&src, "TimeoutStopSec").unwrap();
    let secs: u64 = timeout.trim_end_matches('s').parse().unwrap();
    assert!(
        Duration::from_secs(secs) >= stop + Duration::from_secs(10),
        "TimeoutStopSec={timeout} is not above {stop:?} with a margin"
    );
}

#[test]
fn security_exposure_is_at_most_3() {
    let dir = edged_testlab::TempDir::new("unit-sec");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(unit_copy(dir.path()))
        .output()
        .expect("systemd-analyze (Debian package systemd) must be installed: make deps");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no score in:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    println!("systemd-analyze security --offline=yes edged.service: {line}");
    let score: f64 = line
        .split(": ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the score in {line:?}"));
    assert!(score <= 3.0, "{line}\n{text}");
}

// === edged-stop ===
//
// A unit test of the script's decision logic: `systemctl` and `edgectl` are
// stand-ins on PATH that log their arguments (systemctl prints the
// `list-jobs` lines a case gives it, in the format of systemd 252:
// `JOB UNIT TYPE STATE`, no legend); `edged` is the real one, for the
// config check before a planned restart; $MAINPID is a real process.

struct Script {
    dir: edged_testlab::TempDir,
    mainpid: edged_testlab::Proc,
}

impl Script {
    fn new() -> Script {
        let dir = edged_testlab::TempDir::new("edged-stop");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let write = |name: &str, text: &str| {
            use std::os::unix::fs::PermissionsExt;
            let p = bin.join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        write(
            "systemctl",
            "#!/bin/sh\necho \"systemctl $*\" >> \"$FAKE_LOG\"\n\
             [ -z \"$FAKE_SYSTEMCTL_FAIL\" ] || exit 1\n\
             [ \"$1\" = list-jobs ] || exit 1\nprintf '%b' \"$FAKE_JOBS\"\n",
        );
        write(
            "edgectl",
            "#!/bin/sh\necho \"edgectl $*\" >> \"$FAKE_LOG\"\nexit \"${FAKE_EDGECTL_RC:-0}\"\n",
        );
        std::os::unix::fs::symlink(EDGED, bin.join("edged")).unwrap();
        std::fs::write(dir.path().join("bad.yaml"), "node: {router_id: nope}\n").unwrap();
        let mut sleep = Command::new("sleep");
        sleep.arg("600");
        Script {
            mainpid: edged_testlab::Proc::spawn(sleep),
            dir,
        }
    }

    /// Runs edged-stop; returns (exit code, what the stand-ins were asked,
    /// stderr).
    fn run(
        &self,
        jobs: &str,
        mainpid: Option<u32>,
        config: &Path,
        env: &[(&str, &str)],
    ) -> (i32, String, String) {
        let log = self.dir.path().join("calls.log");
        let _ = std::fs::remove_file(&log);
        let mut cmd = Command::new(repo("systemd/edged-stop"));
        cmd.arg("edged.service")
            .arg(config)
            .env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.dir.path().join("bin").display()),
            )
            .env("FAKE_LOG", &log)
            .env("FAKE_JOBS", jobs)
            .envs(env.iter().copied());
        if let Some(pid) = mainpid {
            cmd.env("MAINPID", pid.to_string());
        }
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            std::fs::read_to_string(&log).unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

#[test]
fn edged_stop_restarts_only_for_a_restart_job_and_never_fails() {
    let s = Script::new();
    let good = repo("config/examples/minimal.yaml");
    let bad = s.dir.path().join("bad.yaml");
    let main = Some(s.mainpid.pid());
    let gone = {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        Some(pid)
    };
    let asked = "systemctl list-jobs --no-legend --no-pager edged.service\n";
    let restart = &format!("{asked}edgectl stop --restart\n");
    let stop = &format!("{asked}edgectl stop\n");
    let ours = "  87 edged.service restart running\n";
    // edged is running and the config validates, unless a case says not.
    let case = |name, jobs, asks, says| Case {
        name,
        jobs,
        mainpid: main,
        config: &good,
        env: &[],
        asks,
        says,
    };
    let cases = [
        // `systemctl restart`, `try-restart` (collapsed to restart when the
        // unit runs: a package upgrade) and a restart by a dependency.
        case("restart job", ours, restart, "(systemd job: restart)"),
        case(
            "restart job, another job listed first",
            "  12 bird.service stop waiting\n  87 edged.service restart running\n",
            restart,
            "job: restart",
        ),
        // The next edged would not start (ExecStartPre): drain instead.
        Case {
            config: &bad,
            ..case("restart onto a bad config", ours, stop, "does not validate")
        },
        case(
            "stop job",
            "  87 edged.service stop running\n",
            stop,
            "job: stop",
        ),
        case(
            "another unit restarts",
            "  12 bird.service restart running\n  87 edged.service stop running\n",
            stop,
            "job: stop",
        ),
        case("no job listed", "", stop, "job: none"),
        Case {
            env: &[("FAKE_SYSTEMCTL_FAIL", "1")],
            ..case("systemctl fails", ours, stop, "job: none")
        },
        // edgectl cannot reach edged: say so, exit 0, SIGTERM follows.
        Case {
            env: &[("FAKE_EDGECTL_RC", "69")],
            ..case(
                "edgectl fails on a restart",
                ours,
                restart,
                "failed; systemd's SIGTERM will stop edged",
            )
        },
        Case {
            env: &[("FAKE_EDGECTL_RC", "1")],
            ..case("edgectl fails on a stop", "", stop, "failed;")
        },
        // edged already gone: nothing is asked at all.
        Case {
            mainpid: None,
            ..case("no MAINPID", ours, "", "not running")
        },
        Case {
            mainpid: gone,
            ..case("MAINPID dead", ours, "", "not running")
        },
    ];
    for c in cases {
        let (code, calls, err) = s.run(c.jobs, c.mainpid, c.config, c.env);
        let name = c.name;
        assert_eq!(code, 0, "{name}: exit {code}: {err}");
        assert_eq!(calls, c.asks, "{name}: {err}");
        assert!(
            err.contains(c.says),
            "{name}: stderr lacks {:?}: {err}",
            c.says
        );
    }
}

/// One situation of the stop script, and what it must do.
struct Case<'a> {
    name: &'a str,
    /// What `systemctl list-jobs` prints.
    jobs: &'a str,
    mainpid: Option<u32>,
    config: &'a Path,
    env: &'a [(&'a str, &'a str)],
    /// What the stand-ins must have been asked, in order.
    asks: &'a str,
    /// A piece of what the script says on stderr.
    says: &'a str,
}
