//! How a link decides to lose a datagram.

use alloc::vec::Vec;

use super::rng::SimRng;

/// A loss model. Each direction of a link owns one, with its own state.
#[derive(Clone, Debug, PartialEq)]
pub enum LossModel {
    /// Nothing is lost.
    None,
    /// Each datagram is lost independently with probability `rate` (0.0..=1.0).
    Random {
        /// Loss probability.
        rate: f64,
    },
    /// Bursty loss, the two-state Gilbert–Elliott model: the link is `Good` or `Bad`,
    /// switches state before each datagram with the given probabilities, and loses with
    /// the state's own probability.
    GilbertElliott {
        /// Probability of moving Good → Bad before a datagram.
        good_to_bad: f64,
        /// Probability of moving Bad → Good before a datagram.
        bad_to_good: f64,
        /// Loss probability while Good.
        loss_good: f64,
        /// Loss probability while Bad.
        loss_bad: f64,
    },
    /// The C reference test's sampler (`shared/reference-scenario.md`): a bag of the
    /// values 0..100 drawn without replacement and refilled when empty; a datagram is
    /// lost if its value is below `lost_per_100`. Exactly `lost_per_100` of every 100
    /// consecutive datagrams are lost.
    Bag {
        /// Datagrams lost per 100.
        lost_per_100: u8,
    },
}

impl LossModel {
    /// Average long-run loss rate of the model.
    pub fn mean_rate(&self) -> f64 {
        match *self {
            Self::None => 0.0,
            Self::Random { rate } => rate,
            Self::GilbertElliott {
                good_to_bad,
                bad_to_good,
                loss_good,
                loss_bad,
            } => {
                let total = good_to_bad + bad_to_good;
                if total == 0.0 {
                    return loss_good;
                }
                let bad_share = good_to_bad / total;
                loss_good * (1.0 - bad_share) + loss_bad * bad_share
            }
            Self::Bag { lost_per_100 } => f64::from(lost_per_100.min(100)) / 100.0,
        }
    }
}

/// Which kind of loss dropped a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LossKind {
    Random,
    Burst,
}

/// The per-direction state of a [`LossModel`].
#[derive(Clone, Debug)]
pub(crate) struct LossState {
    model: LossModel,
    /// `Random`'s rate, ready to draw.
    random: Chance,
    bad: bool,
    bag: Vec<u8>,
}

impl LossState {
    pub(crate) fn new(model: LossModel) -> Self {
        let random = match model {
            LossModel::Random { rate } => Chance::new(rate),
            _ => Chance::Never,
        };
        Self {
            model,
            random,
            bad: false,
            bag: Vec::new(),
        }
    }

    /// Decides the fate of one datagram: `Some(kind)` if it is lost.
    pub(crate) fn draw(&mut self, rng: &mut SimRng) -> Option<LossKind> {
        match self.model {
            LossModel::None => None,
            LossModel::Random { .. } => self.random.draw(rng).then_some(LossKind::Random),
            LossModel::GilbertElliott {
                good_to_bad,
                bad_to_good,
                loss_good,
                loss_bad,
            } => {
                let flip = if self.bad { bad_to_good } else { good_to_bad };
                if chance(rng, flip) {
                    self.bad = !self.bad;
                }
                let (rate, kind) = if self.bad {
                    (loss_bad, LossKind::Burst)
                } else {
                    (loss_good, LossKind::Random)
                };
                chance(rng, rate).then_some(kind)
            }
            LossModel::Bag { lost_per_100 } => {
                if self.bag.is_empty() {
                    self.bag.extend(0..100u8);
                }
                let index = (rng.next_u64() % self.bag.len() as u64) as usize;
                let value = self.bag.swap_remove(index);
                (value < lost_per_100).then_some(LossKind::Random)
            }
        }
    }
}

/// `true` with probability `p` (clamped to 0..=1).
#[inline(always)]
pub(crate) fn chance(rng: &mut SimRng, p: f64) -> bool {
    Chance::new(p).draw(rng)
}

