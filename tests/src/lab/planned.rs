//! The planned-change scenario of the default lab, shared by the test
//! (`tests/tests/flows.rs`: every count must be 0) and the bench
//! (`tests/benches/planned.rs`: the counts as figures): a BIRD top-of-rack
//! with ECMP over the nodes, each a real edged with XDP and two nginx
//! proxies, holds long-lived keep-alive connections (two thirds to the
//! IPv4 VIP, a third to the IPv6 one), a request every 200 ms each, while one node is put in maintenance and back, restarted,
//! stopped gracefully and started again, killed with -9 and started
//! again, while a third node joins for the first time, and while that
//! node falls off the network. Every time the
//! ToR moves flows between the nodes; each node has told the others which
//! flows are its own, so a moved flow is sent back to its node and proxy.
//! Besides the counts it hands out, the scenario asserts what it needs to
//! go on (routes, the drain holding connections, the full syncs).

use std::net::SocketAddr;
use std::time::Duration;

use super::conns::{ConnTally, Conns};
use super::{Lab, Spec};
use crate::poll_until;

const V4: &str = "203.0.113.10";
const V6: &str = "2001:db8:100::10";
const PERIOD: Duration = Duration::from_millis(200);

/// One planned operation: its name (for figures, `maintenance_on`, ...),
/// its words, and what the connections saw through it.
pub struct Operation<'a> {
    pub name: &'static str,
    pub what: &'static str,
    pub tally: &'a ConnTally,
    /// Connections held through it.
    pub conns: usize,
    /// The node it took off the network, whose own connections are lost
    /// with it (`None`: every connection must survive).
    pub lost: Option<&'static str>,
}

impl Operation<'_> {
    /// Connections that failed while node `n` served them.
    pub fn broken_on(&self, n: &str) -> usize {
        self.tally
            .broken_by_proxy
            .iter()
            .filter(|(p, _)| p.starts_with(n))
            .map(|(_, c)| c)
            .sum()
    }

    /// Connections that failed while another node than [`Self::lost`]
    /// served them.
    pub fn broken_elsewhere(&self) -> usize {
        self.tally
            .broken_by_proxy
            .iter()
            .filter(|(p, _)| !p.is_empty() && self.lost.is_none_or(|n| !p.starts_with(n)))
            .map(|(_, c)| c)
            .sum()
    }

    /// Answers from node `n` (`edge1`, ...).
    pub fn answers_from(&self, n: &str) -> usize {
        self.tally
            .by_proxy
            .iter()
            .filter(|(p, _)| p.starts_with(n))
            .map(|(_, c)| c)
            .sum()
    }
}

impl std::fmt::Display for Operation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}; answers edge1 {} edge2 {} edge3 {}",
            self.what,
            self.tally,
            self.answers_from("edge1"),
            self.answers_from("edge2"),
            self.answers_from("edge3")
        )
    }
}

/// `n` connections: two thirds to the IPv4 VIP, a third to the IPv6 one,
/// from the lab's client sources.
fn open(lab: &Lab, n: usize) -> Conns {
    let (v4, v6) = (lab.sources(false), lab.sources(true));
    let d4: SocketAddr = format!("{V4}:80").parse().unwrap();
    let d6: SocketAddr = format!("[{V6}]:80").parse().unwrap();
    let n6 = n / 3;
    Conns::start_many(
        &lab.client.path(),
        &[(&v4, d4, n - n6), (&v6, d6, n6)],
        PERIOD,
    )
}

/// Every connection answers `rounds` more times (they keep going).
fn settle(c: &Conns, n: usize, rounds: usize) {
    assert!(
        c.wait_answers(n * rounds, Duration::from_secs(30)),
        "connections stopped answering"
    );
}

/// The peers' full-sync counters and flows exchanged, from `edgectl peers`.
fn sharing(lab: &Lab, i: usize) -> serde_json::Value {
    let out = super::edgectl(&lab.socket(i), &["-o", "json", "peers"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v["flow_sharing"].clone()
}

/// `edgectl vips` on node `i` for the VIP web: the connections it still
/// holds while drained, and whether its drain waits for them.
fn web_held(lab: &Lab, i: usize) -> (u64, bool) {
    let out = std::process::Command::new(super::workspace_bin("edgectl"))
        .arg("--socket")
        .arg(lab.socket(i))
        .args(["-o", "json", "vips"])
        .output()
        .expect("run edgectl");
    assert!(
        out.status.success(),
        "edgectl vips on node {i}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        lab.node_log(i)
    );
    let out = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let web = v
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "web"))
        .unwrap_or_else(|| panic!("no VIP web in {out}"));
    (
        web["held"].as_u64().unwrap_or(0),
        web["holding"].as_bool().unwrap_or(false),
    )
}

