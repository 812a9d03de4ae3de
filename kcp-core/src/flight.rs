//! The sending side: [`SendWindow`], the queue of unnumbered segments (`snd_queue`)
//! and the in-flight ring (`snd_buf`) in one ring, laid out for its scans.
//!
//! Slots are indexed by `sn` modulo a power-of-two capacity, and each field lives in
//! its own array: the fast-ACK count after every ACK datagram reads `ts` and bumps
//! `fastack` over a contiguous run (4 + 4 bytes per segment, vectorised), and the
//! flush reads the timers without touching the payloads. Every [`BLOCK`] slots share a
//! [`Summary`] of what their segments could need, so a flush skips the blocks where
//! nothing can be due.

use alloc::vec::Vec;

use bytes::Bytes;

use crate::history::{AckVerdict, HISTORY, SendHistory};
use crate::{PollAt, Sn, Timestamp};

/// Slots per summary block: one bit each in a `u32` live mask.
const BLOCK: usize = 32;
const _: () = assert!(BLOCK == u32::BITS as usize);
/// The smallest capacity; a multiple of [`BLOCK`].
const MIN_CAPACITY: usize = 2 * BLOCK;

/// The slot of the segment `offset` after the one numbered `first`, in a ring of
/// capacity `mask + 1` (a power of two, at most 2^32, so the wrap of `u32` sequence
/// numbers is a multiple of it).
const fn slot(first: usize, mask: usize, offset: usize) -> usize {
    first.wrapping_add(offset) & mask
}

/// Slot `i`'s bit in its block's live mask.
const fn bit(i: usize) -> u32 {
    1 << (i % BLOCK)
}

/// The retransmission state of one in-flight segment (not on the wire).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Timers {
    /// Clock at the latest transmission (the `ts` on the wire).
    pub(crate) ts: Timestamp,
    /// When the next timeout retransmission is due.
    pub(crate) resend_at: Timestamp,
    /// ACKs of later segments seen since the last (re)transmission.
    pub(crate) fastack: u32,
    /// Transmissions so far; 0 until the flush that first sends it.
    pub(crate) xmit: u32,
    /// This segment's current timeout.
    pub(crate) rto: u32,
}

/// The fast retransmit rule: `fastack` reached `threshold` (`fastresend`, `u32::MAX`
/// when off) and, unless `limit` is 0, the segment was sent at most `limit` times.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FastRule {
    pub(crate) threshold: u32,
    pub(crate) limit: u32,
}

impl FastRule {
    /// Whether a segment with these timers is due for a fast retransmission.
    pub(crate) const fn fires(self, fastack: u32, xmit: u32) -> bool {
        fastack >= self.threshold && (self.limit == 0 || xmit <= self.limit)
    }
}

/// A segment's data and fragment count.
#[derive(Clone, Debug, Default)]
pub(crate) struct Payload {
    pub(crate) data: Bytes,
    pub(crate) frg: u8,
}

/// The timers a flush reads before deciding to touch a slot.
#[derive(Clone, Copy, Debug, Default)]
struct State {
    resend_at: Timestamp,
    xmit: u32,
    rto: u32,
    /// Not acknowledged yet; an acknowledged slot is a hole until it reaches the front.
    live: bool,
}

/// What the segments of one block could need at a flush. Conservative: a block whose
/// summary is not due holds no segment sent before that is due.
#[derive(Clone, Copy, Debug, Default)]
struct Summary {
    /// No segment of the block times out before this; `None`: none to time out.
    earliest: Option<Timestamp>,
    /// Some segment of the block may satisfy the fast retransmit rule.
    fast: bool,
    /// Live slots of the block, bit `i % BLOCK` for slot `i`; the summary starts
    /// afresh when it is empty, so a stale bound never outlives the segments it was
    /// taken from.
    live: u32,
}

impl Summary {
    /// Unknown: scan the block at the next flush.
    const UNKNOWN: Self = Self {
        earliest: None,
        fast: true,
        live: 0,
    };

