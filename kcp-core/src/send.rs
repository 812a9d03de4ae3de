//! The sending side: the queue of unnumbered segments and the in-flight ring, one
//! ring for both.

use crate::flight::{Flight, Payload};
use crate::{Sn, Timestamp};

/// `snd_queue` and `snd_buf` of the reference.
///
/// Both live in one [`Flight`] ring indexed by `sn`: the in-flight segments first, its
/// front always the oldest unacknowledged segment (acknowledged segments leave a hole
/// that is trimmed once it reaches the front), then the queued ones, which take the
/// next numbers in order. An ACK is O(1), an UNA advance O(acked), and numbering a
/// queued segment moves nothing.
#[derive(Clone, Debug, Default)]
pub(crate) struct SendWindow {
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
    pub(crate) const fn queued(&self) -> usize {
        self.flight.queued()
    }

    /// Queues a segment.
    #[inline(always)]
    pub(crate) fn enqueue(&mut self, segment: Payload) {
        self.flight.enqueue(segment);
    }

    /// The last queued segment, if any.
    pub(crate) fn last_queued_mut(&mut self) -> Option<&mut Payload> {
        self.flight.last_queued_mut()
    }

    /// The in-flight ring: ACKs, fast-ACK counts and the flush walk go straight to it.
    pub(crate) fn flight_mut(&mut self) -> &mut Flight {
        &mut self.flight
    }

    /// Numbers queued segments and puts them in flight while `snd_nxt` is before
    /// `limit`.
    pub(crate) fn promote_until(&mut self, limit: Sn, now: Timestamp, rto: u32) {
        self.flight.promote_until(limit, now, rto);
    }

    /// The in-flight ring.
    pub(crate) const fn flight(&self) -> &Flight {
        &self.flight
    }

    /// Starts numbering at `sn`.
    pub(crate) fn starting_at(sn: Sn) -> Self {
        Self {
            flight: Flight::starting_at(sn),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flight::FastRule;
    use bytes::Bytes;

    const RULE: FastRule = FastRule {
        threshold: 2,
        limit: 0,
    };

    fn window_with(n: u32, first: Sn) -> SendWindow {
        let mut w = SendWindow::starting_at(first);
        for i in 0..n {
            w.enqueue(Payload {
                data: Bytes::from(alloc::vec![i as u8]),
                frg: 0,
            });
        }
        let t = Timestamp::from_millis(10);
        w.promote_until(first.add(n), t, 200);
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
