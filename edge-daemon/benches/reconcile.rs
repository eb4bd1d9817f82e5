//! Reconcile-step cost at fleet scale. Prints `BENCH` lines, at 10,000 and
//! 100,000 VIPs on 4 proxies (`{n}` = 10k, 100k):
//! - `reconcile_{n}_vips_first_pass_us`: nothing applied yet;
//! - `reconcile_{n}_vips_steady_us`: the same once applied (no actions);
//! - `reconcile_{n}_vips_flip_us`: one proxy, which every VIP uses, fails
//!   (every table changes: one action a VIP).
//!
//! Median of 15 runs each (5 at 100k).

use std::fmt::Write;
use std::hint::black_box;
use std::time::{Instant, SystemTime};

use edge_daemon::intents::Intents;
use edge_daemon::reconcile::{Applied, HealthView, Inputs, Serve, step};

fn config(vips: usize) -> edged_config::Config {
    let mut y = String::from(
        "node: {router_id: 192.0.2.10, asn: 65010}\nforwarder: {uplinks: [eth0]}\nproxies:\n",
    );
    for p in 0..4 {
        writeln!(y, "  - {{name: px{p}, address: 198.51.100.{}, interface: eth1, mac: '02:00:00:00:00:0{p}'}}", p + 1).unwrap();
    }
    y.push_str("vips:\n");
    for v in 0..vips {
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
    run(10_000, "10k", 15);
    run(100_000, "100k", 5);
}

fn run(vips: usize, tag: &str, runs: usize) {
    let cfg = config(vips);
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
    let first: Vec<f64> = (0..runs).map(|_| run(&empty).0).collect();
    let (_, plan) = run(&empty);
    let mut applied = Applied::default();
    for a in &plan.actions {
        applied.record(a);
    }
    let steady: Vec<f64> = (0..runs).map(|_| run(&applied).0).collect();
    assert!(
        run(&applied).1.actions.is_empty(),
        "steady state must have no actions"
    );
    // px0 fails on every VIP: every table changes.
    let mut failed = health.clone();
    for v in &cfg.vips {
        failed.set(&v.name, "px0", Serve::NotServing("http: status 500".into()));
    }
    let flip: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let plan = step(&Inputs {
                config: &cfg,
                health: &failed,
                intents: &intents,
                applied: &applied,
                now,
                shutting_down: false,
                stopping_since: None,
                held: &Default::default(),
                learning_flows: false,
            });
            let t = start.elapsed().as_secs_f64() * 1e6;
            assert_eq!(plan.actions.len(), vips, "one table change a VIP");
            black_box(plan);
            t
        })
        .collect();
    println!(
        "BENCH reconcile_{tag}_vips_first_pass_us {:.0} us",
        median(first)
    );
    println!(
        "BENCH reconcile_{tag}_vips_steady_us {:.0} us",
        median(steady)
    );
    println!("BENCH reconcile_{tag}_vips_flip_us {:.0} us", median(flip));
}
