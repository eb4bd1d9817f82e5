//! The lab's parts work on their own: veth between namespaces, nginx with
//! its identity and its faults, a BIRD ToR that starts and answers birdc.

use std::time::Duration;

use edged_testlab::{BirdTor, Health, Neighbor, NetNs, Nginx, net, poll_until, unique};

fn curl(ns: &NetNs, url: &str) -> (bool, String) {
    let out = ns
        .command("curl")
        .args(["-s", "-m", "1", "-w", " %{http_code}", url])
        .output()
        .unwrap();
    let words: Vec<_> = std::str::from_utf8(&out.stdout)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    (out.status.success(), words.join(" "))
}

/// Polls `url` from `ns` until the answer is `want`; panics with the last one.
fn wait_for(ns: &NetNs, url: &str, want: &str) {
    let mut last = String::new();
    let ok = poll_until(Duration::from_secs(5), || {
        last = curl(ns, url).1;
        last == want
    });
    assert!(ok, "{url}: wanted {want:?}, last answer {last:?}");
}

#[test]
fn nginx_answers_with_identity_and_fails_on_demand() {
    let (client, server) = (NetNs::new("lc"), NetNs::new("ls"));
    let (a, b) = (unique("va"), unique("vb"));
    net::veth(&client, &a, &server, &b);
    net::addr(&client, &a, "198.51.100.1/24");
    net::addr(&server, &b, "198.51.100.2/24");
    net::addr(&client, &a, "2001:db8:1::1/64");
    net::addr(&server, &b, "2001:db8:1::2/64");
    let mut px = Nginx::start(&server, "px-a", 8080);

    wait_for(&client, "http://198.51.100.2:8080/", "px-a 200");
    wait_for(&client, "http://[2001:db8:1::2]:8080/", "px-a 200");
    wait_for(&client, "http://198.51.100.2:8080/healthz", "ok 200");
    px.set_health(Health::Error);
    wait_for(&client, "http://198.51.100.2:8080/healthz", "broken 500");
    px.set_health(Health::WrongBody);
    wait_for(
        &client,
        "http://198.51.100.2:8080/healthz",
        "maintenance 200",
    );

    px.freeze();
    let (ok, _) = curl(&client, "http://198.51.100.2:8080/");
    assert!(!ok, "a frozen nginx must not answer");
    px.thaw();
    wait_for(&client, "http://198.51.100.2:8080/", "px-a 200");

    px.stop();
    let out = client
        .command("curl")
        .args(["-s", "-m", "1", "http://198.51.100.2:8080/"])
        .status()
        .unwrap();
    assert_eq!(out.code(), Some(7), "connection refused after stop");
    assert_eq!(net::mac(&server, &b).len(), 17);
}

#[test]
fn bird_tor_starts_and_lists_its_neighbors() {
    let tor_ns = NetNs::new("lt");
    let tor = BirdTor::start(
        &tor_ns,
        "192.0.2.1",
        65000,
        &[Neighbor {
            name: "edge1".into(),
            address: "192.0.2.10".parse().unwrap(),
            asn: 65010,
        }],
    );
    let out = tor.birdc(&["show", "protocols"]);
    assert!(out.contains("edge1") && out.contains("BGP"), "{out}");
    assert!(!tor.established("edge1"));
    assert!(net::nexthops(&tor_ns, "203.0.113.10").is_empty());
}
