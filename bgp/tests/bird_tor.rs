//! edged nodes peering with a BIRD ToR (kernel table checked).

mod lab;

use std::time::Duration;

use edged_bgp::{RouteState, Speaker};
use lab::{Lab, TorView, in_netns, node_spec, tor, wait_established, wait_for};

const T: Duration = Duration::from_secs(30);

/// One node peering with a BIRD ToR, and the node's spec for `vips`.
fn one_node(vips: &[(&str, &str)]) -> (Lab, edged_bgp::BgpSpec) {
    let mut lab = Lab::new(1);
    tor::start_bird_tor(&mut lab, 1);
    let spec = node_spec(&lab, 1, vips, false);
    (lab, spec)
}

#[test]
fn announce_then_withdraw_reaches_tor_kernel() {
    let (lab, spec) = one_node(&[("web", "203.0.113.10"), ("api", "203.0.113.11")]);
    let tor_ns = lab.tor.clone();
    in_netns(&lab.nodes[0].clone(), move || {
        Box::pin(async move {
            let lab_tor = TorView(tor_ns);
            let mut sp = Speaker::start(spec).await.expect("start");
            wait_established(&mut sp).await;
            sp.set_route("web", RouteState::Announced).await.unwrap();
            wait_for("route at ToR", T, || {
                lab_tor.route("203.0.113.10").contains("via 198.51.100.2")
            });
            assert_eq!(lab_tor.route("203.0.113.11"), "", "api was never announced");
            assert!(sp.export_mismatches().await.unwrap().is_empty());
            let peers = sp.peers().await.unwrap();
            assert_eq!(peers[0].name, "tor4");
            assert_eq!(peers[0].exported, 1, "{peers:?}");
            assert!(peers[0].since_unix.is_some(), "{peers:?}");
            // Someone disables the route behind edged's back: verification notices.
            let mut other =
                edged_bgp::BirdClient::connect(&sp.socket_path(), Duration::from_secs(5))
                    .await
                    .unwrap();
            other.command("disable edged_a_web").await.unwrap();
            let m = sp.export_mismatches().await.unwrap();
            assert_eq!(m.len(), 1, "{m:?}");
            assert_eq!(
                (m[0].peer.as_str(), m[0].kind),
                ("tor4", edged_bgp::MismatchKind::Missing)
            );
            assert_eq!(sp.export_mismatches_total(), 1);
            sp.set_route("web", RouteState::Announced).await.unwrap();
            assert!(sp.export_mismatches().await.unwrap().is_empty());
            sp.set_route("web", RouteState::Withdrawn).await.unwrap();
            wait_for("route gone", T, || lab_tor.route("203.0.113.10").is_empty());
            assert!(sp.export_mismatches().await.unwrap().is_empty());
            assert!(matches!(
                sp.set_route("nope", RouteState::Announced).await,
                Err(edged_bgp::BgpError::UnknownVip { .. })
            ));
            sp.shutdown().await;
        })
    });
}

#[test]
fn ipv6_vip_and_communities_visible_at_peer() {
    let mut lab = Lab::new(1);
    let sock = tor::start_bird_tor(&mut lab, 1);
    let mut spec = node_spec(
        &lab,
        1,
        &[("web", "203.0.113.10"), ("web6", "2001:db8:ff::10")],
        true,
    );
    for v in &mut spec.vips {
        v.communities = vec![(65001, 100), (65001, 200)];
        v.large_communities = vec![(65001, 7, 8)];
    }
    let tv = TorView(lab.tor.clone());
    in_netns(&lab.nodes[0].clone(), move || {
        Box::pin(async move {
            let mut sp = Speaker::start(spec).await.expect("start");
            wait_established(&mut sp).await;
            sp.set_route("web", RouteState::Announced).await.unwrap();
            sp.set_route("web6", RouteState::Announced).await.unwrap();
            wait_for("v6 route at ToR", T, || {
                tv.route("2001:db8:ff::10").contains("proto bird")
            });
            wait_for("v4 route at ToR", T, || {
                tv.route("203.0.113.10").contains("via 198.51.100.2")
            });
            // The v6 VIP goes only over the v6 session and vice versa.
            let show = tor::birdc(&sock, "show route 2001:db8:ff::10/128 all");
            assert!(show.contains("n1v6") && !show.contains("n1v4"), "{show}");
            assert!(
                show.contains("(65001,100)") && show.contains("(65001,200)"),
                "{show}"
            );
            assert!(show.contains("(65001, 7, 8)"), "{show}");
            let show4 = tor::birdc(&sock, "show route 203.0.113.10/32 all");
            assert!(
                show4.contains("(65001,100)") && show4.contains("(65001, 7, 8)"),
                "{show4}"
            );
            assert!(sp.export_mismatches().await.unwrap().is_empty());
            sp.set_route("web6", RouteState::Withdrawn).await.unwrap();
            wait_for("v6 route gone", T, || {
                tv.route("2001:db8:ff::10").is_empty()
            });
            assert!(tv.route("203.0.113.10").contains("via"), "v4 VIP must stay");
            sp.shutdown().await;
        })
    });
}

