//! When a check's attempts start: a pure calendar, the clock passed in.
//!
//! Attempts start on a grid of [`TICK`] from the checker's start (the
//! checks due in the same step run in one wakeup instead of one each);
//! each check keeps its own exact period (an absolute schedule, start + k
//! periods, each attempt rounded up to the grid, so rounding never
//! accumulates), from a start offset spread by its identity so thousands
//! of checks do not fire together.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

/// The step of the attempt grid.
pub const TICK: Duration = Duration::from_millis(10);

/// Where in the first interval a check starts: spread uniformly by a hash
/// of its identity.
pub fn start_offset(identity: &impl Hash, interval: Duration) -> Duration {
    let mut h = DefaultHasher::new();
    identity.hash(&mut h);
    let frac = (h.finish() % 10_000) as f64 / 10_000.0;
    interval.mul_f64(frac)
}

/// One check's calendar.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// The grid's origin (the checker's start).
    epoch: Instant,
    interval: Duration,
    /// The next slot (before rounding to the grid).
    due: Instant,
    /// The next attempt's start, once known.
    planned: Option<Instant>,
    /// Whether the next attempt to end was brought forward by
    /// [`Schedule::reprobe`], and until when no attempt is brought forward
    /// (one found the target well: it closes idle connections).
    reprobing: bool,
    quiet_until: Option<Instant>,
}

/// After an early attempt finds the target well, this many periods pass
/// before another is brought forward.
const QUIET_PERIODS: u32 = 10;

impl Schedule {
    /// Slots every `interval` from `first`, on the grid from `epoch`.
    pub fn new(epoch: Instant, first: Instant, interval: Duration) -> Schedule {
        Schedule {
            epoch,
            interval,
            due: first,
            planned: None,
            reprobing: false,
            quiet_until: None,
        }
    }

    /// When the next attempt starts: the next slot, rounded up to the grid
    /// (the slot after it becomes due); the same answer until the attempt
    /// has [started](Schedule::started), whoever asks meanwhile. An
    /// attempt that ran past its next slot (a stalled runtime, a slow fork,
    /// a queue for the concurrency limit) skips the slots it missed rather
    /// than starting the next attempt at once: slots stay one period apart,
    /// so `rise` passes span `rise - 1` periods and a stall never turns into
    /// a burst. A slot missed by less than a tick still runs (late by that
    /// much): the kept-connection loop finds a timeout on the grid, up to a
    /// tick after the attempt's end, which can be the next slot. What counts
    /// is when the slot starts on the grid: a slot rounds up by up to a
    /// tick, so it is missed only when its rounded start is more than a tick
    /// in the past.
    pub fn next_start(&mut self, now: Instant) -> Instant {
        if let Some(start) = self.planned {
            return start;
        }
        let rounding = self.grid(self.due).saturating_duration_since(self.due);
        let missed = now.checked_sub(TICK + rounding).unwrap_or(now);
        self.due = first_at_or_after(self.due, self.interval, missed);
        let start = self.grid(self.due);
        self.due += self.interval;
        self.planned = Some(start);
        start
    }

    /// The planned attempt has begun.
    pub fn started(&mut self) {
        self.planned = None;
    }

    /// From now on, a slot every `period` from about `now + period` (the
    /// check changed [phase](crate::hysteresis::Phase)): the grid point
    /// nearest to it, so that a period as short as the grid (fastinter)
    /// averages its length instead of one and a half. An attempt already
    /// planned is dropped: the next one is the new period's. The same
    /// period as now changes nothing (its slots stay where they are).
    pub fn every(&mut self, period: Duration, now: Instant) {
        if period == self.interval {
            return;
        }
        self.interval = period;
        self.due = now + period.saturating_sub(TICK / 2);
        self.planned = None;
    }

    /// Something suggests the target just failed (its kept connection
    /// closed between attempts): the next attempt comes at the next tick,
    /// unless an early attempt found the target well within the last
    /// 10 periods (a server that closes idle connections
    /// gets one early attempt in that many, never a stream of them). The
    /// caller brings none forward for a check that is down (its rate is
    /// `downinter`'s). Whether it was brought forward.
    pub fn reprobe(&mut self, now: Instant) -> bool {
        if self.quiet_until.is_some_and(|t| now < t) {
            return false;
        }
        self.reprobing = true;
        // At once, not at the next tick: the signal is rare and urgent.
        self.planned = Some(now);
        true
    }

    /// An attempt ended: if it was brought forward and passed, the close
    /// that brought it was the target's habit, not a failure, and no
    /// attempt is brought forward for 10 periods.
    pub fn ended(&mut self, ok: bool, now: Instant) {
        if std::mem::take(&mut self.reprobing) && ok {
            self.quiet_until = Some(now + self.interval * QUIET_PERIODS);
        }
    }

    /// The next attempt comes at the next tick after `now`, outside the
    /// schedule (a kept connection was found closed: nothing was decided).
    pub fn retry(&mut self, now: Instant) {
        self.planned = Some(self.grid(now));
    }

    /// The first point of the grid at or after `t`.
    pub fn grid(&self, t: Instant) -> Instant {
        first_at_or_after(self.epoch, TICK, t)
    }
}

