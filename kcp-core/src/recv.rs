//! The receiving side: out-of-order ring, in-order queue and message reassembly.

use alloc::vec::Vec;

use bytes::{Bytes, BytesMut};

use crate::Sn;
use crate::ring::Ring;

/// A received data segment's payload and fragment count.
#[derive(Clone, Debug)]
pub(crate) struct Fragment {
    /// The wire's `frg` byte, held as a whole word: a `u8` field would be written
    /// with a one-byte store, and the ready queue's push then reads its word back
    /// with an eight-byte load, which cannot be forwarded from the store and waits
    /// for it to reach the cache (5% of a 1 KiB transfer's time).
    pub(crate) frg: usize,
    pub(crate) data: Bytes,
}

/// What became of an arriving data segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Stored (and possibly moved on to the ready queue).
    Stored,
    /// Below `rcv_nxt` or already buffered.
    Duplicate,
    /// At or beyond `rcv_nxt + rcv_wnd`.
    OutOfWindow,
}

/// `rcv_buf` and `rcv_queue` of the reference.
///
/// Out-of-order segments sit in `held`, slot `sn` modulo its power-of-two size of at
/// least `rcv_wnd` (O(1) per arriving segment; only `sn`s in `[rcv_nxt, rcv_nxt +
/// rcv_wnd)` are held, so no two share a slot); in-order ones move to `ready`, which
/// holds at most `rcv_wnd` segments. So a peer can make us hold at most `2 × rcv_wnd`
/// segments.
#[derive(Clone, Debug)]
pub(crate) struct RecvWindow {
    /// Allocated at the first segment that arrives out of order.
    held: Vec<Option<Fragment>>,
    /// Occupied slots of `held` (`nrcv_buf`).
    buffered: usize,
    ready: Ring<Fragment>,
    /// Next sequence number expected in order (`rcv_nxt`).
    nxt: Sn,
    wnd: u32,
    /// The window grew while the ready queue was full and segments were held: the
    /// next arrival in the window or the next receive moves them, as the reference's
    /// `ikcp_parse_data` and `ikcp_recv` would (see [`set_wnd`](Self::set_wnd)).
    move_pending: bool,
}

impl RecvWindow {
    pub(crate) fn new(wnd: u32, nxt: Sn) -> Self {
        Self {
            held: Vec::new(),
            buffered: 0,
            ready: Ring::new(),
            nxt,
            wnd,
            move_pending: false,
        }
    }

    /// Changes `rcv_wnd` on a live window (`ikcp_wndsize`).
    ///
    /// Segments already held stay, even beyond a shrunk window, and move to the ready
    /// queue in order as before; the ready queue may hold more than a shrunk window
    /// (the advertised window is then 0). When the window grows, held segments do not
    /// move at once: as in the reference, they move at the next arrival in the window
    /// or the next receive, so the windows advertised meanwhile are the reference's.
    pub(crate) fn set_wnd(&mut self, wnd: u32) {
        let want = (wnd as usize).next_power_of_two();
        if self.buffered == 0 {
            // Nothing held: allocate at the new size on the next out-of-order arrival.
            if self.held.len() != want {
                self.held = Vec::new();
            }
        } else if self.held.len() < want {
            self.reslot(want);
        }
        // Held segments lie within `held.len()` of `rcv_nxt`, and new ones only within
        // the window, so no two ever share a slot of the (never smaller) ring.
        if wnd > self.wnd && self.buffered > 0 {
            self.move_pending = true;
        }
        self.wnd = wnd;
    }

    /// Moves the held segments into a larger ring of `len` slots.
    fn reslot(&mut self, len: usize) {
        let old = core::mem::take(&mut self.held);
        let mask = old.len() - 1;
        self.held.resize_with(len, || None);
        let nxt = self.nxt.get() as usize;
        for (i, fragment) in old.into_iter().enumerate() {
            if let Some(fragment) = fragment {
                // Held `sn`s lie in `[rcv_nxt, rcv_nxt + old.len())`: slot `i` holds
                // the one whose offset from `rcv_nxt` is `(i - rcv_nxt) mod old.len()`.
                let offset = i.wrapping_sub(nxt) & mask;
                let at = nxt.wrapping_add(offset) & (len - 1);
                self.held[at] = Some(fragment);
            }
        }
    }