#[test]
fn draining_sends_graceful_shutdown_then_withdraw() {
    let mut lab = Lab::new(1);
    let sock = tor::start_bird_tor(&mut lab, 1);
    let mut spec = node_spec(&lab, 1, &[("web", "203.0.113.10")], false);
    spec.drain = edged_bgp::DrainPolicy {
        med: Some(500),
        prepend: 2,
    };
    let tv = TorView(lab.tor.clone());
    in_netns(&lab.nodes[0].clone(), move || {
        Box::pin(async move {
            let mut sp = Speaker::start(spec).await.expect("start");
            wait_established(&mut sp).await;
            sp.set_route("web", RouteState::Announced).await.unwrap();
            wait_for("route at ToR", T, || {
                tv.route("203.0.113.10").contains("via")
            });
            let show = tor::birdc(&sock, "show route 203.0.113.10/32 all");
            assert!(!show.contains("(65535,0)"), "{show}");
            sp.set_route("web", RouteState::Draining).await.unwrap();
            let mut show = String::new();
            wait_for("65535:0 at ToR", T, || {
                show = tor::birdc(&sock, "show route 203.0.113.10/32 all");
                show.contains("(65535,0)")
            });
            assert!(
                show.contains("BGP.local_pref: 0"),
                "ToR import filter must apply RFC 8326: {show}"
            );
            assert!(show.contains("BGP.med: 500"), "{show}");
            assert!(
                show.contains("65001 65001 65001"),
                "two prepends + own ASN: {show}"
            );
            assert!(
                tv.route("203.0.113.10").contains("via"),
                "draining route stays usable"
            );
            assert!(sp.export_mismatches().await.unwrap().is_empty());
            // Undrain: back to a normal route.
            sp.set_route("web", RouteState::Announced).await.unwrap();
            wait_for("65535:0 removed", T, || {
                !tor::birdc(&sock, "show route 203.0.113.10/32 all").contains("(65535,0)")
            });
            sp.set_route("web", RouteState::Draining).await.unwrap();
            sp.set_route("web", RouteState::Withdrawn).await.unwrap();
            wait_for("route gone", T, || tv.route("203.0.113.10").is_empty());
            sp.shutdown().await;
        })
    });
}

