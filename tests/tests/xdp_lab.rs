//! The whole node data path: real edged on each lab node with its XDP
//! forwarder on the uplink, health-checked nginx proxies, client traffic
//! through the ToR. Traffic spreads over every proxy, edgectl shows the
//! counters, a runtime weight canaries a proxy, a failed proxy leaves the
//! table and no request fails after convergence.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use edged_testlab::lab::{self, Lab, Spec, traffic};
use edged_testlab::poll_until;

fn json(sock: &Path, args: &[&str]) -> serde_json::Value {
    let mut full = vec!["-o", "json"];
    full.extend_from_slice(args);
    serde_json::from_str(&lab::edgectl(sock, &full)).unwrap()
}

fn all_announced(lab: &Lab) -> bool {
    (0..lab.nodes.len()).all(|i| {
        json(&lab.socket(i), &["vips"])
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["route"] == "announced" && v["serving"].as_array().unwrap().len() == 2)
    })
}

fn share(t: &BTreeMap<String, usize>, who: &str) -> f64 {
    let node: usize = t
        .iter()
        .filter(|(k, _)| k.starts_with("edge1-"))
        .map(|(_, v)| v)
        .sum();
    *t.get(who).unwrap_or(&0) as f64 / node.max(1) as f64
}

#[test]
fn xdp_spreads_canaries_and_fails_over() {
    let spec = Spec::parse(lab::spec::DEFAULT).unwrap();
    assert_eq!(spec.xdp.as_deref(), Some("native"));
    let mut lab = Lab::up(spec, &lab::workspace_bin("edged"));
    for i in 0..lab.nodes.len() {
        lab.start_node(i);
    }
    // The ToR learns both nodes over BGP, for both VIPs.
    let two = || {
        ["203.0.113.10", "2001:db8:100::10"]
            .iter()
            .all(|p| edged_testlab::net::nexthops(&lab.tor_ns, p).len() == 2)
    };
    assert!(
        poll_until(Duration::from_secs(20), two),
        "no ECMP route at the ToR"
    );
    assert!(
        poll_until(Duration::from_secs(15), || all_announced(&lab)),
        "{}",
        lab.node_log(0)
    );
    let status = json(&lab.socket(0), &["status"]);
    assert_eq!(status["components"][1]["state"], "ok", "{status}");

    let v4: SocketAddr = "203.0.113.10:80".parse().unwrap();
    let v6: SocketAddr = "[2001:db8:100::10]:80".parse().unwrap();
    for (dst, six) in [(v4, false), (v6, true)] {
        let t = traffic::run(&lab.client.path(), lab.sources(six), dst, 400);
        assert!(
            t.failed.is_empty(),
            "{dst}: {:?}",
            &t.failed[..t.failed.len().min(3)]
        );
        assert_eq!(t.by_proxy.len(), 4, "{dst}: {:?}", t.by_proxy);
    }
    // The data plane counted what it delivered.
    let proxies = json(&lab.socket(0), &["proxies"]);
    for p in proxies.as_array().unwrap() {
        assert!(p["traffic"]["packets"].as_u64().unwrap() > 0, "{p}");
        assert!(p["traffic"]["new_flows"].as_u64().unwrap() > 0, "{p}");
    }

    // Canary: px1 at 10 % of node 1's new flows.
    json(&lab.socket(0), &["weight", "px1", "1"]);
    json(&lab.socket(0), &["weight", "px2", "9"]);
    let t = traffic::run(&lab.client.path(), lab.sources(false), v4, 1000);
    assert!(t.failed.is_empty());
    let canary = share(&t.by_proxy, "edge1-px1");
    println!(
        "canary share of edge1's flows at weights 1:9: {:.1} %",
        canary * 100.0
    );
    assert!((0.03..=0.2).contains(&canary), "{:?}", t.by_proxy);
    json(&lab.socket(0), &["weight", "px1", "reset"]);
    json(&lab.socket(0), &["weight", "px2", "reset"]);

    // A proxy fails under load: its node stops sending it new flows once
    // health says so (interval 250 ms, fall 3); no request fails later
    // than that after the fault.
    let load = traffic::Load::start(&lab.client.path(), lab.sources(false), v4, 2);
    poll_until(Duration::from_secs(5), || load.done() > 100);
    let fault = Instant::now();
    lab.nodes[0].proxies[0].nginx.stop();
    let gone = poll_until(Duration::from_secs(10), || {
        json(&lab.socket(0), &["vips"])[0]["serving"]
            .as_array()
            .unwrap()
            .len()
            == 1
    });
    assert!(gone, "edge1-px1 never left the table");
    let left_at = Instant::now();
    let after = load.done();
    poll_until(Duration::from_secs(5), || load.done() > after + 500);
    let t = load.stop();
    let last = t
        .last_failed_at
        .map(|at| at.saturating_duration_since(fault));
    println!(
        "proxy failure under load: {} failed requests, the last {} ms after the fault \
         (fall x interval = 750 ms)",
        t.failed.len(),
        last.map_or(0, |d| d.as_millis())
    );
    // Requests fail only until the table loses px1: none after the moment
    // edged said so, and none later than a generous bound (fall x
    // interval plus 2 s; two loaded cores run this lab). The tight figure
    // is the lab bench's lab_proxy_failure_last_error_ms.
    let bound = Duration::from_millis(750 + 2000);
    assert!(last.is_none_or(|d| d <= bound), "{last:?} > {bound:?}");
    assert!(
        t.last_failed_at.is_none_or(|at| at <= left_at),
        "a request failed {:?} after edge1 reported px1 out of its table",
        t.last_failed_at.map(|at| at - left_at)
    );
    let t = traffic::run(&lab.client.path(), lab.sources(false), v4, 400);
    assert!(
        t.failed.is_empty(),
        "after convergence: {:?}",
        &t.failed[..t.failed.len().min(3)]
    );
    assert!(!t.by_proxy.contains_key("edge1-px1"));
    assert_eq!(t.by_proxy.len(), 3, "{:?}", t.by_proxy);
}
