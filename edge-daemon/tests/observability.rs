//! What the real edged tells the outside: Prometheus metrics and systemd
//! notifications (READY, WATCHDOG) over a real notify socket.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::*;
use edged_testlab::poll_until;

#[test]
fn metrics_show_build_reloads_and_vip_state() {
    let mut node = Node::new(VIPS);
    node.start();
    let m = node.metrics();
    assert_eq!(sample(&m, "edged_build_info{version="), Some(1.0), "{m}");
    assert_eq!(
        sample(&m, "edged_config_reloads_total{result=\"success\"}"),
        Some(1.0),
        "{m}"
    );
    assert!(sample(&m, "edged_config_last_reload_success_timestamp_seconds").unwrap() > 1.7e9);
    assert_eq!(
        sample(&m, "edged_vip_announced{vip=\"web\"}"),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "edged_vip_serving_proxies{vip=\"api\"}"),
        Some(0.0),
        "{m}"
    );

    let good = std::fs::read_to_string(node.config_path()).unwrap();
    std::fs::write(node.config_path(), good.replace("asn: 65000", "asn: 0")).unwrap();
    assert!(!node.ctl(&["reload"]).0);
    let m = node.metrics();
    assert_eq!(
        sample(&m, "edged_config_reloads_total{result=\"failure\"}"),
        Some(1.0),
        "{m}"
    );

    // A VIP removed by reload loses its series.
    let api = "  - name: api\n    address: 203.0.113.11\n    ports: [{port: 443}]\n    services: [{name: tls, check: {kind: tcp, port: 443}}]\n";
    assert!(good.contains(api));
    let without_api = good.replacen(api, "", 1);
    std::fs::write(node.config_path(), without_api).unwrap();
    assert!(node.ctl(&["reload"]).0);
    let m = node.metrics();
    assert!(!m.contains("vip=\"api\""), "{m}");
    assert!(m.contains("vip=\"web\""), "{m}");
}

#[test]
fn notifies_ready_then_pings_the_watchdog() {
    let mut node = Node::new(VIPS);
    let sock_path = node.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    node.start_with_env(&[
        ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
        ("WATCHDOG_USEC", "200000"),
    ]);

    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    let done = poll_until(Duration::from_secs(5), || {
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        seen.iter().any(|m| m.contains("READY=1"))
            && seen.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 3
    });
    assert!(done, "notifications seen: {seen:?}");
    // READY is the first notification: no WATCHDOG (nor anything else)
    // comes before it.
    assert!(seen[0].contains("READY=1"), "READY not first: {seen:?}");
    assert_eq!(node.stop_with(nix::sys::signal::Signal::SIGTERM), Some(0));
}
