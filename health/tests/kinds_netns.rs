//! TCP, DNS and exec checks through the checker, against real servers in a
//! network namespace reached over a veth: each fault takes the check down
//! with its reason, recovery takes `rise` passes. Prints fault-to-down times.
//! (HTTP is covered the same way by nginx_netns.rs.)

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::flip;
use edged_health::{CheckKey, CheckKind, CheckSpec, HealthChecker, HealthEvent, State};
use edged_health::{DnsCheck, ExecCheck, TcpCheck};
use edged_testlab::lab::traffic::in_netns;
use edged_testlab::{NetNs, Nginx, Proc, TempDir, net, unique};
use nix::sys::signal::Signal;
use tokio::sync::mpsc::UnboundedReceiver;

const INTERVAL: Duration = Duration::from_millis(250);
const TIMEOUT: Duration = Duration::from_millis(200);
const DNS_PORT: u16 = 5353;

fn spec(kind: CheckKind) -> CheckSpec {
    CheckSpec {
        kind,
        interval: INTERVAL,
        timeout: TIMEOUT,
        rise: 2,
        fall: 3,
        hold_down: None,
        reuse_connection: true,
        fastinter: std::time::Duration::from_millis(10),
        downinter: None,
        source: Some("198.51.100.1".parse().unwrap()),
    }
}

fn key(service: &str) -> CheckKey {
    CheckKey {
        vip: "web".into(),
        service: service.into(),
        proxy: "px-a".into(),
    }
}

/// Checker namespace (198.51.100.1) and proxy namespace (198.51.100.2),
/// and the proxy side's interface name.
fn lab() -> (NetNs, NetNs, String) {
    let (checker_ns, proxy_ns) = (NetNs::new("hc"), NetNs::new("hp"));
    let (a, b) = (unique("ha"), unique("hb"));
    net::veth(&checker_ns, &a, &proxy_ns, &b);
    net::addr(&checker_ns, &a, "198.51.100.1/24");
    net::addr(&proxy_ns, &b, "198.51.100.2/24");
    (checker_ns, proxy_ns, b)
}

/// Runs `body` with a checker for one check, on a current-thread runtime
/// on a thread inside `ns`.
fn with_checker<T: Send + 'static>(
    ns: &Path,
    key: CheckKey,
    spec: CheckSpec,
    body: impl AsyncFnOnce(&mut UnboundedReceiver<HealthEvent>) -> T + Send + 'static,
) -> T {
    in_netns(ns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (hc, mut rx) = HealthChecker::spawn(vec![(key, spec)], None);
            let out = body(&mut rx).await;
            drop(hc);
            out
        })
    })
}

/// Causes a fault, waits for Down with a reason accepted by `want`, undoes
/// it (if `fix`), waits for Up after `rise`; returns the fault-to-down time.
async fn fault_cycle(
    rx: &mut UnboundedReceiver<HealthEvent>,
    name: &str,
    fault: impl FnOnce(),
    want: impl Fn(&str) -> bool,
    fix: Option<Box<dyn FnOnce() + '_>>,
) -> Duration {
    let t0 = Instant::now();
    fault();
    let ev = flip(rx).await;
    let took = t0.elapsed();
    assert_eq!(ev.state, State::Down, "{name}");
    assert!(
        want(&ev.outcome.reason()),
        "{name}: reason {:?}",
        ev.outcome
    );
    println!(
        "fault-to-down ({name}: {}), interval 250ms, fall 3: {} ms",
        ev.outcome.reason(),
        took.as_millis()
    );
    // Generous bound: fall × interval + timeout + scheduling slack.
    assert!(took < Duration::from_millis(1500), "{name}: {took:?}");
    if let Some(fix) = fix {
        fix();
        let t1 = Instant::now();
        assert_eq!(flip(rx).await.state, State::Up, "{name}: recovery");
        // rise 2: at least one interval between the two passes.
        assert!(
            t1.elapsed() >= INTERVAL / 2,
            "{name}: up after {:?}",
            t1.elapsed()
        );
    }
    took
}

