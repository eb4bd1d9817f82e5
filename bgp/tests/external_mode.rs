//! External mode: an operator's BIRD includes edged's file; edged only talks to
//! its socket. Also: a restarted edged announces nothing until told to.

mod lab;

use std::time::Duration;

use edged_bgp::{BirdMode, RouteState, Speaker};
use lab::{Lab, TorView, in_netns, node_spec, start_lab_node, tor, wait_established, wait_for};

const T: Duration = Duration::from_secs(30);

#[test]
fn external_bird_includes_edged_file() {
    let mut lab = Lab::new(1);
    let _sock = tor::start_bird_tor(&mut lab, 1);
    let dir = lab.subdir("operator");
    let include = dir.join("edged-bird.conf");
    std::fs::write(&include, "").unwrap();
    // The operator's own config: router id, device protocol, and the include.
    let conf = format!(
        "router id {};\nprotocol device {{}}\ninclude \"{}\";\n",
        Lab::node_v4(1).0,
        include.display()
    );
    std::fs::write(dir.join("bird.conf"), conf).unwrap();
    let sock = dir.join("bird.ctl");
    let (c, s, p) = (
        dir.join("bird.conf"),
        sock.display().to_string(),
        dir.join("bird.pid"),
    );
    let ns = lab.nodes[0].clone();
    lab.spawn_in(
        &ns,
        &[
            "bird",
            "-f",
            "-c",
            c.to_str().unwrap(),
            "-s",
            &s,
            "-P",
            p.to_str().unwrap(),
        ],
    );
    wait_for("operator BIRD socket", T, || sock.exists());
    let mut spec = node_spec(&lab, 1, &[("web", "203.0.113.50")], false);
    spec.mode = BirdMode::External {
        socket: sock.clone(),
        include_file: include.clone(),
    };
    let tv = TorView(lab.tor.clone());
    in_netns(&ns, move || {
        Box::pin(async move {
            let mut sp = Speaker::start(spec.clone()).await.expect("start external");
            assert_eq!(sp.bird_pid(), None);
            wait_established(&mut sp).await;
            sp.set_route("web", RouteState::Announced).await.unwrap();
            wait_for("route at ToR", T, || {
                tv.route("203.0.113.50").contains("via 198.51.100.2")
            });
            assert!(sp.export_mismatches().await.unwrap().is_empty());
            // A rejected change restores the previous include file.
            let before = std::fs::read_to_string(&include).unwrap();
            let mut bad = spec.clone();
            bad.peers[0].hold_time = 2;
            let err = sp.reconfigure(bad).await.expect_err("rejected");
            assert!(
                matches!(err, edged_bgp::BgpError::ConfigRejected(ref l) if l.file.ends_with("edged-bird.conf")),
                "{err}"
            );
            assert_eq!(std::fs::read_to_string(&include).unwrap(), before);
            assert!(tv.route("203.0.113.50").contains("via"));
            assert_eq!(
                sp.supervise().await.unwrap(),
                edged_bgp::SupervisorEvent::Healthy
            );
            sp.shutdown().await;
            wait_for("route withdrawn by shutdown", T, || {
                tv.route("203.0.113.50").is_empty()
            });
        })
    });
}

#[test]
fn restarted_edged_announces_nothing_until_told() {
    let mut lab = Lab::new(1);
    let _sock = tor::start_bird_tor(&mut lab, 1);
    let pid = start_lab_node(&mut lab, 1, &["203.0.113.60"]);
    wait_for("route at ToR", T, || {
        lab.tor_route("203.0.113.60").contains("via")
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    wait_for("route gone", T, || lab.tor_route("203.0.113.60").is_empty());
    // Same state dir: stale socket and pid file are left behind by the dead run,
    // and a stray BIRD (as if it had escaped the death signal) still runs there.
    let state = lab.dir.join("labnode1");
    let p = |f: &str| state.join(f).display().to_string();
    let ns = lab.nodes[0].clone();
    let (conf, ctl, pidf) = (p("bird.conf"), p("bird.ctl"), p("bird.pid"));
    let stray = lab
        .spawn_in(
            &ns,
            &["/usr/sbin/bird", "-f", "-c", &conf, "-s", &ctl, "-P", &pidf],
        )
        .id();
    wait_for("stray BIRD pid file", T, || {
        std::fs::read_to_string(&pidf).is_ok_and(|s| s.trim() == stray.to_string())
    });
    let mut spec = node_spec(&lab, 1, &[("web", "203.0.113.60")], false);
    spec.mode = BirdMode::Managed {
        bird_binary: "/usr/sbin/bird".into(),
        state_dir: state,
        keeper: edged_bgp::KeeperCommand::from_build_dir(),
        handover_grace: std::time::Duration::from_secs(5),
    };
    let tv = TorView(lab.tor.clone());
    in_netns(&lab.nodes[0].clone(), move || {
        Box::pin(async move {
            let mut sp = Speaker::start(spec)
                .await
                .expect("restart over stale state");
            wait_established(&mut sp).await;
            assert_eq!(
                sp.peers().await.unwrap()[0].exported,
                0,
                "nothing before health passes"
            );
            assert!(tv.route("203.0.113.60").is_empty());
            let gone = |pid: u32| {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map_or(true, |s| s.contains(") Z "))
            };
            assert!(gone(stray), "the stray BIRD must have been killed");
            sp.set_route("web", RouteState::Announced).await.unwrap();
            wait_for("route back", T, || tv.route("203.0.113.60").contains("via"));
            sp.shutdown().await;
        })
    });
}
