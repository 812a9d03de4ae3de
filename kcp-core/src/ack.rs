//! The list of acknowledgements owed to the peer (`acklist`).

use alloc::vec::Vec;

use crate::{Sn, Timestamp};

/// `(sn, ts)` pairs to acknowledge at the next flush, in arrival order, with a hard
/// bound.
///
/// The reference acknowledges every data segment below `rcv_nxt + rcv_wnd`, old
/// duplicates included, and its list grows without limit until the next flush (spec
/// pitfall 20). Ours holds at most `4 × rcv_wnd` entries (8 bytes each: at most 2 MiB at
/// the largest window); beyond that an ACK is dropped and counted. A well-behaved peer
/// never gets there: its flight is bounded by our advertised window.
#[derive(Clone, Debug)]
pub(crate) struct AckList {
    entries: Vec<(Sn, Timestamp)>,
    limit: usize,
}

impl AckList {
    pub(crate) fn new(rcv_wnd: u32) -> Self {
        Self {
            entries: Vec::new(),
            limit: 4 * rcv_wnd as usize,
        }
    }

    /// Bounds the list by a new receive window (entries beyond the new bound stay
    /// until the next flush; no more are added meanwhile).
    pub(crate) fn set_window(&mut self, rcv_wnd: u32) {
        self.limit = 4 * rcv_wnd as usize;
    }

    /// Records an ACK to send; `false` if the list is full and it was dropped.
    pub(crate) fn push(&mut self, sn: Sn, ts: Timestamp) -> bool {
        if self.entries.len() >= self.limit {
            return false;
        }
        self.entries.push((sn, ts));
        true
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (Sn, Timestamp)> + '_ {
        self.entries.iter().copied()
    }

    /// Empties the list, keeping its allocation.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_duplicates_up_to_its_bound() {
        let mut acks = AckList::new(128);
        let t = Timestamp::from_millis(5);
        assert!(acks.push(Sn::new(3), t));
        assert!(acks.push(Sn::new(1), t));
        assert!(acks.push(Sn::new(3), t));
        let v: Vec<_> = acks.iter().map(|(sn, _)| sn.get()).collect();
        assert_eq!(v, [3, 1, 3]);
        for i in 3..512 {
            assert!(acks.push(Sn::new(i), t));
        }
        assert_eq!(acks.len(), 512);
        assert!(!acks.push(Sn::new(9), t));
        assert_eq!(acks.len(), 512);
        acks.clear();
        assert!(acks.is_empty());
    }
}
