//! Which lines of each member of its room a bench client has received: a fresh line
//! counts as a delivery, a second copy as a duplicate.
//!
//! Lines of one sender arrive in order (one KCP stream from the server per client;
//! in the bare-UDP floor, one relay per sender and loopback keeps order), so a window
//! of the last [`WINDOW`] sequence numbers behind the highest seen decides exactly,
//! in 24 bytes per sender instead of a bitmap of the whole run: the run's clients'
//! state stays in cache. A line more than [`WINDOW`] behind the highest counts as a
//! duplicate; an in-order stream never has one.

/// Sequence numbers remembered behind the highest one seen, per sender.
const WINDOW: u64 = 128;

/// One window per member of the room.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    members: Vec<Window>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Window {
    /// The highest sequence number seen (0: none; lines count from 1).
    highest: u64,
    /// Bit `i`: line `highest - i` was seen.
    bits: u128,
}

impl Seen {
    /// Nothing seen yet from any of `members` senders.
    pub(crate) fn new(members: usize) -> Self {
        Self {
            members: vec![Window::default(); members],
        }
    }

    /// Marks line `seq` (from 1) of the member at `member` (its place in the room)
    /// received; `false` if it was already, or is no member's.
    pub(crate) fn mark(&mut self, member: usize, seq: u64) -> bool {
        let Some(w) = self.members.get_mut(member) else {
            return false;
        };
        if seq > w.highest {
            let shift = seq - w.highest;
            w.bits = if shift >= WINDOW { 0 } else { w.bits << shift };
            w.bits |= 1;
            w.highest = seq;
            return true;
        }
        let behind = w.highest - seq;
        if behind >= WINDOW {
            return false;
        }
        let bit = 1u128 << behind;
        let fresh = w.bits & bit == 0;
        w.bits |= bit;
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_lines_count_once_in_or_out_of_order() {
        let mut seen = Seen::new(2);
        assert!(seen.mark(0, 1));
        assert!(!seen.mark(0, 1));
        assert!(seen.mark(0, 3));
        assert!(seen.mark(0, 2), "a late line within the window is fresh");
        assert!(!seen.mark(0, 2));
        assert!(seen.mark(1, 2), "members are apart");
        assert!(!seen.mark(2, 1), "no such member");
        // A jump past the window forgets what came before it.
        assert!(seen.mark(0, 3 + WINDOW + 10));
        assert!(!seen.mark(0, 3), "too far behind: a duplicate");
        assert!(seen.mark(0, 3 + WINDOW + 9));
    }
}
