//! Shared tables end to end: one node, real BIRD ToR, two real nginx
//! proxies and 48 VIPs (IPv4 and IPv6) that they all serve. The VIPs share
//! one table; a proxy's failure takes it out of every VIP's table with one
//! build and one swap, its recovery puts it back the same way, and traffic
//! to VIPs across the range is served throughout.

use std::net::SocketAddr;
use std::time::Duration;

use edged_testlab::lab::{self, Lab, Spec, traffic};
use edged_testlab::poll_until;

const VIPS: usize = 48;

fn spec() -> String {
    let mut y = String::from(
        "tor: {asn: 65000}\nnodes: 1\nproxies_per_node: 2\nnode_asn: 65010\nxdp: native\nclient_sources: 16\nvips:\n",
    );
    for i in 0..VIPS {
        let address = if i % 2 == 0 {
            format!("203.0.113.{}", 10 + i / 2)
        } else {
            format!("'2001:db8:100::{:x}'", 0x10 + i / 2)
        };
        y += &format!("  - {{name: v{i}, address: {address}, port: 80}}\n");
    }
    y
}

fn serving(lab: &Lab) -> Vec<usize> {
    lab.edgectl_json(0, &["vips"])
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let n = v["serving"].as_array().map_or(0, |s| s.len());
            if v["route"] == "announced" { n } else { 0 }
        })
        .collect()
}

fn pools(lab: &Lab) -> Option<f64> {
    lab.metric(0, "edged_xdp_table_used{table=\"pools\"}")
}

fn swaps(lab: &Lab) -> f64 {
    lab.metric(0, "edged_xdp_table_swaps_total")
        .expect("swaps metric")
}

/// The table figures are published with the counters (every 5 s): waits
/// until they show at least `want` swaps since `before` on one table, and
/// returns the swaps seen.
fn settled_swaps(lab: &Lab, before: f64, want: f64) -> f64 {
    poll_until(Duration::from_secs(15), || {
        swaps(lab) - before >= want && pools(lab) == Some(1.0)
    });
    swaps(lab) - before
}

/// Requests to every eighth VIP, both families: all answered.
fn sample_served(lab: &Lab) {
    for v in lab.spec.vips.iter().step_by(8) {
        let dst = SocketAddr::new(v.address, v.port);
        let t = traffic::run(
            &lab.client.path(),
            lab.sources(v.address.is_ipv6()),
            dst,
            16,
        );
        assert!(t.failed.is_empty(), "{dst}: {:?}", &t.failed[..1]);
    }
}

#[test]
fn vips_on_one_serving_set_share_a_table_and_a_proxy_failure_is_one_swap() {
    let mut lab = Lab::up(Spec::parse(&spec()).unwrap(), &lab::workspace_bin("edged"));
    lab.start_node(0);
    let all_two = poll_until(Duration::from_secs(30), || {
        serving(&lab).iter().all(|&n| n == 2)
    });
    assert!(
        all_two,
        "not every VIP announced with 2 proxies:\n{}",
        lab.node_log(0)
    );
    for v in &lab.spec.vips {
        assert!(
            lab.wait_hops(&v.address.to_string(), 1, Duration::from_secs(20)),
            "{} not at the ToR",
            v.address
        );
    }
    let one = poll_until(Duration::from_secs(15), || pools(&lab) == Some(1.0));
    assert!(
        one,
        "{VIPS} VIPs on one serving set: {:?} tables",
        pools(&lab)
    );
    let (_, status, _) = lab.edgectl_try(0, &["status"]);
    assert!(status.contains("shared tables 1/"), "{status}");
    sample_served(&lab);

    // px1 dies: out of all 48 tables, one table built and swapped in.
    let before = swaps(&lab);
    lab.nodes[0].proxies[0].nginx.kill();
    let out = poll_until(Duration::from_secs(20), || {
        serving(&lab).iter().all(|&n| n == 1)
    });
    assert!(out, "px1 not out of every table:\n{}", lab.node_log(0));
    assert_eq!(
        settled_swaps(&lab, before, 1.0),
        1.0,
        "one swap for {VIPS} VIPs"
    );
    assert_eq!(pools(&lab), Some(1.0));
    sample_served(&lab);

    // It comes back: one more swap puts it into every table.
    lab.nodes[0].proxies[0].nginx.restart();
    let back = poll_until(Duration::from_secs(30), || {
        serving(&lab).iter().all(|&n| n == 2)
    });
    assert!(back, "px1 not back in every table:\n{}", lab.node_log(0));
    assert_eq!(settled_swaps(&lab, before, 2.0), 2.0);
    assert_eq!(pools(&lab), Some(1.0));
    sample_served(&lab);
}
