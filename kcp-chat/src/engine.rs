//! Engine settings as an operator gives them: a preset, then kcptun's manual knobs
//! (`--mtu`, `--sndwnd`, `--rcvwnd`, `--nodelay`, `--interval`, `--resend`, `--nc`)
//! applied on top of it.
//!
//! The knobs are checked by [`kcp_net::kcp_core::Config::validate`], so the ranges and
//! the error texts are the engine's own.
//!
//! ```
//! use kcp_chat::engine::EngineArgs;
//!
//! let mut args = EngineArgs::default();
//! args.mtu = Some(1200);
//! args.sndwnd = Some(256);
//! let config = args.config().unwrap();
//! assert_eq!((config.mtu, config.snd_wnd, config.interval), (1200, 256, 10));
//! assert_eq!(args.to_string(), "fast, mtu 1200, sndwnd 256");
//!
//! args.rcvwnd = Some(16);
//! assert!(args.config().unwrap_err().to_string().contains("receive window 16"));
//! ```

use std::fmt;

use kcp_net::Preset;
use kcp_net::kcp_core::{Config, ConfigError, NoDelay};
use serde::{Deserialize, Serialize};

/// A preset and the knobs changed on top of it. Also the engine flags of every
/// `kcp-chat` command (`#[command(flatten)]`).
///
/// In a config file (`[engine]`) the keys are the flags' names; a knob not given is
/// absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::Args, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct EngineArgs {
    /// Engine preset: fast, normal or default; the knobs below change it (peers
    /// must agree on the MTU).
    #[arg(long, default_value = "fast")]
    #[serde(with = "crate::serde_text")]
    pub preset: Preset,
    /// Largest datagram, KCP header included, 50..=65535 bytes (presets: 1400).
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<usize>,
    /// Send window in segments, 1..=65535 (presets: 32).
    #[arg(long, value_name = "SEGMENTS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sndwnd: Option<u32>,
    /// Receive window in segments, 128..=65535 (presets: 128).
    #[arg(long, value_name = "SEGMENTS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rcvwnd: Option<u32>,
    /// RTO growth as ikcp_nodelay's first argument: 0 doubles, 1 grows by half,
    /// 2 grows linearly. Also sets the minimum RTO as ikcp does: 100 ms for 0,
    /// 30 ms otherwise (fast: 1).
    #[arg(long, value_name = "0|1|2", value_parser = clap::value_parser!(u8).range(0..=2))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodelay: Option<u8>,
    /// Engine tick in ms, 10..=5000 (fast: 10, normal: 40, default: 100).
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<u32>,
    /// Fast retransmit after this many later segments were acknowledged; 0 turns
    /// it off (fast: 2, others: 0).
    #[arg(long, value_name = "SKIPS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resend: Option<u32>,
    /// 1 turns the congestion window off, 0 keeps it (fast: 1, others: 0).
    #[arg(long, value_name = "0|1", value_parser = clap::value_parser!(u8).range(0..=1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nc: Option<u8>,
}

impl EngineArgs {
    /// Arguments for `preset` with no knob changed.
    pub const fn preset(preset: Preset) -> Self {
        Self {
            preset,
            mtu: None,
            sndwnd: None,
            rcvwnd: None,
            nodelay: None,
            interval: None,
            resend: None,
            nc: None,
        }
    }

