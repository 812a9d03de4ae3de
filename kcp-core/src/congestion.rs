//! The reference's congestion window (spec §9.6, §10).

/// `IKCP_THRESH_INIT` / `IKCP_THRESH_MIN`.
const THRESH_MIN: u32 = 2;

/// Congestion window state in segments, with the reference's `incr` byte counter.
/// All arithmetic is wrapping `u32`, as in the reference.
#[derive(Clone, Debug)]
pub(crate) struct Congestion {
    pub(crate) cwnd: u32,
    pub(crate) ssthresh: u32,
    incr: u32,
    mss: u32,
}

impl Congestion {
    pub(crate) const fn new(mss: u32) -> Self {
        Self {
            cwnd: 0,
            ssthresh: THRESH_MIN,
            incr: 0,
            mss,
        }
    }

    /// A new segment size after an MTU change (`ikcp_setmtu`): the window keeps its
    /// count of segments, the byte counter `incr` is left as it is, as in the reference.
    pub(crate) fn set_mss(&mut self, mss: u32) {
        self.mss = mss;
    }

    /// Growth once per `input` call in which `snd_una` advanced (spec §10.1).
    pub(crate) fn on_una_advanced(&mut self, rmt_wnd: u32) {
        if self.cwnd >= rmt_wnd {
            return;
        }
        let mss = self.mss;
        if self.cwnd < self.ssthresh {
            self.cwnd = self.cwnd.wrapping_add(1);
            self.incr = self.incr.wrapping_add(mss);
        } else {
            if self.incr < mss {
                self.incr = mss;
            }
            self.incr = self
                .incr
                .wrapping_add(mss.wrapping_mul(mss) / self.incr + mss / 16);
            if self.cwnd.wrapping_add(1).wrapping_mul(mss) <= self.incr {
                self.cwnd = self.incr.wrapping_add(mss - 1) / mss;
            }
        }
        if self.cwnd > rmt_wnd {
            self.cwnd = rmt_wnd;
            self.incr = rmt_wnd.wrapping_mul(mss);
        }
    }

    /// End of a flush that fast-retransmitted something: `in_flight` segments are
    /// outstanding and `resend` is the fast-resend threshold.
    pub(crate) fn on_fast_retransmit(&mut self, in_flight: u32, resend: u32) {
        self.ssthresh = (in_flight / 2).max(THRESH_MIN);
        self.cwnd = self.ssthresh.wrapping_add(resend);
        self.incr = self.cwnd.wrapping_mul(self.mss);
    }

    /// End of a flush that retransmitted on timeout; `window` is the effective window
    /// that flush used (ikcp v1).
    pub(crate) fn on_timeout(&mut self, window: u32) {
        self.ssthresh = (window / 2).max(THRESH_MIN);
        self.cwnd = 1;
        self.incr = self.mss;
    }

    /// The floor applied at the end of every flush.
    pub(crate) fn at_least_one(&mut self) {
        if self.cwnd < 1 {
            self.cwnd = 1;
            self.incr = self.mss;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_closed_and_opens_at_the_first_flush() {
        let mut c = Congestion::new(1376);
        assert_eq!(c.cwnd, 0);
        c.at_least_one();
        assert_eq!(c.cwnd, 1);
        // Slow start: below ssthresh 2, one more per advancing input.
        c.on_una_advanced(128);
        assert_eq!(c.cwnd, 2);
    }

    #[test]
    fn avoidance_grows_slowly_and_respects_the_remote_window() {
        let mut c = Congestion::new(100);
        c.at_least_one();
        c.on_una_advanced(128);
        // cwnd 2 = ssthresh: congestion avoidance from now on.
        let mut grew_at = None;
        for i in 0..10 {
            c.on_una_advanced(128);
            if c.cwnd > 2 && grew_at.is_none() {
                grew_at = Some(i);
            }
        }
        // incr 200 -> 256 -> 301: the second ack crosses 3 * mss, cwnd = ceil(301 / 100).
        assert_eq!((grew_at, c.cwnd > 2), (Some(1), true));

        // The same growth against a remote window of 3 is clamped to it.
        let mut c = Congestion::new(100);
        c.at_least_one();
        c.on_una_advanced(3);
        c.on_una_advanced(3);
        c.on_una_advanced(3);
        assert_eq!((c.cwnd, c.incr), (3, 300));
    }

    #[test]
    fn reductions() {
        let mut c = Congestion::new(100);
        c.on_fast_retransmit(10, 2);
        assert_eq!((c.ssthresh, c.cwnd), (5, 7));
        c.on_timeout(7);
        assert_eq!((c.ssthresh, c.cwnd), (3, 1));
        c.on_timeout(1);
        assert_eq!(c.ssthresh, 2);
    }
}
