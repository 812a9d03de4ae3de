//! Round-trip time and retransmission timeout estimation (spec §8), and how a
//! segment's timeout backs off per [`NoDelay`] mode (spec §9.4).

use crate::NoDelay;

/// The largest RTO the estimator reports (`IKCP_RTO_MAX`).
pub(crate) const RTO_MAX: u32 = 60_000;
/// The RTO before any sample (`IKCP_RTO_DEF`).
pub(crate) const RTO_DEFAULT: u32 = 200;

/// Smoothed RTT, its variation and the resulting RTO, in ms, with the reference's
/// integer arithmetic (Jacobson/Karels with gains 1/8 and 1/4).
#[derive(Clone, Debug)]
pub(crate) struct RttEstimator {
    /// 0 doubles as "no sample yet", exactly as in the reference.
    srtt: i64,
    rttvar: i64,
    rto: u32,
    min_rto: u32,
    /// Samples taken.
    samples: u64,
}

impl RttEstimator {
    pub(crate) const fn new(min_rto: u32) -> Self {
        Self {
            srtt: 0,
            rttvar: 0,
            rto: RTO_DEFAULT,
            min_rto,
            samples: 0,
        }
    }

    /// Feeds one sample (`now - echoed ts`, ≥ 0). `interval` floors the variance term.
    pub(crate) fn on_sample(&mut self, rtt: u32, interval: u32) {
        self.samples += 1;
        let rtt = i64::from(rtt);
        if self.srtt == 0 {
            self.srtt = rtt;
            self.rttvar = rtt / 2;
        } else {
            let delta = (rtt - self.srtt).abs();
            self.rttvar = (3 * self.rttvar + delta) / 4;
            self.srtt = ((7 * self.srtt + rtt) / 8).max(1);
        }
        let rto = self.srtt + (4 * self.rttvar).max(i64::from(interval));
        self.rto = rto.clamp(i64::from(self.min_rto), i64::from(RTO_MAX)) as u32;
    }

    /// A new floor for the RTO (`ikcp_nodelay` resets `rx_minrto`): as in the
    /// reference, the current RTO is left alone until the next sample.
    pub(crate) fn set_min_rto(&mut self, min_rto: u32) {
        self.min_rto = min_rto;
    }

    /// Samples taken so far.
    pub(crate) const fn samples(&self) -> u64 {
        self.samples
    }

    /// The current retransmission timeout (`rx_rto`).
    pub(crate) const fn rto(&self) -> u32 {
        self.rto
    }

    /// The timeout arithmetic of a flush now, in `mode`, a segment's RTO bounded by
    /// `max_rto`.
    pub(crate) const fn backoff(&self, mode: NoDelay, max_rto: u32) -> Backoff {
        let pad = match mode {
            NoDelay::Off => self.rto >> 3,
            NoDelay::On | NoDelay::Linear => 0,
        };
        Backoff {
            mode,
            rto: self.rto,
            first_wait: self.rto.wrapping_add(pad),
            max_rto,
        }
    }

    pub(crate) fn srtt(&self) -> u32 {
        self.srtt.clamp(0, i64::from(u32::MAX)) as u32
    }

    pub(crate) fn rttvar(&self) -> u32 {
        self.rttvar.clamp(0, i64::from(u32::MAX)) as u32
    }
}

/// One flush's per-segment timeout arithmetic (spec §9.4), fixed for the flush by
/// [`RttEstimator::backoff`]: what a first transmission waits, and how a segment's own
/// RTO grows each time it times out, which differs by [`NoDelay`] mode.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Backoff {
    mode: NoDelay,
    /// `rx_rto` at the flush.
    rto: u32,
    /// A first transmission's wait: `rto`, plus `rto / 8` with nodelay off (`rtomin`).
    first_wait: u32,
    /// Bound on a segment's RTO ([`Config::max_rto`](crate::Config::max_rto)).
    max_rto: u32,
}

impl Backoff {
    /// The RTO a segment starts with when first transmitted (`rx_rto`).
    #[inline(always)]
    pub(crate) const fn initial_rto(self) -> u32 {
        self.rto
    }

    /// How long a first transmission waits before it times out.
    #[inline(always)]
    pub(crate) const fn first_wait(self) -> u32 {
        self.first_wait
    }

