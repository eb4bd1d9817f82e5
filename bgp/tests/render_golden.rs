//! Golden-file tests for the BIRD config generator; each golden file is also
//! parse-checked by the real `bird -p`. Regenerate with `UPDATE_GOLDEN=1`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use edged_bgp::render::{RenderInput, render};
use edged_bgp::{BgpSpec, BirdMode, DrainPolicy, PeerSpec, RouteState, VipRoute};

fn peer(name: &str, addr: &str, asn: u32) -> PeerSpec {
    PeerSpec {
        name: name.into(),
        address: addr.parse().unwrap(),
        asn,
        source_address: None,
        hold_time: 9,
        keepalive: None,
        bfd: false,
        password_file: None,
        multihop: None,
        ttl_security: false,
    }
}

fn vip(name: &str, addr: &str) -> VipRoute {
    VipRoute {
        name: name.into(),
        prefix: addr.parse::<IpAddr>().unwrap(),
        communities: vec![],
        large_communities: vec![],
    }
}

fn full_spec() -> BgpSpec {
    let mut p1 = peer("tor1", "198.51.100.1", 65000);
    p1.source_address = Some("198.51.100.2".parse().unwrap());
    p1.keepalive = Some(3);
    p1.bfd = true;
    p1.ttl_security = true;
    let mut p2 = peer("tor2_v6", "2001:db8:1::1", 65000);
    p2.multihop = Some(2);
    p2.hold_time = 0;
    let mut web = vip("web", "203.0.113.10");
    web.communities = vec![(65001, 100), (65001, 200)];
    web.large_communities = vec![(65001, 1, 2)];
    let mut web6 = vip("web6", "2001:db8:ff::10");
    web6.communities = vec![(65001, 6)];
    BgpSpec {
        router_id: "198.51.100.2".parse().unwrap(),
        local_asn: 65001,
        peers: vec![p1, p2],
        vips: vec![web, web6, vip("api", "203.0.113.11")],
        drain: DrainPolicy {
            med: Some(500),
            prepend: 2,
        },
        mode: BirdMode::Managed {
            bird_binary: "/usr/sbin/bird".into(),
            state_dir: "/tmp/x".into(),
            keeper: edged_bgp::KeeperCommand::from_build_dir(),
            handover_grace: std::time::Duration::from_secs(5),
        },
    }
}

fn golden(name: &str, text: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, text).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        text,
        want,
        "generated config differs from {}",
        path.display()
    );
    // BIRD itself must accept it.
    let tmp = std::env::temp_dir().join(format!("edged-golden-{}-{name}", std::process::id()));
    std::fs::write(&tmp, text).unwrap();
    let out = std::process::Command::new("bird")
        .arg("-p")
        .arg("-c")
        .arg(&tmp)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&tmp);
    assert!(
        out.status.success(),
        "bird -p rejected {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn managed_full_config_matches_golden() {
    let spec = full_spec();
    let states: BTreeMap<String, RouteState> = [
        ("web".to_string(), RouteState::Announced),
        ("web6".to_string(), RouteState::Draining),
    ]
    .into();
    let pw: BTreeMap<String, String> = [("tor1".to_string(), "s3cr\\et".to_string())].into();
    let input = RenderInput {
        states: Some(&states),
        passwords: Some(&pw),
        managed: true,
    };
    golden("managed_full.conf", &render(&spec, &input));
}

#[test]
fn external_include_matches_golden() {
    let mut spec = full_spec();
    spec.drain = DrainPolicy::default();
    spec.vips.truncate(1);
    spec.peers.truncate(1);
    spec.peers[0].bfd = false;
    let input = RenderInput {
        managed: false,
        ..RenderInput::default()
    };
    // An include file needs a router id from the operator's config to parse alone.
    let text = render(&spec, &input);
    golden(
        "external_include.conf",
        &format!("router id 198.51.100.2;\n{text}"),
    );
}

#[test]
fn no_vips_exports_nothing_and_parses() {
    let mut spec = full_spec();
    spec.vips.clear();
    let text = render(
        &spec,
        &RenderInput {
            managed: true,
            ..RenderInput::default()
        },
    );
    assert!(text.contains("filter edged_export4 {\n  reject;\n}"));
    golden("no_vips.conf", &text);
}