    fn due(self, now: Timestamp) -> bool {
        self.fast || self.earliest.is_some_and(|t| now.has_reached(t))
    }

    fn include(&mut self, resend_at: Timestamp) {
        self.earliest = Some(match self.earliest {
            Some(e) if e.is_before(resend_at) => e,
            _ => resend_at,
        });
    }
}

/// Consecutive slots `start..stop` of one block, the first at `offset` from `una`.
#[derive(Clone, Copy, Debug)]
struct Run {
    offset: usize,
    start: usize,
    stop: usize,
}

/// The iterator of [`SendWindow::runs`].
#[derive(Clone, Copy, Debug)]
struct Runs {
    /// `una` as an index before masking.
    first: usize,
    /// Capacity minus one.
    mask: usize,
    offset: usize,
    to: usize,
}

impl Iterator for Runs {
    type Item = Run;

    fn next(&mut self) -> Option<Run> {
        if self.offset >= self.to {
            return None;
        }
        let start = slot(self.first, self.mask, self.offset);
        let stop = (start - start % BLOCK + BLOCK).min(start + self.to - self.offset);
        let run = Run {
            offset: self.offset,
            start,
            stop,
        };
        self.offset += stop - start;
        Some(run)
    }
}

impl Run {
    /// The run's block.
    const fn block(self) -> usize {
        self.start / BLOCK
    }

    /// The run's slots as bits of its block's live mask.
    const fn mask(self) -> u32 {
        let span = self.stop - self.start;
        if span == BLOCK {
            u32::MAX
        } else {
            ((1u32 << span) - 1) << (self.start % BLOCK)
        }
    }
}

/// `snd_buf` and `snd_queue` of the reference, in one ring indexed by `sn`.
///
/// The numbered segments `[una, una + len)` come first: the front is always the oldest
/// unacknowledged segment, and acknowledged ones stay as holes until they reach the
/// front. Then come the `queued` segments, not numbered yet, which take the next
/// numbers in order: numbering one only starts its timers, its payload stays put. An
/// ACK is O(1), an UNA advance O(acked).
///
/// The capacity is only doubled when full (a window of 1024 fits in 1024 slots), so
/// when the ring wraps, one block may hold both the oldest and the newest segments; a
/// block's summary therefore always covers every live slot of the block, whatever part
/// of the ring is being walked.
#[derive(Clone, Debug, Default)]
pub(crate) struct SendWindow {
    una: Sn,
    len: usize,
    live: usize,
    /// Trailing slots numbered since the last [`SendWindow::flush_walk`] (never sent).
    unsent: usize,
    /// Slots after the numbered ones holding queued payloads, not numbered yet.
    queued: usize,
    ts: Vec<Timestamp>,
    /// Send times of the latest [`HISTORY`] × capacity numbers.
    history: SendHistory,
    fastack: Vec<u32>,
    state: Vec<State>,
    /// `None` once acknowledged (and in never used slots): storing into an empty slot
    /// then drops nothing.
    payload: Vec<Option<Payload>>,
    blocks: Vec<Summary>,
}

impl SendWindow {
    /// An empty ring whose first segment will be `sn`.
    pub(crate) fn starting_at(sn: Sn) -> Self {
        Self {
            una: sn,
            ..Self::default()
        }
    }

    /// `snd_una`: the oldest unacknowledged sequence number (`snd_nxt` if none).
    pub(crate) const fn una(&self) -> Sn {
        self.una
    }

    /// `snd_nxt`: the next sequence number to assign.
    pub(crate) const fn nxt(&self) -> Sn {
        self.una.add(self.len as u32)
    }

    /// Segments in flight, not acknowledged yet (`nsnd_buf` less the holes).
    pub(crate) const fn in_flight(&self) -> usize {
        self.live
    }

    /// Segments queued behind the numbered ones (`nsnd_que`).
    pub(crate) const fn queued(&self) -> usize {
        self.queued
    }

    fn index(&self, offset: usize) -> usize {
        slot(
            self.una.get() as usize,
            self.ts.len().wrapping_sub(1),
            offset,
        )
    }

