//! The one validation (`edged check`, start, reload) at fleet scale. Prints
//! `BENCH` lines:
//! - `config_check_100k_vips_ms`: read, parse and validate a config of
//!   100,000 VIPs (IPv4 and IPv6, two ports and an HTTP check each, on 4
//!   proxies: 400,000 checks), as `edged check` does (median of 5);
//! - `config_100k_vips_mib`: the size of that file.

#[path = "../tests/support/scale.rs"]
mod scale;

use std::time::Instant;

use edge_daemon::specs::{HostChecks, load};

fn main() {
    let smoke = std::env::var_os("BENCH_SMOKE").is_some();
    let runs = if smoke { 1 } else { 5 };
    let text = scale::config(100_000, 4);
    let dir = std::env::temp_dir().join(format!("edged-bench-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("edged.yaml");
    std::fs::write(&path, &text).unwrap();
    let mut ms: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let (cfg, specs) = load(&path, HostChecks::No).unwrap_or_else(|e| panic!("{e}"));
            let took = t.elapsed().as_secs_f64() * 1e3;
            assert_eq!((cfg.vips.len(), specs.checks.len()), (100_000, 400_000));
            took
        })
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();
    ms.sort_by(f64::total_cmp);
    println!("BENCH config_check_100k_vips_ms {:.0} ms", ms[ms.len() / 2]);
    println!(
        "BENCH config_100k_vips_mib {:.1} MiB",
        text.len() as f64 / (1 << 20) as f64
    );
}
