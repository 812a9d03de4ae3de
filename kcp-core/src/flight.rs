//! The in-flight ring of the sending side (`snd_buf`), laid out for its scans.
//!
//! Slots are indexed by `sn` modulo a power-of-two capacity, and each field lives in
//! its own array: the fast-ACK count after every ACK datagram reads `ts` and bumps
//! `fastack` over a contiguous run (4 + 4 bytes per segment, vectorised), and the
//! flush reads the timers without touching the payloads. Every [`BLOCK`] slots share a
//! [`Summary`] of what their segments could need, so a flush skips the blocks where
//! nothing can be due.

use alloc::vec::Vec;

use bytes::Bytes;

use crate::{Sn, Timestamp};

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

/// The iterator of [`Flight::runs`].
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

/// The ring of numbered segments `[una, una + len)`, acknowledged ones included as
/// holes until they reach the front, followed by the `queued` segments not numbered
/// yet (`snd_queue`): numbering one only starts its timers, its payload stays put.
/// Its capacity is only doubled when full (a window of 1024 fits in 1024 slots), so
/// when the ring wraps, one block may hold both the oldest and the newest segments; a
/// block's summary therefore always covers every live slot of the block, whatever part
/// of the ring is being walked.
#[derive(Clone, Debug, Default)]
pub(crate) struct Flight {
    una: Sn,
    len: usize,
    live: usize,
    /// Trailing slots numbered since the last [`Flight::flush_walk`] (never sent).
    unsent: usize,
    /// Slots after the numbered ones holding queued payloads, not numbered yet.
    queued: usize,
    ts: Vec<Timestamp>,
    fastack: Vec<u32>,
    state: Vec<State>,
    /// `None` once acknowledged (and in never used slots): storing into an empty slot
    /// then drops nothing.
    payload: Vec<Option<Payload>>,
    blocks: Vec<Summary>,
}

impl Flight {
    /// An empty ring whose first segment will be `sn`.
    pub(crate) fn starting_at(sn: Sn) -> Self {
        Self {
            una: sn,
            ..Self::default()
        }
    }

    /// The oldest slot's sequence number (`snd_una`).
    pub(crate) const fn una(&self) -> Sn {
        self.una
    }

    /// Slots from `una` to `snd_nxt`, holes included.
    pub(crate) const fn len(&self) -> usize {
        self.len
    }

    /// Unacknowledged segments.
    pub(crate) const fn live(&self) -> usize {
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

    /// Numbers queued segments in order, putting them in flight, never sent, with
    /// timeout `rto`, until `snd_nxt` reaches `limit` or nothing is queued.
    pub(crate) fn promote_until(&mut self, limit: Sn, now: Timestamp, rto: u32) {
        let room = limit.since(self.una.add(self.len as u32)).max(0) as usize;
        let n = room.min(self.queued);
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