    fn offset(&self, sn: Sn) -> Option<usize> {
        let offset = sn.since(self.una);
        (offset >= 0 && (offset as usize) < self.len).then_some(offset as usize)
    }

    /// The slots of offsets `from..to`, cut where a block ends (so also where the
    /// ring wraps, a block boundary), in order. The iterator holds no borrow.
    fn runs(&self, from: usize, to: usize) -> Runs {
        Runs {
            first: self.una.get() as usize,
            mask: self.ts.len().wrapping_sub(1),
            offset: from,
            to,
        }
    }

    /// Queues a segment behind the numbered ones.
    #[inline(always)]
    pub(crate) fn enqueue(&mut self, payload: Payload) {
        if self.len + self.queued == self.ts.len() {
            self.grow();
        }
        let i = self.index(self.len + self.queued);
        self.payload[i] = Some(payload);
        self.queued += 1;
    }

    /// The last queued segment, if any (stream mode tops it up).
    pub(crate) fn last_queued_mut(&mut self) -> Option<&mut Payload> {
        if self.queued == 0 {
            return None;
        }
        let i = self.index(self.len + self.queued - 1);
        self.payload[i].as_mut()
    }

    /// How many queued segments a `window` counted from `una` lets into flight: the
    /// window counts slots, so acknowledged holes still use it (spec §9.3).
    pub(crate) const fn promotable(&self, window: u32) -> usize {
        let room = (window as usize).saturating_sub(self.len);
        if room < self.queued {
            room
        } else {
            self.queued
        }
    }

    /// Numbers the first `n` queued segments (at most
    /// [`promotable`](Self::promotable)) in order, putting them in flight, never
    /// sent, with timeout `rto`. The flush that calls it walks them next
    /// ([`flush_walk`](Self::flush_walk)), before an ACK can reach them.
    pub(crate) fn promote(&mut self, n: usize, now: Timestamp, rto: u32) {
        debug_assert!(n <= self.queued);
        let (from, to) = (self.len, self.len + n);
        let state = State {
            resend_at: now,
            xmit: 0,
            rto,
            live: true,
        };
        for offset in from..to {
            let i = self.index(offset);
            self.ts[i] = now;
            self.history.number(self.una.add(offset as u32), now);
            self.fastack[i] = 0;
            self.state[i] = state;
        }
        for run in self.runs(from, to) {
            let block = &mut self.blocks[run.block()];
            if block.live == 0 {
                *block = Summary::default();
            }
            block.live |= run.mask();
        }
        self.queued -= n;
        self.len += n;
        self.live += n;
        self.unsent += n;
    }

    /// The fast retransmit rule changed (a live retune): the block summaries were
    /// taken under the old one, so every block is scanned at the next flush, which
    /// summarises it under the new rule.
    pub(crate) fn forget_fast_summaries(&mut self) {
        for block in &mut self.blocks {
            block.fast = true;
        }
    }

    /// Doubles the capacity, re-placing the slots; every block summary is unknown.
    #[cold]
    fn grow(&mut self) {
        let capacity = (2 * self.ts.len()).max(MIN_CAPACITY);
        let mut next = Self {
            ts: alloc::vec![Timestamp::default(); capacity],
            fastack: alloc::vec![0; capacity],
            state: alloc::vec![State::default(); capacity],
            payload: alloc::vec![None; capacity],
            blocks: alloc::vec![Summary::UNKNOWN; capacity / BLOCK],
            ..self.clone_counters()
        };
        for offset in 0..self.len + self.queued {
            let (from, to) = (self.index(offset), next.index(offset));
            next.ts[to] = self.ts[from];
            next.fastack[to] = self.fastack[from];
            next.state[to] = self.state[from];
            next.payload[to] = core::mem::take(&mut self.payload[from]);
            if offset < self.len && self.state[from].live {
                next.blocks[to / BLOCK].live |= bit(to);
            }
        }
        next.history = core::mem::take(&mut self.history);
        next.history.resize(HISTORY * capacity, self.nxt());
        *self = next;
    }

