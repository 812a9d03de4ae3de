//! The replay window: which counters of the last [`WINDOW`] have been seen.

/// How many counters, the newest included, are remembered: one older than the
/// newest by `WINDOW` or more is refused.
pub const WINDOW: u64 = 2048;

const WORDS: usize = (WINDOW / 64) as usize;

/// A sliding bitmap of the counters seen, the newest at its top. A counter is
/// fresh if it is newer than every counter seen, or within [`WINDOW`] of the newest
/// and not seen yet.
///
/// Checking ([`is_fresh`](Self::is_fresh)) and marking ([`mark`](Self::mark)) are
/// separate, so a datagram is marked only once its seal verified: a forged counter
/// changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayWindow {
    /// The next counter above everything seen (0: nothing seen).
    next: u64,
    /// Bit `c % WINDOW` says whether counter `c` was seen, for `c` in
    /// `next - WINDOW .. next`.
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a counter is not fresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stale {
    /// Seen already.
    Replayed,
    /// Older than the window.
    TooOld,
}

impl ReplayWindow {
    /// A window that has seen nothing.
    pub const fn new() -> Self {
        Self {
            next: 0,
            bits: [0; WORDS],
        }
    }

    /// Whether `counter` may be accepted. Changes nothing.
    ///
    /// # Errors
    /// [`Stale`]: why not.
    pub fn is_fresh(&self, counter: u64) -> Result<(), Stale> {
        if counter >= self.next {
            return Ok(());
        }
        if self.next - counter > WINDOW {
            return Err(Stale::TooOld);
        }
        if self.bit(counter) {
            Err(Stale::Replayed)
        } else {
            Ok(())
        }
    }

    /// Marks `counter` seen (it must have been fresh), sliding the window if it is the
    /// newest. Returns whether it is the newest counter seen so far.
    pub fn mark(&mut self, counter: u64) -> bool {
        if counter < self.next {
            self.set(counter);
            return false;
        }
        // Clear the counters the window slides over: next .. counter (at most the
        // whole window).
        let gap = counter - self.next;
        if gap >= WINDOW {
            self.bits = [0; WORDS];
        } else {
            for c in self.next..counter {
                self.clear(c);
            }
        }
        self.next = counter + 1;
        self.set(counter);
        true
    }

    /// The newest counter seen, if any.
    pub const fn newest(&self) -> Option<u64> {
        self.next.checked_sub(1)
    }

    const fn slot(counter: u64) -> (usize, u64) {
        let i = counter % WINDOW;
        ((i / 64) as usize, 1 << (i % 64))
    }

    fn bit(&self, counter: u64) -> bool {
        let (w, m) = Self::slot(counter);
        self.bits[w] & m != 0
    }

    fn set(&mut self, counter: u64) {
        let (w, m) = Self::slot(counter);
        self.bits[w] |= m;
    }

    fn clear(&mut self, counter: u64) {
        let (w, m) = Self::slot(counter);
        self.bits[w] &= !m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(w: &mut ReplayWindow, c: u64) -> Result<bool, Stale> {
        w.is_fresh(c)?;
        Ok(w.mark(c))
    }

    #[test]
    fn each_counter_is_accepted_once_in_any_order_within_the_window() {
        let mut w = ReplayWindow::new();
        assert_eq!(accept(&mut w, 0), Ok(true));
        assert_eq!(accept(&mut w, 0), Err(Stale::Replayed));
        assert_eq!(accept(&mut w, 5), Ok(true));
        assert_eq!(accept(&mut w, 3), Ok(false));
        assert_eq!(accept(&mut w, 3), Err(Stale::Replayed));
        assert_eq!(accept(&mut w, 4), Ok(false));
        assert_eq!(w.newest(), Some(5));
    }

    #[test]
    fn the_window_is_2048_counters_and_slides_with_the_newest() {
        let mut w = ReplayWindow::new();
        accept(&mut w, 10_000).unwrap();
        // The window holds the newest and the 2,047 before it.
        assert_eq!(w.is_fresh(10_000 - WINDOW + 1), Ok(()));
        assert_eq!(w.is_fresh(10_000 - WINDOW), Err(Stale::TooOld));
        accept(&mut w, 10_000 - WINDOW + 1).unwrap();
        // A jump of exactly the window forgets everything behind it.
        accept(&mut w, 10_000 + WINDOW).unwrap();
        assert_eq!(
            w.is_fresh(10_001),
            Ok(()),
            "the oldest in the window, unseen"
        );
        assert_eq!(w.is_fresh(10_000), Err(Stale::TooOld));
    }

    #[test]
    fn sliding_clears_the_bits_of_counters_it_passes() {
        let mut w = ReplayWindow::new();
        for c in 0..WINDOW {
            accept(&mut w, c).unwrap();
        }
        // Slide by 100: counters 2048..2147 reuse the bits of 0..99.
        accept(&mut w, WINDOW + 100).unwrap();
        for c in WINDOW..WINDOW + 100 {
            assert_eq!(w.is_fresh(c), Ok(()), "counter {c}");
        }
        assert_eq!(w.is_fresh(200), Err(Stale::Replayed));
    }

    #[test]
    fn a_model_agrees_on_random_sequences() {
        use std::collections::HashSet;
        let mut seen = HashSet::new();
        let mut w = ReplayWindow::new();
        let mut newest: Option<u64> = None;
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let base = newest.unwrap_or(0);
            let c = (base + x % 64).saturating_sub(x % 3000);
            let expected = match newest {
                Some(n) if c <= n && n - c >= WINDOW => Err(Stale::TooOld),
                _ if seen.contains(&c) => Err(Stale::Replayed),
                _ => Ok(()),
            };
            assert_eq!(w.is_fresh(c), expected, "counter {c}, newest {newest:?}");
            if expected.is_ok() {
                w.mark(c);
                seen.insert(c);
                newest = Some(newest.map_or(c, |n| n.max(c)));
            }
        }
    }
}
