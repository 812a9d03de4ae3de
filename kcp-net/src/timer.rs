//! A min-heap of wake-ups keyed by `Instant`, with lazy deletion.
//!
//! Each session remembers the one wake-up it wants (`next_wake`); the heap may also
//! hold stale entries for it. An entry is live only if the session still exists and
//! its `next_wake` equals the entry's time, so rescheduling is one push and no search.
//! A session whose deadline moves *later* keeps its earlier entry: it fires, finds
//! nothing due and reschedules. This is what makes an idle session cost one wake-up per
//! idle/keepalive period and nothing else.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Wake-ups of `K`s (session keys) ordered by time, ties by key.
#[derive(Debug)]
pub(crate) struct TimerHeap<K: Ord> {
    heap: BinaryHeap<Reverse<(Instant, K)>>,
}

impl<K: Ord + Copy> TimerHeap<K> {
    pub(crate) fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
        }
    }

    /// Adds a wake-up. The caller records `at` as the key's `next_wake`.
    pub(crate) fn push(&mut self, at: Instant, key: K) {
        self.heap.push(Reverse((at, key)));
    }

    /// The earliest entry's time (it may be stale; a stale early entry only costs one
    /// spurious wake-up).
    pub(crate) fn peek(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, K)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Entries, live and stale.
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Rebuilds the heap from the live wake-ups only; call when stale entries pile up
    /// (more than a few per session).
    pub(crate) fn rebuild(&mut self, live: impl Iterator<Item = (Instant, K)>) {
        self.heap.clear();
        self.heap.extend(live.map(Reverse));
    }
}

/// `Some` of the earlier of two optional deadlines.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_in_time_order_only_when_due() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut timers = TimerHeap::new();
        timers.push(ms(30), 3u32);
        timers.push(ms(10), 1);
        timers.push(ms(20), 2);
        assert_eq!(timers.peek(), Some(ms(10)));
        assert_eq!(timers.pop_due(ms(5)), None);
        assert_eq!(timers.pop_due(ms(25)), Some((ms(10), 1)));
        assert_eq!(timers.pop_due(ms(25)), Some((ms(20), 2)));
        assert_eq!(timers.pop_due(ms(25)), None);
        timers.rebuild([(ms(40), 4)].into_iter());
        assert_eq!(timers.len(), 1);
        assert_eq!(timers.pop_due(ms(40)), Some((ms(40), 4)));
    }

    #[test]
    fn earliest_ignores_none() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(1);
        assert_eq!(earliest(Some(t1), Some(t0)), Some(t0));
        assert_eq!(earliest(None, Some(t1)), Some(t1));
        assert_eq!(earliest(None, None), None);
    }
}
