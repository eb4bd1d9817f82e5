//! edged node peering with an FRR ToR (zebra + bgpd, `maximum-paths`).

mod lab;

use std::time::Duration;

use edged_bgp::{RouteState, Speaker};
use lab::{Lab, TorView, in_netns, node_spec, start_lab_node, tor, wait_established, wait_for};

const T: Duration = Duration::from_secs(60);

#[test]
fn frr_tor_installs_and_removes_route_with_ecmp() {
    let mut lab = Lab::new(2);
    let vty = tor::start_frr_tor(&mut lab, 2);
    start_lab_node(&mut lab, 2, &["203.0.113.40"]);
    let spec = node_spec(
        &lab,
        1,
        &[("web", "203.0.113.40"), ("solo", "203.0.113.41")],
        false,
    );
    let tv = TorView(lab.tor.clone());
    in_netns(&lab.nodes[0].clone(), move || {
        Box::pin(async move {
            let mut sp = Speaker::start(spec).await.expect("start");
            wait_established(&mut sp).await;
            sp.set_route("solo", RouteState::Announced).await.unwrap();
            sp.set_route("web", RouteState::Announced).await.unwrap();
            wait_for("route at FRR ToR", T, || {
                tv.route("203.0.113.41").contains("via 198.51.100.2")
            });
            wait_for("ECMP at FRR ToR", T, || {
                let r = tv.route("203.0.113.40");
                r.contains("nexthop via 198.51.100.2") && r.contains("nexthop via 198.51.100.6")
            });
            // FRR acts on GRACEFUL_SHUTDOWN by itself (RFC 8326: local preference 0).
            sp.set_route("solo", RouteState::Draining).await.unwrap();
            let mut show = String::new();
            wait_for("graceful-shutdown at FRR", T, || {
                show = tor::vtysh(&vty, "show bgp ipv4 unicast 203.0.113.41");
                show.contains("graceful-shutdown")
            });
            assert!(show.contains("localpref 0"), "{show}");
            sp.set_route("solo", RouteState::Withdrawn).await.unwrap();
            wait_for("route gone at FRR ToR", T, || {
                tv.route("203.0.113.41").is_empty()
            });
            sp.shutdown().await;
        })
    });
}