/// The first point of `origin + k × step` (k ≥ 0) at or after `t` (with
/// a zero step: `t` if later than `origin`). Both the attempt grid and
/// the skipping of missed slots.
pub fn first_at_or_after(origin: Instant, step: Duration, t: Instant) -> Instant {
    if step.is_zero() {
        return origin.max(t);
    }
    let since = t.saturating_duration_since(origin).as_nanos();
    let step = step.as_nanos();
    origin + Duration::from_nanos((since.div_ceil(step) * step) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_missed_keeps_the_phase_and_never_goes_back() {
        let skip_missed = |due, now, period| first_at_or_after(due, period, now);
        let t0 = Instant::now();
        let p = Duration::from_millis(250);
        let ms = Duration::from_millis;
        // On time or early: unchanged.
        assert_eq!(skip_missed(t0 + p, t0, p), t0 + p);
        assert_eq!(skip_missed(t0, t0, p), t0);
        // Behind by less than a period: the next slot.
        assert_eq!(skip_missed(t0, t0 + ms(143), p), t0 + p);
        // Behind by several periods: the first slot not in the past.
        assert_eq!(skip_missed(t0, t0 + ms(600), p), t0 + ms(750));
        // Exactly on a later slot: that slot.
        assert_eq!(skip_missed(t0, t0 + ms(500), p), t0 + ms(500));
        // A zero period cannot loop: now.
        assert_eq!(skip_missed(t0, t0 + ms(7), Duration::ZERO), t0 + ms(7));
    }

    #[test]
    fn attempts_round_up_to_the_grid() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(first_at_or_after(t0, TICK, t0), t0);
        assert_eq!(first_at_or_after(t0, TICK, t0 + ms(1)), t0 + ms(10));
        assert_eq!(first_at_or_after(t0, TICK, t0 + ms(20)), t0 + ms(20));
    }

    #[test]
    fn a_schedule_keeps_its_period_skips_missed_slots_and_retries_on_the_grid() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // First slot 3 ms after the epoch, every 50 ms: starts on the grid.
        let mut s = Schedule::new(t0, t0 + ms(3), ms(50));
        assert_eq!(s.next_start(t0), t0 + ms(10));
        assert_eq!(
            s.next_start(t0 + ms(5)),
            t0 + ms(10),
            "stable until started"
        );
        s.started();
        assert_eq!(s.next_start(t0 + ms(20)), t0 + ms(60));
        s.started();
        // A stall of 2.5 periods: the missed slots are skipped.
        assert_eq!(s.next_start(t0 + ms(190)), t0 + ms(210));
        s.started();
        // Rounded start 8 ms past (less than a tick): still runs.
        assert_eq!(s.next_start(t0 + ms(268)), t0 + ms(260));
        s.started();
        s.retry(t0 + ms(281));
        assert_eq!(s.next_start(t0 + ms(281)), t0 + ms(290));
    }

    #[test]
    fn an_early_attempt_unless_one_found_the_target_well() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Schedule::new(t0, t0 + ms(500), ms(1000));
        assert!(s.reprobe(t0 + ms(101)));
        assert_eq!(s.next_start(t0 + ms(101)), t0 + ms(101));
        s.started();
        assert!(s.reprobe(t0 + ms(1101)));
        assert_eq!(s.next_start(t0 + ms(1101)), t0 + ms(1101));
        s.started();
        // It failed: the target is changing; the next close brings one
        // forward again.
        s.ended(false, t0 + ms(1111));
        assert!(s.reprobe(t0 + ms(1200)));
        s.started();
        // This one passed: the target closes idle connections; none is
        // brought forward for 10 periods.
        s.ended(true, t0 + ms(2211));
        assert!(!s.reprobe(t0 + ms(5000)));
        assert!(!s.reprobe(t0 + ms(12_000)));
        assert!(s.reprobe(t0 + ms(12_300)));
    }

    #[test]
    fn a_new_period_starts_from_now() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Schedule::new(t0, t0 + ms(500), ms(1000));
        assert_eq!(s.next_start(t0), t0 + ms(500));
        s.started();
        // A failure at 503 ms: the next ones every 10 ms, from the grid
        // point nearest 513 ms.
        s.every(ms(10), t0 + ms(503));
        assert_eq!(s.next_start(t0 + ms(503)), t0 + ms(510));
        s.started();
        assert_eq!(s.next_start(t0 + ms(511)), t0 + ms(520));
        s.started();
        // Decided: back to the interval, from then.
        s.every(ms(1000), t0 + ms(531));
        assert_eq!(s.next_start(t0 + ms(531)), t0 + ms(1530));
        s.started();
        // The same period: the slots stay.
        s.every(ms(1000), t0 + ms(1600));
        assert_eq!(s.next_start(t0 + ms(1600)), t0 + ms(2530));
    }

    #[test]
    fn offsets_spread_over_the_interval() {
        let iv = Duration::from_secs(1);
        let mut buckets = [0u32; 10];
        for i in 0..10_000 {
            let o = start_offset(&("vip", i), iv);
            assert!(o < iv);
            buckets[(o.as_secs_f64() * 10.0) as usize] += 1;
        }
        // Uniform: each tenth holds 1,000 ± 15 %.
        assert!(
            buckets.iter().all(|&b| (850..=1150).contains(&b)),
            "{buckets:?}"
        );
    }
}
