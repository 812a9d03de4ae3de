//! How much of its time a loop works: the share of the wall clock it spends outside
//! `poll`, over the last one to two seconds ([`TwoWindows`]).
//!
//! A loop near its capacity works nearly all the time: each turn finds more to do
//! than the last, it batches more and sleeps less, and a little more load puts it
//! behind (the lag) and makes it read ACKs late (the retransmissions). The busy share
//! climbs before either of those, so it is the overload signal that lets admission
//! control refuse a new user while the ones it has are still served well. Time the
//! thread waited for a core counts as work: the loop was not idle, it could not run.

use std::time::{Duration, Instant};

use crate::two_windows::TwoWindows;

/// Less wall time than this over both windows reads as a share of 0: a loop that
/// just started says nothing yet.
const MIN_SPAN: Duration = Duration::from_millis(200);

/// Wall time and the part of it spent waiting in `poll`.
#[derive(Clone, Copy, Debug, Default)]
struct Spent {
    wall: Duration,
    waiting: Duration,
}

/// A loop's busy share over the current and the previous window.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BusyMeter {
    /// When the last turn ended.
    last: Instant,
    spent: TwoWindows<Spent>,
}

impl BusyMeter {
    /// A meter whose first window starts at `now`.
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            last: now,
            spent: TwoWindows::new(now),
        }
    }

    /// Records a turn that ends at `now` and waited `waiting` of its time in `poll`.
    pub(crate) fn record(&mut self, waiting: Duration, now: Instant) {
        let wall = now.saturating_duration_since(self.last);
        self.last = now;
        let spent = self.spent.current(now);
        spent.wall += wall;
        spent.waiting += waiting.min(wall);
    }

    /// Working time per 1,000 of wall time over this window and the one before, as of
    /// `now` (0 below [`MIN_SPAN`]).
    pub(crate) fn permille(&mut self, now: Instant) -> u64 {
        let (current, previous) = self.spent.both(now);
        let wall = current.wall + previous.wall;
        if wall < MIN_SPAN {
            return 0;
        }
        let working = wall.saturating_sub(current.waiting + previous.waiting);
        u64::try_from(working.as_micros() * 1000 / wall.as_micros()).unwrap_or(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_share_is_the_time_outside_poll_over_two_windows() {
        let t0 = Instant::now();
        let mut meter = BusyMeter::new(t0);
        // Turns of 100 ms that wait half of it.
        meter.record(50 * MS, t0 + 100 * MS);
        assert_eq!(meter.permille(t0 + 100 * MS), 0, "too little time yet");
        for i in 2..=10 {
            meter.record(50 * MS, t0 + i * 100 * MS);
        }
        assert_eq!(meter.permille(t0 + 1000 * MS), 500);
        // Then turns that never wait: the half-busy window fades out.
        for i in 11..=20 {
            meter.record(Duration::ZERO, t0 + i * 100 * MS);
        }
        // 1,100 ms in the two windows, 50 of them waiting.
        assert_eq!(meter.permille(t0 + 2000 * MS), 1050 * 1000 / 1100);
        for i in 21..=30 {
            meter.record(Duration::ZERO, t0 + i * 100 * MS);
        }
        assert_eq!(meter.permille(t0 + 3000 * MS), 1000);
        // A wait longer than its turn (a clock that moved oddly) is the whole turn.
        meter.record(500 * MS, t0 + 3100 * MS);
        assert_eq!(meter.permille(t0 + 3100 * MS), 1100 * 1000 / 1200);
        // Two windows of silence: forgotten.
        assert_eq!(meter.permille(t0 + 9000 * MS), 0);
    }
}
