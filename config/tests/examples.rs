//! Every example config parses and validates.

use std::path::Path;

#[test]
fn every_example_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            edged_config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(
        seen >= 2,
        "expected minimal and full examples, found {seen}"
    );
}

#[test]
fn full_example_sets_what_it_says() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/full.yaml");
    let cfg = edged_config::load(&path).unwrap();
    let fwd = cfg.forwarder.as_ref().unwrap();
    assert_eq!(fwd.hash_seed, 0x5eed0001);
    assert_eq!(cfg.proxies[2].weight, 11);
    assert_eq!(
        cfg.vips[0].communities,
        vec![edged_config::Community(65010, 100)]
    );
    assert_eq!(cfg.vips[1].ports[0].protocol, edged_config::Protocol::Udp);
    assert_eq!(
        cfg.bgp.peers[0].keepalive,
        Some(std::time::Duration::from_secs(3))
    );
    assert!(cfg.vips[1].address.is_ipv6());
}

#[test]
fn minimal_example_takes_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/minimal.yaml");
    let cfg = edged_config::load(&path).unwrap();
    assert_eq!(cfg.node.drain_time, std::time::Duration::from_secs(30));
    assert_eq!(cfg.node.vip_interface.as_deref(), Some("lo"));
    assert!(cfg.forwarder.is_none());
    assert_eq!(cfg.vips[0].min_healthy, 1);
    assert_eq!(cfg.vips[0].services[0].check.rise, 2);
    assert_eq!(cfg.bgp.mode, edged_config::BirdMode::Managed);
}