/// A probability made ready to draw: a uniform 53-bit integer below a threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Chance {
    /// Probability 0 or less: never, and nothing is drawn.
    Never,
    /// Probability 1 or more: always, and nothing is drawn.
    Always,
    /// `k < threshold` for a uniform `k` in `0..2^53`, which is `k / 2^53 < p` exactly
    /// (scaling by a power of two is exact), so a NaN, whose threshold is 0, is
    /// drawn and never true.
    Below(u64),
}

impl Chance {
    /// The chance of probability `p`.
    #[inline(always)]
    pub(crate) fn new(p: f64) -> Self {
        if p <= 0.0 {
            Self::Never
        } else if p >= 1.0 {
            Self::Always
        } else {
            // The ceiling of `p * 2^53` (`f64::ceil` needs `std`): below 2^53, the
            // truncation is exact, so comparing it back says if it was whole.
            let scaled = p * (1u64 << 53) as f64;
            let whole = scaled as u64;
            Self::Below(whole + u64::from((whole as f64) < scaled))
        }
    }

    /// Draws it.
    #[inline(always)]
    pub(crate) fn draw(self, rng: &mut SimRng) -> bool {
        match self {
            Self::Never => false,
            Self::Always => true,
            Self::Below(threshold) => (rng.next_u64() >> 11) < threshold,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn losses(model: LossModel, n: usize, seed: u64) -> Vec<bool> {
        let mut rng = SimRng::seed_from_u64(seed);
        let mut state = LossState::new(model);
        (0..n).map(|_| state.draw(&mut rng).is_some()).collect()
    }

    #[test]
    fn random_loss_converges_to_its_rate() {
        let lost = losses(LossModel::Random { rate: 0.1 }, 100_000, 1);
        let rate = lost.iter().filter(|&&l| l).count() as f64 / lost.len() as f64;
        assert!((rate - 0.1).abs() < 0.005, "{rate}");
        assert!(losses(LossModel::None, 1000, 1).iter().all(|&l| !l));
    }

    #[test]
    fn bag_loses_exactly_its_share_of_every_hundred() {
        let lost = losses(LossModel::Bag { lost_per_100: 5 }, 10_000, 9);
        for chunk in lost.chunks(100) {
            assert_eq!(chunk.iter().filter(|&&l| l).count(), 5);
        }
    }

    #[test]
    fn gilbert_elliott_is_bursty() {
        let model = LossModel::GilbertElliott {
            good_to_bad: 0.01,
            bad_to_good: 0.2,
            loss_good: 0.0,
            loss_bad: 0.8,
        };
        let lost = losses(model.clone(), 200_000, 3);
        let rate = lost.iter().filter(|&&l| l).count() as f64 / lost.len() as f64;
        assert!((rate - model.mean_rate()).abs() < 0.01, "{rate}");
        // P(loss | previous lost) is far above the mean: losses come in bursts.
        let pairs = lost.windows(2).filter(|w| w[0]).count() as f64;
        let both = lost.windows(2).filter(|w| w[0] && w[1]).count() as f64;
        assert!(both / pairs > 3.0 * rate, "{} vs {rate}", both / pairs);
    }

    #[test]
    fn a_threshold_draws_exactly_what_the_float_comparison_did() {
        for p in [1e-9, 0.01, 0.1, 0.3, 0.5, 0.999_999, 1.0 / 3.0] {
            let Chance::Below(threshold) = Chance::new(p) else {
                panic!("{p} is a proper probability");
            };
            // The boundary: k / 2^53 < p holds for k = threshold - 1, not threshold.
            let scaled = |k: u64| (k as f64) * (1.0 / (1u64 << 53) as f64);
            assert!(scaled(threshold - 1) < p, "{p}");
            assert!(scaled(threshold) >= p, "{p}");
        }
        assert_eq!(Chance::new(0.0), Chance::Never);
        assert_eq!(Chance::new(1.5), Chance::Always);
        assert_eq!(Chance::new(f64::NAN), Chance::Below(0));
    }

    #[test]
    fn same_seed_same_losses_other_seed_other_losses() {
        let m = LossModel::Random { rate: 0.3 };
        assert_eq!(losses(m.clone(), 500, 42), losses(m.clone(), 500, 42));
        assert_ne!(losses(m.clone(), 500, 42), losses(m, 500, 43));
    }
}
