//! Per-connection token bucket on the injected clock, so tests can flood a
//! connection and know exactly how many requests pass.

/// Tokens are kept in thousandths so that slow refill rates stay exact.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    milli_tokens: u64,
    capacity: u64,
    per_sec: u64,
    last_ms: u64,
}

impl TokenBucket {
    pub fn new(per_sec: u32, burst: u32, now_ms: u64) -> Self {
        let capacity = burst.max(1) as u64 * 1000;
        Self { milli_tokens: capacity, capacity, per_sec: per_sec as u64, last_ms: now_ms }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        self.milli_tokens = (self.milli_tokens + elapsed * self.per_sec).min(self.capacity);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_sustained_rate() {
        let mut b = TokenBucket::new(10, 5, 0);
        assert_eq!((0..20).filter(|_| b.try_take(0)).count(), 5, "the burst");
        assert!(!b.try_take(99));
        assert!(b.try_take(100), "10/s refills one token per 100 ms");
        assert!(!b.try_take(100));
        assert_eq!((0..20).filter(|_| b.try_take(100_000)).count(), 5, "refill is capped at the burst");
    }
}
