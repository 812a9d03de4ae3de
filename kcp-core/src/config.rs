//! Engine configuration: every knob of the reference, named, validated, with presets.

use crate::error::ConfigError;
use crate::segment::HEADER_LEN;

/// How retransmission timeouts grow and how low they may go (`ikcp_nodelay`'s first
/// argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum NoDelay {
    /// `0`: a timed-out segment's RTO at least doubles, and a first transmission waits an
    /// extra `rto / 8`. The reference's default.
    #[default]
    Off,
    /// `1`: a timed-out segment's RTO grows by half of itself (×1.5).
    On,
    /// `2`: a timed-out segment's RTO grows by half of the current smoothed RTO (linear).
    Linear,
}

/// Configuration of one [`Kcp`](crate::Kcp) engine.
///
/// Start from a preset and change what you need; [`Kcp::new`](crate::Kcp::new)
/// validates the result and refuses out-of-range values instead of clamping them.
///
/// ```
/// use kcp_core::{Config, NoDelay};
/// let mut config = Config::fast();
/// config.snd_wnd = 128;
/// config.mtu = 1200;
/// assert_eq!(config.nodelay, NoDelay::On);
/// assert!(config.validate().is_ok());
/// ```
///
/// | preset | nodelay | interval | fast resend | congestion control | min RTO |
/// |---|---|---|---|---|---|
/// | [`Config::default`] | off | 100 ms | off | on | 100 ms |
/// | [`Config::normal`] | off | 40 ms | off | on | 100 ms |
/// | [`Config::fast`] | on | 10 ms | 2 | off | 30 ms |
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// RTO growth mode; see [`NoDelay`].
    pub nodelay: NoDelay,
    /// Flush interval in ms, 10..=5000. [`Kcp::update`](crate::Kcp::update) flushes on
    /// this grid; it is also the floor of the RTO's variance term.
    pub interval: u32,
    /// Fast retransmit after this many later segments were acknowledged (counted at most
    /// once per input datagram); 0 turns fast retransmit off.
    pub fast_resend: u32,
    /// A segment is fast-retransmitted only while it has been sent at most this many
    /// times; 0 means no limit. Reference default 5.
    pub fast_limit: u32,
    /// `true` (the reference's default) lets the congestion window limit the flight;
    /// `false` is `ikcp_nodelay`'s `nc = 1`.
    pub congestion_control: bool,
    /// Send window in segments, 1..=65535.
    pub snd_wnd: u32,
    /// Receive window in segments, 128..=65535. Bounds what a peer can make us hold:
    /// at most `rcv_wnd` out-of-order segments plus `rcv_wnd` undelivered ones, each at
    /// most `mtu` bytes.
    pub rcv_wnd: u32,
    /// Largest datagram emitted, header included, 50..=65535 bytes.
    pub mtu: usize,
    /// Lower bound of the RTO in ms (`rx_minrto`), 1..=60000.
    pub min_rto: u32,
    /// Upper bound of one segment's RTO in ms after repeated timeouts. The reference
    /// lets it grow without bound (200 ms × 2^19 ≈ 29 h by the 20th try, and past 2^31 ms
    /// the wrapping comparison makes it fire at once); we cap it. Default 60000.
    /// [`Config::MAX_RTO_LIMIT`] disables the cap in practice.
    pub max_rto: u32,
    /// Stream mode: no message boundaries; `send` tops up the last queued segment.
    pub stream: bool,
    /// A segment sent this many times marks the link dead ([`Kcp::is_dead`](crate::Kcp::is_dead)).
    /// Default 20. The engine keeps retransmitting; the host decides.
    pub dead_link: u32,
    /// ikcp 1.7.1's `IKCP_FASTACK_CONSERVE`: an ACK only counts towards a segment's fast
    /// retransmit if it acknowledges a transmission sent no earlier than that segment's
    /// latest one. `true` by default, as in the reference `kcp-sys` bundles.
    pub fastack_conserve: bool,
    /// Most segments the send queue (data accepted by `send` but not yet in flight) may
    /// hold; `send` beyond it returns [`SendError::QueueFull`](crate::SendError::QueueFull).
    /// The reference has no limit. Default 8192 (about 11 MB at the default MTU).
    pub send_queue_limit: usize,
    /// The first sequence number sent and expected. Both peers must agree; the
    /// reference always starts at 0, so keep the default when talking to it. Tests use
    /// a value just below `u32::MAX` to cross the wrap mid-transfer.
    pub initial_sn: u32,
}

