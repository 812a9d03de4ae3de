//! The C reference `ikcp.c` v1.7.1, through `kcp_ref::CKcp`.

use bytes::Bytes;
use kcp_ref::CKcp;

use super::{Engine, Preset, Settings, Wake};

/// `ikcp.c` behind [`Engine`]. Its datagrams go straight from ikcp's buffer to the
/// sink ([`CKcp::update_with`]), as they would to `sendto` in a real program.
#[derive(Debug)]
pub struct CRef {
    kcp: CKcp,
}

impl CRef {
    /// The wrapped engine.
    pub const fn ckcp(&self) -> &CKcp {
        &self.kcp
    }
}

impl Engine for CRef {
    const NAME: &'static str = "C ikcp";

    fn new(conv: u32, settings: Settings) -> Self {
        let mut kcp = CKcp::new(conv);
        kcp.wndsize(i32::from(settings.snd_wnd), i32::from(settings.rcv_wnd));
        match settings.preset {
            Preset::Default => {}
            Preset::Normal => kcp.nodelay(0, 40, 0, 0),
            Preset::Fast => kcp.nodelay(1, 10, 2, 1),
        }
        Self { kcp }
    }

    fn send(&mut self, message: Bytes) -> bool {
        self.kcp.send(&message) >= 0
    }

    fn input(&mut self, _now: u32, datagram: Bytes) {
        // ikcp uses the time of its last update; the scenarios update before input.
        self.kcp.input(&datagram);
    }

    fn update(&mut self, now: u32, out: &mut dyn FnMut(&[u8])) {
        self.kcp.update_with(now, out);
    }

    fn flush(&mut self, _now: u32, out: &mut dyn FnMut(&[u8])) {
        self.kcp.flush_with(out);
    }

    fn check(&self, now: u32) -> Wake {
        // ikcp_check returns an absolute time.
        Wake::At(self.kcp.check(now))
    }

    fn recv_with(&mut self, scratch: &mut [u8], f: impl FnOnce(&[u8])) -> bool {
        match self.kcp.recv(scratch) {
            n if n >= 0 => {
                f(&scratch[..n as usize]);
                true
            }
            -3 => panic!("receive buffer too small"),
            _ => false,
        }
    }

    fn wait_send(&self) -> usize {
        usize::try_from(self.kcp.wait_send()).unwrap_or(0)
    }
}
