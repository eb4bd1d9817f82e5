//! The default lab comes up with real edged, nginx and BIRD, carries
//! traffic over plain kernel ECMP (the baseline of the XDP path), and
//! leaves nothing behind when dropped.

use std::net::SocketAddr;

use edged_testlab::lab::{self, Lab, Spec, traffic};

#[test]
fn default_lab_carries_traffic_over_kernel_ecmp_and_tears_down() {
    let mut spec = Spec::parse(lab::spec::DEFAULT).unwrap();
    spec.xdp = None; // the kernel-routing baseline
    let names: Vec<String>;
    {
        let mut lab = Lab::up(spec, &lab::workspace_bin("edged"));
        for i in 0..lab.nodes.len() {
            lab.start_node(i);
        }
        names = lab
            .nodes
            .iter()
            .map(|n| n.ns.name().to_string())
            .chain([lab.tor_ns.name().to_string()])
            .collect();
        lab.kernel_routes();
        for (vip, v6) in [("203.0.113.10:80", false), ("[2001:db8:100::10]:80", true)] {
            let dst: SocketAddr = vip.parse().unwrap();
            let t = traffic::run(&lab.client.path(), lab.sources(v6), dst, 400);
            assert!(
                t.failed.is_empty(),
                "{vip}: {:?}",
                &t.failed[..t.failed.len().min(3)]
            );
            // 4 proxies behind 2 nodes: every proxy answers, none takes it all.
            assert_eq!(t.by_proxy.len(), 4, "{vip}: {:?}", t.by_proxy);
            assert!(
                t.by_proxy.values().all(|&n| n > 40),
                "{vip}: {:?}",
                t.by_proxy
            );
        }
        // edged runs inside its node's namespace (the pid it reports is
        // one of the namespace's processes).
        let status: serde_json::Value =
            serde_json::from_str(&lab::edgectl(&lab.socket(0), &["-o", "json", "status"])).unwrap();
        let pid = status["pid"].as_u64().expect("edged reports its pid");
        let pids = edged_testlab::sh_ok("ip", &["netns", "pids", lab.nodes[0].ns.name()]);
        assert!(
            pids.split_whitespace().any(|p| p == pid.to_string()),
            "edged (pid {pid}) is not in {}: {pids:?}",
            lab.nodes[0].ns.name()
        );
    }
    let left = edged_testlab::sh_ok("ip", &["netns", "list"]);
    for n in names {
        assert!(!left.contains(&n), "{n} left behind");
    }
}
