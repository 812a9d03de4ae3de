//! A listener's stream sending (direct path first, `flush_on_send`) to a peer that
//! stops reading, on sockets with the smallest buffers Linux grants: every message
//! arrives once and in order after the peer reads again, and while it does not, the
//! driver wakes only for its timers (no busy loop).
//!
//! On Linux loopback a UDP send buffer never fills: the loopback device releases a
//! datagram's send-buffer charge as it hands it over (100,000 non-blocking 1,400-byte
//! sends from a socket with `SO_SNDBUF` 4,608 to one that never reads: no
//! `EAGAIN`). What fills is the silent peer's receive buffer: the kernel drops the
//! rest, as a full queue on a real path would, and KCP retransmits it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kcp_net::{ClientConfig, Conversation};
use kcp_tokio::{KcpListener, Preset, ServerConfig};
use tokio::net::UdpSocket;
use tokio::time::timeout;

mod common;
use common::stats_until;

const WAIT: Duration = Duration::from_secs(10);
const MESSAGES: u32 = 300;
const CONV: u32 = 0x5EED;

/// The message numbered `i`: its number, then filler.
fn message(i: u32) -> Bytes {
    let mut m = i.to_le_bytes().to_vec();
    m.resize(1000, (i % 251) as u8);
    Bytes::from(m)
}

/// A KCP peer driven by hand on a socket with a small receive buffer, so that the
/// test decides when it reads.
struct Peer {
    socket: UdpSocket,
    conversation: Conversation,
    server: std::net::SocketAddr,
    wire: Vec<Vec<u8>>,
}

impl Peer {
    async fn new(server: std::net::SocketAddr) -> Self {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .unwrap();
        socket.set_recv_buffer_size(8192).unwrap(); // a handful of datagrams
        socket.set_nonblocking(true).unwrap();
        socket
            .bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
        let socket = UdpSocket::from_std(socket.into()).unwrap();
        // A client's settings: its padded opening gives the server the budget to answer.
        let config = ClientConfig::new(Preset::Fast).conversation();
        let conversation = Conversation::new(CONV, config, Instant::now()).unwrap();
        Self {
            socket,
            conversation,
            server,
            wire: Vec::new(),
        }
    }

    /// Flushes the conversation (new data, ACKs, what is due) and sends what it
    /// emits.
    async fn drive(&mut self) {
        self.conversation
            .flush_to_vec(Instant::now(), &mut self.wire);
        for datagram in self.wire.drain(..) {
            self.socket.send_to(&datagram, self.server).await.unwrap();
        }
    }

    /// Reads what arrives for a few milliseconds, answering it.
    async fn read_a_while(&mut self) {
        let mut buf = vec![0; 2048];
        while let Ok(Ok((n, _))) =
            timeout(Duration::from_millis(5), self.socket.recv_from(&mut buf)).await
        {
            let _ = self.conversation.input(Instant::now(), &buf[..n]);
        }
        self.drive().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_or_doubled_behind_a_peer_that_stops_reading() {
    let mut config = ServerConfig::new(Preset::Fast);
    config.flush_on_send = true;
    config.send_buffer = 1; // the kernel's minimum
    let listener = KcpListener::bind("127.0.0.1:0", config).await.unwrap();
    let mut peer = Peer::new(listener.local_addr()).await;
    peer.conversation
        .send(Instant::now(), Bytes::from_static(b"go"))
        .unwrap();
    peer.drive().await;
    let (mut stream, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    assert_eq!(
        timeout(WAIT, stream.recv()).await.unwrap().as_deref(),
        Some(&b"go"[..])
    );
    // The first message is read and acknowledged: the peer's address is proven, so
    // the anti-amplification budget no longer holds anything back.
    stream.send(message(0)).await.unwrap();
    timeout(WAIT, async {
        while !peer.conversation.has_message() {
            peer.read_a_while().await;
        }
    })
    .await
    .expect("the first message");
    let mut got = vec![peer.conversation.recv().unwrap()];
    stats_until(&listener, WAIT, |s| s.sessions_confirmed == 1).await;

    // The peer stops reading; the stream queues the rest (its queue limit, 1 MiB,
    // holds them all), the first of them sent from this task.
    for i in 1..MESSAGES {
        stream.send(message(i)).await.unwrap();
    }
    let before = stats_until(&listener, WAIT, |s| s.retransmits > 0).await;
    let during = stats_until(&listener, WAIT, |s| s.retransmits >= before.retransmits + 3).await;
    // Every wake-up of the driver had a timer to run: no spinning on a full path.
    let wakeups = during.wakeups - before.wakeups;
    let timers = during.timer_fires - before.timer_fires;
    assert!(
        wakeups <= 2 * timers + 10,
        "{wakeups} wake-ups for {timers} timers while the peer was silent"
    );

    // The peer reads again: everything arrives, once, in order.
    timeout(WAIT, async {
        while got.len() < MESSAGES as usize {
            peer.read_a_while().await;
            while let Some(m) = peer.conversation.recv() {
                got.push(m);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} of {MESSAGES} messages", got.len()));
    for (i, m) in got.iter().enumerate() {
        assert_eq!(*m, message(i as u32), "message {i}");
    }
    timeout(WAIT, async {
        while stream.queued_bytes() > 0 {
            peer.read_a_while().await;
        }
    })
    .await
    .expect("everything acknowledged");
    peer.read_a_while().await;
    assert!(peer.conversation.recv().is_none(), "a message twice");
    let stats = listener.stats();
    assert_eq!(stats.send_errors, 0, "{stats:?}");
}
