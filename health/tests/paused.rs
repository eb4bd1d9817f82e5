//! The hysteresis driven by tokio's clock with time paused, the way the
//! checker drives it: rise, fall and hold-down follow the virtual clock.

use std::time::Duration;

use edged_health::{Hysteresis, State};
use tokio::time::{Instant, advance};

/// Records `ok` once per `every` of virtual time, `n` times; returns the
/// transitions with their virtual time since `t0`.
async fn feed(
    h: &mut Hysteresis,
    t0: Instant,
    ok: bool,
    n: u32,
    every: Duration,
) -> Vec<(Duration, State)> {
    let mut out = Vec::new();
    for _ in 0..n {
        advance(every).await;
        if let Some(s) = h.record(ok, Instant::now().into_std()) {
            out.push((t0.elapsed(), s));
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn rise_fall_and_hold_down_on_the_virtual_clock() {
    let s = Duration::from_secs(1);
    let t0 = Instant::now();
    let mut h = Hysteresis::new(3, 2, Some(Duration::from_secs(30)));
    assert_eq!(feed(&mut h, t0, true, 5, s).await, [(3 * s, State::Up)]);
    assert_eq!(feed(&mut h, t0, false, 2, s).await, [(7 * s, State::Down)]);
    // Passing again at once: held down until 37 s, then up at the next pass.
    let ups = feed(&mut h, t0, true, 40, s).await;
    assert_eq!(ups, [(37 * s, State::Up)], "hold-down of 30 s from 7 s");
    // A single failure does not flap it (fall 2).
    assert_eq!(feed(&mut h, t0, false, 1, s).await, []);
    assert_eq!(h.state(), State::Up);
}
