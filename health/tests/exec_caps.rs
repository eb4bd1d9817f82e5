//! exec checks run without the capabilities edged holds for the data plane
//! and the routes: the check's own process reads its `/proc/self/status`
//! and must find CAP_NET_ADMIN (12), CAP_SYS_ADMIN (21), CAP_PERFMON (38)
//! and CAP_BPF (39) neither in its bounding set nor in its effective,
//! permitted, inheritable or ambient sets, while the check still passes or
//! fails on its exit status. Real processes, run as root (the test process
//! holds every capability, as edged does under its unit).

use std::path::Path;
use std::time::Duration;

use edged_health::{CheckKey, CheckKind, CheckSpec, ExecCheck, probe};
use edged_testlab::TempDir;

const T: Duration = Duration::from_secs(5);

/// One attempt of `kind` within `T`.
fn spec_of(kind: CheckKind, timeout: Duration) -> CheckSpec {
    CheckSpec::new(kind, timeout * 4, timeout)
}
const NET_ADMIN: u32 = 12;
const NET_RAW: u32 = 13;
const SYS_ADMIN: u32 = 21;
const PERFMON: u32 = 38;
const BPF: u32 = 39;
const SETPCAP: u32 = 8;

fn key() -> CheckKey {
    CheckKey {
        vip: "web".into(),
        service: "svc".into(),
        proxy: "px1".into(),
    }
}

/// A check whose shell copies its own `Cap*` status lines (its own: the
/// redirection is opened by the shell, not by a child) to `out`, then
/// exits with `code`.
fn caps_check(out: &Path, code: u8) -> CheckKind {
    CheckKind::Exec(ExecCheck {
    program: "/bin/sh".into(),
    args: vec![
            "-c".into(),
            r#"while IFS= read -r l; do case $l in Cap*) echo "$l";; esac; done < /proc/self/status > "$1"; exit "$2""#.into(),
            "sh".into(),
            out.display().to_string(),
            code.to_string(),
        ],
    env: vec![],
})
}

/// The `Cap*` masks of a status text, by name (`CapBnd` ...).
fn masks(status: &str) -> Vec<(String, u64)> {
    status
        .lines()
        .filter_map(|l| {
            let (name, hex) = l.split_once(':')?;
            Some((name.to_string(), u64::from_str_radix(hex.trim(), 16).ok()?))
        })
        .collect()
}

fn mask(status: &str, name: &str) -> u64 {
    masks(status)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .1
}

fn has(m: u64, bit: u32) -> bool {
    m & (1 << bit) != 0
}

/// This test process's own masks.
fn own(name: &str) -> u64 {
    mask(
        &std::fs::read_to_string("/proc/thread-self/status").unwrap(),
        name,
    )
}

#[tokio::test]
async fn exec_checks_lose_net_admin_bpf_and_perfmon_and_still_judge_exit_status() {
    // We hold them, so a check that kept what it inherits would show them.
    for bit in [NET_ADMIN, PERFMON, BPF] {
        assert!(
            has(own("CapEff"), bit) && has(own("CapBnd"), bit),
            "run as root: this test needs capability {bit} to show it is dropped"
        );
    }
    let dir = TempDir::new("exec-caps");
    for (code, ok) in [(0u8, true), (3, false)] {
        let out = dir.path().join(format!("caps-{code}"));
        let o = probe(&key(), &spec_of(caps_check(&out, code), T)).await;
        assert_eq!(o.ok(), ok, "{o:?}");
        if !ok {
            assert_eq!(o.reason(), "exit status 3");
        }
        let status = std::fs::read_to_string(&out).expect("the check wrote its status");
        println!("exit {code}: {}", status.replace('\n', " "));
        for name in ["CapBnd", "CapEff", "CapPrm"] {
            let m = mask(&status, name);
            for bit in [NET_ADMIN, SYS_ADMIN, PERFMON, BPF] {
                assert!(!has(m, bit), "{name} {m:#x} has capability {bit}");
            }
        }
        assert_eq!(mask(&status, "CapInh"), 0, "{status}");
        assert_eq!(mask(&status, "CapAmb"), 0, "{status}");
        // Only those: what an ordinary check may use (here CAP_NET_RAW, for
        // ping) stays.
        assert!(has(mask(&status, "CapEff"), NET_RAW), "{status}");
    }
}

/// Without CAP_SETPCAP edged cannot shrink a child's bounding set, and
/// `setpriv` would run the program with it whole and say nothing: the check
/// fails instead, naming the capability to grant, and the program does not
/// run. The test runs itself again in a process without CAP_SETPCAP.
#[test]
fn without_setpcap_an_exec_check_fails_and_does_not_run() {
    const CHILD: &str = "EDGED_TEST_EXEC_NO_SETPCAP";
    if let Some(marker) = std::env::var_os(CHILD) {
        assert!(
            !has(own("CapEff"), SETPCAP),
            "the child still has CAP_SETPCAP"
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let touch = CheckKind::Exec(ExecCheck {
            program: "/usr/bin/touch".into(),
            args: vec![marker.to_string_lossy().into_owned()],
            env: vec![],
        });
        let o = rt.block_on(probe(&key(), &spec_of(touch.clone(), T)));
        println!("without CAP_SETPCAP: {o:?}");
        assert!(!o.ok() && o.reason().contains("CAP_SETPCAP"), "{o:?}");
        assert!(!Path::new(&marker).exists(), "the program ran");
        return;
    }
    assert!(has(own("CapEff"), SETPCAP), "run as root");
    let dir = TempDir::new("exec-nosetpcap");
    let marker = dir.path().join("ran");
    let name = "without_setpcap_an_exec_check_fails_and_does_not_run";
    let out = std::process::Command::new("setpriv")
        .args(["--bounding-set", "-setpcap", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, &marker)
        .output()
        .expect("setpriv (util-linux)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success() && text.contains("1 passed"), "{text}");
    assert!(!marker.exists(), "the program ran");
}
