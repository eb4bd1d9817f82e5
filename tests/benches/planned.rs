//! Connections broken by each planned operation, on the real lab (the
//! scenario of `edged_testlab::lab::planned`: three nodes, a BIRD ToR,
//! nginx proxies, long-lived keep-alive connections with a request every
//! 200 ms). Prints, per operation (goal 0 for each):
//!   BENCH planned_<op>_resets: connections reset
//!   BENCH planned_<op>_broken: reset, ended, stalled, moved or failed
//! for maintenance_on, maintenance_off, restart, graceful_stop,
//! start_after_stop, kill9_and_start, first_join; and node_crash (edge3
//! off the network), where only the connections edge3 served may fail:
//!   BENCH planned_node_crash_broken_elsewhere (goal 0) and
//!   BENCH planned_node_crash_lost_with_edge3 (those it served). 300 connections;
//! BENCH_SMOKE=1 (`make bench-smoke`): 60.

use edged_testlab::lab::planned::{self, Operation};

fn main() {
    let smoke = std::env::var("BENCH_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0");
    let conns = if smoke { 60 } else { 300 };
    planned::run(conns, |op: &Operation<'_>| {
        eprintln!("{op}");
        println!(
            "BENCH planned_{}_resets {} connections",
            op.name, op.tally.resets
        );
        println!(
            "BENCH planned_{}_broken {} connections",
            op.name,
            op.tally.broken()
        );
        if let Some(lost) = op.lost {
            println!(
                "BENCH planned_{}_broken_elsewhere {} connections",
                op.name,
                op.broken_elsewhere()
            );
            println!(
                "BENCH planned_{}_lost_with_{lost} {} connections",
                op.name,
                op.broken_on(lost)
            );
        }
    });
}
