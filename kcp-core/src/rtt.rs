//! Round-trip time and retransmission timeout estimation (spec §8).

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
}

impl RttEstimator {
    pub(crate) const fn new(min_rto: u32) -> Self {
        Self {
            srtt: 0,
            rttvar: 0,
            rto: RTO_DEFAULT,
            min_rto,
        }
    }

    /// Feeds one sample (`now - echoed ts`, ≥ 0). `interval` floors the variance term.
    pub(crate) fn on_sample(&mut self, rtt: u32, interval: u32) {
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

    /// The current retransmission timeout (`rx_rto`).
    pub(crate) const fn rto(&self) -> u32 {
        self.rto
    }

    pub(crate) fn srtt(&self) -> u32 {
        self.srtt.clamp(0, i64::from(u32::MAX)) as u32
    }

    pub(crate) fn rttvar(&self) -> u32 {
        self.rttvar.clamp(0, i64::from(u32::MAX)) as u32
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
}
