//! How fast a failed proxy is out, on the real lab (`edged_testlab::lab::
//! detect`: two nodes with one nginx each, a BIRD ToR), at interval 1 s,
//! timeout 200 ms, fall 3, fastinter 10 ms (downinter 250 ms, so that
//! each round recovers quickly), each node watching its nginx's process
//! through its pid file (`proxies[].liveness`). For each fault, 10 rounds (2 under
//! BENCH_SMOKE=1), the median and the maximum of:
//!   BENCH health_<fault>_to_table_ms: fault → the proxy out of the
//!     node's table (edged's log of the change);
//!   BENCH health_<fault>_to_tor_ms: fault → the node's route gone at the
//!     ToR (sampled every 5 ms: errs up to 5 ms long);
//! with <fault> crash (SIGKILL), stop (nginx's graceful stop), freeze
//! (SIGSTOP: seen by the liveness watch, then fall timeouts) and
//! linkdown (no signal: the next slot, then fall timeouts).
//! The maxima are `..._max_ms`, the minima `..._min_ms`. And for the crash, the median of each
//! hop: `health_crash_hop_verdict_ms` (fault → the check down),
//! `health_crash_hop_table_ms` (→ out of the table), `..._hop_bird_ms`
//! (→ BIRD confirmed the withdrawal), `..._hop_tor_ms` (→ gone at the
//! ToR).

use std::collections::BTreeMap;
use std::time::Duration;

use edged_testlab::lab::detect::{self, Timing};

fn main() {
    let smoke = std::env::var("BENCH_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0");
    let rounds = if smoke { 2 } else { 10 };
    let mut by: BTreeMap<&'static str, (Vec<Duration>, Vec<Duration>)> = BTreeMap::new();
    let mut hops: [Vec<Duration>; 4] = Default::default();
    detect::run(
        rounds,
        "interval: 1s, timeout: 200ms, rise: 2, fall: 3, fastinter: 10ms, downinter: 250ms",
        true,
        |t: &Timing| {
            eprintln!("{t:?}");
            if t.fault == edged_testlab::lab::detect::Fault::Kill {
                let (v, tb, b) = (t.to_verdict, t.to_table, t.to_bird);
                let steps = [
                    v,
                    tb.saturating_sub(v),
                    b.saturating_sub(tb),
                    t.to_tor.saturating_sub(b),
                ];
                for (h, d) in hops.iter_mut().zip(steps) {
                    h.push(d);
                }
            }
            let e = by.entry(t.fault.name()).or_default();
            e.0.push(t.to_table);
            e.1.push(t.to_tor);
        },
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (name, mut v) in ["verdict", "table", "bird", "tor"].into_iter().zip(hops) {
        v.sort();
        println!(
            "BENCH health_crash_hop_{name}_ms {:.1} ms",
            ms(v[v.len() / 2])
        );
    }
    for (name, (mut table, mut tor)) in by {
        for (what, v) in [("table", &mut table), ("tor", &mut tor)] {
            v.sort();
            let median = ms(v[v.len() / 2]);
            let max = ms(*v.last().unwrap());
            println!("BENCH health_{name}_to_{what}_ms {median:.1} ms");
            println!("BENCH health_{name}_to_{what}_max_ms {max:.1} ms");
            println!("BENCH health_{name}_to_{what}_min_ms {:.1} ms", ms(v[0]));
        }
    }
}
