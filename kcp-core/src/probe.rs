//! Zero-window probing (spec §9.2) and the pending WASK/WINS flags.

use crate::{PollAt, Timestamp};

/// First wait before probing a zero window (`IKCP_PROBE_INIT`, ikcp v1).
pub(crate) const PROBE_INIT: u32 = 7_000;
/// Longest wait between probes (`IKCP_PROBE_LIMIT`).
pub(crate) const PROBE_LIMIT: u32 = 120_000;

/// Window-probe timer and the two "put a WASK / WINS in the next flush" flags.
#[derive(Clone, Debug, Default)]
pub(crate) struct WindowProbe {
    /// Send a WASK at the next flush (`IKCP_ASK_SEND`).
    ask_send: bool,
    /// Send a WINS at the next flush (`IKCP_ASK_TELL`).
    ask_tell: bool,
    /// When the next WASK is due while the peer's window is zero.
    due: Timestamp,
    /// Current wait between probes; 0 = timer not running.
    wait: u32,
}

impl WindowProbe {
    /// The peer asked for our window (it sent a WASK), or our window reopened.
    pub(crate) fn tell_window(&mut self) {
        self.ask_tell = true;
    }

    /// Send a WASK at the next flush: the peer's window closed without a sign that
    /// the report is genuine (see [`Kcp`](crate::Kcp)'s differences from ikcp). The
    /// timer then starts as usual, so a real zero window is probed on its schedule.
    pub(crate) fn ask_window(&mut self) {
        self.ask_send = true;
    }

    /// The timer step at the start of every flush.
    pub(crate) fn on_flush(&mut self, now: Timestamp, remote_window: u32) {
        if remote_window != 0 {
            self.due = Timestamp::default();
            self.wait = 0;
        } else if self.wait == 0 {
            self.wait = PROBE_INIT;
            self.due = now.add_millis(self.wait);
        } else if now.has_reached(self.due) {
            self.wait = self.wait.max(PROBE_INIT);
            self.wait = (self.wait + self.wait / 2).min(PROBE_LIMIT);
            self.due = now.add_millis(self.wait);
            self.ask_send = true;
        }
    }

    /// Returns and clears the `(ask, tell)` flags.
    pub(crate) fn take(&mut self) -> (bool, bool) {
        let flags = (self.ask_send, self.ask_tell);
        self.ask_send = false;
        self.ask_tell = false;
        flags
    }

    /// A WASK or WINS waits for the next flush.
    pub(crate) const fn has_pending(&self) -> bool {
        self.ask_send || self.ask_tell
    }

    /// When a flush next has probe work, the peer's window being `remote_window`, as
    /// [`on_flush`](Self::on_flush) and [`take`](Self::take) decide it: now if a WASK or
    /// WINS waits or a zero window's timer is not started yet, at the timer while the
    /// window stays zero, idle otherwise (a flush then only clears the timer).
    pub(crate) const fn poll_at(&self, remote_window: u32) -> PollAt {
        if self.has_pending() || (remote_window == 0 && self.wait == 0) {
            PollAt::Now
        } else if remote_window == 0 {
            PollAt::At(self.due)
        } else {
            PollAt::Idle
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_waits_grow_by_half_up_to_the_limit() {
        let mut p = WindowProbe::default();
        let t0 = Timestamp::from_millis(u32::MAX - 100);
        assert_eq!(
            p.poll_at(0),
            PollAt::Now,
            "the first zero-window flush starts it"
        );
        assert_eq!(p.poll_at(1), PollAt::Idle);
        p.on_flush(t0, 0);
        assert_eq!(p.poll_at(0), PollAt::At(t0.add_millis(7_000)));
        p.on_flush(t0.add_millis(6_999), 0);
        assert_eq!(p.take(), (false, false));
        let mut now = t0.add_millis(7_000);
        let mut gaps = alloc::vec::Vec::new();
        for _ in 0..10 {
            p.on_flush(now, 0);
            assert_eq!(p.take(), (true, false));
            let PollAt::At(next) = p.poll_at(0) else {
                panic!("the timer runs while the window is zero");
            };
            gaps.push(next.since(now));
            now = next;
        }
        assert_eq!(&gaps[..4], &[10_500, 15_750, 23_625, 35_437]);
        assert_eq!(*gaps.last().unwrap(), 120_000);
        p.on_flush(now, 5);
        assert_eq!(p.poll_at(5), PollAt::Idle);
        assert_eq!(p.poll_at(0), PollAt::Now, "a new zero window restarts it");
    }

    #[test]
    fn tell_is_a_one_shot_flag() {
        let mut p = WindowProbe::default();
        p.tell_window();
        assert!(p.has_pending());
        assert_eq!(p.poll_at(7), PollAt::Now);
        assert_eq!(p.take(), (false, true));
        assert!(!p.has_pending());
        assert_eq!(p.poll_at(7), PollAt::Idle);
    }
}
