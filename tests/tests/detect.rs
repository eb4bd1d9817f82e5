//! A failed proxy is out, and its node's route gone at the ToR, before a
//! check waiting for its slots could decide (interval 8 s, fall 3: two
//! more intervals after the first failure, 16 s at least). A crash or a
//! graceful stop closes the kept connection, which brings an attempt
//! forward; with the node watching nginx's process through its pid file
//! (`proxies[].liveness`), a freeze (SIGSTOP) does too; the attempts
//! after a failure come every fastinter (10 ms). So these three are out
//! within a few ticks, or fall timeouts (within 4 s here). A link down
//! gives no signal: the attempt at the next slot times out, then the fast
//! attempts decide, within interval + timeout + (fall - 1) × (fastinter +
//! timeout), 8.7 s (12 s here). `edged_testlab::lab::detect` runs the
//! faults; `tests/benches/detect.rs` measures them at interval 1 s.

use std::time::Duration;

use edged_testlab::lab::detect::{self, Fault, Timing};

#[test]
fn a_failed_proxy_is_out_before_its_check_could_decide_on_its_slots() {
    let mut seen = Vec::new();
    detect::run(
        1,
        "interval: 8s, timeout: 200ms, rise: 2, fall: 3, fastinter: 10ms, downinter: 250ms",
        true,
        |t: &Timing| {
            println!(
                "{:?}: out of the table after {:?}, off the ToR after {:?}",
                t.fault, t.to_table, t.to_tor
            );
            let bound = match t.fault {
                Fault::Kill | Fault::Stop | Fault::Freeze => Duration::from_secs(4),
                Fault::LinkDown => Duration::from_secs(12),
            };
            assert!(t.to_tor < bound, "{t:?}");
            assert!(t.to_table <= t.to_tor, "{t:?}");
            seen.push(t.fault);
        },
    );
    assert_eq!(seen, Fault::ALL);
}
