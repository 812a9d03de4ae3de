//! The sending side: the queue of unnumbered segments and the in-flight ring.

use alloc::collections::VecDeque;

use bytes::Bytes;

use crate::{Sn, Timestamp};

/// A segment accepted by `send`, not yet numbered.
#[derive(Clone, Debug)]
pub(crate) struct Queued {
    pub(crate) data: Bytes,
    pub(crate) frg: u8,
}

/// A numbered segment in flight, with its retransmission state (not on the wire).
#[derive(Clone, Debug)]
pub(crate) struct InFlight {
    pub(crate) sn: Sn,
    pub(crate) frg: u8,
    pub(crate) data: Bytes,
    /// Clock at the latest transmission (the `ts` on the wire).
    pub(crate) ts: Timestamp,
    /// When the next timeout retransmission is due.
    pub(crate) resend_at: Timestamp,
    /// This segment's current timeout.
    pub(crate) rto: u32,
    /// ACKs of later segments seen since the last (re)transmission.
    pub(crate) fastack: u32,
    /// Transmissions so far; 0 until the flush that first sends it.
    pub(crate) xmit: u32,
}

/// `snd_queue` and `snd_buf` of the reference.
///
/// The in-flight segments live in a ring indexed by `sn - una`: slot 0 is always the
/// oldest unacknowledged segment, acknowledged segments leave a hole that is trimmed
/// once it reaches the front. An ACK is O(1), an UNA advance O(acked), and the ring
/// never holds more than the send window it was filled under.
#[derive(Clone, Debug, Default)]
pub(crate) struct SendWindow {
    queue: VecDeque<Queued>,
    flight: VecDeque<Option<InFlight>>,
    /// Sequence number of `flight[0]` (`snd_una`).
    una: Sn,
    /// Live (unacknowledged) segments in `flight`.
    live: usize,
}

impl SendWindow {
    /// `snd_una`: the oldest unacknowledged sequence number (or `snd_nxt` if none).
    pub(crate) const fn una(&self) -> Sn {
        self.una
    }

    /// `snd_nxt`: the next sequence number to assign.
    pub(crate) fn nxt(&self) -> Sn {
        self.una.add(self.flight.len() as u32)
    }

    /// Segments in flight (`nsnd_buf`).
    pub(crate) const fn in_flight(&self) -> usize {
        self.live
    }

    /// Segments queued, not yet numbered (`nsnd_que`).
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn queue_mut(&mut self) -> &mut VecDeque<Queued> {
        &mut self.queue
    }

    /// Removes every in-flight segment before `una` (the peer has all of them).
    pub(crate) fn ack_before(&mut self, una: Sn) {
        while !self.flight.is_empty() && self.una.is_before(una) {
            if self.flight.pop_front().flatten().is_some() {
                self.live -= 1;
            }
            self.una = self.una.add(1);
        }
        self.trim_front();
    }

    /// Removes the in-flight segment `sn`, if it is in flight. Returns whether it was.
    pub(crate) fn ack(&mut self, sn: Sn) -> bool {
        let Some(slot) = self.slot(sn) else {
            return false;
        };
        let acked = self.flight[slot].take().is_some();
        if acked {
            self.live -= 1;
            self.trim_front();
        }
        acked
    }

    /// Counts an ACK beyond each earlier in-flight segment (spec §7). With `conserve`,
    /// only segments last sent no later than the acknowledged transmission count.
    pub(crate) fn count_fast_ack(&mut self, max_ack: Sn, latest_ts: Timestamp, conserve: bool) {
        let Some(end) = self.slot(max_ack) else {
            return;
        };
        for seg in self.flight.range_mut(..end).flatten() {
            if !conserve || latest_ts.has_reached(seg.ts) {
                seg.fastack += 1;
            }
        }
    }

    /// Numbers the queue's head and puts it in flight. `None` if the queue is empty.
    pub(crate) fn promote(&mut self, now: Timestamp, rto: u32) -> Option<()> {
        let Queued { data, frg } = self.queue.pop_front()?;
        let sn = self.nxt();
        self.flight.push_back(Some(InFlight {
            sn,
            frg,
            data,
            ts: now,
            resend_at: now,
            rto,
            fastack: 0,
            xmit: 0,
        }));
        self.live += 1;
        Some(())
    }

    /// In-flight segments, oldest first.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut InFlight> {
        self.flight.iter_mut().flatten()
    }

    /// In-flight segments, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &InFlight> {
        self.flight.iter().flatten()
    }

    fn slot(&self, sn: Sn) -> Option<usize> {
        let offset = sn.since(self.una);
        (offset >= 0 && (offset as usize) < self.flight.len()).then_some(offset as usize)
    }

    fn trim_front(&mut self) {
        while let Some(None) = self.flight.front() {
            self.flight.pop_front();
            self.una = self.una.add(1);
        }
    }

    /// Starts numbering at `sn`.
    pub(crate) fn starting_at(sn: Sn) -> Self {
        Self {
            una: sn,
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(w.ack(first.add(2)));
        assert!(!w.ack(first.add(2)), "second ack of the same sn is a no-op");
        assert_eq!((w.una(), w.in_flight()), (first, 4));
        assert!(w.ack(first));
        assert_eq!(w.una(), first.add(1));
        assert!(w.ack(first.add(1)));
        // sn+2 was already gone: una jumps over the hole.
        assert_eq!((w.una(), w.in_flight()), (first.add(3), 2));
        assert!(!w.ack(first.add(9)), "beyond snd_nxt");
        assert!(!w.ack(first), "before snd_una");
    }

    #[test]
    fn una_removes_everything_before_it_and_never_passes_nxt() {
        let first = Sn::new(100);
        let mut w = window_with(4, first);
        w.ack_before(first.add(2));
        assert_eq!((w.una(), w.in_flight()), (first.add(2), 2));
        w.ack_before(first.add(1000));
        assert_eq!(
            (w.una(), w.nxt(), w.in_flight()),
            (first.add(4), first.add(4), 0)
        );
    }

    #[test]
    fn fast_ack_counts_only_earlier_segments() {
        let first = Sn::new(0);
        let mut w = window_with(4, first);
        w.count_fast_ack(first.add(2), Timestamp::from_millis(10), true);
        let counts: alloc::vec::Vec<_> = w.iter().map(|s| s.fastack).collect();
        assert_eq!(counts, [1, 1, 0, 0]);
        // Conserve: an ACK of a transmission older than the segment's own does not count.
        w.count_fast_ack(first.add(3), Timestamp::from_millis(9), true);
        let counts: alloc::vec::Vec<_> = w.iter().map(|s| s.fastack).collect();
        assert_eq!(counts, [1, 1, 0, 0]);
        w.count_fast_ack(first.add(3), Timestamp::from_millis(9), false);
        let counts: alloc::vec::Vec<_> = w.iter().map(|s| s.fastack).collect();
        assert_eq!(counts, [2, 2, 1, 0]);
        // Outside [una, nxt): nothing.
        w.count_fast_ack(first.add(4), Timestamp::from_millis(10), false);
        assert_eq!(w.iter().map(|s| s.fastack).sum::<u32>(), 5);
    }
}
