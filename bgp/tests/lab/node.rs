//! Node side of the lab: specs for in-test speakers and the `bgp-lab-node` process.

use std::time::{Duration, Instant};

use super::{Lab, tor};

/// A managed-mode spec for node `i` peering with the ToR over IPv4 (and IPv6 if `v6`).
pub fn node_spec(lab: &Lab, i: u32, vips: &[(&str, &str)], v6: bool) -> edged_bgp::BgpSpec {
    use edged_bgp::{BgpSpec, BirdMode, DrainPolicy, PeerSpec, VipRoute};
    let peer = |name: &str, addr: String| PeerSpec {
        name: name.into(),
        address: addr.parse().unwrap(),
        asn: tor::TOR_ASN,
        source_address: None,
        hold_time: 9,
        keepalive: None,
        bfd: false,
        password_file: None,
        multihop: None,
        ttl_security: false,
    };
    let mut peers = vec![peer("tor4", Lab::node_v4(i).1)];
    if v6 {
        peers.push(peer("tor6", Lab::node_v6(i).1));
    }
    BgpSpec {
        router_id: Lab::node_v4(i).0.parse().unwrap(),
        local_asn: tor::NODE_ASN,
        peers,
        vips: vips
            .iter()
            .map(|(n, a)| VipRoute {
                name: n.to_string(),
                prefix: a.parse().unwrap(),
                communities: vec![],
                large_communities: vec![],
            })
            .collect(),
        drain: DrainPolicy::default(),
        mode: BirdMode::Managed {
            bird_binary: "/usr/sbin/bird".into(),
            state_dir: lab.subdir(&format!("node{i}")),
            keeper: edged_bgp::KeeperCommand::from_build_dir(),
            handover_grace: std::time::Duration::from_secs(5),
        },
    }
}

/// Wait until every peer of the speaker is established.
pub async fn wait_established(sp: &mut edged_bgp::Speaker) {
    let start = Instant::now();
    loop {
        let peers = sp.peers().await.expect("peers");
        if !peers.is_empty() && peers.iter().all(|p| p.is_up()) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "sessions not established: {peers:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Start `bgp-lab-node` in node `i`'s namespace announcing `vips`; waits for `ready`.
/// Returns its PID (the process is owned by the lab).
pub fn start_lab_node(lab: &mut Lab, i: u32, vips: &[&str]) -> u32 {
    use std::io::BufRead as _;
    let dir = lab.subdir(&format!("labnode{i}")).display().to_string();
    let (me, tor) = Lab::node_v4(i);
    let (asn, tasn) = (tor::NODE_ASN.to_string(), tor::TOR_ASN.to_string());
    let mut args = vec![
        env!("CARGO_BIN_EXE_bgp-lab-node"),
        &dir,
        &me,
        &asn,
        &tor,
        &tasn,
    ];
    args.extend_from_slice(vips);
    let ns = lab.nodes[(i - 1) as usize].clone();
    let child = lab.spawn_in(&ns, &args);
    let pid = child.id();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("ready"),
        "lab node did not start: {line:?}"
    );
    pid
}
