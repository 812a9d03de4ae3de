//! The `kcp` crate (0.6), a line-by-line Rust port of ikcp.

use std::cell::RefCell;
use std::io::{self, Write};
use std::rc::Rc;

use bytes::Bytes;

use super::{Engine, Preset, Settings, Wake};

/// Datagrams the `kcp` crate wrote: one flat buffer reused across calls.
#[derive(Debug, Default)]
struct Outbox {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

/// The `kcp` crate's output: it owns a `Write` and lends it back to nobody, so the
/// adapter shares the outbox with it and drains it into the sink after each
/// `update`/`flush`. Unlike the others it cannot write to a sink borrowed for one
/// call; this costs it one extra `memcpy` per datagram, but no allocation.
#[derive(Debug, Default, Clone)]
struct SharedOutbox(Rc<RefCell<Outbox>>);

impl Write for SharedOutbox {
    /// Each call is one datagram: the crate calls `write_all` once per datagram, and
    /// this never writes short.
    fn write(&mut self, datagram: &[u8]) -> io::Result<usize> {
        let mut outbox = self.0.borrow_mut();
        outbox.bytes.extend_from_slice(datagram);
        let end = outbox.bytes.len();
        outbox.ends.push(end);
        Ok(datagram.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The `kcp` crate behind [`Engine`].
///
/// It has no nodelay mode 2 (only `nodelay: bool`), so the reference scenario's fast
/// mode cannot be expressed with it; the presets here can.
#[derive(Debug)]
pub struct KcpCrate {
    kcp: kcp::Kcp<SharedOutbox>,
    outbox: SharedOutbox,
}

impl KcpCrate {
    fn drain(&mut self, out: &mut dyn FnMut(&[u8])) {
        let mut outbox = self.outbox.0.borrow_mut();
        let outbox = &mut *outbox;
        let mut start = 0;
        for &end in &outbox.ends {
            out(&outbox.bytes[start..end]);
            start = end;
        }
        outbox.bytes.clear();
        outbox.ends.clear();
    }
}

impl Engine for KcpCrate {
    const NAME: &'static str = "kcp crate";

    fn new(conv: u32, settings: Settings) -> Self {
        let outbox = SharedOutbox::default();
        let mut kcp = kcp::Kcp::new(conv, outbox.clone());
        kcp.set_wndsize(settings.snd_wnd, settings.rcv_wnd);
        match settings.preset {
            Preset::Default => {}
            Preset::Normal => kcp.set_nodelay(false, 40, 0, false),
            Preset::Fast => kcp.set_nodelay(true, 10, 2, true),
        }
        Self { kcp, outbox }
    }

    fn send(&mut self, message: Bytes) -> bool {
        self.kcp.send(&message).is_ok()
    }

    fn input(&mut self, _now: u32, datagram: Bytes) {
        // Like ikcp, it uses the time of its last update.
        let _ = self.kcp.input(&datagram);
    }

    fn update(&mut self, now: u32, out: &mut dyn FnMut(&[u8])) {
        self.kcp.update(now).expect("the outbox never fails");
        self.drain(out);
    }

    fn flush(&mut self, _now: u32, out: &mut dyn FnMut(&[u8])) {
        // Before the first update it refuses (`NeedUpdate`) and sends nothing, as ikcp.
        let _ = self.kcp.flush();
        self.drain(out);
    }

    fn check(&self, now: u32) -> Wake {
        // The crate's `check` returns a delay, not a time.
        Wake::At(now.wrapping_add(self.kcp.check(now)))
    }

    fn recv_with(&mut self, scratch: &mut [u8], f: impl FnOnce(&[u8])) -> bool {
        match self.kcp.recv(scratch) {
            Ok(n) => {
                f(&scratch[..n]);
                true
            }
            Err(kcp::Error::UserBufTooSmall) => panic!("receive buffer too small"),
            Err(_) => false,
        }
    }

    fn wait_send(&self) -> usize {
        self.kcp.wait_snd()
    }
}
