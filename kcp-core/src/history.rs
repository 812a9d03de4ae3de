//! [`SendHistory`]: when each recently numbered segment was first and last sent, so
//! that an ACK's echoed `ts` can be checked against the transmissions it claims to
//! answer (the crate's `# Security` notes say what this proves).

use alloc::vec::Vec;

use crate::{Sn, Timestamp};

/// How many send-ring capacities of sequence numbers the send times are remembered
/// for, so that a duplicate ACK arriving after a burst of retransmissions can still be
/// checked (8 bytes a number: 2 KiB for the smallest ring).
pub(crate) const HISTORY: usize = 4;

/// What [`SendHistory::judge`] makes of an ACK's `sn` and echoed `ts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AckVerdict {
    /// `sn` was sent and `ts` lies between its first and its latest transmission: an
    /// echo one of them can have carried.
    Plausible,
    /// `sn` was sent, so long ago that its times are forgotten: `ts` can only be
    /// checked against `now`, which it passed.
    Unverifiable,
    /// `sn` was never numbered: at or after `snd_nxt`, or before the first.
    NeverSent,
    /// No transmission of `sn` carried `ts`: it is after `now`, or outside the times
    /// `sn` was sent.
    ImpossibleTs,
}

/// When one sequence number was first and last transmitted.
#[derive(Clone, Copy, Debug, Default)]
struct Sent {
    first: Timestamp,
    last: Timestamp,
}

/// The first and latest transmission times of the latest numbered segments, indexed
/// by `sn` modulo a power-of-two length, kept after a segment is acknowledged (until
/// its entry is reused `len` numbers later), so a duplicate ACK is checked as closely
/// as one of a segment in flight. O(1) per transmission and per ACK.
#[derive(Clone, Debug, Default)]
pub(crate) struct SendHistory {
    sent: Vec<Sent>,
    /// Sequence numbers ever numbered (`snd_nxt` minus the first).
    numbered: u64,
    /// Of those, how many of the latest have their times in `sent` (all of them, but
    /// [`resize`](Self::resize) keeps at most the old length's worth).
    recorded: u64,
}

impl SendHistory {
    fn index(&self, sn: Sn) -> usize {
        sn.get() as usize & self.sent.len().wrapping_sub(1)
    }

    /// Re-sizes to `len` entries (a power of two, larger than before), keeping the
    /// times of the latest numbers before `nxt`.
    pub(crate) fn resize(&mut self, len: usize, nxt: Sn) {
        let mut next = Self {
            sent: alloc::vec![Sent::default(); len],
            numbered: self.numbered,
            recorded: self.recorded.min(self.sent.len() as u64),
        };
        for back in 1..=next.recorded as u32 {
            let sn = Sn::new(nxt.get().wrapping_sub(back));
            let to = next.index(sn);
            next.sent[to] = self.sent[self.index(sn)];
        }
        *self = next;
    }

    /// `sn`, the next number, is given out at `now`, when it is first sent.
    #[inline(always)]
    pub(crate) fn number(&mut self, sn: Sn, now: Timestamp) {
        let i = self.index(sn);
        self.sent[i] = Sent {
            first: now,
            last: now,
        };
        self.numbered += 1;
        self.recorded += 1;
    }

    /// `sn` (in flight) is sent again at `now`.
    #[inline(always)]
    pub(crate) fn resent(&mut self, sn: Sn, now: Timestamp) {
        let i = self.index(sn);
        self.sent[i].last = now;
    }

    /// Whether an ACK of `sn` echoing `ts`, arriving at `now`, can answer a
    /// transmission of ours, `nxt` being `snd_nxt`.
    #[inline(always)]
    pub(crate) fn judge(&self, sn: Sn, ts: Timestamp, now: Timestamp, nxt: Sn) -> AckVerdict {
        // How far before `snd_nxt`: 1 for the latest numbered segment.
        let back = u64::from(nxt.get().wrapping_sub(sn.get()));
        if back == 0 || back > self.numbered {
            return AckVerdict::NeverSent;
        }
        if now.is_before(ts) {
            return AckVerdict::ImpossibleTs;
        }
        if back > self.recorded.min(self.sent.len() as u64) {
            return AckVerdict::Unverifiable;
        }
        let sent = self.sent[self.index(sn)];
        if ts.is_before(sent.first) || sent.last.is_before(ts) {
            AckVerdict::ImpossibleTs
        } else {
            AckVerdict::Plausible
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u32) -> Timestamp {
        Timestamp::from_millis(u32::MAX - 100).add_millis(ms)
    }

    #[test]
    fn an_ack_must_echo_a_time_its_segment_was_sent_at() {
        let first = Sn::new(u32::MAX - 1);
        let mut h = SendHistory::default();
        h.resize(8, first);
        h.number(first, t(0));
        h.number(first.add(1), t(10));
        h.resent(first, t(200));
        let nxt = first.add(2);
        let judge = |sn: Sn, ts, now| h.judge(sn, ts, now, nxt);
        assert_eq!(judge(first, t(0), t(300)), AckVerdict::Plausible);
        assert_eq!(judge(first, t(200), t(300)), AckVerdict::Plausible);
        assert_eq!(judge(first, t(150), t(300)), AckVerdict::Plausible);
        assert_eq!(judge(first, t(201), t(300)), AckVerdict::ImpossibleTs);
        assert_eq!(judge(first.add(1), t(5), t(300)), AckVerdict::ImpossibleTs);
        assert_eq!(
            judge(first.add(1), t(10), t(9)),
            AckVerdict::ImpossibleTs,
            "future"
        );
        assert_eq!(judge(nxt, t(10), t(300)), AckVerdict::NeverSent);
        assert_eq!(judge(first.add(1000), t(10), t(300)), AckVerdict::NeverSent);
        assert_eq!(
            judge(Sn::new(first.get() - 1), t(0), t(300)),
            AckVerdict::NeverSent
        );
    }

    #[test]
    fn old_numbers_become_unverifiable_and_resizing_keeps_the_latest() {
        let mut h = SendHistory::default();
        h.resize(4, Sn::new(0));
        for k in 0..6 {
            h.number(Sn::new(k), t(k * 10));
        }
        let nxt = Sn::new(6);
        assert_eq!(
            h.judge(Sn::new(1), t(10), t(99), nxt),
            AckVerdict::Unverifiable
        );
        assert_eq!(
            h.judge(Sn::new(2), t(20), t(99), nxt),
            AckVerdict::Plausible
        );
        // Unverifiable, but still not from the future.
        assert_eq!(
            h.judge(Sn::new(1), t(100), t(99), nxt),
            AckVerdict::ImpossibleTs
        );
        h.resize(16, nxt);
        assert_eq!(
            h.judge(Sn::new(5), t(50), t(99), nxt),
            AckVerdict::Plausible
        );
        assert_eq!(
            h.judge(Sn::new(2), t(21), t(99), nxt),
            AckVerdict::ImpossibleTs
        );
        assert_eq!(
            h.judge(Sn::new(1), t(10), t(99), nxt),
            AckVerdict::Unverifiable
        );
        for k in 6..20 {
            h.number(Sn::new(k), t(k * 10));
        }
        let nxt = Sn::new(20);
        assert_eq!(
            h.judge(Sn::new(4), t(40), t(999), nxt),
            AckVerdict::Plausible
        );
        assert_eq!(
            h.judge(Sn::new(3), t(30), t(999), nxt),
            AckVerdict::Unverifiable
        );
    }
}
