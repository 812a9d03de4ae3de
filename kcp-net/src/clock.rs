//! The one place where wall-clock `Instant`s become engine `Timestamp`s.

use std::time::{Duration, Instant};

use kcp_core::Timestamp;

/// Where a loop's engine clock starts: 5 s before the 32-bit millisecond clock wraps,
/// so every session that lives longer than 5 s crosses the wrap, in tests too.
const START_MS: u32 = u32::MAX - 5_000;

/// Converts between `Instant` (what timers and `mio` use; it is `Ord`) and the engine's
/// wrapping millisecond [`Timestamp`]. One per loop or client.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: Instant,
    /// The engine time at `origin`.
    start_ms: u32,
}

impl Clock {
    pub(crate) fn new(origin: Instant) -> Self {
        Self::starting_at(origin, START_MS)
    }

    /// A clock whose engine time reads `start_ms` at `origin`.
    pub(crate) fn starting_at(origin: Instant, start_ms: u32) -> Self {
        Self { origin, start_ms }
    }

    /// The engine time at `now`. Truncation to whole milliseconds and to 32 bits is
    /// intended: the engine's clock is a wrapping `u32` of ms.
    pub(crate) fn timestamp(&self, now: Instant) -> Timestamp {
        let ms = now.saturating_duration_since(self.origin).as_millis() as u32;
        Timestamp::from_millis(self.start_ms.wrapping_add(ms))
    }

    /// The first `Instant` at which the engine clock reads `at`, for an `at` within
    /// ~24 days of `now` either way (the engine clock wraps). The answer does not
    /// depend on `now` beyond that: a deadline keeps one value however often it is
    /// asked for, so a caller that compares it with an `Instant` taken a moment
    /// earlier still sees a passed deadline as passed. At the answer, `timestamp`
    /// reads `at`, so a timer set here never fires before the engine agrees the time
    /// has come; a deadline already passed answers an `Instant` in the past.
    pub(crate) fn instant_of(&self, now: Instant, at: Timestamp) -> Instant {
        let elapsed = now.saturating_duration_since(self.origin).as_millis() as u64;
        let this_ms = self.origin + Duration::from_millis(elapsed);
        let ahead = at.since(self.timestamp(now));
        if ahead >= 0 {
            this_ms + Duration::from_millis(ahead as u64)
        } else {
            this_ms
                .checked_sub(Duration::from_millis(u64::from(ahead.unsigned_abs())))
                .unwrap_or(self.origin)
                .max(self.origin)
        }
    }

    /// Milliseconds since the origin, for the link simulator's `SimTime`.
    #[cfg_attr(not(feature = "impair"), allow(dead_code))]
    pub(crate) fn sim_millis(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_millis() as u64
    }

    /// The `Instant` of a simulator time returned by `sim_millis`'s scale, rounded up.
    #[cfg_attr(not(feature = "impair"), allow(dead_code))]
    pub(crate) fn instant_of_sim(&self, ms: u64) -> Instant {
        self.origin + Duration::from_millis(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_start_near_the_wrap_and_cross_it() {
        let origin = Instant::now();
        let clock = Clock::new(origin);
        assert_eq!(clock.timestamp(origin).as_millis(), u32::MAX - 5_000);
        let later = origin + Duration::from_millis(6_000);
        assert_eq!(clock.timestamp(later).as_millis(), 999);
        assert_eq!(clock.timestamp(later).since(clock.timestamp(origin)), 6_000);
    }

    #[test]
    fn instant_of_is_where_the_engine_clock_turns_and_does_not_move() {
        let origin = Instant::now();
        let clock = Clock::new(origin);
        let now = origin + Duration::from_micros(10_700); // engine reads 10 ms
        let due = clock.timestamp(now).add_millis(5);
        let at = clock.instant_of(now, due);
        assert!(clock.timestamp(at).has_reached(due));
        assert!(
            !clock
                .timestamp(at - Duration::from_nanos(1))
                .has_reached(due)
        );
        assert_eq!(at - origin, Duration::from_millis(15));
        // Asked again later, the same deadline is the same instant.
        let later = now + Duration::from_micros(1_900);
        assert_eq!(clock.instant_of(later, due), at);
        // A deadline in the past is an instant in the past, stable too.
        let past = clock.timestamp(now).add_millis(u32::MAX - 2); // 3 ms ago
        assert_eq!(
            clock.instant_of(now, past),
            origin + Duration::from_millis(7)
        );
        assert_eq!(
            clock.instant_of(later, past),
            origin + Duration::from_millis(7)
        );
        // Never before the origin.
        let long_ago = clock.timestamp(origin).add_millis(u32::MAX - 100);
        assert_eq!(clock.instant_of(now, long_ago), origin);
    }
}