#[test]
fn rejected_config_reports_location_and_keeps_routes() {
    let (lab, spec) = one_node(&[("web", "203.0.113.10")]);
    let tv = TorView(lab.tor.clone());
    in_netns(&lab.nodes[0].clone(), move || {
        Box::pin(async move {
            let mut sp = Speaker::start(spec.clone()).await.expect("start");
            wait_established(&mut sp).await;
            sp.set_route("web", RouteState::Announced).await.unwrap();
            wait_for("route at ToR", T, || {
                tv.route("203.0.113.10").contains("via")
            });
            // Hold time 1 is left for BIRD to reject (it allows 0 or 3..=65535).
            let mut bad = spec.clone();
            bad.peers[0].hold_time = 1;
            bad.vips.push(lab_vip("api", "203.0.113.11"));
            let err = sp
                .reconfigure(bad)
                .await
                .expect_err("BIRD must reject hold time 1");
            let edged_bgp::BgpError::ConfigRejected(loc) = &err else {
                panic!("wrong error: {err}")
            };
            assert!(
                loc.file.ends_with("bird.conf.new") && loc.line > 0 && loc.column > 0,
                "{loc:?}"
            );
            assert!(loc.message.contains("Hold time"), "{loc:?}");
            assert!(
                err.to_string()
                    .contains(&format!(":{}:{}", loc.line, loc.column)),
                "{err}"
            );
            // Previous config and announcements stay.
            assert!(matches!(
                sp.set_route("api", RouteState::Announced).await,
                Err(edged_bgp::BgpError::UnknownVip { .. })
            ));
            assert!(sp.export_mismatches().await.unwrap().is_empty());
            assert!(tv.route("203.0.113.10").contains("via"));
            // A good change applies with one configure and keeps the existing route.
            let mut good = spec.clone();
            good.vips.push(lab_vip("api", "203.0.113.11"));
            sp.reconfigure(good).await.expect("good reconfigure");
            assert_eq!(sp.route_state("web"), RouteState::Announced);
            sp.set_route("api", RouteState::Announced).await.unwrap();
            wait_for("new VIP at ToR", T, || {
                tv.route("203.0.113.11").contains("via")
            });
            assert!(tv.route("203.0.113.10").contains("via"));
            assert!(sp.export_mismatches().await.unwrap().is_empty());
            sp.shutdown().await;
        })
    });
}

#[test]
fn bird_killed_under_speaker_is_restarted_and_routes_return() {
    let (lab, spec) = one_node(&[("web", "203.0.113.10"), ("api", "203.0.113.11")]);
    let tv = TorView(lab.tor.clone());
    in_netns(&lab.nodes[0].clone(), move || {
        Box::pin(async move {
            let mut sp = Speaker::start(spec).await.expect("start");
            wait_established(&mut sp).await;
            sp.set_route("web", RouteState::Announced).await.unwrap();
            sp.set_route("api", RouteState::Draining).await.unwrap();
            wait_for("route at ToR", T, || {
                tv.route("203.0.113.10").contains("via")
            });
            assert_eq!(
                sp.supervise().await.unwrap(),
                edged_bgp::SupervisorEvent::Healthy
            );
            let pid = sp.bird_pid().expect("managed pid");
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::SIGKILL,
            )
            .unwrap();
            wait_for("route gone after BIRD death", T, || {
                tv.route("203.0.113.10").is_empty()
            });
            let ev = sp.supervise().await.expect("restart");
            assert!(
                matches!(
                    ev,
                    edged_bgp::SupervisorEvent::Restarted { restarts: 1, .. }
                ),
                "{ev:?}"
            );
            assert_ne!(sp.bird_pid(), Some(pid));
            wait_established(&mut sp).await;
            wait_for("route back", T, || tv.route("203.0.113.10").contains("via"));
            wait_for("draining route back", T, || {
                tv.route("203.0.113.11").contains("via")
            });
            assert_eq!(sp.route_state("api"), RouteState::Draining);
            assert!(sp.export_mismatches().await.unwrap().is_empty());
            assert_eq!(sp.restarts(), 1);
            sp.shutdown().await;
        })
    });
}

fn lab_vip(name: &str, addr: &str) -> edged_bgp::VipRoute {
    edged_bgp::VipRoute {
        name: name.into(),
        prefix: addr.parse().unwrap(),
        communities: vec![],
        large_communities: vec![],
    }
}

