//! The sending side: the queue of unnumbered segments and the in-flight ring.

use alloc::collections::VecDeque;

use bytes::Bytes;

use crate::flight::{Flight, Payload};
use crate::{Sn, Timestamp};

/// A segment accepted by `send`, not yet numbered.
#[derive(Clone, Debug)]
pub(crate) struct Queued {
    pub(crate) data: Bytes,
    pub(crate) frg: u8,
}

/// `snd_queue` and `snd_buf` of the reference.
///
/// The in-flight segments live in a [`Flight`] ring indexed by `sn`: its front is
/// always the oldest unacknowledged segment, acknowledged segments leave a hole that
/// is trimmed once it reaches the front. An ACK is O(1), an UNA advance O(acked), and
/// the ring never holds more than the send window it was filled under.
#[derive(Clone, Debug, Default)]
pub(crate) struct SendWindow {
    queue: VecDeque<Queued>,
    flight: Flight,
}

impl SendWindow {
    /// `snd_una`: the oldest unacknowledged sequence number (or `snd_nxt` if none).
    pub(crate) const fn una(&self) -> Sn {
        self.flight.una()
    }

    /// `snd_nxt`: the next sequence number to assign.
    pub(crate) fn nxt(&self) -> Sn {
        self.flight.una().add(self.flight.len() as u32)
    }

    /// Segments in flight (`nsnd_buf`).
    pub(crate) const fn in_flight(&self) -> usize {
        self.flight.live()
    }

    /// Segments queued, not yet numbered (`nsnd_que`).
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn queue_mut(&mut self) -> &mut VecDeque<Queued> {
        &mut self.queue
    }

    /// The in-flight ring: ACKs, fast-ACK counts and the flush walk go straight to it.
    pub(crate) fn flight_mut(&mut self) -> &mut Flight {
        &mut self.flight
    }

    /// Numbers the queue's head and puts it in flight. `None` if the queue is empty.
    #[inline]
    pub(crate) fn promote(&mut self, now: Timestamp, rto: u32) -> Option<()> {
        let Queued { data, frg } = self.queue.pop_front()?;
        self.flight.push(now, Payload { data, frg }, rto);
        Some(())
    }

    /// The in-flight ring.
    pub(crate) const fn flight(&self) -> &Flight {
        &self.flight
    }

    /// Starts numbering at `sn`.
    pub(crate) fn starting_at(sn: Sn) -> Self {
        Self {
            queue: VecDeque::new(),
            flight: Flight::starting_at(sn),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flight::FastRule;

    const RULE: FastRule = FastRule {
        threshold: 2,
        limit: 0,
    };

    fn window_with(n: u32, first: Sn) -> SendWindow {
        let mut w = SendWindow::starting_at(first);
        for i in 0..n {
            w.queue_mut().push_back(Queued {
                data: Bytes::from(alloc::vec![i as u8]),
                frg: 0,
            });
        }
        let t = Timestamp::from_millis(10);
        while w.promote(t, 200).is_some() {}
        w
    }

    #[test]
    fn selective_ack_leaves_a_hole_until_the_front_is_acked() {
        let first = Sn::new(u32::MAX - 1);
        let mut w = window_with(5, first);
        assert_eq!((w.una(), w.nxt(), w.in_flight()), (first, first.add(5), 5));
        assert!(w.flight_mut().ack(first.add(2)));
        assert!(
            !w.flight_mut().ack(first.add(2)),
            "second ack of the same sn is a no-op"
        );
        assert_eq!((w.una(), w.in_flight()), (first, 4));
        assert!(w.flight_mut().ack(first));
        assert_eq!(w.una(), first.add(1));
        assert!(w.flight_mut().ack(first.add(1)));
        // sn+2 was already gone: una jumps over the hole.
        assert_eq!((w.una(), w.in_flight()), (first.add(3), 2));
        assert!(!w.flight_mut().ack(first.add(9)), "beyond snd_nxt");
        assert!(!w.flight_mut().ack(first), "before snd_una");
    }

    #[test]
    fn una_removes_everything_before_it_and_never_passes_nxt() {
        let first = Sn::new(100);
        let mut w = window_with(4, first);
        w.flight_mut().ack_before(first.add(2));
        assert_eq!((w.una(), w.in_flight()), (first.add(2), 2));
        w.flight_mut().ack_before(first.add(1000));
        assert_eq!(
            (w.una(), w.nxt(), w.in_flight()),
            (first.add(4), first.add(4), 0)
        );
    }

    #[test]
    fn fast_ack_counts_only_earlier_segments() {
        let first = Sn::new(0);
        let mut w = window_with(4, first);
        w.flight_mut()
            .count_fast_ack(first.add(2), Timestamp::from_millis(10), true, RULE);
        let counts: alloc::vec::Vec<_> = w.flight().timers().map(|s| s.fastack).collect();
        assert_eq!(counts, [1, 1, 0, 0]);
        // Conserve: an ACK of a transmission older than the segment's own does not count.
        w.flight_mut()
            .count_fast_ack(first.add(3), Timestamp::from_millis(9), true, RULE);
        let counts: alloc::vec::Vec<_> = w.flight().timers().map(|s| s.fastack).collect();
        assert_eq!(counts, [1, 1, 0, 0]);
        w.flight_mut()
            .count_fast_ack(first.add(3), Timestamp::from_millis(9), false, RULE);
        let counts: alloc::vec::Vec<_> = w.flight().timers().map(|s| s.fastack).collect();
        assert_eq!(counts, [2, 2, 1, 0]);
        // Outside [una, nxt): nothing.
        w.flight_mut()
            .count_fast_ack(first.add(4), Timestamp::from_millis(10), false, RULE);
        assert_eq!(w.flight().timers().map(|s| s.fastack).sum::<u32>(), 5);
    }
}
