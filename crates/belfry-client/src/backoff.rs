//! The reconnection delays of socket.io-client (its `backo2`): `min · 2^n`, jittered by
//! `factor`, capped at `max`. Unlike the JavaScript arithmetic, which overflows after about a
//! thousand attempts and then fires half of them at once, the exponent saturates.

use std::time::Duration;

/// The delays between reconnection attempts.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    factor: f64,
    attempts: u32,
}

impl Backoff {
    /// `min` doubled per attempt up to `max`, each ± `factor` (kept only in (0, 1], as the
    /// JavaScript client does).
    pub(crate) fn new(min: Duration, max: Duration, factor: f64) -> Backoff {
        Backoff {
            min,
            max,
            factor: if factor > 0.0 && factor <= 1.0 {
                factor
            } else {
                0.0
            },
            attempts: 0,
        }
    }

    /// How many attempts were made since the last reset.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The delay before the next attempt (and counts it).
    pub(crate) fn next_delay(&mut self) -> Duration {
        let exponent = self.attempts.min(62);
        self.attempts = self.attempts.saturating_add(1);
        let base = self.min.as_secs_f64() * 2f64.powi(exponent as i32);
        let mut millis = base * 1000.0;
        if self.factor > 0.0 {
            let draw = random_unit();
            let deviation = (draw * self.factor * millis).floor();
            // One draw gives both the size and the sign, as the JavaScript client's.
            if ((draw * 10.0).floor() as u64).is_multiple_of(2) {
                millis -= deviation;
            } else {
                millis += deviation;
            }
        }
        let millis = millis.min(self.max.as_secs_f64() * 1000.0).max(0.0);
        Duration::from_millis(millis as u64)
    }

    /// Back to the first delay (after a successful connection).
    pub(crate) fn reset(&mut self) {
        self.attempts = 0;
    }
}

/// A uniform draw in [0, 1).
fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_within_the_jitter_and_caps() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5), 0.5);
        let ranges = [
            (500, 1500),
            (1000, 3000),
            (2000, 5000),
            (4000, 5000),
            (5000, 5000),
        ];
        for (low, high) in ranges {
            let delay = backoff.next_delay().as_millis();
            assert!(
                (low..=high).contains(&delay),
                "{delay} not in {low}..={high}"
            );
        }
    }

    #[test]
    fn the_exponent_saturates() {
        // Uncapped, without jitter: past 62 doublings the delay stays at 2^62 times the first
        // (JavaScript's arithmetic reaches Infinity, then NaN, then fires at once).
        let mut backoff = Backoff::new(Duration::from_millis(1), Duration::MAX, 0.0);
        backoff.attempts = 5000;
        assert_eq!(backoff.next_delay(), Duration::from_millis(1 << 62));
        assert_eq!(backoff.attempts(), 5001);
        // Capped, with jitter: always the cap, never 0.
        let mut capped = Backoff::new(Duration::from_secs(1), Duration::from_secs(5), 0.5);
        capped.attempts = u32::MAX - 10;
        for _ in 0..20 {
            assert_eq!(capped.next_delay(), Duration::from_secs(5));
        }
        let mut exact = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 0.0);
        assert_eq!(exact.next_delay(), Duration::from_millis(100));
        assert_eq!(exact.next_delay(), Duration::from_millis(200));
        exact.reset();
        assert_eq!(exact.next_delay(), Duration::from_millis(100));
    }
}
