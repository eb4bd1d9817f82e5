//! Jitter so checks do not synchronise: a deterministic start offset per
//! check and a varied period. Pure (the randomness is an argument).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

/// Where in the first interval a check starts: spread uniformly by a hash
/// of its identity, so thousands of checks do not fire together.
pub fn start_offset(identity: &impl Hash, interval: Duration) -> Duration {
    let mut h = DefaultHasher::new();
    identity.hash(&mut h);
    let frac = (h.finish() % 10_000) as f64 / 10_000.0;
    interval.mul_f64(frac)
}

/// `interval` varied by up to ±`jitter` (a fraction, clamped to 0-0.5)
/// using `random` (any u64).
pub fn jittered(interval: Duration, jitter: f64, random: u64) -> Duration {
    let j = jitter.clamp(0.0, 0.5);
    let unit = (random % 20_001) as f64 / 10_000.0 - 1.0; // -1.0 ..= 1.0
    interval.mul_f64(1.0 + j * unit)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn jitter_stays_in_bounds() {
        let iv = Duration::from_millis(1000);
        let all: Vec<Duration> = (0..1000u64)
            .map(|r| jittered(iv, 0.1, r.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .collect();
        assert!(
            all.iter()
                .all(|d| *d >= Duration::from_millis(900) && *d <= Duration::from_millis(1100))
        );
        assert!(
            all.iter().any(|d| *d < Duration::from_millis(950))
                && all.iter().any(|d| *d > Duration::from_millis(1050))
        );
        assert_eq!(jittered(iv, 0.0, 12345), iv);
    }
}
