//! One small trait over the three KCP implementations we compare, so the same
//! scenario drives each of them.
//!
//! | adapter | implementation | how it is driven |
//! |---|---|---|
//! | [`Ours`] | `kcp_core::Kcp` | `send_bytes`, `input_bytes`, `recv` (all [`Bytes`], no copies); `update_into` writes datagrams straight into the link |
//! | [`OursCopying`] | `kcp_core::Kcp` | `send(&[u8])`, `input(&[u8])`, `recv_into` (copies like C) |
//! | [`CRef`] | `ikcp.c` v1.7.1 through `kcp-ref` | `ikcp_send`, `ikcp_input`, `ikcp_recv`; output straight to the sink |
//! | [`KcpCrate`] | the `kcp` crate 0.6 (a port of ikcp) | `send`, `input`, `recv`; output through its `Write` |
//!
//! The message source hands out [`Bytes`] and the link delivers [`Bytes`]. Our engine
//! keeps both as they are (payloads are slices of the caller's buffers, the design's
//! intended use); ikcp and the `kcp` crate copy the message on `send`, the payload on
//! `input` and the message again on receive, as their APIs require. [`OursCopying`]
//! uses our copying entry points instead, to show what the zero-copy API is worth.
//!
//! # Time
//!
//! Every adapter takes the time as absolute milliseconds (`u32`). Their `check`
//! answers differ: ours says [`PollAt`](kcp_core::PollAt) (possibly idle), `ikcp_check`
//! returns an **absolute** time, the `kcp` crate's `check` a **delay**. [`Engine::check`]
//! turns each into [`Wake`].

mod c_ref;
mod kcp_crate;
mod ours;

pub use c_ref::CRef;
pub use kcp_crate::KcpCrate;
pub use ours::{Ours, OursCopying};

use bytes::Bytes;
use kcp_core::sim::{Link, SimTime};

/// The configuration families we benchmark, each as the three implementations spell
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Preset {
    /// The reference's defaults: nodelay off, interval 100 ms, no fast resend,
    /// congestion window on. RTO doubles on every timeout, like TCP's.
    Default,
    /// `ikcp_nodelay(0, 40, 0, 0)`: the default with a 40 ms interval.
    Normal,
    /// `ikcp_nodelay(1, 10, 2, 1)`: min RTO 30 ms, RTO × 1.5 per timeout, fast resend
    /// after 2 skips, no congestion window.
    Fast,
}

impl Preset {
    /// The preset's name as the report prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Normal => "normal",
            Self::Fast => "fast",
        }
    }
}

/// What an engine is created with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The preset.
    pub preset: Preset,
    /// Send window in segments.
    pub snd_wnd: u16,
    /// Receive window in segments (the implementations raise it to at least 128).
    pub rcv_wnd: u16,
}

impl Settings {
    /// `preset` with a send window of `window` segments and a receive window of
    /// `max(window, 128)`.
    pub fn new(preset: Preset, window: u16) -> Self {
        Self {
            preset,
            snd_wnd: window,
            rcv_wnd: window.max(128),
        }
    }
}

/// When an engine next wants `update`, as absolute time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// At this time (ms, on the engine's clock); at or before `now` means at once.
    At(u32),
    /// Only `input` or `send` can create work (ours only: the others always tick).
    Idle,
}

/// A KCP implementation, as the benchmarks drive it.
///
/// Times are absolute milliseconds on a clock that starts low (the `kcp` crate panics
/// in debug builds if it wraps past `u32::MAX`).
pub trait Engine: Sized {
    /// Short name for tables and plots.
    const NAME: &'static str;

    /// A new conversation `conv` configured with `settings`.
    fn new(conv: u32, settings: Settings) -> Self;

    /// Queues `message`, which the adapter now owns (an engine with a zero-copy API
    /// keeps it as it is, as an application handing over its buffer would; the others
    /// copy from it); `false` if the engine refused it.
    fn send(&mut self, message: Bytes) -> bool;

    /// A datagram arrived at `now`. `datagram` is the link's buffer: adapters may keep
    /// slices of it (ours does) or copy from it.
    fn input(&mut self, now: u32, datagram: Bytes);

    /// The timer tick (`ikcp_update`): flushes on the engine's interval grid.
    fn update(&mut self, now: u32, out: &mut dyn FnMut(&[u8]));

    /// [`update`](Self::update) with the datagrams offered to `link` at `at`. By default
    /// each datagram is pushed (copied in) as the sink sees it; an engine that can
    /// write datagrams straight into the link's memory does that instead.
    fn update_link(&mut self, now: u32, link: &mut Link, at: SimTime) {
        self.update(now, &mut |d| link.push(at, d));
    }

    /// Flushes now (`ikcp_flush`). The C engine and the `kcp` crate only flush after
    /// their first `update`.
    fn flush(&mut self, now: u32, out: &mut dyn FnMut(&[u8]));

    /// When `update` is next needed.
    fn check(&self, now: u32) -> Wake;

    /// Takes the next complete message and passes it to `f`; engines that copy
    /// messages out copy it into `scratch` first. `false` if no complete message was
    /// waiting.
    ///
    /// # Panics
    /// If the message does not fit `scratch`.
    fn recv_with(&mut self, scratch: &mut [u8], f: impl FnOnce(&[u8])) -> bool;

    /// Segments queued plus in flight (`ikcp_waitsnd`).
    fn wait_send(&self) -> usize;
}
