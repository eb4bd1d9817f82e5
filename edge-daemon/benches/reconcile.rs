//! Reconcile-step cost at fleet scale. Prints `BENCH` lines:
//! - `reconcile_10k_vips_first_pass_us`: 10,000 VIPs, nothing applied yet;
//! - `reconcile_10k_vips_steady_us`: the same once applied (no actions).
//!
//! Median of 15 runs each.

use std::fmt::Write;
use std::hint::black_box;
use std::time::{Instant, SystemTime};

use edge_daemon::intents::Intents;
use edge_daemon::reconcile::{Applied, HealthView, Inputs, Serve, step};

const VIPS: usize = 10_000;
const RUNS: usize = 15;

fn config() -> edged_config::Config {
    let mut y = String::from(
        "node: {router_id: 192.0.2.10, asn: 65010}\nforwarder: {uplinks: [eth0]}\nproxies:\n",
    );
    for p in 0..4 {
        writeln!(y, "  - {{name: px{p}, address: 198.51.100.{}, interface: eth1, mac: '02:00:00:00:00:0{p}'}}", p + 1).unwrap();
    }
    y.push_str("vips:\n");
    for v in 0..VIPS {
        let (hi, lo) = (v / 250, v % 250 + 1);
        writeln!(
            y,
            "  - {{name: v{v}, address: '2001:db8:{hi:x}::{lo:x}', ports: [{{port: 443}}], services: [{{name: h, check: {{kind: tcp, port: 443}}}}]}}"
        )
        .unwrap();
    }
    y.push_str("bgp: {peers: [{name: tor, address: '2001:db8:ffff::1', asn: 65000}]}\n");
    edged_config::parse(&y).expect("bench config")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let cfg = config();
    let mut health = HealthView {
        running: true,
        ..Default::default()
    };
    for v in &cfg.vips {
        for p in &cfg.proxies {
            health.set(&v.name, &p.name, Serve::Serving);
        }
    }
    let intents = Intents::default();
    let now = SystemTime::now();
    let run = |applied: &Applied| {
        let start = Instant::now();
        let plan = step(&Inputs {
            config: &cfg,
            health: &health,
            intents: &intents,
            applied,
            now,
            shutting_down: false,
            stopping_since: None,
            held: &Default::default(),
            learning_flows: false,
        });
        (start.elapsed().as_secs_f64() * 1e6, black_box(plan))
    };
    let empty = Applied::default();
    let first: Vec<f64> = (0..RUNS).map(|_| run(&empty).0).collect();
    let (_, plan) = run(&empty);
    let mut applied = Applied::default();
    for a in &plan.actions {
        applied.record(a);
    }
    let steady: Vec<f64> = (0..RUNS).map(|_| run(&applied).0).collect();
    assert!(
        run(&applied).1.actions.is_empty(),
        "steady state must have no actions"
    );
    println!(
        "BENCH reconcile_10k_vips_first_pass_us {:.0} us",
        median(first)
    );
    println!(
        "BENCH reconcile_10k_vips_steady_us {:.0} us",
        median(steady)
    );
}
