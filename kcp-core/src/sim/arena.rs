//! Where a link keeps the datagrams in transit: copied into 64 KiB blocks and split
//! off them, so a datagram costs a `memcpy` and no allocation of its own.
//!
//! A block whose datagrams are all gone is reused. An endpoint that keeps received
//! payloads as slices of their datagram (zero-copy input) holds blocks for a while;
//! full blocks then wait in a short queue until they are free, instead of being freed
//! and allocated again (which, at a window of thousands of segments, cost page faults
//! in the allocator's trimming and refilling of its heap).

use alloc::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// Size of a block.
const BLOCK: usize = 64 * 1024;
/// Full blocks kept for reuse at most (4 MiB); beyond it the oldest is let go (freed
/// when its last datagram is).
const RETIRED: usize = 64;
/// Full blocks looked at, oldest first, when the current one runs out.
const PROBES: usize = 4;

/// A bump allocator of `Bytes`, its blocks recycled.
#[derive(Debug, Default)]
pub(crate) struct Arena {
    /// The block being filled: empty, its capacity the room left.
    current: BytesMut,
    /// Full blocks, oldest first, whose datagrams may still be held.
    retired: VecDeque<BytesMut>,
    /// `current` is part of a block (false before the first datagram).
    allocated: bool,
}

impl Arena {
    /// A copy of `datagram` sharing a block with its neighbours.
    #[inline]
    pub(crate) fn copy_in(&mut self, datagram: &[u8]) -> Bytes {
        self.buffer(datagram.len()).extend_from_slice(datagram);
        self.take(datagram.len())
    }

    /// Where the next datagram is written: the current block, with room for `room`
    /// more bytes. A datagram being written stays in one piece: at its start the block
    /// is refilled if too full; midway (when the writer asks for more than it said),
    /// `BytesMut` moves the bytes written so far along.
    #[inline]
    pub(crate) fn buffer(&mut self, room: usize) -> &mut BytesMut {
        if self.current.capacity() - self.current.len() < room && self.current.is_empty() {
            self.refill(room);
        }
        &mut self.current
    }

    /// The datagram written into [`buffer`](Self::buffer): its `len` bytes, split off.
    #[inline]
    pub(crate) fn take(&mut self, len: usize) -> Bytes {
        debug_assert_eq!(self.current.len(), len, "one datagram at a time");
        self.current.split().freeze()
    }

    /// Forgets the datagram written into [`buffer`](Self::buffer): a lost datagram's
    /// room is used again.
    #[inline]
    pub(crate) fn discard(&mut self, len: usize) {
        debug_assert_eq!(self.current.len(), len, "one datagram at a time");
        self.current.clear();
    }

    /// Makes the current block hold at least `len` bytes: the current block itself if
    /// all of its datagrams are gone, else a retired one that is free, else a new one.
    fn refill(&mut self, len: usize) {
        let want = BLOCK.max(len);
        if self.current.try_reclaim(want) {
            return;
        }
        let full = core::mem::take(&mut self.current);
        if self.allocated {
            self.retire(full);
        }
        self.allocated = true;
        for _ in 0..PROBES.min(self.retired.len()) {
            let Some(mut block) = self.retired.pop_front() else {
                break;
            };
            if block.try_reclaim(want) {
                self.current = block;
                return;
            }
            self.retired.push_back(block);
        }
        self.current.reserve(want);
    }

    fn retire(&mut self, block: BytesMut) {
        if self.retired.len() == RETIRED {
            self.retired.pop_front();
        }
        self.retired.push_back(block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// Fills `arena` with `n` datagrams of 1 KiB and returns them.
    fn fill(arena: &mut Arena, n: usize) -> Vec<Bytes> {
        (0..n).map(|i| arena.copy_in(&[i as u8; 1024])).collect()
    }

    #[test]
    fn datagrams_are_copies_carved_from_one_block() {
        let mut arena = Arena::default();
        let held = fill(&mut arena, 3);
        assert_eq!(held[2][..], [2u8; 1024]);
        let (a, b) = (held[0].as_ptr() as usize, held[1].as_ptr() as usize);
        assert_eq!(b - a, 1024, "neighbours in one block");
    }

    #[test]
    fn a_block_is_reused_once_its_datagrams_are_gone_and_not_before() {
        let mut arena = Arena::default();
        let first = fill(&mut arena, 64); // exactly one block
        let start = first[0].as_ptr();
        // The block is full and held: the next datagram comes from another block.
        let held = fill(&mut arena, 1);
        assert_ne!(held[0].as_ptr(), start);
        drop(first);
        // Fill the second block; the first is free again and comes back.
        let second = fill(&mut arena, 64);
        assert!(
            second.iter().any(|d| d.as_ptr() == start),
            "freed block not reused"
        );
        for (i, d) in second.iter().enumerate() {
            assert!(d.iter().all(|&b| b == i as u8), "datagram {i} corrupted");
        }
        assert_eq!(
            held[0][..],
            [0u8; 1024],
            "a held datagram is never overwritten"
        );
    }

    #[test]
    fn retired_blocks_are_bounded() {
        let mut arena = Arena::default();
        let held: Vec<Bytes> = (0..RETIRED + 10)
            .flat_map(|_| fill(&mut arena, 64))
            .collect();
        assert!(arena.retired.len() <= RETIRED);
        assert_eq!(held.len(), (RETIRED + 10) * 64);
    }

    #[test]
    fn a_datagram_larger_than_a_block_gets_a_block_of_its_own() {
        let mut arena = Arena::default();
        let big = arena.copy_in(&[7u8; BLOCK + 1]);
        assert_eq!(big.len(), BLOCK + 1);
        assert!(big.iter().all(|&b| b == 7));
    }
}
