//! The lab's parts work on their own: veth between namespaces, nginx with
//! its identity and its faults, a BIRD ToR that peers with a node and
//! installs its route.

use std::time::Duration;

use edged_testlab::{
    BirdTor, Health, Neighbor, NetNs, Nginx, Proc, TempDir, net, poll_until, unique,
};

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
    // The MAC `net::mac` reads is the one the client resolved for the
    // server's address.
    let mac = net::mac(&server, &b);
    let neigh = client.exec_ok(&["ip", "neigh", "show", "198.51.100.2", "dev", &a]);
    assert!(
        neigh.contains(&format!("lladdr {mac} ")),
        "server's {b} has {mac}; the client resolved {neigh:?}"
    );
}

/// The ToR peers with a BIRD standing in for an edge node: no session
/// while the node is silent, then an Established session, and the route
/// the node exports lands in the ToR's kernel table through the node.
#[test]
fn bird_tor_establishes_and_installs_what_a_node_exports() {
    let (tor_ns, edge_ns) = (NetNs::new("lt"), NetNs::new("le"));
    let (t, e) = (unique("vt"), unique("ve"));
    net::veth(&tor_ns, &t, &edge_ns, &e);
    net::addr(&tor_ns, &t, "192.0.2.1/30");
    net::addr(&edge_ns, &e, "192.0.2.2/30");
    let tor = BirdTor::start(
        &tor_ns,
        "192.0.2.1",
        65000,
        &[Neighbor {
            name: "edge1".into(),
            address: "192.0.2.2".parse().unwrap(),
            asn: 65010,
        }],
    );
    let out = tor.birdc(&["show", "protocols"]);
    assert!(out.contains("edge1") && out.contains("BGP"), "{out}");
    assert!(!tor.established("edge1"), "a session with nobody: {out}");

    let dir = TempDir::new("edgebird");
    let conf = "router id 192.0.2.2;\nprotocol device {}\n\
                protocol static { ipv4; route 203.0.113.10/32 blackhole; }\n\
                protocol bgp tor { local as 65010; neighbor 192.0.2.1 as 65000; \
                connect delay time 1; connect retry time 1; \
                ipv4 { import none; export all; }; }\n";
    std::fs::write(dir.path().join("bird.conf"), conf).unwrap();
    let mut cmd = edge_ns.command("bird");
    cmd.arg("-f")
        .arg("-c")
        .arg(dir.path().join("bird.conf"))
        .arg("-s")
        .arg(dir.path().join("bird.ctl"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _edge = Proc::spawn(cmd);
    assert!(
        poll_until(Duration::from_secs(20), || tor.established("edge1")),
        "{}\n{}",
        tor.birdc(&["show", "protocols", "all", "edge1"]),
        tor.log()
    );
    assert!(
        poll_until(Duration::from_secs(10), || net::nexthops(
            &tor_ns,
            "203.0.113.10"
        ) == ["192.0.2.2"]),
        "ToR kernel route: {:?}",
        net::nexthops(&tor_ns, "203.0.113.10")
    );
}

/// `edged-lab cleanup` removes what a dead run left, never a live lab.
#[test]
fn lab_cleanup_removes_only_namespaces_of_runs_that_are_gone() {
    use edged_testlab::lab;
    // A pid (modulo 10^6, as in the names) that no process has now.
    let running: std::collections::BTreeSet<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .map(|p| p % 1_000_000)
        .collect();
    let dead = (900_000..1_000_000).find(|p| !running.contains(p)).unwrap();
    let stale = format!("{}{dead}x{}", lab::NS_PREFIX, std::process::id());
    edged_testlab::sh_ok("ip", &["netns", "add", &stale]);
    let live = NetNs::new(lab::NS_PREFIX);
    let removed = lab::cleanup(None);
    let left = edged_testlab::sh_ok("ip", &["netns", "list"]);
    let gone = !left
        .lines()
        .any(|l| l.split_whitespace().next() == Some(&stale));
    if !gone {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &stale])
            .status();
    }
    assert!(gone, "{stale} (a dead run's) is still there");
    assert!(removed >= 1);
    assert!(
        left.lines()
            .any(|l| l.split_whitespace().next() == Some(live.name())),
        "{} (this live run's) was removed",
        live.name()
    );
}