impl Config {
    /// The largest [`Config::max_rto`] accepted: 2^30 - 1 ms, far enough below the
    /// wrapping clock's 2^31 ms horizon to order correctly.
    pub const MAX_RTO_LIMIT: u32 = (1 << 30) - 1;

    /// The reference's `ikcp_create` defaults: nodelay off, interval 100 ms, no fast
    /// resend, congestion control on, windows 32/128, MTU 1400, min RTO 100 ms.
    pub const fn reference_default() -> Self {
        Self {
            nodelay: NoDelay::Off,
            interval: 100,
            fast_resend: 0,
            fast_limit: 5,
            congestion_control: true,
            snd_wnd: 32,
            rcv_wnd: 128,
            mtu: 1400,
            min_rto: 100,
            max_rto: 60_000,
            stream: false,
            dead_link: 20,
            fastack_conserve: true,
            send_queue_limit: 8192,
            initial_sn: 0,
        }
    }

    /// The reference README's "normal" mode, `ikcp_nodelay(0, 40, 0, 0)`.
    pub const fn normal() -> Self {
        let mut c = Self::reference_default();
        c.interval = 40;
        c
    }

    /// The reference README's "fastest" mode, `ikcp_nodelay(1, 10, 2, 1)`: min RTO 30 ms,
    /// RTO ×1.5 per timeout, fast resend after 2 skips, no congestion window.
    pub const fn fast() -> Self {
        let mut c = Self::reference_default();
        c.nodelay = NoDelay::On;
        c.interval = 10;
        c.fast_resend = 2;
        c.congestion_control = false;
        c.min_rto = 30;
        c
    }

    /// Applies `ikcp_nodelay(nodelay, interval, resend, nc)` as the reference would,
    /// including its reset of `min_rto` to 30 (nodelay on) or 100 ms (off). Unlike the
    /// reference, `interval` is not clamped here; [`Config::validate`] checks it.
    #[must_use]
    pub const fn with_nodelay(
        mut self,
        nodelay: NoDelay,
        interval: u32,
        resend: u32,
        nc: bool,
    ) -> Self {
        self.nodelay = nodelay;
        self.min_rto = match nodelay {
            NoDelay::Off => 100,
            NoDelay::On | NoDelay::Linear => 30,
        };
        self.interval = interval;
        self.fast_resend = resend;
        self.congestion_control = !nc;
        self
    }

    /// The payload bytes of one segment: `mtu - 24`.
    pub const fn mss(&self) -> usize {
        self.mtu - HEADER_LEN
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(50..=65535).contains(&self.mtu) {
            return Err(ConfigError::Mtu(self.mtu));
        }
        if !(10..=5000).contains(&self.interval) {
            return Err(ConfigError::Interval(self.interval));
        }
        if !(1..=65535).contains(&self.snd_wnd) {
            return Err(ConfigError::SendWindow(self.snd_wnd));
        }
        if !(128..=65535).contains(&self.rcv_wnd) {
            return Err(ConfigError::ReceiveWindow(self.rcv_wnd));
        }
        if !(1..=60_000).contains(&self.min_rto) {
            return Err(ConfigError::MinRto(self.min_rto));
        }
        if self.max_rto < self.min_rto || self.max_rto > Self::MAX_RTO_LIMIT {
            return Err(ConfigError::MaxRto(self.max_rto));
        }
        if self.dead_link == 0 {
            return Err(ConfigError::DeadLink);
        }
        if self.send_queue_limit == 0 {
            return Err(ConfigError::SendQueueLimit);
        }
        Ok(())
    }
}

impl Default for Config {
    /// Same as [`Config::reference_default`].
    fn default() -> Self {
        Self::reference_default()
    }
}

/// Builds a [`Config`] in one expression, validated by [`build`](Self::build).
///
/// `Config` is `#[non_exhaustive]`, so outside this crate struct update syntax
/// (`Config { mtu: 1200, ..Config::fast() }`) does not compile; chain setters instead:
///
/// ```
/// use kcp_core::{Config, ConfigBuilder, ConfigError, NoDelay};
///
/// let config = ConfigBuilder::new(Config::fast()).mtu(1200).snd_wnd(256).rcv_wnd(256).build()?;
/// assert_eq!((config.mtu, config.nodelay), (1200, NoDelay::On));
///
/// let refused = Config::builder().nodelay_mode(NoDelay::On, 5, 2, true).build();
/// assert_eq!(refused, Err(ConfigError::Interval(5)));
/// # Ok::<(), ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct ConfigBuilder(Config);

