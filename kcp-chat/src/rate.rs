//! Flood control: a token bucket for frames and a strike counter for abuse, kept per
//! session and per source address by the server (and used by the client to pace).
//!
//! Pure logic with the time passed in, so tests need no clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Allows `rate` events per second on average and bursts of up to `burst`.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate: f64, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: rate.max(0.0),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = elapsed.mul_add(self.rate, self.tokens).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The tokens the bucket would hold at `now` (at most `burst`). Changes nothing.
    pub fn tokens_at(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        elapsed.mul_add(self.rate, self.tokens).min(self.burst)
    }

    /// Whether the bucket would be full at `now` (it has refilled since the last
    /// token taken). Changes nothing.
    pub fn is_full(&self, now: Instant) -> bool {
        self.tokens_at(now) >= self.burst
    }
}

/// Counts abuse within a sliding window: more than `allowed` strikes within `window`
/// and the client is out.
#[derive(Clone, Debug)]
pub struct Strikes {
    allowed: usize,
    window: Duration,
    times: VecDeque<Instant>,
}

impl Strikes {
    /// Tolerates `allowed` strikes per `window`.
    pub fn new(allowed: u32, window: Duration) -> Self {
        Self {
            allowed: allowed as usize,
            window,
            times: VecDeque::new(),
        }
    }

    /// Records a strike at `now`; `true` when it is one too many.
    pub fn strike(&mut self, now: Instant) -> bool {
        while self
            .times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            self.times.pop_front();
        }
        self.times.push_back(now);
        self.times.len() > self.allowed
    }

    /// Whether no strike recorded so far still counts at `now`. Changes nothing.
    pub fn is_clear(&self, now: Instant) -> bool {
        self.times
            .back()
            .is_none_or(|t| now.saturating_duration_since(*t) >= self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 5, t0);
        assert_eq!((0..20).filter(|_| b.take(t0)).count(), 5);
        assert!(!b.take(t0 + Duration::from_millis(50)));
        assert!(b.take(t0 + Duration::from_millis(100)));
        // Refill is capped at the burst, however long the pause.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!((0..20).filter(|_| b.take(later)).count(), 5);
    }

    #[test]
    fn bucket_is_full_again_after_burst_over_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 5, t0);
        assert!(b.is_full(t0));
        assert!(b.take(t0) && b.take(t0));
        assert!(!b.is_full(t0 + Duration::from_millis(150)));
        assert!(b.is_full(t0 + Duration::from_millis(200)));
    }

    #[test]
    fn strikes_expire_after_the_window() {
        let t0 = Instant::now();
        let mut s = Strikes::new(2, Duration::from_secs(10));
        assert!(!s.strike(t0));
        assert!(!s.strike(t0 + Duration::from_secs(1)));
        assert!(s.strike(t0 + Duration::from_secs(2)));
        let mut s = Strikes::new(2, Duration::from_secs(10));
        assert!(!s.strike(t0));
        assert!(!s.strike(t0 + Duration::from_secs(5)));
        // The first strike is 10 s old: it no longer counts.
        assert!(!s.strike(t0 + Duration::from_secs(10)));
        assert!(s.strike(t0 + Duration::from_secs(11)));
        assert!(!s.is_clear(t0 + Duration::from_secs(20)));
        assert!(s.is_clear(t0 + Duration::from_secs(21)));
        assert!(Strikes::new(2, Duration::from_secs(10)).is_clear(t0));
    }
}
