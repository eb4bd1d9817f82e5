//! Rise/fall hysteresis with an optional hold-down: a small pure type.

use std::time::{Duration, Instant};

use serde::Serialize;

/// What the checker believes about one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// No verdict yet (counts as not serving).
    Unknown,
    Up,
    Down,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::Down => "down",
        })
    }
}

/// How often a check runs now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Decided (up, or not yet tried): every `interval`.
    Steady,
    /// Changing (an up check failing, a new one passing): every
    /// `fastinter`, until it is decided.
    Fast,
    /// Down: every `downinter`, recovering or not (fast probing never
    /// raises a down proxy's attempt rate).
    Down,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Steady => "steady",
            Phase::Fast => "fast",
            Phase::Down => "down",
        })
    }
}

/// Consecutive-result counters and thresholds.
#[derive(Clone, Debug)]
pub struct Hysteresis {
    rise: u32,
    fall: u32,
    hold_down: Option<Duration>,
    state: State,
    passes: u32,
    failures: u32,
    down_at: Option<Instant>,
}

impl Hysteresis {
    /// Starts Unknown. `rise` and `fall` are at least 1.
    pub fn new(rise: u32, fall: u32, hold_down: Option<Duration>) -> Self {
        Hysteresis {
            rise: rise.max(1),
            fall: fall.max(1),
            hold_down,
            state: State::Unknown,
            passes: 0,
            failures: 0,
            down_at: None,
        }
    }

    /// The same state and runs of results under new thresholds (a reload
    /// that changed only a check's settings): nothing is decided by the
    /// change itself; the next result is judged by the new `rise`/`fall`.
    pub fn with_thresholds(mut self, rise: u32, fall: u32, hold_down: Option<Duration>) -> Self {
        self.rise = rise.max(1);
        self.fall = fall.max(1);
        self.hold_down = hold_down;
        self
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The schedule the state and the current run of results call for.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Down => Phase::Down,
            State::Up if self.failures > 0 => Phase::Fast,
            State::Unknown if self.passes > 0 => Phase::Fast,
            _ => Phase::Steady,
        }
    }

    /// Records one result at `now`; returns the new state if it changed.
    ///
    /// Unknown goes Up after `rise` passes and Down at the first failure (no
    /// reason to wait: it does not serve yet either way). Up goes Down after
    /// `fall` consecutive failures. Down goes Up after `rise` consecutive
    /// passes, and not before `hold_down` has passed since it went down.
    pub fn record(&mut self, ok: bool, now: Instant) -> Option<State> {
        if ok {
            self.passes = self.passes.saturating_add(1);
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
            self.passes = 0;
        }
        let held = match (self.hold_down, self.down_at) {
            (Some(h), Some(at)) => now.saturating_duration_since(at) < h,
            _ => false,
        };
        let next = match self.state {
            State::Unknown if ok && self.passes >= self.rise => State::Up,
            State::Unknown if !ok => State::Down,
            State::Up if !ok && self.failures >= self.fall => State::Down,
            State::Down if ok && self.passes >= self.rise && !held => State::Up,
            s => s,
        };
        if next == self.state {
            return None;
        }
        if next == State::Down {
            self.down_at = Some(now);
        }
        self.state = next;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(h: &mut Hysteresis, t0: Instant, results: &[bool]) -> Vec<Option<State>> {
        results
            .iter()
            .enumerate()
            .map(|(i, ok)| h.record(*ok, t0 + Duration::from_secs(i as u64)))
            .collect()
    }

    #[test]
    fn rise_and_fall() {
        let t0 = Instant::now();
        let mut h = Hysteresis::new(2, 3, None);
        use State::*;
        assert_eq!(feed(&mut h, t0, &[true, true]), [None, Some(Up)]);
        // Two failures are tolerated, the third takes it down.
        assert_eq!(h.record(false, t0), None);
        assert_eq!(h.record(false, t0), None);
        assert_eq!(h.record(true, t0), None, "a pass resets the failure run");
        assert_eq!(
            feed(&mut h, t0, &[false, false, false]),
            [None, None, Some(Down)]
        );
        assert_eq!(
            feed(&mut h, t0, &[true, false, true, true]),
            [None, None, None, Some(Up)]
        );
    }

    #[test]
    fn a_changing_check_is_fast_and_a_down_one_never_is() {
        let t0 = Instant::now();
        let mut h = Hysteresis::new(2, 3, None);
        let mut phases = vec![h.phase()];
        for ok in [
            true, true, false, false, true, false, false, false, true, true,
        ] {
            h.record(ok, t0);
            phases.push(h.phase());
        }
        use Phase::*;
        assert_eq!(
            phases,
            [
                Steady, // not tried yet
                Fast,   // one pass of two
                Steady, // up
                Fast,   // failing
                Fast, Steady, // a pass: up, decided
                Fast, Fast, Down, // the third failure
                Down, // passing again, still down: downinter
                Steady,
            ]
        );
    }

    #[test]
    fn unknown_goes_down_at_once() {
        let mut h = Hysteresis::new(3, 5, None);
        assert_eq!(h.record(false, Instant::now()), Some(State::Down));
    }

    #[test]
    fn hold_down_delays_recovery() {
        let t0 = Instant::now();
        let mut h = Hysteresis::new(1, 1, Some(Duration::from_secs(10)));
        assert_eq!(h.record(true, t0), Some(State::Up));
        assert_eq!(
            h.record(false, t0 + Duration::from_secs(1)),
            Some(State::Down)
        );
        assert_eq!(
            h.record(true, t0 + Duration::from_secs(2)),
            None,
            "held down"
        );
        assert_eq!(
            h.record(true, t0 + Duration::from_secs(10)),
            None,
            "still within 10s"
        );
        assert_eq!(
            h.record(true, t0 + Duration::from_secs(11)),
            Some(State::Up)
        );
    }
}