    /// `rcv_nxt`.
    pub(crate) const fn nxt(&self) -> Sn {
        self.nxt
    }

    /// `rcv_wnd`.
    pub(crate) const fn wnd(&self) -> u32 {
        self.wnd
    }

    /// Segments ready for the application (`nrcv_que`).
    pub(crate) fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Out-of-order segments held (`nrcv_buf`).
    pub(crate) const fn buffered(&self) -> usize {
        self.buffered
    }

    /// The free window advertised in every segment: `rcv_wnd - nrcv_que`, at least 0.
    pub(crate) fn unused(&self) -> u16 {
        self.wnd.saturating_sub(self.ready.len() as u32) as u16
    }

    /// `rcv_nxt + rcv_wnd`: the reference ACKs a data segment before it (and stores
    /// it if it is not before `rcv_nxt`).
    pub(crate) const fn limit(&self) -> Sn {
        self.nxt.add(self.wnd)
    }

    /// Stores an arriving data segment and moves what became in order.
    #[inline(always)]
    pub(crate) fn insert(&mut self, sn: Sn, fragment: Fragment) -> Arrival {
        let offset = sn.since(self.nxt);
        if offset < 0 {
            return Arrival::Duplicate;
        }
        let offset = offset as usize;
        if offset >= self.wnd as usize {
            return Arrival::OutOfWindow;
        }
        // The common case, in order with nothing held back: straight to the ready queue.
        if offset == 0 && self.buffered == 0 && self.ready.len() < self.wnd as usize {
            self.ready.push_back(fragment);
            self.nxt = self.nxt.add(1);
            return Arrival::Stored;
        }
        if self.held.is_empty() {
            self.held
                .resize_with((self.wnd as usize).next_power_of_two(), || None);
        }
        let i = self.slot(sn);
        let arrival = if self.held[i].is_some() {
            Arrival::Duplicate
        } else {
            self.held[i] = Some(fragment);
            self.buffered += 1;
            Arrival::Stored
        };
        // Only the segment `rcv_nxt` itself lets anything move (or a grown window).
        if (offset == 0 && arrival == Arrival::Stored) || self.move_pending {
            self.move_pending = false;
            self.move_in_order();
        }
        arrival
    }

    /// Where segment `sn` is held (`held` is allocated).
    fn slot(&self, sn: Sn) -> usize {
        sn.get() as usize & (self.held.len() - 1)
    }

    /// Moves held segments to the ready queue while they are in order and the queue
    /// has room.
    ///
    /// Afterwards, segment `rcv_nxt` is held only if the ready queue is full: so only
    /// the arrival of `rcv_nxt` and a receive from a full queue need to call this.
    #[inline(always)]
    pub(crate) fn move_in_order(&mut self) {
        if self.buffered > 0 {
            self.move_held();
        }
    }

    /// [`move_in_order`](Self::move_in_order) when segments are held.
    #[inline(never)]
    fn move_held(&mut self) {
        while self.buffered > 0 && self.ready.len() < self.wnd as usize {
            let i = self.slot(self.nxt);
            let Some(fragment) = self.held[i].take() else {
                break;
            };
            self.ready.push_back(fragment);
            self.buffered -= 1;
            self.nxt = self.nxt.add(1);
        }
    }

    /// Number of ready segments that make up the head message, or `None` if it is not
    /// complete yet.
    ///
    /// The head segment's `frg` says how many follow. A message ends at the first
    /// segment with `frg == 0`; one whose chain is malformed (a well-behaved peer never
    /// sends that) ends after `frg + 1` segments, so what a peer can make us reassemble
    /// is bounded by the ready queue.
    #[inline(always)]
    fn head_message_len(&self) -> Option<usize> {
        let head = self.ready.front()?;
        if head.frg == 0 {
            return Some(1);
        }
        let count = head.frg + 1;
        if self.ready.len() < count {
            return None;
        }
        let end = self
            .ready
            .iter()
            .take(count)
            .position(|f| f.frg == 0)
            .map_or(count, |i| i + 1);
        Some(end)
    }

