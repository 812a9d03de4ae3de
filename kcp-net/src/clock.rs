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
}

impl Clock {
    pub(crate) fn new(origin: Instant) -> Self {
        Self { origin }
    }

    /// The engine time at `now`. Truncation to whole milliseconds and to 32 bits is
    /// intended: the engine's clock is a wrapping `u32` of ms.
    pub(crate) fn timestamp(&self, now: Instant) -> Timestamp {
        let ms = now.saturating_duration_since(self.origin).as_millis() as u32;
        Timestamp::from_millis(START_MS.wrapping_add(ms))
    }

    /// The `Instant` at or after which the engine clock reads `at`, given that it reads
    /// `self.timestamp(now)` at `now`. Because `timestamp` truncates, adding the
    /// difference to `now` (not to the truncated ms) rounds up, so a timer set here
    /// never fires before the engine agrees the time has come.
    pub(crate) fn instant_of(&self, now: Instant, at: Timestamp) -> Instant {
        let ahead = at.since(self.timestamp(now)).max(0) as u64;
        now + Duration::from_millis(ahead)
    }

    /// Milliseconds since the origin, for the link simulator's `SimTime`.
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
    fn instant_of_rounds_up_so_timers_are_never_early() {
        let origin = Instant::now();
        let clock = Clock::new(origin);
        let now = origin + Duration::from_micros(10_700); // engine reads 10 ms
        let due = clock.timestamp(now).add_millis(5);
        let at = clock.instant_of(now, due);
        assert!(clock.timestamp(at).has_reached(due));
        assert_eq!(at - now, Duration::from_millis(5));
        // A deadline in the past is now.
        let past = clock.timestamp(now).add_millis(u32::MAX - 2);
        assert_eq!(clock.instant_of(now, past), now);
    }
}
