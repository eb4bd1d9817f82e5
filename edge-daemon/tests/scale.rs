//! A config of 100,000 VIPs goes through the one validation (`edged
//! check`, start and reload use it): the YAML parser's own budget does not
//! stop it, and every VIP comes out with its ports and check.

#[path = "support/scale.rs"]
mod scale;

use edge_daemon::specs::{HostChecks, load};

#[test]
fn a_config_of_100k_vips_parses_and_validates() {
    let dir = std::env::temp_dir().join(format!("edged-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("edged.yaml");
    std::fs::write(&path, scale::config(100_000, 4)).unwrap();
    let loaded = load(&path, HostChecks::No);
    std::fs::remove_dir_all(&dir).unwrap();
    let (cfg, specs) = loaded.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.vips.len(), 100_000);
    assert!(cfg.vips.iter().all(|v| v.ports.len() == 2));
    assert_eq!(cfg.vips[99_999].name, "v99999");
    assert!(cfg.vips[99_999].address.is_ipv6());
    // One HTTP check per VIP and proxy.
    assert_eq!(specs.checks.len(), 400_000);
}