    /// The RTO of a segment whose timeout fired, `rto` being its current one: at least
    /// doubled with nodelay off, ×1.5 with it on, `+ rx_rto / 2` in linear mode, and
    /// never above `max_rto`.
    #[inline(always)]
    pub(crate) fn after_timeout(self, rto: u32) -> u32 {
        let grow = match self.mode {
            NoDelay::Off => rto.max(self.rto),
            NoDelay::On => rto / 2,
            NoDelay::Linear => self.rto / 2,
        };
        rto.saturating_add(grow).min(self.max_rto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_initialises_then_smooths() {
        let mut e = RttEstimator::new(100);
        assert_eq!(e.rto(), 200);
        e.on_sample(80, 10);
        // srtt 80, rttvar 40, rto = 80 + max(10, 160) = 240
        assert_eq!((e.srtt(), e.rttvar(), e.rto()), (80, 40, 240));
        e.on_sample(120, 10);
        // rttvar = (120 + 40) / 4 = 40, srtt = (560 + 120) / 8 = 85, rto = 85 + 160
        assert_eq!((e.srtt(), e.rttvar(), e.rto()), (85, 40, 245));
    }

    #[test]
    fn rto_is_clamped_to_min_and_max() {
        let mut e = RttEstimator::new(100);
        e.on_sample(2, 10);
        assert_eq!(e.rto(), 100);
        let mut e = RttEstimator::new(30);
        e.on_sample(i32::MAX as u32, 10);
        assert_eq!(e.rto(), RTO_MAX);
        e.on_sample(i32::MAX as u32, 10);
        assert_eq!(e.rto(), RTO_MAX);
    }

    #[test]
    fn zero_first_sample_leaves_the_estimator_uninitialised() {
        let mut e = RttEstimator::new(30);
        e.on_sample(0, 10);
        assert_eq!(e.srtt(), 0);
        e.on_sample(50, 10);
        assert_eq!((e.srtt(), e.rttvar()), (50, 25));
    }

    /// An estimator whose `rx_rto` is `rto`: one sample of `rto / 3` (rttvar `rto / 6`,
    /// so rto = rto / 3 + 4 * rto / 6 for multiples of 6).
    fn estimator_at(rto: u32) -> RttEstimator {
        let mut e = RttEstimator::new(10);
        e.on_sample(rto / 3, 10);
        assert_eq!(e.rto(), rto);
        e
    }

    #[test]
    fn first_transmission_waits_an_eighth_more_only_with_nodelay_off() {
        let e = estimator_at(240);
        let off = e.backoff(NoDelay::Off, 60_000);
        assert_eq!((off.initial_rto(), off.first_wait()), (240, 270));
        for mode in [NoDelay::On, NoDelay::Linear] {
            let b = e.backoff(mode, 60_000);
            assert_eq!((b.initial_rto(), b.first_wait()), (240, 240));
        }
    }

    #[test]
    fn timeouts_grow_the_segment_rto_per_mode() {
        let e = estimator_at(300);
        let grown = |mode, from: u32, n: usize| {
            let b = e.backoff(mode, 60_000);
            let mut rto = from;
            (0..n)
                .map(|_| {
                    rto = b.after_timeout(rto);
                    rto
                })
                .collect::<alloc::vec::Vec<_>>()
        };
        // Off: rto += max(rto, rx_rto), so a small segment RTO jumps by rx_rto first.
        assert_eq!(grown(NoDelay::Off, 120, 3), [420, 840, 1680]);
        // On: ×1.5, truncating.
        assert_eq!(grown(NoDelay::On, 301, 3), [451, 676, 1014]);
        // Linear: + rx_rto / 2 each time.
        assert_eq!(grown(NoDelay::Linear, 300, 3), [450, 600, 750]);
    }

    #[test]
    fn timeout_growth_stops_at_max_rto_and_never_wraps() {
        let e = estimator_at(300);
        let b = e.backoff(NoDelay::Off, 1_000);
        assert_eq!(b.after_timeout(600), 1_000);
        assert_eq!(b.after_timeout(1_000), 1_000);
        let b = e.backoff(NoDelay::On, u32::MAX);
        assert_eq!(b.after_timeout(u32::MAX - 1), u32::MAX);
    }
}
