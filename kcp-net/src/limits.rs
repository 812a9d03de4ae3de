//! The new-session rate cap: a token bucket.

use std::time::Instant;

/// Allows `rate` events per second on average, bursts of at most `rate`.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(rate: u32, now: Instant) -> Self {
        Self {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_up_to_the_rate_then_refills_over_time() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10, t0);
        assert_eq!((0..20).filter(|_| bucket.take(t0)).count(), 10);
        assert!(!bucket.take(t0 + Duration::from_millis(50)));
        assert!(bucket.take(t0 + Duration::from_millis(100)));
        assert_eq!(
            (0..20)
                .filter(|_| bucket.take(t0 + Duration::from_secs(60)))
                .count(),
            10
        );
    }
}