/// The ToR picks a flow's node from its headers, as a switch does: the
/// node `ip route get` names for a connection's 5-tuple is the node whose
/// proxy answers it (a hash of the sender socket's own would make a flow's
/// node random, and change it after a retransmission timeout).
fn tor_hashes_on_headers(lab: &Lab, sources: &[std::net::IpAddr], dst: SocketAddr) {
    let node_of_hop = |hop: &str| match hop {
        "192.0.2.2" => "edge1",
        "192.0.2.6" => "edge2",
        "192.0.2.10" => "edge3",
        other => panic!("next hop {other}"),
    };
    let mut nodes = std::collections::BTreeSet::new();
    for src in sources.iter().take(40).copied() {
        let (local, who) = super::traffic::in_netns(&lab.client.path(), move || {
            super::traffic::get_from(src, dst, Duration::from_secs(2))
        })
        .unwrap_or_else(|e| panic!("GET from {src}: {e}"));
        let route = lab.tor_ns.exec_ok(&[
            "ip",
            "route",
            "get",
            V4,
            "from",
            &src.to_string(),
            "iif",
            "client",
            "ipproto",
            "tcp",
            "sport",
            &local.port().to_string(),
            "dport",
            "80",
        ]);
        let hop = route
            .split_whitespace()
            .skip_while(|w| *w != "via")
            .nth(1)
            .unwrap_or_else(|| panic!("no next hop in {route:?}"));
        let node = node_of_hop(hop);
        assert!(
            who.starts_with(node),
            "{src}:{} -> {V4}:80: the ToR's route names {node} ({hop}), {who} answered",
            local.port()
        );
        nodes.insert(node);
    }
    assert_eq!(nodes.len(), 2, "flows over both nodes: {nodes:?}");
}