    /// The preset's engine configuration with the knobs applied, validated.
    ///
    /// # Errors
    /// The engine's [`ConfigError`] for a knob out of its range.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut config = self.preset.config();
        if let Some(nodelay) = self.nodelay {
            let nodelay = match nodelay {
                0 => NoDelay::Off,
                1 => NoDelay::On,
                _ => NoDelay::Linear,
            };
            // ikcp_nodelay's own reset of the minimum RTO, nothing else changed.
            let (interval, resend, nc) = (
                config.interval,
                config.fast_resend,
                !config.congestion_control,
            );
            config = config.with_nodelay(nodelay, interval, resend, nc);
        }
        config.mtu = self.mtu.unwrap_or(config.mtu);
        config.snd_wnd = self.sndwnd.unwrap_or(config.snd_wnd);
        config.rcv_wnd = self.rcvwnd.unwrap_or(config.rcv_wnd);
        config.interval = self.interval.unwrap_or(config.interval);
        config.fast_resend = self.resend.unwrap_or(config.fast_resend);
        if let Some(nc) = self.nc {
            config.congestion_control = nc == 0;
        }
        config.validate()?;
        Ok(config)
    }

    /// The knobs given, as `(flag, value)` pairs in flag order.
    fn knobs(&self) -> impl Iterator<Item = (&'static str, u64)> {
        let to = |v: Option<u32>| v.map(u64::from);
        [
            ("mtu", self.mtu.map(|m| m as u64)),
            ("sndwnd", to(self.sndwnd)),
            ("rcvwnd", to(self.rcvwnd)),
            ("nodelay", self.nodelay.map(u64::from)),
            ("interval", to(self.interval)),
            ("resend", to(self.resend)),
            ("nc", self.nc.map(u64::from)),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
    }
}

impl From<Preset> for EngineArgs {
    fn from(preset: Preset) -> Self {
        Self::preset(preset)
    }
}

impl fmt::Display for EngineArgs {
    /// The preset, then each knob given: `fast, mtu 1200, nc 0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.preset)?;
        for (name, value) in self.knobs() {
            write!(f, ", {name} {value}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_knob_is_the_preset() {
        for preset in [Preset::Fast, Preset::Normal, Preset::Default] {
            assert_eq!(EngineArgs::preset(preset).config(), Ok(preset.config()));
            assert_eq!(EngineArgs::preset(preset).to_string(), preset.to_string());
        }
    }

    #[test]
    fn knobs_apply_on_top_of_the_preset() {
        let args = EngineArgs {
            mtu: Some(1200),
            sndwnd: Some(512),
            rcvwnd: Some(1024),
            nodelay: Some(0),
            interval: Some(20),
            resend: Some(0),
            nc: Some(0),
            ..EngineArgs::preset(Preset::Fast)
        };
        let config = args.config().unwrap();
        assert_eq!(config.mtu, 1200);
        assert_eq!((config.snd_wnd, config.rcv_wnd), (512, 1024));
        assert_eq!(config.nodelay, NoDelay::Off);
        assert_eq!(
            config.min_rto, 100,
            "ikcp_nodelay(0, ..) resets the min RTO"
        );
        assert_eq!((config.interval, config.fast_resend), (20, 0));
        assert!(config.congestion_control);
        // The knobs not given keep the preset's values.
        assert_eq!(config.dead_link, Config::fast().dead_link);
        assert_eq!(
            args.to_string(),
            "fast, mtu 1200, sndwnd 512, rcvwnd 1024, nodelay 0, interval 20, resend 0, nc 0"
        );
    }

    #[test]
    fn nodelay_alone_keeps_the_other_nodelay_knobs() {
        let args = EngineArgs {
            nodelay: Some(2),
            ..EngineArgs::preset(Preset::Normal)
        };
        let config = args.config().unwrap();
        assert_eq!(config.nodelay, NoDelay::Linear);
        assert_eq!(config.min_rto, 30);
        assert_eq!(config.interval, 40);
        assert!(config.congestion_control);
    }

    #[test]
    fn out_of_range_knobs_are_the_engines_errors() {
        let bad = |args: EngineArgs| args.config().unwrap_err();
        let fast = EngineArgs::preset(Preset::Fast);
        let cases = [
            (
                EngineArgs {
                    mtu: Some(30),
                    ..fast
                },
                ConfigError::Mtu(30),
            ),
            (
                EngineArgs {
                    sndwnd: Some(0),
                    ..fast
                },
                ConfigError::SendWindow(0),
            ),
            (
                EngineArgs {
                    rcvwnd: Some(100_000),
                    ..fast
                },
                ConfigError::ReceiveWindow(100_000),
            ),
            (
                EngineArgs {
                    interval: Some(5),
                    ..fast
                },
                ConfigError::Interval(5),
            ),
        ];
        for (args, expected) in cases {
            assert_eq!(bad(args), expected);
        }
    }
}
