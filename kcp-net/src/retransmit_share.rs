//! How much of what a loop sends is sent again: retransmitted segments per message
//! queued, over the last one to two seconds.
//!
//! A loop that falls behind reads its sessions' ACKs late, so their retransmission
//! timers fire for segments that were not lost, and the retransmissions add to the
//! load that made it late. The share grows before the loop lag does: timers that fire
//! early (ACKs not yet read) make no lag, only retransmissions. It is the second
//! overload signal admission control can look at (the lag is the first). A lossy
//! client path raises it too, which is why it is only read over enough messages
//! ([`MIN_MESSAGES`]) and why the chat's limit defaults far above what a loss of a
//! few percent causes.
//!
//! Like [`LagMeter`](crate::loop_lag::LagMeter) it keeps two one-second windows
//! ([`TwoWindows`](crate::two_windows::TwoWindows)).

use std::time::Instant;

use crate::two_windows::TwoWindows;

/// Fewer messages than this over both windows read as a share of 0: a handful of
/// retransmissions among a handful of messages says nothing about the loop.
pub(crate) const MIN_MESSAGES: u64 = 500;

/// A loop's cumulative counts, as `LoopStats` keeps them (or what a window added).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sent {
    /// Retransmitted segments (timeout and fast).
    pub(crate) retransmits: u64,
    /// Messages queued for sending.
    pub(crate) messages: u64,
}

impl Sent {
    const fn since(self, earlier: Self) -> Self {
        Self {
            retransmits: self.retransmits.saturating_sub(earlier.retransmits),
            messages: self.messages.saturating_sub(earlier.messages),
        }
    }

    const fn plus(self, other: Self) -> Self {
        Self {
            retransmits: self.retransmits + other.retransmits,
            messages: self.messages + other.messages,
        }
    }
}

/// Retransmissions per message over the current and the previous window.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetransmitMeter {
    /// The counts at the last reading.
    last: Sent,
    /// What each window added.
    added: TwoWindows<Sent>,
}

impl RetransmitMeter {
    /// A meter whose first window starts at `now` with the counts `totals`.
    pub(crate) fn new(now: Instant, totals: Sent) -> Self {
        Self {
            last: totals,
            added: TwoWindows::new(now),
        }
    }

    /// Retransmitted segments per 1,000 messages over this window and the one before,
    /// as of `now` with the loop's counts `totals` (0 below [`MIN_MESSAGES`]).
    pub(crate) fn permille(&mut self, now: Instant, totals: Sent) -> u64 {
        let added = self.added.current(now);
        *added = added.plus(totals.since(self.last));
        self.last = totals;
        let (current, previous) = self.added.both(now);
        let both = current.plus(previous);
        if both.messages < MIN_MESSAGES {
            return 0;
        }
        both.retransmits.saturating_mul(1000) / both.messages
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    const fn sent(retransmits: u64, messages: u64) -> Sent {
        Sent {
            retransmits,
            messages,
        }
    }

    #[test]
    fn the_share_covers_two_windows_then_forgets() {
        let t0 = Instant::now();
        let mut meter = RetransmitMeter::new(t0, sent(7, 100));
        // Too few messages yet to say anything.
        assert_eq!(meter.permille(t0 + 100 * MS, sent(57, 400)), 0);
        // 200 retransmissions for 1,000 messages in the first window.
        assert_eq!(meter.permille(t0 + 900 * MS, sent(207, 1100)), 200);
        // The next window adds 1,000 messages and no retransmission: both count.
        assert_eq!(meter.permille(t0 + 1000 * MS, sent(207, 1100)), 200);
        assert_eq!(meter.permille(t0 + 1900 * MS, sent(207, 2100)), 100);
        // One more window on, the first is forgotten.
        assert_eq!(meter.permille(t0 + 2000 * MS, sent(207, 2100)), 0);
        assert_eq!(meter.permille(t0 + 2500 * MS, sent(307, 3100)), 50);
    }

    #[test]
    fn a_long_silence_forgets_both_windows() {
        let t0 = Instant::now();
        let mut meter = RetransmitMeter::new(t0, Sent::default());
        assert_eq!(meter.permille(t0 + 500 * MS, sent(900, 1000)), 900);
        assert_eq!(meter.permille(t0 + 5000 * MS, sent(900, 1000)), 0);
        // A counter that went backwards (a new loop's stats) is no negative share.
        assert_eq!(meter.permille(t0 + 5100 * MS, sent(0, 0)), 0);
    }
}
