//! Two consecutive one-second windows of some measure: the current one and the one
//! before. A loop's overload meters ([`LagMeter`](crate::loop_lag::LagMeter),
//! [`RetransmitMeter`](crate::retransmit_share::RetransmitMeter),
//! [`BusyMeter`](crate::loop_busy::BusyMeter)) read both, so their reading follows a
//! loop that falls behind within a second and forgets a spike after one to two.

use std::time::{Duration, Instant};

/// Length of one window.
pub(crate) const WINDOW: Duration = Duration::from_secs(1);

/// The current window's `T` and the previous one's.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TwoWindows<T> {
    window_start: Instant,
    current: T,
    previous: T,
}

impl<T: Copy + Default> TwoWindows<T> {
    /// Both windows empty, the first starting at `now`.
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            current: T::default(),
            previous: T::default(),
        }
    }

    /// The current window as of `now`, to add to.
    pub(crate) fn current(&mut self, now: Instant) -> &mut T {
        self.roll(now);
        &mut self.current
    }

    /// The current window and the previous one, as of `now`.
    pub(crate) fn both(&mut self, now: Instant) -> (T, T) {
        self.roll(now);
        (self.current, self.previous)
    }

    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < WINDOW {
            return;
        }
        // One window on: the current one becomes the previous. Two or more: both are
        // over, and what they held is forgotten.
        self.previous = if elapsed < 2 * WINDOW {
            self.current
        } else {
            T::default()
        };
        self.current = T::default();
        self.window_start = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_window_becomes_the_previous_then_is_forgotten() {
        let t0 = Instant::now();
        let mut w = TwoWindows::<u32>::new(t0);
        *w.current(t0 + 10 * MS) += 3;
        *w.current(t0 + 900 * MS) += 4;
        assert_eq!(w.both(t0 + 999 * MS), (7, 0));
        assert_eq!(w.both(t0 + 1000 * MS), (0, 7));
        *w.current(t0 + 1500 * MS) += 1;
        assert_eq!(w.both(t0 + 1999 * MS), (1, 7));
        assert_eq!(w.both(t0 + 2000 * MS), (0, 1));
        // Two windows of silence forget both.
        *w.current(t0 + 2100 * MS) += 5;
        assert_eq!(w.both(t0 + 4000 * MS), (0, 0));
    }
}
