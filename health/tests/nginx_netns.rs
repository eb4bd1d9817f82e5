//! Against a real nginx in its own network namespace, reached over a veth:
//! each fault (500, wrong body, SIGSTOP, stopped) takes the check down with
//! its reason; recovery takes `rise` passes. Prints fault-to-down times.

use std::time::{Duration, Instant};

use edged_health::{CheckKey, CheckKind, CheckSpec, HealthChecker, HealthEvent, State};
use edged_testlab::lab::traffic::in_netns;
use edged_testlab::{Health, NetNs, Nginx, net, unique};
use tokio::sync::mpsc::UnboundedReceiver;

const INTERVAL: Duration = Duration::from_millis(250);

/// A fault: its name, how to cause it, how to undo it, the reason expected.
type Fault = (
    &'static str,
    Box<dyn Fn(&mut Nginx)>,
    Box<dyn Fn(&mut Nginx)>,
    &'static str,
);

fn http_spec() -> CheckSpec {
    CheckSpec {
        kind: CheckKind::Http {
            target: "198.51.100.2:8081".parse().unwrap(),
            tls: false,
            method: "GET".into(),
            path: "/healthz".into(),
            host: Some("www.example.com".into()),
            expect_status: vec![200],
            body_contains: Some("ok".into()),
            ca_file: None,
            tls_verify: true,
        },
        interval: INTERVAL,
        timeout: Duration::from_millis(200),
        rise: 2,
        fall: 3,
        jitter: 0.0,
        hold_down: None,
        reuse_connection: true,
        source: Some("198.51.100.1".parse().unwrap()),
    }
}

async fn flip(rx: &mut UnboundedReceiver<HealthEvent>) -> HealthEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no state change within 10 s")
        .unwrap()
}

#[test]
fn real_nginx_faults_and_recovery() {
    let (checker_ns, proxy_ns) = (NetNs::new("hc"), NetNs::new("hp"));
    let (a, b) = (unique("ha"), unique("hb"));
    net::veth(&checker_ns, &a, &proxy_ns, &b);
    net::addr(&checker_ns, &a, "198.51.100.1/24");
    net::addr(&proxy_ns, &b, "198.51.100.2/24");
    let nginx = Nginx::start(&proxy_ns, "px-a", 8081);

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
            let (hc, mut rx) = HealthChecker::spawn(vec![(key, http_spec())], None);
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
                    (ev.state, ev.outcome.reason.as_str()),
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
                (ev.state, ev.outcome.reason.as_str()),
                (State::Down, "connection refused")
            );
            times.push(("stopped", t0.elapsed()));
            drop(hc);
            times
        })
    });
    for (name, t) in &times {
        println!(
            "fault-to-down ({name}), interval 250ms, fall 3: {} ms",
            t.as_millis()
        );
        // Generous bound: fall × interval + timeout + scheduling slack.
        assert!(*t < Duration::from_millis(1500), "{name}: {t:?}");
    }
    drop(control);
}