    /// Size in bytes of the next complete message.
    pub(crate) fn peek_size(&self) -> Option<usize> {
        let n = self.head_message_len()?;
        Some(self.ready.iter().take(n).map(|f| f.data.len()).sum())
    }

    /// Removes the next complete message, concatenating its fragments (a single-fragment
    /// message is returned without copying). Returns the message and whether the ready
    /// queue was full before (the caller then announces the reopened window).
    pub(crate) fn pop_message(&mut self) -> Option<(Bytes, bool)> {
        let n = self.head_message_len()?;
        let was_full = self.ready.len() >= self.wnd as usize;
        let message = if n == 1 {
            self.ready.pop_front().map(|f| f.data)?
        } else {
            let size = self.ready.iter().take(n).map(|f| f.data.len()).sum();
            let mut out = BytesMut::with_capacity(size);
            for f in (0..n).filter_map(|_| self.ready.pop_front()) {
                out.extend_from_slice(&f.data);
            }
            out.freeze()
        };
        self.after_pop(was_full);
        Some((message, was_full))
    }

    /// Copies the next complete message into `buf` (which must be large enough; check
    /// with [`RecvWindow::peek_size`]) and removes it. Returns its length and whether
    /// the ready queue was full before.
    pub(crate) fn pop_message_into(&mut self, buf: &mut [u8]) -> Option<(usize, bool)> {
        let n = self.head_message_len()?;
        let was_full = self.ready.len() >= self.wnd as usize;
        let mut len = 0;
        for f in (0..n).filter_map(|_| self.ready.pop_front()) {
            buf[len..len + f.data.len()].copy_from_slice(&f.data);
            len += f.data.len();
        }
        self.after_pop(was_full);
        Some((len, was_full))
    }

