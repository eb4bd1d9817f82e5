//! Against a real nginx in its own network namespace, reached over a veth,
//! over HTTP/1.1 and over HTTP/2 (nginx's clear-text `http2` listener):
//! each fault (500, wrong body, SIGSTOP, stopped) takes the check down with
//! its reason; recovery takes `rise` passes. Prints fault-to-down times.

mod common;

use std::time::{Duration, Instant};

use common::flip;
use edged_health::HttpCheck;
use edged_health::{CheckKey, CheckKind, CheckSpec, HealthChecker, State};
use edged_testlab::lab::traffic::in_netns;
use edged_testlab::{Health, NetNs, Nginx, net, unique};

const INTERVAL: Duration = Duration::from_millis(250);

/// A fault: its name, how to cause it, how to undo it, the reason expected.
type Fault = (
    &'static str,
    Box<dyn Fn(&mut Nginx)>,
    Box<dyn Fn(&mut Nginx)>,
    &'static str,
);

fn http_spec(http2: bool) -> CheckSpec {
    CheckSpec {
        kind: CheckKind::Http(HttpCheck {
            path: "/healthz".into(),
            host: Some("www.example.com".into()),
            body_contains: Some("ok".into()),
            http2,
            ..HttpCheck::get(
                if http2 {
                    "198.51.100.2:8082"
                } else {
                    "198.51.100.2:8081"
                }
                .parse()
                .unwrap(),
            )
        }),
        interval: INTERVAL,
        timeout: Duration::from_millis(200),
        rise: 2,
        fall: 3,
        hold_down: None,
        reuse_connection: true,
        fastinter: std::time::Duration::from_millis(10),
        downinter: None,
        source: Some("198.51.100.1".parse().unwrap()),
    }
}

#[test]
fn real_nginx_faults_and_recovery() {
    faults_and_recovery(false);
}

/// The same over HTTP/2. nginx's reload (SIGHUP, used for the 500 and
/// wrong-body faults) closes the old workers' HTTP/2 connections with
/// GOAWAY: the next attempt moves to a new connection without a failure.
#[test]
fn real_nginx_faults_and_recovery_http2() {
    faults_and_recovery(true);
}

fn faults_and_recovery(http2: bool) {
    let (checker_ns, proxy_ns) = (NetNs::new("hc"), NetNs::new("hp"));
    let (a, b) = (unique("ha"), unique("hb"));
    net::veth(&checker_ns, &a, &proxy_ns, &b);
    net::addr(&checker_ns, &a, "198.51.100.1/24");
    net::addr(&proxy_ns, &b, "198.51.100.2/24");
    let nginx = Nginx::start_with(&proxy_ns, "px-a", 8081, Some(8082));

    let control = std::sync::Arc::new(std::sync::Mutex::new(nginx));
    let ctl = control.clone();
    let times = in_netns(&checker_ns.path(), move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let key = CheckKey {
                vip: "web".into(),
                service: "http".into(),
                proxy: "px-a".into(),
            };
            let (hc, mut rx) = HealthChecker::spawn(vec![(key.clone(), http_spec(http2))], None);
            assert_eq!(flip(&mut rx).await.state, State::Up);
            let mut times = Vec::new();
            let faults: [Fault; 3] = [
                (
                    "500",
                    Box::new(|n| n.set_health(Health::Error)),
                    Box::new(|n| n.set_health(Health::Ok)),
                    "status 500",
                ),
                (
                    "wrong body",
                    Box::new(|n| n.set_health(Health::WrongBody)),
                    Box::new(|n| n.set_health(Health::Ok)),
                    "body mismatch",
                ),
                (
                    "SIGSTOP",
                    Box::new(|n| n.freeze()),
                    Box::new(|n| n.thaw()),
                    "timeout after 200ms",
                ),
            ];
            for (name, fault, fix, reason) in faults {
                let t0 = Instant::now();
                fault(&mut ctl.lock().unwrap());
                let ev = flip(&mut rx).await;
                assert_eq!(
                    (ev.state, ev.outcome.reason().as_str()),
                    (State::Down, reason),
                    "{name}"
                );
                times.push((name, t0.elapsed()));
                fix(&mut ctl.lock().unwrap());
                let t1 = Instant::now();
                assert_eq!(flip(&mut rx).await.state, State::Up, "{name}: recovery");
                // rise 2: at least one interval between the two passes.
                assert!(
                    t1.elapsed() >= INTERVAL / 2,
                    "{name}: came back after {:?}",
                    t1.elapsed()
                );
            }
            let t0 = Instant::now();
            ctl.lock().unwrap().stop();
            let ev = flip(&mut rx).await;
            assert_eq!(
                (ev.state, ev.outcome.reason().as_str()),
                (State::Down, "connection refused")
            );
            times.push(("stopped", t0.elapsed()));
            // Each of the 4 faults cost `fall` failures (one more if an
            // attempt began just before a fix). The 4 reloads cost none:
            // over HTTP/2 they end connections with GOAWAY.
            let failures = hc.snapshot()[0].1.failures;
            println!("failures: {failures} (http2 {http2})");
            assert!(failures <= 3 * 4 + 1, "{failures} failures for 4 faults");
            drop(hc);
            times
        })
    });
    for (name, t) in &times {
        println!(
            "fault-to-down ({name}, http2 {http2}), interval 250ms, fall 3: {} ms",
            t.as_millis()
        );
        // Generous bound: fall × interval + timeout + scheduling slack.
        assert!(*t < Duration::from_millis(1500), "{name}: {t:?}");
    }
    drop(control);
}
