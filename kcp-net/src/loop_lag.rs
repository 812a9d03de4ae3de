//! How late a loop serves its timers: the loop's own scheduling delay.
//!
//! Every timer that fires is late by `now - due`: the poll woke late (the thread was
//! not scheduled) or the turn before ran long. The meter keeps the worst lateness of
//! the current one-second window and of the one before, so its reading follows a
//! loop that falls behind within a turn and forgets a spike after one to two seconds.
//! A loop that is behind delays every session's ACKs and retransmissions by as much,
//! which is what admission control should look at before taking more sessions.

use std::time::{Duration, Instant};

use crate::two_windows::TwoWindows;

/// The worst timer lateness over the last one to two seconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LagMeter {
    worst: TwoWindows<Duration>,
}

impl LagMeter {
    /// A meter that has seen no lateness, its first window starting at `now`.
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            worst: TwoWindows::new(now),
        }
    }

    /// Records that a timer due at `due` fired at `now`.
    pub(crate) fn record(&mut self, due: Instant, now: Instant) {
        let worst = self.worst.current(now);
        *worst = (*worst).max(now.saturating_duration_since(due));
    }

    /// The worst lateness of this window and the one before, as of `now`.
    pub(crate) fn lag(&mut self, now: Instant) -> Duration {
        let (current, previous) = self.worst.both(now);
        current.max(previous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_worst_lateness_holds_for_a_window_then_fades() {
        let t0 = Instant::now();
        let mut meter = LagMeter::new(t0);
        assert_eq!(meter.lag(t0), Duration::ZERO);
        meter.record(t0 + 10 * MS, t0 + 12 * MS);
        meter.record(t0 + 100 * MS, t0 + 180 * MS);
        meter.record(t0 + 200 * MS, t0 + 205 * MS);
        assert_eq!(meter.lag(t0 + 300 * MS), 80 * MS);
        // The next window still remembers it ...
        meter.record(t0 + 1100 * MS, t0 + 1101 * MS);
        assert_eq!(meter.lag(t0 + 1500 * MS), 80 * MS);
        // ... the one after does not.
        assert_eq!(meter.lag(t0 + 2200 * MS), MS);
        assert_eq!(meter.lag(t0 + 5000 * MS), Duration::ZERO);
        // A timer served early (or on time) is not late.
        meter.record(t0 + 6000 * MS, t0 + 5999 * MS);
        assert_eq!(meter.lag(t0 + 6000 * MS), Duration::ZERO);
    }
}
