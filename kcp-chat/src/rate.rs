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
        self.take_with_slack(now, 0.0)
    }

    /// Takes one token if there is one, letting the bucket hold up to `slack`
    /// tokens beyond its burst: the frames a steady sender sent during a delay the
    /// network added, which then arrive together (see [`late_slack`]). An idle bucket
    /// fills to `burst + slack`, so the slack must stay small and bounded.
    pub fn take_with_slack(&mut self, now: Instant, slack: f64) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        let capacity = self.burst + slack.max(0.0);
        self.tokens = elapsed.mul_add(self.rate, self.tokens).min(capacity);
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

/// Tokens a bucket of `rate` per second may hold beyond its burst for a session
/// whose retransmission timeout is `rto`: what a sender at `rate` sends while one of
/// its segments waits through four transmissions (fast mode backs off by 1.5x, so
/// about 8 RTOs), capped at `max_late`. Frames that a retransmission delayed and then
/// released together are not a flood; a flood is faster than `rate` for longer than
/// that.
pub fn late_slack(rate: f64, rto: Duration, max_late: Duration) -> f64 {
    rate * rto.saturating_mul(8).min(max_late).as_secs_f64()
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
    fn slack_lets_a_late_burst_through_but_not_a_flood() {
        let t0 = Instant::now();
        let rate = 20.0;
        // A client at 10 frames/s whose frames were held 3 s by retransmissions: 30
        // arrive at once, on top of a bucket that refilled to its burst of 5.
        let slack = late_slack(rate, Duration::from_millis(400), Duration::from_secs(5));
        assert!((slack - 64.0).abs() < 1e-9, "8 x 400 ms at 20/s: {slack}");
        let later = t0 + Duration::from_secs(10);
        let mut b = TokenBucket::new(rate, 5, t0);
        assert_eq!(
            (0..30).filter(|_| b.take_with_slack(later, slack)).count(),
            30
        );
        let mut plain = TokenBucket::new(rate, 5, t0);
        assert_eq!((0..30).filter(|_| plain.take(later)).count(), 5);
        // A flood still runs dry: the slack is spent once, then the rate holds.
        let mut b = TokenBucket::new(rate, 5, t0);
        assert_eq!(
            (0..1000)
                .filter(|_| b.take_with_slack(later, slack))
                .count(),
            69
        );
        // The cap holds however large the RTO.
        let capped = late_slack(rate, Duration::from_secs(60), Duration::from_secs(5));
        assert!((capped - 100.0).abs() < 1e-9);
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
