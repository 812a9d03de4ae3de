//! Fixtures for the per-operation benches: each builds an engine in a known state so
//! that one call can be timed in isolation. All use the fast preset and 1 KiB
//! messages.

use bytes::Bytes;

use crate::engine::{Engine, Preset, Settings};
use crate::transfer::CONV;

/// Payload of the fixtures' messages.
pub const MESSAGE: [u8; 1024] = [0x5A; 1024];

/// [`MESSAGE`] as the engines take it.
pub fn message() -> Bytes {
    Bytes::from_static(&MESSAGE)
}

/// Segments in flight when an ACK is input: the reference's default send window.
pub const FLIGHT: usize = 32;

fn settings() -> Settings {
    Settings::new(Preset::Fast, FLIGHT as u16)
}

/// `input` of an ACK-only datagram: a sender with [`FLIGHT`] segments in flight, and
/// the datagram its peer sends to acknowledge the oldest one.
#[derive(Debug)]
pub struct AckInput<E> {
    /// The sender; input `ack` into it at `now`.
    pub sender: E,
    /// One ACK segment for sequence number 0.
    pub ack: Bytes,
    /// The sender's clock.
    pub now: u32,
}

impl<E: Engine> AckInput<E> {
    /// Builds the fixture.
    ///
    /// # Panics
    /// If the engine does not behave as every KCP does (one datagram per segment, one
    /// ACK datagram back).
    pub fn new() -> Self {
        let mut sender = E::new(CONV, settings());
        let mut receiver = E::new(CONV, settings());
        for _ in 0..FLIGHT {
            assert!(sender.send(message()));
        }
        let mut data = Vec::new();
        sender.update(0, &mut |d| data.push(Bytes::copy_from_slice(d)));
        assert_eq!(data.len(), FLIGHT, "one 1 KiB segment per datagram");
        receiver.update(0, &mut |_| {});
        receiver.input(0, data.swap_remove(0));
        let mut acks = Vec::new();
        receiver.update(10, &mut |d| acks.push(Bytes::copy_from_slice(d)));
        assert_eq!(acks.len(), 1, "one ACK-only datagram");
        let ack = acks.swap_remove(0);
        assert_eq!(ack.len(), 24, "a single ACK segment");
        Self {
            sender,
            ack,
            now: 0,
        }
    }

    /// The timed call: inputs the ACK.
    pub fn run(&mut self) {
        self.sender.input(self.now, self.ack.clone());
    }
}

impl<E: Engine> Default for AckInput<E> {
    fn default() -> Self {
        Self::new()
    }
}

/// `send` + `flush` of one segment on a warm engine: one that has sent a message and
/// had it acknowledged, so nothing is in flight and its buffers exist (the first send
/// of a fresh engine also pays for allocating them: ours grows its rings on first
/// use, ikcp allocates per segment anyway).
#[derive(Debug)]
pub struct SendFlush<E> {
    /// The engine.
    pub engine: E,
    /// Bytes the last [`SendFlush::run`] emitted.
    pub emitted: usize,
    message: Bytes,
    now: u32,
}

impl<E: Engine> SendFlush<E> {
    /// Builds the fixture.
    ///
    /// # Panics
    /// As [`idle`].
    pub fn new() -> Self {
        let (engine, now) = idle();
        Self {
            engine,
            emitted: 0,
            message: message(),
            now,
        }
    }

    /// The timed calls: sends one 1 KiB message and flushes it.
    pub fn run(&mut self) {
        assert!(self.engine.send(self.message.clone()));
        let mut emitted = 0;
        self.engine.flush(self.now, &mut |d| emitted += d.len());
        self.emitted = emitted;
    }
}

impl<E: Engine> Default for SendFlush<E> {
    fn default() -> Self {
        Self::new()
    }
}

/// `check` on an idle engine: a message was sent and acknowledged, nothing is owed.
///
/// # Panics
/// If the message is not acknowledged within a second of lock-step exchange.
pub fn idle<E: Engine>() -> (E, u32) {
    let mut a = E::new(CONV, settings());
    let mut b = E::new(CONV, settings());
    assert!(a.send(message()));
    let mut scratch = vec![0u8; MESSAGE.len()];
    let (mut to_a, mut to_b) = (Vec::new(), Vec::new());
    for now in 0..1_000u32 {
        a.update(now, &mut |d| to_b.push(Bytes::copy_from_slice(d)));
        b.update(now, &mut |d| to_a.push(Bytes::copy_from_slice(d)));
        for d in to_b.drain(..) {
            b.input(now, d);
        }
        for d in to_a.drain(..) {
            a.input(now, d);
        }
        while b.recv_with(&mut scratch, |_| {}) {}
        if a.wait_send() == 0 && now % 10 == 9 {
            return (a, now);
        }
    }
    panic!("the message was not acknowledged");
}