    fn clone_counters(&self) -> Self {
        Self {
            una: self.una,
            len: self.len,
            live: self.live,
            unsent: self.unsent,
            queued: self.queued,
            ..Self::default()
        }
    }

    /// Marks live slot `i` acknowledged and releases its data.
    fn release(&mut self, i: usize) {
        self.state[i].live = false;
        self.payload[i] = None;
        self.live -= 1;
        self.blocks[i / BLOCK].live &= !bit(i);
    }

    /// Drops the front slot.
    fn pop_front(&mut self) {
        let i = self.index(0);
        if self.state[i].live {
            self.release(i);
        }
        self.una = self.una.add(1);
        self.len -= 1;
        self.unsent = self.unsent.min(self.len);
    }

    /// Removes every segment before `una`.
    #[inline(always)]
    pub(crate) fn ack_before(&mut self, una: Sn) {
        // Every segment of a datagram carries the peer's `una`, mostly unchanged: then
        // there is nothing to do (the front slot is always live, see `trim_front`).
        if self.una.is_before(una) {
            self.drop_before(una);
        }
    }

    /// [`ack_before`](Self::ack_before) once `una` has moved.
    #[inline(never)]
    fn drop_before(&mut self, una: Sn) {
        while self.len > 0 && self.una.is_before(una) {
            self.pop_front();
        }
        self.trim_front();
    }

    /// Whether an ACK of `sn` echoing `ts`, arriving at `now`, can answer a
    /// transmission of ours (see [`AckVerdict`]).
    #[inline(always)]
    pub(crate) fn judge_ack(&self, sn: Sn, ts: Timestamp, now: Timestamp) -> AckVerdict {
        self.history.judge(sn, ts, now, self.nxt())
    }

    /// Removes segment `sn` if it is in flight; returns whether it was.
    pub(crate) fn ack(&mut self, sn: Sn) -> bool {
        let Some(offset) = self.offset(sn) else {
            return false;
        };
        let i = self.index(offset);
        if !self.state[i].live {
            return false;
        }
        self.release(i);
        self.trim_front();
        true
    }

    /// Drops acknowledged slots at the front, so that after every change the front
    /// slot is live (or the ring is empty).
    fn trim_front(&mut self) {
        while self.len > 0 && !self.state[self.index(0)].live {
            self.pop_front();
        }
    }

    /// Counts an ACK beyond each live segment before `max_ack`; with `conserve`, only
    /// those last sent no later than `latest_ts`. Acknowledged slots (holes) are
    /// skipped: their count is never read, and a slot is reset when reused. Only the
    /// live bits of each block are visited, so behind a lossy window, where most
    /// slots are holes, the walk costs about one step per block. A count reaching
    /// `rule`'s threshold marks its block.
    pub(crate) fn count_fast_ack(
        &mut self,
        max_ack: Sn,
        latest_ts: Timestamp,
        conserve: bool,
        rule: FastRule,
    ) {
        let Some(end) = self.offset(max_ack) else {
            return;
        };
        for run in self.runs(0, end) {
            let block = run.block();
            let mut live = self.blocks[block].live & run.mask();
            let mut reached = false;
            while live != 0 {
                let i = block * BLOCK + live.trailing_zeros() as usize;
                live &= live - 1;
                let counts = !conserve || latest_ts.has_reached(self.ts[i]);
                let f = &mut self.fastack[i];
                *f = f.wrapping_add(u32::from(counts));
                reached |= counts && *f == rule.threshold;
            }
            self.blocks[block].fast |= reached;
        }
    }

