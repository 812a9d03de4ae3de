//! A first-in first-out queue whose push and pop are always inlined.
//!
//! `VecDeque::push_back` is not inlined into the engine's hot paths: its argument is
//! written to the stack with 8-byte stores and read back with 16-byte loads, which
//! the processor cannot forward from the stores, so every push of a segment waited
//! for its own stores to reach the cache (about 5% of a 1 KiB transfer's time). Here
//! the value goes from registers straight into its slot.
//!
//! Slots are `Option<T>`, so the queue needs no `unsafe`: an empty slot is `None`.

use alloc::vec::Vec;

/// The capacity of the first allocation.
const MIN_CAPACITY: usize = 16;

/// A growable ring buffer of `T`, its capacity a power of two.
#[derive(Clone, Debug)]
pub(crate) struct Ring<T> {
    slots: Vec<Option<T>>,
    /// Index of the front element.
    head: usize,
    len: usize,
}

impl<T> Default for Ring<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Ring<T> {
    /// An empty queue; allocates on the first push.
    pub(crate) const fn new() -> Self {
        Self {
            slots: Vec::new(),
            head: 0,
            len: 0,
        }
    }

    /// Elements queued.
    #[inline(always)]
    pub(crate) const fn len(&self) -> usize {
        self.len
    }

    /// The slot of the element `i` places from the front (`i` may be `len`).
    #[inline(always)]
    fn slot(&self, i: usize) -> usize {
        (self.head + i) & (self.slots.len().wrapping_sub(1))
    }

    /// Appends `value` at the back.
    #[inline(always)]
    pub(crate) fn push_back(&mut self, value: T) {
        if self.len == self.slots.len() {
            self.grow();
        }
        let i = self.slot(self.len);
        self.slots[i] = Some(value);
        self.len += 1;
    }

    /// Removes and returns the front element.
    #[inline(always)]
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let value = self.slots[self.head].take();
        self.head = self.slot(1);
        self.len -= 1;
        value
    }

    /// The element `i` places from the front.
    #[inline(always)]
    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        self.slots[self.slot(i)].as_ref()
    }

    /// The front element.
    #[inline(always)]
    pub(crate) fn front(&self) -> Option<&T> {
        self.get(0)
    }

    /// Every element, front first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        (0..self.len).filter_map(|i| self.get(i))
    }

    /// Doubles the capacity, keeping the order.
    #[cold]
    fn grow(&mut self) {
        let capacity = (2 * self.slots.len()).max(MIN_CAPACITY);
        let mut slots = Vec::with_capacity(capacity);
        for i in 0..self.len {
            let at = self.slot(i);
            slots.push(self.slots[at].take());
        }
        slots.resize_with(capacity, || None);
        self.slots = slots;
        self.head = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::VecDeque;

    #[test]
    fn behaves_like_a_vecdeque_across_growth_and_wrap() {
        let mut ring = Ring::new();
        let mut model = VecDeque::new();
        let mut next = 0u32;
        // Pushes outpace pops, then pops outpace pushes: the ring grows while
        // wrapped and drains to empty.
        for step in 0..2000u32 {
            let pushes = if step < 1000 { 3 } else { 1 };
            for _ in 0..pushes {
                ring.push_back(next);
                model.push_back(next);
                next += 1;
            }
            for _ in 0..2 {
                assert_eq!(ring.pop_front(), model.pop_front());
            }
            assert_eq!(ring.len(), model.len());
            assert_eq!(ring.front(), model.front());
            assert_eq!(ring.get(model.len()), None);
        }
        assert!(ring.iter().eq(model.iter()));
        while let Some(v) = model.pop_front() {
            assert_eq!(ring.pop_front(), Some(v));
        }
        assert_eq!(ring.len(), 0);
        assert_eq!(ring.pop_front(), None);
    }
}
