//! Admission control's verdict: whether the event loop is too busy to take a new user,
//! and why. Three signals, any suffices: the loop works nearly all the time
//! ([`busy_load`](super::ChatServerConfig::busy_load)), it serves its timers late
//! ([`busy_lag`](super::ChatServerConfig::busy_lag)), or too much of what it sends is
//! retransmission ([`busy_retransmits`](super::ChatServerConfig::busy_retransmits)).
//! The first comes earliest: a loop at its capacity still serves its users well, and
//! one user more would start the queueing that the other two see.
//! The second fires where the first does not: a loop at its capacity reads ACKs late,
//! its sessions retransmit what was not lost and deliveries are lost, while each
//! timer, once the loop gets to it, still fires within the lag limit.

use std::fmt;
use std::time::Duration;

use super::ChatServerConfig;

/// Why a new user is refused as busy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Busy {
    /// The loop works this share of the time.
    Loaded(f64),
    /// The loop serves its timers this late.
    Behind(Duration),
    /// This share of the loop's sending is retransmission.
    Retransmitting(f64),
}

impl Busy {
    /// The verdict of `config`'s limits on a loop that works `load` of the time, is
    /// `lag` behind and whose sending is `retransmit_share` retransmission; `None`:
    /// take the user.
    pub(crate) fn judge(
        config: &ChatServerConfig,
        load: f64,
        lag: Duration,
        retransmit_share: f64,
    ) -> Option<Self> {
        if config.busy_load.is_some_and(|limit| load > limit) {
            return Some(Self::Loaded(load));
        }
        if config.busy_lag.is_some_and(|limit| lag > limit) {
            return Some(Self::Behind(lag));
        }
        if config
            .busy_retransmits
            .is_some_and(|limit| retransmit_share > limit)
        {
            return Some(Self::Retransmitting(retransmit_share));
        }
        None
    }
}

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Loaded(share) => {
                write!(f, "its event loop works {:.0}% of the time", share * 100.0)
            }
            Self::Behind(lag) => write!(f, "its event loop is {} ms behind", lag.as_millis()),
            Self::Retransmitting(share) => write!(
                f,
                "{:.0}% of what its event loop sends is retransmission",
                share * 100.0
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use kcp_net::Preset;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn either_signal_refuses_and_none_set_never_does() {
        let mut config = ChatServerConfig::new(Preset::Fast);
        config.busy_load = Some(0.9);
        config.busy_lag = Some(200 * MS);
        config.busy_retransmits = Some(0.1);
        assert_eq!(Busy::judge(&config, 0.5, 150 * MS, 0.05), None);
        assert_eq!(
            Busy::judge(&config, 0.9, 150 * MS, 0.1),
            None,
            "at the limits"
        );
        let verdict = Busy::judge(&config, 0.95, 150 * MS, 0.05);
        assert_eq!(verdict, Some(Busy::Loaded(0.95)));
        assert_eq!(
            verdict.unwrap().to_string(),
            "its event loop works 95% of the time"
        );
        assert_eq!(
            Busy::judge(&config, 0.5, 250 * MS, 0.0),
            Some(Busy::Behind(250 * MS))
        );
        // The overload the lag missed: timers on time, 18% retransmitted.
        let verdict = Busy::judge(&config, 0.5, 150 * MS, 0.18);
        assert_eq!(verdict, Some(Busy::Retransmitting(0.18)));
        assert_eq!(
            verdict.unwrap().to_string(),
            "18% of what its event loop sends is retransmission"
        );
        config.busy_load = None;
        config.busy_lag = None;
        config.busy_retransmits = None;
        assert_eq!(Busy::judge(&config, 1.0, 10_000 * MS, 5.0), None);
    }
}
