//! Live retuning: the reference's `ikcp_setmtu`, `ikcp_wndsize` and `ikcp_nodelay` on
//! a running engine, validated exactly as [`Config`] is by [`Config::validate`].

use crate::config::{Config, NoDelay};
use crate::error::ConfigError;

use super::Kcp;

impl Kcp {
    /// Changes the MTU of a live engine (`ikcp_setmtu`): datagrams are packed up to
    /// `mtu` bytes from the next flush on, and messages sent from now on are cut into
    /// segments of `mtu - 24` bytes. Segments already queued or in flight keep their
    /// size (a datagram holding one larger than the new MTU exceeds it, as in ikcp).
    ///
    /// # Errors
    /// [`ConfigError::Mtu`] outside 50..=65535; nothing changes.
    pub fn set_mtu(&mut self, mtu: usize) -> Result<(), ConfigError> {
        let mut config = self.config.clone();
        config.mtu = mtu;
        self.reconfigure(config)
    }

    /// Changes the send and receive windows, in segments (`ikcp_wndsize`). A smaller
    /// receive window keeps what it holds (the advertised window reads 0 until the
    /// application has taken enough); a larger one is advertised at the next flush.
    ///
    /// # Errors
    /// [`ConfigError::SendWindow`] or [`ConfigError::ReceiveWindow`] for values
    /// [`Config`] refuses (ikcp raises a receive window below 128 to 128 instead);
    /// nothing changes.
    pub fn set_windows(&mut self, snd_wnd: u32, rcv_wnd: u32) -> Result<(), ConfigError> {
        let mut config = self.config.clone();
        (config.snd_wnd, config.rcv_wnd) = (snd_wnd, rcv_wnd);
        self.reconfigure(config)
    }

    /// Changes the retransmission settings (`ikcp_nodelay(nodelay, interval, resend,
    /// nc)`, see [`Config::with_nodelay`]): the RTO growth mode, the flush interval,
    /// the fast-resend threshold and congestion control, and, as ikcp does,
    /// `min_rto` (30 ms with nodelay, else 100 ms; the current RTO follows at the next
    /// RTT sample). The `update` grid takes the new interval from its next step.
    ///
    /// # Errors
    /// [`ConfigError::Interval`] outside 10..=5000 ms (ikcp clamps it silently), or
    /// [`ConfigError::MaxRto`] if `max_rto` is below the new `min_rto`; nothing changes.
    pub fn set_nodelay(
        &mut self,
        nodelay: NoDelay,
        interval: u32,
        resend: u32,
        nc: bool,
    ) -> Result<(), ConfigError> {
        let config = self
            .config
            .clone()
            .with_nodelay(nodelay, interval, resend, nc);
        self.reconfigure(config)
    }

    /// Replaces the configuration of a live engine with `config`, validated as
    /// [`Kcp::new`] validates it. Every knob may change except the two both peers
    /// agreed on at the start, [`Config::stream`] and [`Config::initial_sn`].
    ///
    /// Each change takes effect as in the reference's setters: see
    /// [`set_mtu`](Self::set_mtu), [`set_windows`](Self::set_windows) and
    /// [`set_nodelay`](Self::set_nodelay); a lower `send_queue_limit` refuses sends
    /// until the queue has drained below it, and a lower `min_rto` or `max_rto` bounds
    /// the RTO from the next sample or timeout on.
    ///
    /// # Errors
    /// What [`Config::validate`] returns, or [`ConfigError::Fixed`]; nothing changes.
    pub fn reconfigure(&mut self, config: Config) -> Result<(), ConfigError> {
        config.validate()?;
        if config.stream != self.config.stream {
            return Err(ConfigError::Fixed("stream"));
        }
        if config.initial_sn != self.config.initial_sn {
            return Err(ConfigError::Fixed("initial_sn"));
        }
        self.mss = config.mss();
        self.cc.set_mss(self.mss as u32);
        self.rcv.set_wnd(config.rcv_wnd);
        self.acks.set_window(config.rcv_wnd);
        self.rtt.set_min_rto(config.min_rto);
        if (config.fast_resend, config.fast_limit)
            != (self.config.fast_resend, self.config.fast_limit)
        {
            self.snd.forget_fast_summaries();
        }
        self.out_buf.reserve(config.mtu);
        self.config = config;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_validate_as_config_does_and_change_nothing_on_error() {
        let mut kcp = Kcp::new(1, Config::default()).unwrap();
        let before = kcp.config().clone();
        assert_eq!(kcp.set_mtu(49), Err(ConfigError::Mtu(49)));
        assert_eq!(kcp.set_windows(0, 128), Err(ConfigError::SendWindow(0)));
        assert_eq!(
            kcp.set_windows(32, 127),
            Err(ConfigError::ReceiveWindow(127))
        );
        assert_eq!(
            kcp.set_nodelay(NoDelay::On, 5, 2, true),
            Err(ConfigError::Interval(5))
        );
        let mut stream = before.clone();
        stream.stream = true;
        assert_eq!(kcp.reconfigure(stream), Err(ConfigError::Fixed("stream")));
        let mut sn = before.clone();
        sn.initial_sn = 9;
        assert_eq!(kcp.reconfigure(sn), Err(ConfigError::Fixed("initial_sn")));
        assert_eq!(kcp.config(), &before);

        kcp.set_mtu(576).unwrap();
        kcp.set_windows(64, 256).unwrap();
        kcp.set_nodelay(NoDelay::On, 10, 2, true).unwrap();
        let c = kcp.config();
        assert_eq!((c.mtu, c.mss(), c.snd_wnd, c.rcv_wnd), (576, 552, 64, 256));
        assert_eq!(
            (
                c.nodelay,
                c.interval,
                c.fast_resend,
                c.congestion_control,
                c.min_rto
            ),
            (NoDelay::On, 10, 2, false, 30)
        );
    }

    #[test]
    fn a_new_mtu_cuts_the_next_messages() {
        let mut kcp = Kcp::new(1, Config::fast()).unwrap();
        kcp.set_mtu(524).unwrap();
        kcp.send(&[7; 1000]).unwrap();
        let mut sizes = alloc::vec::Vec::new();
        kcp.flush(crate::Timestamp::from_millis(0), |d| {
            sizes.push(d.len());
            Ok::<_, core::convert::Infallible>(())
        })
        .unwrap();
        assert_eq!(sizes, [524, 1000 - 500 + 24]);
        assert_eq!(kcp.stats().in_flight, 2);
    }
}