    /// Refills the ready queue after a receive, which is needed only if it was full
    /// (see [`move_in_order`](Self::move_in_order)).
    #[inline(always)]
    fn after_pop(&mut self, was_full: bool) {
        debug_assert!(
            was_full
                || self.move_pending
                || self.buffered == 0
                || self.held[self.slot(self.nxt)].is_none(),
            "rcv_nxt held while the ready queue had room"
        );
        if was_full || self.move_pending {
            self.move_pending = false;
            self.move_in_order();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(frg: u8, byte: u8) -> Fragment {
        Fragment {
            frg: usize::from(frg),
            data: Bytes::from(alloc::vec![byte; 3]),
        }
    }

    #[test]
    fn out_of_order_segments_wait_for_the_gap() {
        let start = Sn::new(u32::MAX);
        let mut r = RecvWindow::new(128, start);
        assert_eq!(r.insert(start.add(1), frag(0, 2)), Arrival::Stored);
        assert_eq!(r.insert(start.add(1), frag(0, 2)), Arrival::Duplicate);
        assert_eq!((r.ready_len(), r.buffered()), (0, 1));
        assert_eq!(r.insert(start, frag(0, 1)), Arrival::Stored);
        assert_eq!((r.ready_len(), r.buffered(), r.nxt()), (2, 0, start.add(2)));
        assert_eq!(r.insert(start, frag(0, 1)), Arrival::Duplicate);
        assert_eq!(r.pop_message().unwrap().0.as_ref(), &[1, 1, 1]);
        assert_eq!(r.pop_message().unwrap().0.as_ref(), &[2, 2, 2]);
        assert!(r.pop_message().is_none());
    }

    #[test]
    fn window_edges() {
        let start = Sn::new(10);
        let mut r = RecvWindow::new(128, start);
        assert!(start.add(127).is_before(r.limit()));
        assert!(!start.add(128).is_before(r.limit()));
        assert!(
            Sn::new(0).is_before(r.limit()),
            "old duplicates are acked again"
        );
        assert_eq!(r.insert(start.add(128), frag(0, 0)), Arrival::OutOfWindow);
        assert_eq!(r.insert(start.add(127), frag(0, 0)), Arrival::Stored);
    }

    #[test]
    fn fragments_reassemble_only_when_complete() {
        let start = Sn::new(0);
        let mut r = RecvWindow::new(128, start);
        r.insert(start, frag(2, 1));
        r.insert(start.add(2), frag(0, 3));
        assert_eq!(r.peek_size(), None);
        r.insert(start.add(1), frag(1, 2));
        assert_eq!(r.peek_size(), Some(9));
        let mut buf = [0; 9];
        assert_eq!(r.pop_message_into(&mut buf), Some((9, false)));
        assert_eq!(buf, [1, 1, 1, 2, 2, 2, 3, 3, 3]);
    }

    #[test]
    fn ready_queue_is_bounded_by_the_window_and_reports_recovery() {
        let start = Sn::new(0);
        let mut r = RecvWindow::new(128, start);
        for i in 0..130u32 {
            r.insert(start.add(i), frag(0, i as u8));
        }
        assert_eq!((r.ready_len(), r.buffered(), r.unused()), (128, 2, 0));
        // 130 is beyond rcv_nxt + rcv_wnd = 128 + 128? No: rcv_nxt stopped at 128.
        assert_eq!(r.nxt(), start.add(128));
        let (_, was_full) = r.pop_message().unwrap();
        assert!(was_full);
        assert_eq!((r.ready_len(), r.buffered()), (128, 1));
    }

    #[test]
    fn a_grown_window_reslots_held_segments_and_moves_them_lazily() {
        let start = Sn::new(u32::MAX - 100);
        let mut r = RecvWindow::new(128, start);
        for i in 0..128u32 {
            r.insert(start.add(i), frag(0, i as u8));
        }
        // The ready queue is full; three more wait out of order behind a gap.
        for i in [129u32, 130, 200] {
            assert_eq!(r.insert(start.add(i), frag(0, i as u8)), Arrival::Stored);
        }
        assert_eq!(r.insert(start.add(128), frag(0, 128)), Arrival::Stored);
        assert_eq!((r.ready_len(), r.buffered(), r.unused()), (128, 4, 0));
        r.set_wnd(256);
        assert_eq!(
            r.buffered(),
            4,
            "nothing moves until the next arrival or receive"
        );
        assert_eq!(r.unused(), 128);
        // A duplicate in the window moves them, as ikcp_parse_data would.
        assert_eq!(r.insert(start.add(130), frag(0, 0)), Arrival::Duplicate);
        assert_eq!(
            (r.ready_len(), r.buffered(), r.nxt()),
            (131, 1, start.add(131))
        );
        // Held beyond the old window, reachable in the new one.
        assert_eq!(r.insert(start.add(255), frag(0, 1)), Arrival::Stored);
        for i in 0..131u32 {
            assert_eq!(r.pop_message().unwrap().0[0], i as u8);
        }
        for i in 131..200u32 {
            r.insert(start.add(i), frag(0, i as u8));
        }
        assert_eq!(r.pop_message().unwrap().0[0], 131);
        assert_eq!(r.nxt(), start.add(201));
    }

    #[test]
    fn a_shrunk_window_keeps_what_it_holds() {
        let start = Sn::new(0);
        let mut r = RecvWindow::new(256, start);
        assert_eq!(r.insert(start.add(200), frag(0, 9)), Arrival::Stored);
        r.set_wnd(128);
        assert_eq!(r.insert(start.add(128), frag(0, 0)), Arrival::OutOfWindow);
        let mut got = 0;
        for i in 0..200u32 {
            assert_eq!(r.insert(start.add(i), frag(0, 1)), Arrival::Stored);
            while r.pop_message().is_some() {
                got += 1;
            }
        }
        assert_eq!(got, 201);
        assert_eq!(r.nxt(), start.add(201));
    }

    #[test]
    fn malformed_fragment_chain_is_bounded() {
        let start = Sn::new(0);
        let mut r = RecvWindow::new(128, start);
        // A hostile peer: every segment claims one more fragment follows.
        r.insert(start, frag(1, 1));
        r.insert(start.add(1), frag(1, 2));
        r.insert(start.add(2), frag(1, 3));
        assert_eq!(r.peek_size(), Some(6));
        assert_eq!(r.pop_message().unwrap().0.len(), 6);
        assert_eq!(r.peek_size(), None, "the last one waits for its partner");
    }
}