#[test]
fn md5_password_and_bfd_sessions_come_up() {
    let mut lab = Lab::new(1);
    let opts = tor::TorOptions {
        password: Some("lab-secret".into()),
        bfd: true,
    };
    let sock = tor::start_bird_tor_with(&mut lab, 1, &opts);
    let pw = lab.subdir("secrets").join("tor4.pw");
    std::fs::write(&pw, "lab-secret\n").unwrap();
    let mut spec = node_spec(&lab, 1, &[("web", "203.0.113.70")], false);
    spec.peers[0].password_file = Some(pw);
    spec.peers[0].bfd = true;
    let tv = TorView(lab.tor.clone());
    in_netns(&lab.nodes[0].clone(), move || {
        Box::pin(async move {
            // Without the right MD5 signature the ToR's kernel drops every segment.
            let mut sp = Speaker::start(spec).await.expect("start");
            wait_established(&mut sp).await;
            sp.set_route("web", RouteState::Announced).await.unwrap();
            wait_for("route at ToR", T, || {
                tv.route("203.0.113.70").contains("via")
            });
            wait_for("BFD session up at ToR", T, || {
                tor::birdc(&sock, "show bfd sessions").contains(" Up ")
            });
            sp.shutdown().await;
        })
    });
}

#[test]
fn a_planned_handover_keeps_routes_for_the_next_speaker_and_a_drop_fails_closed() {
    let (lab, spec) = one_node(&[("web", "203.0.113.10"), ("api", "203.0.113.11")]);
    let tv = TorView(lab.tor.clone());
    in_netns(&lab.nodes[0].clone(), move || {
        Box::pin(async move {
            let mut sp = Speaker::start(spec.clone()).await.expect("start");
            assert!(!sp.adopted());
            wait_established(&mut sp).await;
            sp.set_route("web", RouteState::Announced).await.unwrap();
            sp.set_route("api", RouteState::Draining).await.unwrap();
            wait_for("routes at ToR", T, || {
                tv.route("203.0.113.10").contains("via") && tv.route("203.0.113.11").contains("via")
            });
            let bird = sp.bird_pid().unwrap();
            // A planned exit: BIRD stays with the keeper, routes stay at the ToR.
            sp.handover();
            let mut next = Speaker::start(spec.clone()).await.expect("take over");
            assert!(next.adopted());
            assert_eq!(next.bird_pid(), Some(bird), "the same BIRD");
            assert_eq!(next.route_state("web"), RouteState::Announced);
            assert_eq!(next.route_state("api"), RouteState::Draining);
            assert!(
                tv.route("203.0.113.10").contains("via"),
                "the route left during the handover"
            );
            assert!(next.export_mismatches().await.unwrap().is_empty());
            // Dropped without a handover (a crash): the keeper ends BIRD at once.
            let t0 = std::time::Instant::now();
            drop(next);
            wait_for("route gone after the holder died", T, || {
                tv.route("203.0.113.10").is_empty()
            });
            println!(
                "speaker dropped without handover: route gone at the ToR after {} ms",
                t0.elapsed().as_millis()
            );
            wait_for("BIRD gone after the holder died", T, || {
                !std::path::Path::new(&format!("/proc/{bird}")).exists()
            });
        })
    });
}

#[test]
fn a_frozen_bird_is_restarted_with_its_routes() {
    let (lab, spec) = one_node(&[("web", "203.0.113.10")]);
    let tv = TorView(lab.tor.clone());
    in_netns(&lab.nodes[0].clone(), move || {
        Box::pin(async move {
            let mut sp = Speaker::start(spec).await.expect("start");
            wait_established(&mut sp).await;
            sp.set_route("web", RouteState::Announced).await.unwrap();
            wait_for("route at ToR", T, || {
                tv.route("203.0.113.10").contains("via")
            });
            let pid = sp.bird_pid().unwrap();
            let stop = nix::sys::signal::Signal::SIGSTOP;
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), stop).unwrap();
            let t0 = std::time::Instant::now();
            let ev = sp.supervise().await.expect("supervise");
            let took = t0.elapsed();
            assert!(
                matches!(ev, edged_bgp::SupervisorEvent::Restarted { ref reason, .. } if reason.contains("unanswered")),
                "{ev:?}"
            );
            // Two probes of COMMAND_TIMEOUT, then the restart.
            assert!(took < Duration::from_secs(4), "{took:?}");
            assert_ne!(sp.bird_pid(), Some(pid));
            wait_established(&mut sp).await;
            wait_for("route back", T, || tv.route("203.0.113.10").contains("via"));
            println!("frozen BIRD: restarted after {} ms", took.as_millis());
            sp.shutdown().await;
        })
    });
}
