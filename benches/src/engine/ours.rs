//! Our engine, `kcp_core::Kcp`.

use core::convert::Infallible;

use bytes::Bytes;
use kcp_core::sim::{Link, SimTime};
use kcp_core::{Config, Kcp, PollAt, Timestamp};

use super::{Engine, Preset, Settings, Wake};

/// `kcp_core::Kcp` behind [`Engine`], through its zero-copy entry points:
/// `send_bytes`, `input_bytes` and `recv` keep payloads as slices of the caller's
/// buffers, and `update_into` builds datagrams in the link's memory.
#[derive(Debug)]
pub struct Ours {
    kcp: Kcp,
}

/// `kcp_core::Kcp` behind [`Engine`], through its copying entry points (`send(&[u8])`,
/// `input(&[u8])`, `recv_into`): the same work as the C API asks for.
#[derive(Debug)]
pub struct OursCopying {
    kcp: Kcp,
}

impl Ours {
    /// The configuration `settings` stands for.
    pub fn config(settings: Settings) -> Config {
        let mut config = match settings.preset {
            Preset::Default => Config::default(),
            Preset::Normal => Config::normal(),
            Preset::Fast => Config::fast(),
        };
        config.snd_wnd = u32::from(settings.snd_wnd);
        config.rcv_wnd = u32::from(settings.rcv_wnd.max(128));
        config
    }

    /// The wrapped engine.
    pub const fn kcp(&self) -> &Kcp {
        &self.kcp
    }
}

/// Adapts a `&mut dyn FnMut` sink to the engine's fallible sink.
fn sink(out: &mut dyn FnMut(&[u8])) -> impl FnMut(&[u8]) -> Result<(), Infallible> + '_ {
    move |d| {
        out(d);
        Ok(())
    }
}

/// `update` for both adapters.
fn update(kcp: &mut Kcp, now: u32, out: &mut dyn FnMut(&[u8])) {
    let Ok(()) = kcp.update(Timestamp::from_millis(now), sink(out));
}

/// `flush` for both adapters.
fn flush(kcp: &mut Kcp, now: u32, out: &mut dyn FnMut(&[u8])) {
    let Ok(()) = kcp.flush(Timestamp::from_millis(now), sink(out));
}

/// `check` for both adapters: our deadline in the harness's terms.
fn wake(kcp: &Kcp, now: u32) -> Wake {
    match kcp.check(Timestamp::from_millis(now)) {
        PollAt::Now => Wake::At(now),
        PollAt::At(t) => Wake::At(t.as_millis()),
        PollAt::Idle => Wake::Idle,
    }
}

impl Engine for Ours {
    const NAME: &'static str = "ours";

    fn new(conv: u32, settings: Settings) -> Self {
        let kcp = Kcp::new(conv, Self::config(settings)).expect("benchmark settings are valid");
        Self { kcp }
    }

    fn send(&mut self, message: Bytes) -> bool {
        self.kcp.send_bytes(message).is_ok()
    }

    fn input(&mut self, now: u32, datagram: Bytes) {
        // Rejected datagrams change nothing; the scenarios only produce valid ones.
        let _ = self.kcp.input_bytes(Timestamp::from_millis(now), datagram);
    }

    fn update(&mut self, now: u32, out: &mut dyn FnMut(&[u8])) {
        update(&mut self.kcp, now, out);
    }

    fn update_link(&mut self, now: u32, link: &mut Link, at: SimTime) {
        let Ok(()) = self
            .kcp
            .update_into(Timestamp::from_millis(now), &mut link.transmit(at));
    }

    fn flush(&mut self, now: u32, out: &mut dyn FnMut(&[u8])) {
        flush(&mut self.kcp, now, out);
    }

    fn check(&self, now: u32) -> Wake {
        wake(&self.kcp, now)
    }

    fn recv_with(&mut self, _scratch: &mut [u8], f: impl FnOnce(&[u8])) -> bool {
        // One-segment messages come back as the very slice `input_bytes` kept; longer
        // ones are joined into one new buffer.
        self.kcp.recv().map(|m| f(&m)).is_some()
    }

    fn wait_send(&self) -> usize {
        self.kcp.wait_send()
    }
}

impl Engine for OursCopying {
    const NAME: &'static str = "ours (copying API)";

    fn new(conv: u32, settings: Settings) -> Self {
        let kcp = Kcp::new(conv, Ours::config(settings)).expect("benchmark settings are valid");
        Self { kcp }
    }

    fn send(&mut self, message: Bytes) -> bool {
        self.kcp.send(&message).is_ok()
    }

    fn input(&mut self, now: u32, datagram: Bytes) {
        // Rejected datagrams change nothing; the scenarios only produce valid ones.
        let _ = self.kcp.input(Timestamp::from_millis(now), &datagram);
    }

    fn update(&mut self, now: u32, out: &mut dyn FnMut(&[u8])) {
        update(&mut self.kcp, now, out);
    }

    fn flush(&mut self, now: u32, out: &mut dyn FnMut(&[u8])) {
        flush(&mut self.kcp, now, out);
    }

    fn check(&self, now: u32) -> Wake {
        wake(&self.kcp, now)
    }

    fn recv_with(&mut self, scratch: &mut [u8], f: impl FnOnce(&[u8])) -> bool {
        match self.kcp.recv_into(scratch) {
            Ok(Some(n)) => {
                f(&scratch[..n]);
                true
            }
            Ok(None) => false,
            Err(e) => panic!("receive buffer too small: {e}"),
        }
    }

    fn wait_send(&self) -> usize {
        self.kcp.wait_send()
    }
}
