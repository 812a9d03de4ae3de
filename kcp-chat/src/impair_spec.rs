//! Parses an impairment spec such as `loss=0.1,delay=40ms,jitter=20ms,dup=0.01,seed=7`
//! into a [`kcp_net::impair::ImpairConfig`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use kcp_net::impair::{ImpairConfig, LinkConfig, LossModel};

/// A link impairment as written on the command line.
///
/// Keys, all optional, separated by commas:
///
/// | key | value | meaning |
/// |---|---|---|
/// | `loss` | `0.1` or `10%` | each datagram lost with this probability |
/// | `delay` | `40ms` | mean one-way delay |
/// | `jitter` | `20ms` | the delay varies uniformly by ± this much (never below 0) |
/// | `dup` | `0.01` or `1%` | each datagram duplicated with this probability |
/// | `reorder` | `0.05` or `5%` | each datagram held back an extra `delay` |
/// | `seed` | `7` | seed of the random choices (default 1) |
///
/// ```
/// use kcp_chat::impair_spec::ImpairSpec;
/// let spec: ImpairSpec = "loss=10%,delay=30ms,jitter=20ms".parse().unwrap();
/// let config = spec.to_config();
/// assert_eq!(config.link.delay_ms, 10); // 30 ± 20 ms: 10 to 50 ms
/// assert_eq!(config.link.jitter_ms, 40);
/// assert!("loss=2".parse::<ImpairSpec>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ImpairSpec {
    /// Loss probability, 0..=1.
    pub loss: f64,
    /// Mean one-way delay.
    pub delay: Duration,
    /// ± spread of the delay.
    pub jitter: Duration,
    /// Duplication probability, 0..=1.
    pub duplicate: f64,
    /// Reordering probability, 0..=1.
    pub reorder: f64,
    /// Seed.
    pub seed: u64,
}

impl Default for ImpairSpec {
    fn default() -> Self {
        Self {
            loss: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            duplicate: 0.0,
            reorder: 0.0,
            seed: 1,
        }
    }
}

/// Why an impairment spec does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImpairSpecError {
    /// A part without `=`.
    #[error("{0:?} is not key=value (keys: loss, delay, jitter, dup, reorder, seed)")]
    NotKeyValue(String),
    /// A key we do not know.
    #[error("unknown key {0:?} (keys: loss, delay, jitter, dup, reorder, seed)")]
    UnknownKey(String),
    /// A probability that is not a number in 0..=1 (or a percentage 0%..=100%).
    #[error("{key}={value}: expected a probability like 0.1 or 10%")]
    BadProbability {
        /// The key.
        key: String,
        /// The value given.
        value: String,
    },
    /// A duration that does not parse.
    #[error("{key}={value}: expected a duration like 40ms")]
    BadDuration {
        /// The key.
        key: String,
        /// The value given.
        value: String,
    },
    /// A seed that is not an unsigned integer.
    #[error("seed={0}: expected an unsigned integer")]
    BadSeed(String),
}

fn probability(key: &str, value: &str) -> Result<f64, ImpairSpecError> {
    let bad = || ImpairSpecError::BadProbability {
        key: key.to_owned(),
        value: value.to_owned(),
    };
    let p = match value.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map_err(|_| bad())? / 100.0,
        None => value.parse::<f64>().map_err(|_| bad())?,
    };
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(bad())
    }
}

fn duration(key: &str, value: &str) -> Result<Duration, ImpairSpecError> {
    humantime::parse_duration(value).map_err(|_| ImpairSpecError::BadDuration {
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

impl FromStr for ImpairSpec {
    type Err = ImpairSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut spec = Self::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| ImpairSpecError::NotKeyValue(part.to_owned()))?;
            let (key, value) = (key.trim(), value.trim());
            match key {
                "loss" => spec.loss = probability(key, value)?,
                "dup" | "duplicate" => spec.duplicate = probability(key, value)?,
                "reorder" => spec.reorder = probability(key, value)?,
                "delay" => spec.delay = duration(key, value)?,
                "jitter" => spec.jitter = duration(key, value)?,
                "seed" => {
                    spec.seed = value
                        .parse()
                        .map_err(|_| ImpairSpecError::BadSeed(value.to_owned()))?;
                }
                _ => return Err(ImpairSpecError::UnknownKey(key.to_owned())),
            }
        }
        Ok(spec)
    }
}