#[test]
fn tcp_down_on_blackhole_and_stop() {
    let (checker_ns, proxy_ns, proxy_if) = lab();
    let mut nginx = Nginx::start(&proxy_ns, "px-a", 8081);
    let kind = CheckKind::Tcp(TcpCheck::new("198.51.100.2:8081".parse().unwrap()));
    let proxy_ns = std::sync::Arc::new(proxy_ns);
    let pns = proxy_ns.clone();
    with_checker(
        &checker_ns.path(),
        key("tcp"),
        spec(kind),
        async move |rx| {
            assert_eq!(flip(rx).await.state, State::Up);
            let link = |state: &'static str| {
                let (ns, ifname) = (pns.clone(), proxy_if.clone());
                move || {
                    ns.exec_ok(&["ip", "link", "set", &ifname, state]);
                }
            };
            // The proxy's link goes away: SYNs are lost, the connect times out.
            fault_cycle(
                rx,
                "link down",
                link("down"),
                |r| r == "timeout after 200ms" || r == "host unreachable",
                Some(Box::new(link("up"))),
            )
            .await;
            let stop = || nginx.stop();
            fault_cycle(rx, "stopped", stop, |r| r == "connection refused", None).await;
        },
    );
}

/// The DNS responder (`edged-lab dns-responder`) in the proxy namespace, a
/// process of its own so it can be frozen and killed: it answers every
/// query with the response code in `rcode_file`.
fn dns_responder(ns: &NetNs, rcode_file: &Path) -> Proc {
    let mut cmd = ns.command(edged_testlab::lab::workspace_bin("edged-lab"));
    cmd.args([
        "dns-responder",
        "--bind",
        &format!("198.51.100.2:{DNS_PORT}"),
    ])
    .arg("--rcode-file")
    .arg(rcode_file)
    .stdout(std::process::Stdio::null());
    Proc::spawn(cmd)
}

#[test]
fn dns_down_on_rcode_freeze_and_stop() {
    let (checker_ns, proxy_ns, _) = lab();
    let dir = TempDir::new("hdns");
    let rcode_file = dir.path().join("rcode");
    std::fs::write(&rcode_file, "0").unwrap();
    let responder =
        std::sync::Arc::new(std::sync::Mutex::new(dns_responder(&proxy_ns, &rcode_file)));
    let kind = CheckKind::Dns(DnsCheck::a(
        format!("198.51.100.2:{DNS_PORT}").parse().unwrap(),
        "health.example.com",
    ));
    let (r, f, ns) = (responder.clone(), rcode_file.clone(), proxy_ns);
    with_checker(
        &checker_ns.path(),
        key("dns"),
        spec(kind),
        async move |rx| {
            assert_eq!(flip(rx).await.state, State::Up);
            let write = |v: &'static str| {
                let f = f.clone();
                move || std::fs::write(&f, v).unwrap()
            };
            fault_cycle(
                rx,
                "SERVFAIL",
                write("2"),
                |r| r == "dns rcode 2",
                Some(Box::new(write("0"))),
            )
            .await;
            let signal = |s: Signal| {
                let r = r.clone();
                move || r.lock().unwrap().signal(s)
            };
            fault_cycle(
                rx,
                "SIGSTOP",
                signal(Signal::SIGSTOP),
                |r| r == "timeout after 200ms",
                Some(Box::new(signal(Signal::SIGCONT))),
            )
            .await;
            let restart = || *r.lock().unwrap() = dns_responder(&ns, &f);
            fault_cycle(
                rx,
                "stopped",
                signal(Signal::SIGKILL),
                |r| r == "connection refused",
                Some(Box::new(restart)),
            )
            .await;
        },
    );
    drop(responder);
}

#[test]
fn exec_down_on_exit_status_and_hang() {
    let (checker_ns, _proxy_ns, _) = lab();
    let dir = TempDir::new("hexe");
    let mode = dir.path().join("mode");
    std::fs::write(&mode, "ok").unwrap();
    let script = format!(
        "case $(cat {}) in ok) exit 0;; fail) exit 2;; *) exec sleep 30;; esac",
        mode.display()
    );
    let kind = CheckKind::Exec(ExecCheck {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script],
        env: vec![],
    });
    with_checker(
        &checker_ns.path(),
        key("exec"),
        spec(kind),
        async move |rx| {
            assert_eq!(flip(rx).await.state, State::Up);
            let write = |v: &'static str| {
                let m = mode.clone();
                move || std::fs::write(&m, v).unwrap()
            };
            fault_cycle(
                rx,
                "exit 2",
                write("fail"),
                |r| r == "exit status 2",
                Some(Box::new(write("ok"))),
            )
            .await;
            fault_cycle(
                rx,
                "hang",
                write("hang"),
                |r| r.starts_with("timeout after 200ms"),
                Some(Box::new(write("ok"))),
            )
            .await;
        },
    );
}
