//! What the simulator drives: anything that consumes and produces datagrams on a
//! clock.

use bytes::Bytes;

use crate::{Kcp, Timestamp};

/// A protocol endpoint the simulator can drive: our [`Kcp`], or an adapter around
/// another implementation (the conformance tests wrap the C reference this way).
pub trait Endpoint {
    /// A datagram arrived at `now`. Malformed input is the endpoint's business (ours
    /// counts and drops it).
    fn input(&mut self, now: Timestamp, datagram: &[u8]);
    /// The timer tick at `now`; datagrams to transmit go to `out`.
    fn update(&mut self, now: Timestamp, out: &mut dyn FnMut(&[u8]));
    /// Queues a message for the peer; `false` if the endpoint refused it.
    fn send(&mut self, message: &[u8]) -> bool;
    /// The next message received, if a complete one is waiting.
    fn recv(&mut self) -> Option<Bytes>;
}

impl Endpoint for Kcp {
    fn input(&mut self, now: Timestamp, datagram: &[u8]) {
        // A rejected datagram changes nothing and is counted in `stats()`.
        let _ = Self::input(self, now, datagram);
    }

    fn update(&mut self, now: Timestamp, out: &mut dyn FnMut(&[u8])) {
        let sink = |d: &[u8]| {
            out(d);
            Ok::<(), core::convert::Infallible>(())
        };
        match Self::update(self, now, sink) {
            Ok(()) => {}
            Err(never) => match never {},
        }
    }

    fn send(&mut self, message: &[u8]) -> bool {
        Self::send(self, message).is_ok()
    }

    fn recv(&mut self) -> Option<Bytes> {
        Self::recv(self)
    }
}