    /// Calls `visit` on the live segments a flush must act on, oldest first: those
    /// never sent, timed out at `now`, or satisfying `rule`. Only blocks whose summary
    /// is due are scanned; their summaries are then recomputed from every sent live
    /// slot of the block (a wrapped block's other part is checked against the new
    /// summary when the walk reaches it).
    pub(crate) fn flush_walk(
        &mut self,
        now: Timestamp,
        rule: FastRule,
        mut visit: impl FnMut(Sn, &mut Timers, &Payload),
    ) {
        let sent_before = self.len - self.unsent;
        for run in self.runs(0, sent_before) {
            let block = run.block();
            if !self.blocks[block].due(now) {
                continue;
            }
            // One pass over the block's live slots: visit those of the run that are
            // due, and summarise every sent one afterwards.
            let live = self.blocks[block].live;
            let mut summary = Summary {
                live,
                ..Summary::default()
            };
            let mut bits = live;
            while bits != 0 {
                let i = block * BLOCK + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let s = self.state[i];
                let due = now.has_reached(s.resend_at) || rule.fires(self.fastack[i], s.xmit);
                if run.mask() & bit(i) != 0 && due {
                    let sn = self.una.add((run.offset + i - run.start) as u32);
                    self.visit_slot(i, sn, &mut visit);
                }
                let s = self.state[i];
                if s.xmit > 0 {
                    summary.include(s.resend_at);
                    summary.fast |= rule.fires(self.fastack[i], s.xmit);
                }
            }
            self.blocks[block] = summary;
        }
        for offset in sent_before..self.len {
            let i = self.index(offset);
            self.visit_slot(i, self.una.add(offset as u32), &mut visit);
            self.blocks[i / BLOCK].include(self.state[i].resend_at);
        }
        self.unsent = 0;
    }

    #[inline(always)]
    fn visit_slot(&mut self, i: usize, sn: Sn, visit: &mut impl FnMut(Sn, &mut Timers, &Payload)) {
        let s = &mut self.state[i];
        let mut t = Timers {
            ts: self.ts[i],
            resend_at: s.resend_at,
            fastack: self.fastack[i],
            xmit: s.xmit,
            rto: s.rto,
        };
        let Some(payload) = &self.payload[i] else {
            debug_assert!(false, "a live slot without its payload");
            return;
        };
        visit(sn, &mut t, payload);
        self.ts[i] = t.ts;
        self.fastack[i] = t.fastack;
        s.resend_at = t.resend_at;
        s.xmit = t.xmit;
        s.rto = t.rto;
        self.history.resent(sn, t.ts);
    }

    /// When [`flush_walk`](Self::flush_walk) next has a segment to act on: now if one
    /// satisfies `rule`, else at the earliest timeout; idle with nothing in flight.
    pub(crate) fn poll_at(&self, rule: FastRule) -> PollAt {
        let mut earliest = PollAt::Idle;
        for seg in self.timers() {
            if rule.fires(seg.fastack, seg.xmit) {
                return PollAt::Now;
            }
            earliest = earliest.sooner(PollAt::At(seg.resend_at));
        }
        earliest
    }

