//! The health checker inside the real edged: a real nginx proxy in its own
//! namespace decides the VIP's announcement; a fault withdraws it with the
//! reason, recovery announces it again; edgectl proxies shows the checks
//! (one over HTTP/1.1, one over HTTP/2 from `http2: true`).

mod common;

use std::time::Duration;

use common::*;
use edged_testlab::{Health, NetNs, Nginx, net, poll_until, unique};

const BODY: &str = "
proxies:
  - {name: px1, address: 198.51.100.2, delivery: host}
vips:
  - name: web
    address: 203.0.113.10
    ports: [{port: 80}]
    services:
      - {name: http, check: {kind: http, port: 8080, path: /healthz, body_contains: ok, interval: 100ms, timeout: 80ms, rise: 2, fall: 2}}
      - {name: http2, check: {kind: http, port: 8082, http2: true, path: /healthz, body_contains: ok, interval: 100ms, timeout: 80ms, rise: 2, fall: 2}}
bgp:
  peers: [{name: tor1, address: 192.0.2.1, asn: 65000}]
";

#[test]
fn proxy_health_decides_the_vip() {
    let mut node = Node::new(BODY);
    let proxy_ns = NetNs::new("hw");
    let (a, b) = (unique("wa"), unique("wb"));
    net::veth(&node.ns, &a, &proxy_ns, &b);
    net::addr(&node.ns, &a, "198.51.100.1/24");
    net::addr(&proxy_ns, &b, "198.51.100.2/24");
    let nginx = Nginx::start_with(&proxy_ns, "px1", 8080, Some(8082));
    node.start();

    let decision = |node: &Node| {
        let v = node.vip("web");
        (
            v["route"].as_str().unwrap().to_string(),
            v["reason"].as_str().unwrap().to_string(),
        )
    };
    let up = poll_until(Duration::from_secs(10), || decision(&node).0 == "announced");
    assert!(up, "never announced: {:?}\n{}", decision(&node), node.log());
    let checks = |node: &Node| {
        let proxies = node.json(&["proxies"]);
        let mut v: Vec<(String, String, String)> = proxies[0]["vips"][0]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let s = |f: &str| c[f].as_str().unwrap_or_default().to_string();
                (s("service"), s("state"), s("last"))
            })
            .collect();
        v.sort();
        v
    };
    let both = |state: &str, last: &str| {
        ["http", "http2"].map(|s| (s.to_string(), state.to_string(), last.to_string()))
    };
    assert_eq!(checks(&node), both("up", "ok"));

    let metrics = node
        .ns
        .exec_ok(&["curl", "-sf", "http://127.0.0.1:9180/metrics"]);
    assert!(
        metrics.contains("edged_check_up{vip=\"web\",service=\"http\",proxy=\"px1\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("edged_check_results_total{outcome=\"ok\"}"),
        "{metrics}"
    );

    nginx.set_health(Health::Error);
    let down = poll_until(Duration::from_secs(10), || decision(&node).0 == "withdrawn");
    assert!(down, "{:?}", decision(&node));
    // Either service may be the first seen failing.
    let (_, reason) = decision(&node);
    assert!(
        ["http", "http2"]
            .iter()
            .any(|s| reason.contains(&format!("px1: service {s}: status 500"))),
        "{reason}"
    );
    assert!(
        poll_until(Duration::from_secs(5), || checks(&node)
            == both("down", "status 500")),
        "{:?}",
        checks(&node)
    );
    let st = node.json(&["status"]);
    assert_eq!(st["components"][2]["state"], "degraded", "{st}");

    nginx.set_health(Health::Ok);
    assert!(poll_until(Duration::from_secs(10), || decision(&node).0 == "announced"));
    assert_eq!(node.stop_with(nix::sys::signal::Signal::SIGTERM), Some(0));
}