/// One operation under `conns` fresh connections: they answer twice,
/// `change` runs (it may wait on them), they answer three times more and
/// stop; `each` gets what they saw, which is returned.
fn under(
    lab: &mut Lab,
    conns: usize,
    (name, what): (&'static str, &'static str),
    lost: Option<&'static str>,
    each: &mut dyn FnMut(&Operation<'_>),
    change: impl FnOnce(&mut Lab, &Conns),
) -> ConnTally {
    let c = open(lab, conns);
    settle(&c, conns, 2);
    change(lab, &c);
    settle(&c, conns, 3);
    let tally = c.stop();
    each(&Operation {
        name,
        what,
        tally: &tally,
        conns,
        lost,
    });
    tally
}

/// Runs the scenario with `conns` connections, handing each operation's
/// counts to `each` as it ends.
pub fn run(conns: usize, mut each: impl FnMut(&Operation<'_>)) {
    let each = &mut each;
    // A third node, edge3, joins at the end.
    let mut spec = Spec::parse(super::spec::DEFAULT).unwrap();
    spec.nodes = 3;
    let mut lab = Lab::up(spec, &super::workspace_bin("edged"));
    for i in 0..2 {
        lab.start_node(i);
    }
    lab.until_hops(V4, 2, Duration::from_secs(20));
    lab.until_hops(V6, 2, Duration::from_secs(20));
    let dst: SocketAddr = format!("{V4}:80").parse().unwrap();
    let sources = lab.sources(false);
    let sock2 = lab.socket(1);
    tor_hashes_on_headers(&lab, &sources, dst);

    // Maintenance on edge2: its connections reach it through edge1 while
    // its route is gone, and the drain is complete only once they end.
    let op = ("maintenance_on", "maintenance on (edge2)");
    let t = under(&mut lab, conns, op, None, each, |lab, c| {
        super::edgectl(&sock2, &["maintenance", "on"]);
        lab.until_hops(V4, 1, Duration::from_secs(15));
        // After the graceful shutdown (2 s) the route is withdrawn; the
        // drain waits for the connections edge2 still serves.
        assert!(
            poll_until(Duration::from_secs(10), || web_held(lab, 1).1),
            "edge2's drain does not wait for its connections: {}",
            super::edgectl(&sock2, &["vips"])
        );
        settle(c, conns, 3);
        let (held, holding) = web_held(lab, 1);
        assert!(holding && held > 0, "edge2 holds {held} connections");
    });
    assert!(
        t.by_proxy.keys().any(|p| p.starts_with("edge1"))
            && t.by_proxy.keys().any(|p| p.starts_with("edge2")),
        "connections on both nodes: {:?}",
        t.by_proxy
    );
    assert!(
        poll_until(Duration::from_secs(10), || web_held(&lab, 1) == (0, false)),
        "edge2's drain did not complete once its connections ended: {:?}",
        web_held(&lab, 1)
    );
    // And back: the connections opened meanwhile (all on edge1) that the
    // ToR now sends to edge2 go back to edge1.
    let op = ("maintenance_off", "maintenance off (edge2)");
    under(&mut lab, conns, op, None, each, |lab, _| {
        super::edgectl(&sock2, &["maintenance", "off"]);
        lab.until_hops(V4, 2, Duration::from_secs(15));
    });
    // edge1 sent edge2's packets back to it (counted per VIP), and both
    // count the flows they exchanged.
    // (The loop reads the data plane's counters every few seconds.)
    let counted = |i, series: &str, min: f64| {
        poll_until(Duration::from_secs(15), || {
            lab.metric(i, series).is_some_and(|v| v >= min)
        })
    };
    for vip in ["web", "web6"] {
        assert!(
            counted(
                0,
                &format!("edged_xdp_vip_second_chance_total{{vip=\"{vip}\"}}"),
                1.0
            ),
            "edge1 counted no second-chance packet of {vip}"
        );
    }
    assert!(
        counted(
            1,
            "edged_flows_shared_total{peer=\"192.0.2.2\"}",
            (conns / 4) as f64
        ),
        "edge2 shared too few flows"
    );
    let s1 = sharing(&lab, 0);
    let from_edge2 = s1["peers"]["192.0.2.6"]["flows_received"]
        .as_u64()
        .unwrap_or(0);
    assert!(from_edge2 > 0, "edge1 learned edge2's flows: {s1}");

    // A planned restart of edge2's edged: routes and data plane stay.
    let op = ("restart", "planned restart (edge2)");
    under(&mut lab, conns, op, None, each, |lab, _| {
        super::edgectl(&sock2, &["stop", "--restart"]);
        let exited = lab.nodes[1]
            .edged
            .as_mut()
            .unwrap()
            .wait_timeout(Duration::from_secs(20));
        assert!(exited.is_some(), "edged did not stop for the restart");
        lab.start_node(1);
    });

    // A graceful stop of edge2 (`systemctl stop`): it drains, and edged
    // runs on, serving its connections through edge1, until they end.
    let op = ("graceful_stop", "graceful stop (edge2)");
    under(&mut lab, conns, op, None, each, |lab, c| {
        // What `systemctl stop` sends (`edgectl stop` would wait for the
        // exit).
        lab.nodes[1]
            .edged
            .as_ref()
            .unwrap()
            .signal(nix::sys::signal::Signal::SIGTERM);
        assert!(
            poll_until(Duration::from_secs(10), || web_held(lab, 1).1),
            "edge2's stop does not wait for its connections:\n{}",
            lab.node_log(1)
        );
        settle(c, conns, 3);
        let log = lab.node_log(1);
        let running = lab.nodes[1].edged.as_mut().unwrap();
        assert!(
            running.wait_timeout(Duration::ZERO).is_none(),
            "edged stopped while it held connections:\n{log}"
        );
    });
    let exited = lab.nodes[1]
        .edged
        .as_mut()
        .unwrap()
        .wait_timeout(Duration::from_secs(15));
    assert!(
        exited.is_some(),
        "edged did not stop once its connections ended"
    );
    // Started again: the connections opened meanwhile (all on edge1) that
    // the ToR sends to edge2 once it announces go back to edge1.
    let op = ("start_after_stop", "started again after a stop (edge2)");
    under(&mut lab, conns, op, None, each, |lab, _| {
        lab.nodes[1].edged = None;
        lab.start_node(1);
        lab.until_hops(V4, 2, Duration::from_secs(20));
    });

    // kill -9 of edge2's edged: BIRD goes with it and the ToR moves every
    // flow to edge1, which sends edge2's back (edge2's XDP program, with
    // its connection table, outlives edged). Started again, edge2 asks
    // edge1 for its flows before the ToR sends it any.
    let op = ("kill9_and_start", "kill -9 and start again (edge2)");
    under(&mut lab, conns, op, None, each, |lab, c| {
        lab.nodes[1]
            .edged
            .as_ref()
            .unwrap()
            .signal(nix::sys::signal::Signal::SIGKILL);
        lab.until_hops(V4, 1, Duration::from_secs(10));
        settle(c, conns, 3);
        lab.nodes[1].edged = None;
        lab.start_node(1);
        lab.until_hops(V4, 2, Duration::from_secs(20));
    });
    let s2 = sharing(&lab, 1);
    assert_eq!(
        s2["peers"]["192.0.2.2"]["synced"], true,
        "the restarted edge2 learned edge1's flows: {s2}"
    );
    // edge3 starts for the first time (nothing pinned): it learns both
    // peers' flows before it announces, so the third of the flows the ToR
    // now sends it go back to their nodes.
    let op = ("first_join", "a node joining for the first time (edge3)");
    under(&mut lab, conns, op, None, each, |lab, _| {
        lab.start_node(2);
        lab.until_hops(V4, 3, Duration::from_secs(20));
    });
    let s3 = sharing(&lab, 2);
    for peer in ["192.0.2.2", "192.0.2.6"] {
        assert_eq!(
            s3["peers"][peer]["synced"], true,
            "edge3 learned {peer}'s flows: {s3}"
        );
    }
    // Every datagram was signed with the lab's key and verified.
    for s in [sharing(&lab, 0), s2, s3] {
        assert_eq!(s["rejected"], serde_json::json!({}), "{s}");
    }

    // edge3 falls off the network (its uplink goes down, as with a power
    // loss): its own connections go with it; the ToR spreads every flow
    // over the two others once its session times out, and the flows it
    // moves between them go back to their owners.
    let op = ("node_crash", "edge3 off the network");
    under(&mut lab, conns, op, Some("edge3"), each, |lab, _| {
        lab.nodes[2]
            .ns
            .exec_ok(&["ip", "link", "set", "uplink", "down"]);
        lab.until_hops(V4, 2, Duration::from_secs(30));
        lab.until_hops(V6, 2, Duration::from_secs(30));
    });
}
