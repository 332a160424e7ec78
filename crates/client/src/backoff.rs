//! Reconnect delays.
//!
//! The first retry is immediate: most drops are a single broken connection
//! and the server is right there. Then the delay doubles up to a cap of about
//! a second, so a restarting server is not hammered yet a client comes back
//! soon after it is up. Each delay is jittered (50-100 %) so that thousands of
//! bots dropped by one server stop do not all reconnect in the same instant.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Delays between reconnect attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the second attempt (the first one is immediate).
    pub initial: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
    /// Randomise each delay between half and all of its nominal value.
    pub jitter: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { initial: Duration::from_millis(50), max: Duration::from_secs(1), jitter: true }
    }
}

impl Backoff {
    /// The nominal delay before attempt number `attempt` (0-based), without
    /// jitter: 0, initial, 2×initial, ... capped at `max`.
    pub fn nominal(&self, attempt: u32) -> Duration {
        if attempt == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delay to wait before attempt number `attempt`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let nominal = self.nominal(attempt);
        if !self.jitter || nominal.is_zero() {
            return nominal;
        }
        // A random fraction in [0.5, 1.0) from the std hasher's random keys:
        // good enough to spread reconnects, and no dependency for it.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(attempt);
        let unit = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
        nominal.mul_f64(0.5 + unit / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_retry_is_immediate_then_doubles_to_the_cap() {
        let b = Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(1), jitter: false };
        let ms: Vec<u128> = (0..7).map(|a| b.delay(a).as_millis()).collect();
        assert_eq!(ms, vec![0, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1), "no overflow");
    }

    #[test]
    fn jitter_stays_within_half_and_all_of_the_nominal_delay() {
        let b = Backoff::default();
        for attempt in 0..40 {
            let (d, n) = (b.delay(attempt), b.nominal(attempt));
            assert!(d <= n && d >= n / 2, "attempt {attempt}: {d:?} vs {n:?}");
        }
    }
}