impl fmt::Display for ImpairSpec {
    /// The spec as it parses back: `loss=0.1,delay=30ms,jitter=20ms,dup=0,reorder=0,seed=7`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "loss={},delay={},jitter={},dup={},reorder={},seed={}",
            self.loss,
            humantime::format_duration(self.delay),
            humantime::format_duration(self.jitter),
            self.duplicate,
            self.reorder,
            self.seed
        )
    }
}

crate::serde_text::serde_as_text!(ImpairSpec);

impl ImpairSpec {
    /// The `kcp-net` impairment: delay uniform in `delay ± jitter` (clamped at 0).
    pub fn to_config(&self) -> ImpairConfig {
        self.to_config_seeded(self.seed)
    }

    /// As [`to_config`](Self::to_config) with another seed (one per endpoint, so the
    /// two directions of a link do not lose in lockstep).
    pub fn to_config_seeded(&self, seed: u64) -> ImpairConfig {
        let delay = u64::try_from(self.delay.as_millis()).unwrap_or(u64::MAX);
        let jitter = u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX);
        let below = jitter.min(delay);
        let link = LinkConfig {
            loss: if self.loss > 0.0 {
                LossModel::Random { rate: self.loss }
            } else {
                LossModel::None
            },
            delay_ms: delay - below,
            jitter_ms: below.saturating_add(jitter),
            duplicate: self.duplicate,
            reorder: self.reorder,
            reorder_ms: delay.max(1),
            ..LinkConfig::default()
        };
        ImpairConfig::new(link, seed)
    }

    /// `loss 10%, delay 30±20 ms`-style summary.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "loss {:.1}%, delay {}±{} ms",
            self.loss * 100.0,
            self.delay.as_millis(),
            self.jitter.as_millis()
        );
        if self.duplicate > 0.0 {
            out.push_str(&format!(", dup {:.1}%", self.duplicate * 100.0));
        }
        if self.reorder > 0.0 {
            out.push_str(&format!(", reorder {:.1}%", self.reorder * 100.0));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses() {
        let spec: ImpairSpec = "loss=0.1, delay=40ms,jitter=20ms,dup=1%,reorder=0.5,seed=7"
            .parse()
            .unwrap();
        assert_eq!(
            spec,
            ImpairSpec {
                loss: 0.1,
                delay: Duration::from_millis(40),
                jitter: Duration::from_millis(20),
                duplicate: 0.01,
                reorder: 0.5,
                seed: 7,
            }
        );
        let config = spec.to_config();
        assert_eq!(config.seed, 7);
        assert_eq!(config.link.loss, LossModel::Random { rate: 0.1 });
        assert_eq!((config.link.delay_ms, config.link.jitter_ms), (20, 40));
        assert_eq!("".parse::<ImpairSpec>().unwrap(), ImpairSpec::default());
        // The text form parses back to the same spec.
        assert_eq!(spec.to_string().parse::<ImpairSpec>().unwrap(), spec);
    }

    #[test]
    fn jitter_larger_than_delay_never_goes_negative() {
        let spec: ImpairSpec = "delay=10ms,jitter=30ms".parse().unwrap();
        let link = spec.to_config().link;
        assert_eq!((link.delay_ms, link.jitter_ms), (0, 40));
        let none = ImpairSpec::default().to_config().link;
        assert_eq!(none.loss, LossModel::None);
        assert_eq!((none.delay_ms, none.jitter_ms), (0, 0));
    }

    #[test]
    fn errors_name_the_problem() {
        let err = |s: &str| s.parse::<ImpairSpec>().unwrap_err().to_string();
        assert!(err("loss").contains("not key=value"));
        assert!(err("lose=0.1").contains("unknown key \"lose\""));
        assert!(err("loss=1.5").contains("probability"));
        assert!(err("loss=150%").contains("probability"));
        assert!(err("delay=40").contains("duration"));
        assert!(err("seed=-1").contains("unsigned"));
    }
}