impl Config {
    /// A builder starting from [`Config::reference_default`]; see [`ConfigBuilder`].
    pub const fn builder() -> ConfigBuilder {
        ConfigBuilder(Self::reference_default())
    }
}

impl ConfigBuilder {
    /// A builder starting from `config` (a preset, say).
    pub const fn new(config: Config) -> Self {
        Self(config)
    }

    crate::builder_setters!(Config {
        nodelay: NoDelay,
        interval: u32,
        fast_resend: u32,
        fast_limit: u32,
        congestion_control: bool,
        snd_wnd: u32,
        rcv_wnd: u32,
        mtu: usize,
        min_rto: u32,
        max_rto: u32,
        stream: bool,
        dead_link: u32,
        fastack_conserve: bool,
        send_queue_limit: usize,
        initial_sn: u32,
    });

    /// Applies [`Config::with_nodelay`] (ikcp's `ikcp_nodelay`, which also resets
    /// `min_rto`).
    pub const fn nodelay_mode(
        self,
        nodelay: NoDelay,
        interval: u32,
        resend: u32,
        nc: bool,
    ) -> Self {
        Self(self.0.with_nodelay(nodelay, interval, resend, nc))
    }

    /// The configuration, if [`Config::validate`] accepts it.
    ///
    /// # Errors
    /// The first field out of range, as [`Config::validate`] reports it.
    pub fn build(self) -> Result<Config, ConfigError> {
        self.0.validate()?;
        Ok(self.0)
    }
}

impl From<Config> for ConfigBuilder {
    fn from(config: Config) -> Self {
        Self(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_match_the_reference() {
        for c in [Config::default(), Config::normal(), Config::fast()] {
            assert_eq!(c.validate(), Ok(()));
        }
        assert_eq!(Config::default().mss(), 1376);
        assert_eq!(
            Config::default().with_nodelay(NoDelay::On, 10, 2, true),
            Config::fast()
        );
        assert_eq!(
            Config::default().with_nodelay(NoDelay::Off, 40, 0, false),
            Config::normal()
        );
    }

    #[test]
    fn the_builder_sets_each_field_and_validates() {
        let built = ConfigBuilder::new(Config::fast())
            .mtu(1200)
            .snd_wnd(64)
            .rcv_wnd(256)
            .stream(true)
            .build()
            .unwrap();
        let mut expected = Config::fast();
        (
            expected.mtu,
            expected.snd_wnd,
            expected.rcv_wnd,
            expected.stream,
        ) = (1200, 64, 256, true);
        assert_eq!(built, expected);
        assert_eq!(
            Config::builder()
                .nodelay_mode(NoDelay::On, 10, 2, true)
                .build(),
            Ok(Config::fast())
        );
        assert_eq!(
            Config::builder().rcv_wnd(16).build(),
            Err(ConfigError::ReceiveWindow(16))
        );
    }

    #[test]
    fn out_of_range_values_are_refused_not_clamped() {
        type Change = fn(&mut Config);
        let base = Config::default();
        let cases: [(Change, ConfigError); 9] = [
            (|c| c.mtu = 49, ConfigError::Mtu(49)),
            (|c| c.mtu = 70_000, ConfigError::Mtu(70_000)),
            (|c| c.interval = 5, ConfigError::Interval(5)),
            (|c| c.snd_wnd = 0, ConfigError::SendWindow(0)),
            (|c| c.rcv_wnd = 16, ConfigError::ReceiveWindow(16)),
            (|c| c.rcv_wnd = 65536, ConfigError::ReceiveWindow(65536)),
            (|c| c.min_rto = 0, ConfigError::MinRto(0)),
            (|c| c.dead_link = 0, ConfigError::DeadLink),
            (|c| c.send_queue_limit = 0, ConfigError::SendQueueLimit),
        ];
        for (change, expected) in cases {
            let mut c = base.clone();
            change(&mut c);
            assert_eq!(c.validate(), Err(expected));
        }
        let mut c = base;
        c.max_rto = 50;
        assert_eq!(c.validate(), Err(ConfigError::MaxRto(50)));
    }
}
