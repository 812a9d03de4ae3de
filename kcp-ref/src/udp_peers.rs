//! The C reference as a UDP peer on loopback, for interop tests of the socket
//! crates: an echo server on its own thread, an echo client, and the C presets they
//! run in.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use kcp_core::conv_of;

use crate::CKcp;

/// How the C side is configured: the reference's defaults, its README's "fastest"
/// (with 128-segment windows), or that in stream mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CSetup {
    /// `ikcp_create` as it is.
    Default,
    /// `nodelay(1, 10, 2, 1)`, `wndsize(128, 128)`.
    Fast,
    /// As `Fast`, in stream mode.
    Stream,
}

impl CSetup {
    /// Configures `kcp` so.
    pub fn apply(self, kcp: &mut CKcp) {
        match self {
            Self::Default => {}
            Self::Fast => {
                kcp.nodelay(1, 10, 2, 1);
                kcp.wndsize(128, 128);
            }
            Self::Stream => {
                kcp.nodelay(1, 10, 2, 1);
                kcp.wndsize(128, 128);
                kcp.set_stream(true);
            }
        }
    }
}

/// Milliseconds since `start`: the C engine's clock.
pub fn millis(start: Instant) -> u32 {
    start.elapsed().as_millis() as u32
}

/// Every whole message (or, in stream mode, every chunk) the C engine has ready.
///
/// # Panics
/// If the engine's `recv` disagrees with its `peek_size`.
pub fn recv_all(kcp: &mut CKcp) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Ok(size) = usize::try_from(kcp.peek_size()) {
        let mut buf = vec![0u8; size];
        let n = kcp.recv(&mut buf);
        assert_eq!(usize::try_from(n), Ok(size), "recv after peek_size");
        out.push(buf);
    }
    out
}

/// Sends every datagram the C engine emitted to `to`.
///
/// # Panics
/// If the socket refuses a datagram.
pub fn send_output(kcp: &mut CKcp, socket: &UdpSocket, to: SocketAddr) {
    for d in kcp.drain_output() {
        socket.send_to(&d, to).expect("sending a C datagram");
    }
}

/// A C echo server on its own thread, bound to 127.0.0.1: any conv from any peer, one
/// C engine per (peer, conv) set up as `setup`, every message (empty ones too) echoed.
/// Runs until `stop` is set; returns its address and thread.
///
/// # Panics
/// If the socket cannot be bound.
pub fn echo_server(setup: CSetup, stop: Arc<AtomicBool>) -> (SocketAddr, thread::JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("binding the C echo server");
    socket
        .set_read_timeout(Some(Duration::from_millis(1)))
        .expect("a read timeout");
    let addr = socket.local_addr().expect("its address");
    let thread = thread::spawn(move || {
        let start = Instant::now();
        let mut sessions: HashMap<(SocketAddr, u32), CKcp> = HashMap::new();
        let mut buf = [0u8; 2_048];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                let Some(conv) = conv_of(&buf[..n]) else {
                    continue;
                };
                let kcp = sessions.entry((from, conv)).or_insert_with(|| {
                    let mut kcp = CKcp::new(conv);
                    setup.apply(&mut kcp);
                    kcp
                });
                kcp.input(&buf[..n]);
            }
            let now = millis(start);
            for ((peer, _), kcp) in &mut sessions {
                for m in recv_all(kcp) {
                    assert!(kcp.send(&m) >= 0, "the C engine refused an echo");
                }
                kcp.update(now);
                send_output(kcp, &socket, *peer);
            }
        }
    });
    (addr, thread)
}

/// The `i`th message of [`echo_client`]: `len` bytes that differ from message to
/// message.
fn message(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (9 * 131 + i * 31 + j * 7) as u8).collect()
}

/// A C client set up as `setup`: sends `count` messages of varied size (1 to 3,000
/// bytes) to the echo server at `server`, at most 16 unanswered, and checks every
/// echo (in stream mode, the echoed byte stream). Returns the messages verified.
///
/// # Panics
/// If an echo differs, a datagram of the server's is rejected or comes from another
/// address, or 20 s pass before every echo is back.
pub fn echo_client(server: SocketAddr, setup: CSetup, count: usize) -> usize {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("binding the C client");
    socket
        .set_read_timeout(Some(Duration::from_millis(1)))
        .expect("a read timeout");
    let mut kcp = CKcp::new(0x0C11_E417);
    setup.apply(&mut kcp);
    let stream = matches!(setup, CSetup::Stream);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(20);
    let sizes = |i: usize| 1 + (i * 397) % 3_000;
    let (mut sent, mut verified) = (0, 0);
    let mut expected: Vec<u8> = Vec::new(); // bytes sent and not yet echoed
    // Stream mode: where each message ends in the byte stream, and bytes echoed so far.
    let mut ends: Vec<usize> = Vec::new();
    let mut echoed = 0;
    let mut buf = [0u8; 2_048];
    while verified < count {
        assert!(
            Instant::now() < deadline,
            "{setup:?}: {verified} of {count} echoed"
        );
        while sent < count && sent - verified < 16 {
            let m = message(sent, sizes(sent));
            assert!(kcp.send(&m) >= 0);
            expected.extend_from_slice(&m);
            ends.push(ends.last().copied().unwrap_or(0) + m.len());
            sent += 1;
        }
        kcp.update(millis(start));
        send_output(&mut kcp, &socket, server);
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            assert_eq!(from, server);
            assert_eq!(
                kcp.input(&buf[..n]),
                0,
                "{setup:?}: C rejected our datagram"
            );
            socket.set_nonblocking(true).expect("non-blocking");
        }
        socket.set_nonblocking(false).expect("blocking");
        for chunk in recv_all(&mut kcp) {
            if stream {
                assert!(chunk.len() <= expected.len());
                assert_eq!(
                    chunk[..],
                    expected[..chunk.len()],
                    "{setup:?}: stream bytes"
                );
                expected.drain(..chunk.len());
                echoed += chunk.len();
                verified = ends.partition_point(|&end| end <= echoed);
            } else {
                assert_eq!(chunk, message(verified, sizes(verified)), "{setup:?}");
                expected.drain(..chunk.len());
                verified += 1;
            }
        }
    }
    verified
}