    /// The timers of the live segments, oldest first.
    pub(crate) fn timers(&self) -> impl Iterator<Item = Timers> + '_ {
        (0..self.len).filter_map(|offset| {
            let i = self.index(offset);
            let s = self.state[i];
            s.live.then_some(Timers {
                ts: self.ts[i],
                resend_at: s.resend_at,
                fastack: self.fastack[i],
                xmit: s.xmit,
                rto: s.rto,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    const RULE: FastRule = FastRule {
        threshold: 2,
        limit: 0,
    };
    const T0: Timestamp = Timestamp::from_millis(10);

    /// Queues `n` segments, each carrying the sequence number it will get.
    fn enqueue_tagged(w: &mut SendWindow, n: u32) {
        for _ in 0..n {
            let sn = w.nxt().add(w.queued() as u32);
            w.enqueue(Payload {
                data: Bytes::copy_from_slice(&sn.get().to_le_bytes()),
                frg: 0,
            });
        }
    }

    /// `n` segments numbered from `first`, in flight (promoted at `T0`), never sent.
    fn window_with(n: u32, first: Sn) -> SendWindow {
        let mut w = SendWindow::starting_at(first);
        enqueue_tagged(&mut w, n);
        w.promote(w.promotable(n), T0, 200);
        w
    }

    /// A flush walk that transmits what it visits as the engine does (RTO doubled on
    /// a timeout, fast-ACK count cleared on a fast retransmission), with `rto` for a
    /// first transmission; returns the visited numbers, checking each payload's tag.
    fn flush(w: &mut SendWindow, now: Timestamp, rule: FastRule, rto: u32) -> Vec<Sn> {
        let mut visited = Vec::new();
        w.flush_walk(now, rule, |sn, seg, payload| {
            assert_eq!(
                payload.data.as_ref(),
                sn.get().to_le_bytes(),
                "payload of {sn:?}"
            );
            if seg.xmit == 0 {
                seg.rto = rto;
            } else if now.has_reached(seg.resend_at) {
                seg.rto = (seg.rto * 2).min(60_000);
            } else {
                seg.fastack = 0;
            }
            seg.xmit += 1;
            seg.ts = now;
            seg.resend_at = now.add_millis(seg.rto);
            visited.push(sn);
        });
        visited
    }

    /// The live segments a flush at `now` must act on, found by looking at each one.
    fn due(w: &SendWindow, now: Timestamp, rule: FastRule) -> Vec<Sn> {
        (0..w.len)
            .filter(|&offset| {
                let i = w.index(offset);
                let s = w.state[i];
                s.live
                    && (s.xmit == 0
                        || now.has_reached(s.resend_at)
                        || rule.fires(w.fastack[i], s.xmit))
            })
            .map(|offset| w.una.add(offset as u32))
            .collect()
    }

    fn fastacks(w: &SendWindow) -> Vec<u32> {
        w.timers().map(|s| s.fastack).collect()
    }

    fn sns(first: Sn, offsets: core::ops::Range<u32>) -> Vec<Sn> {
        offsets.map(|k| first.add(k)).collect()
    }

    // ================================================================ ACK and UNA

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
    fn the_window_counts_holes_when_promoting() {
        let first = Sn::new(u32::MAX);
        let mut w = window_with(4, first);
        enqueue_tagged(&mut w, 6);
        assert_eq!(
            (w.promotable(4), w.promotable(7), w.promotable(100)),
            (0, 3, 6)
        );
        assert!(w.ack(first.add(1)));
        assert_eq!(w.promotable(4), 0, "a hole still uses the window");
        assert!(w.ack(first));
        assert_eq!((w.una(), w.promotable(4)), (first.add(2), 2));
        w.promote(2, T0, 200);
        assert_eq!((w.nxt(), w.queued(), w.in_flight()), (first.add(6), 4, 4));
    }

    // ================================================================ fast-ACK counting

    #[test]
    fn fast_ack_counts_only_earlier_segments() {
        let first = Sn::new(0);
        let mut w = window_with(4, first);
        w.count_fast_ack(first.add(2), T0, true, RULE);
        assert_eq!(fastacks(&w), [1, 1, 0, 0]);
        // Conserve: an ACK of a transmission older than the segment's own does not count.
        w.count_fast_ack(first.add(3), Timestamp::from_millis(9), true, RULE);
        assert_eq!(fastacks(&w), [1, 1, 0, 0]);
        w.count_fast_ack(first.add(3), Timestamp::from_millis(9), false, RULE);
        assert_eq!(fastacks(&w), [2, 2, 1, 0]);
        // Outside [una, nxt): nothing.
        w.count_fast_ack(first.add(4), T0, false, RULE);
        assert_eq!(fastacks(&w), [2, 2, 1, 0]);
    }

    #[test]
    fn fast_ack_skips_holes_and_crosses_blocks_and_the_wrap() {
        // 40 segments from 20 before the wrap of `sn`: slots 44..64 then 0..20 of a
        // 64-slot ring, so the count runs over two blocks and the ring's end.
        let first = Sn::new(u32::MAX - 19);
        let mut w = window_with(40, first);
        assert_eq!(w.index(0), 44);
        for k in (1..40).step_by(3) {
            assert!(w.ack(first.add(k)));
        }
        w.count_fast_ack(first.add(30), T0, false, RULE);
        assert!(!w.blocks[0].fast && !w.blocks[1].fast);
        let live: Vec<u32> = (0..40).filter(|k| k % 3 != 1).collect();
        let expected: Vec<u32> = live.iter().map(|&k| u32::from(k < 30)).collect();
        assert_eq!(fastacks(&w), expected);
        // The second count reaches the threshold: the blocks holding those segments
        // are marked, the block of only later segments is not.
        w.count_fast_ack(first.add(30), T0, false, RULE);
        let block_of = |k: u32| w.index(k as usize) / BLOCK;
        assert!(w.blocks[block_of(0)].fast && w.blocks[block_of(29)].fast);
        assert_eq!(block_of(0), 1);
        assert_eq!(block_of(29), 0);
    }

    // ================================================================ block summaries

    #[test]
    fn a_flush_visits_only_blocks_with_something_due() {
        let first = Sn::new(1_024);
        let mut w = window_with(96, first);
        assert_eq!(w.index(0), 0, "offsets 0..32 in block 0, and so on");
        assert_eq!(flush(&mut w, T0, RULE, 200), sns(first, 0..96));
        let resend = T0.add_millis(200);
        for block in &w.blocks[..3] {
            assert_eq!(
                (block.earliest, block.fast, block.live),
                (Some(resend), false, u32::MAX)
            );
        }
        assert!(flush(&mut w, T0.add_millis(199), RULE, 200).is_empty());

        // Segments 0..40 reach the fast threshold: blocks 0 and 1 become due, and the
        // walk rescans them, visiting exactly those segments.
        w.count_fast_ack(first.add(40), T0, false, RULE);
        w.count_fast_ack(first.add(40), T0, false, RULE);
        let fast: Vec<bool> = w.blocks[..3].iter().map(|b| b.fast).collect();
        assert_eq!(fast, [true, true, false]);
        let t1 = T0.add_millis(50);
        assert_eq!(flush(&mut w, t1, RULE, 200), sns(first, 0..40));
        // The rescanned blocks are summarised afresh; block 2 was not touched.
        assert_eq!(w.blocks[0].earliest, Some(t1.add_millis(200)));
        assert_eq!(w.blocks[1].earliest, Some(resend));
        assert!(!w.blocks[0].fast && !w.blocks[1].fast);

        // At the first timeout only the segments last sent at T0 are due: block 0 is
        // skipped.
        assert_eq!(flush(&mut w, resend, RULE, 200), sns(first, 40..96));
        assert_eq!(w.blocks[1].earliest, Some(t1.add_millis(200)));
    }

    #[test]
    fn an_acknowledged_block_starts_its_summary_afresh() {
        let first = Sn::new(0);
        let mut w = window_with(40, first);
        flush(&mut w, T0, RULE, 5_000);
        w.ack_before(first.add(32));
        assert_eq!((w.blocks[0].live, w.blocks[1].live), (0, 0xff));
        // The next segments reuse block 0 with a short timeout; its old bound (5 s)
        // must not hide them.
        enqueue_tagged(&mut w, 30);
        w.promote(30, T0, 0);
        assert_eq!(flush(&mut w, T0, RULE, 100), sns(first, 40..70));
        assert_eq!(w.blocks[0].earliest, Some(T0.add_millis(100)));
        let later = T0.add_millis(100);
        assert_eq!(flush(&mut w, later, RULE, 100), sns(first, 40..70));
    }

    // ================================================================ growth

    #[test]
    fn growth_while_the_ring_wraps_keeps_order_timers_and_masks() {
        let first = Sn::new(u32::MAX - 10);
        let mut w = window_with(40, first);
        assert_eq!(flush(&mut w, T0, RULE, 300), sns(first, 0..40));
        w.ack_before(first.add(30));
        assert!(w.ack(first.add(33)));
        w.count_fast_ack(first.add(35), T0, false, RULE);
        // Fill the 64 slots, past the ring's end, and one more: the ring doubles with
        // its front in the middle and the queue wrapped around.
        enqueue_tagged(&mut w, 54);
        assert_eq!((w.len + w.queued, w.ts.len()), (64, 64));
        assert!(w.index(0) > w.index(w.len + w.queued - 1), "the ring wraps");
        enqueue_tagged(&mut w, 1);
        assert_eq!((w.ts.len(), w.blocks.len()), (128, 4));
        assert_eq!(
            (w.una(), w.nxt(), w.in_flight(), w.queued()),
            (first.add(30), first.add(40), 9, 55)
        );

        // The in-flight segments kept their timers and counts, the hole stayed a hole.
        let timers: Vec<(u32, u32, Timestamp)> = w
            .timers()
            .map(|t| (t.xmit, t.fastack, t.resend_at))
            .collect();
        let sent = T0.add_millis(300);
        let mut expected = alloc::vec![(1, 1, sent); 4];
        expected.extend([(1, 0, sent); 5]);
        assert_eq!(timers, expected);
        let live: u32 = w.blocks.iter().map(|b| b.live.count_ones()).sum();
        assert_eq!(live, 9);

        // Every payload follows in order, none is sent twice; ACKs still find theirs.
        w.promote(w.promotable(200), T0, 0);
        assert_eq!(flush(&mut w, T0, RULE, 300), sns(first, 40..95));
        assert!(w.ack(first.add(94)) && w.ack(first.add(31)));
        assert!(!w.ack(first.add(33)));
        assert_eq!(flush(&mut w, sent, RULE, 300).len(), 62);
    }

    #[test]
    fn flush_walk_visits_exactly_the_due_segments() {
        // A seeded mix of queueing, promotion, ACKs, UNA advances and fast-ACK counts
        // across growth and both wraps: the block summaries may only skip segments
        // that are not due.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |bound: u32| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as u32 % bound
        };
        let rule = FastRule {
            threshold: 3,
            limit: 4,
        };
        let mut w = SendWindow::starting_at(Sn::new(u32::MAX - 300));
        let mut now = Timestamp::from_millis(u32::MAX - 5_000);
        let mut visits = 0;
        for _ in 0..4_000 {
            let len = w.len as u32;
            match next(5) {
                0 => enqueue_tagged(&mut w, next(40)),
                1 if len > 0 => {
                    w.ack(w.una().add(next(len)));
                }
                2 if len > 0 => w.ack_before(w.una().add(next(len / 8 + 1))),
                3 if len > 0 => {
                    let latest = Timestamp::from_millis(now.as_millis().wrapping_sub(next(300)));
                    w.count_fast_ack(w.una().add(next(len + 1)), latest, next(2) == 0, rule);
                }
                _ => {
                    // A flush: promotion, then the walk.
                    now = now.add_millis(next(200));
                    w.promote(w.promotable(next(300)), now, 0);
                    let expected = due(&w, now, rule);
                    assert_eq!(flush(&mut w, now, rule, 50 + next(400)), expected);
                    visits += expected.len();
                }
            }
        }
        assert!(visits > 10_000, "the mix exercised the walk: {visits}");
    }

    #[test]
    fn poll_at_is_the_earliest_timeout_unless_a_fast_retransmission_is_due() {
        let first = Sn::new(7);
        let mut w = window_with(3, first);
        assert_eq!(
            w.poll_at(RULE),
            PollAt::At(T0),
            "never sent: due since promotion"
        );
        flush(&mut w, T0, RULE, 200);
        assert!(w.ack(first));
        assert_eq!(w.poll_at(RULE), PollAt::At(T0.add_millis(200)));
        w.count_fast_ack(first.add(2), T0, false, RULE);
        w.count_fast_ack(first.add(2), T0, false, RULE);
        assert_eq!(w.poll_at(RULE), PollAt::Now);
        w.ack_before(first.add(3));
        assert_eq!(w.poll_at(RULE), PollAt::Idle);
    }
}
