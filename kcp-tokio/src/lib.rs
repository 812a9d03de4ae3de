//! KCP for tokio: a listener and streams on `kcp-net`'s [`Conversation`] core.
//!
//! - [`KcpListener::bind`] opens one UDP socket and one driver task;
//!   [`accept`](KcpListener::accept) yields a [`KcpStream`] per new (peer, conv),
//!   admitted by `kcp-net`'s rules and limits ([`ServerConfig`]: the per-address
//!   limits, the unconfirmed cap, the idle timeout, and the memory budget for data
//!   held out of order, [`kcp_net::HoldBudget`]).
//! - [`KcpStream::connect`] starts a conversation on a socket and a task of its own
//!   ([`ClientConfig`]).
//! - A [`KcpStream`] is a byte stream ([`tokio::io::AsyncRead`] and
//!   [`tokio::io::AsyncWrite`]: writes become messages, reads may split them) and a
//!   message socket ([`send`](KcpStream::send), [`recv`](KcpStream::recv): boundaries
//!   kept). [`split`](KcpStream::split) gives owned halves.
//!
//! # Secure mode
//!
//! With [`ClientConfig::secure`] set, [`KcpStream::connect`] first runs `kcp-net`'s
//! handshake ([`kcp_net::secure::ClientHandshake`]: Noise with the pinned server key,
//! cookies under load) and returns once the sealed conversation is established, or
//! fails with the server's reject (`ConnectionRefused`, with the
//! [`kcp_net::secure::HandshakeError`] inside) or the handshake timeout. With
//! [`ServerConfig::secure`] set, [`KcpListener`] serves the same protocol through
//! `kcp-net`'s own front door ([`kcp_net::secure::SecureFront`]): the admission
//! rules (cookies under load, the unconfirmed cap, the per-address limits, the 3x
//! anti-amplification budget until an address is proven, migration to a new address
//! only on an authentic, newest datagram) are `kcp-net`'s code, not a copy. Every
//! datagram is then sealed; [`send_unreliable`](KcpStream::send_unreliable) and
//! [`recv_datagram`](KcpStream::recv_datagram) carry unreliable datagrams beside the
//! messages on both sides, and a stream that is shut down or dropped (or a listener
//! dropped) tells its peer at once. Both ends interoperate with `kcp-net`'s secure
//! `KcpServer` and `KcpClient`.
//!
//! ```
//! use bytes::Bytes;
//! use kcp_tokio::kcp_net::secure::{ClientSecurity, ServerIdentity, ServerSecurity};
//! use kcp_tokio::{ClientConfig, KcpListener, KcpStream, Preset, ServerConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let identity = ServerIdentity::generate()?; // keep it in a file: `load_or_create`
//! let mut config = ServerConfig::new(Preset::Fast);
//! config.secure = Some(ServerSecurity::new(identity.clone()));
//! let listener = KcpListener::bind("127.0.0.1:0", config).await?;
//! let addr = listener.local_addr();
//! tokio::spawn(async move {
//!     while let Ok((mut stream, _peer)) = listener.accept().await {
//!         tokio::spawn(async move {
//!             while let Some(message) = stream.recv().await {
//!                 if stream.send(message).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         });
//!     }
//! });
//!
//! let mut config = ClientConfig::new(Preset::Fast);
//! config.secure = Some(ClientSecurity::new(identity.public())); // pin the key
//! let mut client = KcpStream::connect(addr, config).await?;
//! client.send(Bytes::from_static(b"sealed")).await?;
//! assert_eq!(client.recv().await.as_deref(), Some(&b"sealed"[..]));
//! # Ok(())
//! # }
//! ```
//!
//! Each conversation is a `kcp_net::Conversation`: the same engine, wire mode,
//! keepalive, liveness, queue limit and counters as `kcp-net`'s threaded server and
//! blocking client, so this crate and `kcp-net` interoperate with each other and with
//! any raw-mode KCP peer (the C reference included). It is not built on `kcp-net`'s
//! threads: the driver is a tokio task, and works on the current-thread and the
//! multi-thread runtime. It has no `unsafe`.
//!
//! # Example: loopback echo
//!
//! ```
//! use bytes::Bytes;
//! use kcp_tokio::{ClientConfig, KcpListener, KcpStream, Preset, ServerConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let listener = KcpListener::bind("127.0.0.1:0", ServerConfig::new(Preset::Fast)).await?;
//! let addr = listener.local_addr();
//! tokio::spawn(async move {
//!     while let Ok((mut stream, _peer)) = listener.accept().await {
//!         tokio::spawn(async move {
//!             while let Some(message) = stream.recv().await {
//!                 if stream.send(message).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         });
//!     }
//! });
//!
//! let mut client = KcpStream::connect(addr, ClientConfig::new(Preset::Fast)).await?;
//! client.send(Bytes::from_static(b"hello")).await?;
//! let echo = client.recv().await.expect("an echo");
//! assert_eq!(&echo[..], b"hello");
//! # Ok(())
//! # }
//! ```
//!
//! # Where the work happens
//!
//! The driver task reads the socket, routes datagrams, opens and closes sessions and
//! runs the timers. For a latency-bound conversation (at most 4 segments queued or in
//! flight: request/response, paced messages) the stream's own task does the rest of
//! a message's path, so a round trip costs no extra hop through the driver. A busier
//! conversation goes through the driver, whose batches (`sendmmsg`/GSO,
//! `recvmmsg`/GRO) move bulk faster than one syscall per datagram:
//!
//! - `send`/`poll_write` drive the conversation in the writer's task and send what
//!   it emits at once (`try_send_to` on the shared socket; what a full socket buffer
//!   refuses is handed to the driver, which waits for room). With `flush_on_send`
//!   the message leaves before `send` returns, carrying the ACKs held for the
//!   message it answers.
//! - A client stream's reader takes its datagrams off its socket itself (a second
//!   batch reader on the same descriptor): the reply it waits for reaches it in the
//!   turn it arrived in. The driver listens too and reads whatever is left.
//! - A listener's sessions share one socket, which only the driver reads; it drives
//!   each session touched by a datagram in the same turn that read it, except a
//!   latency-bound one whose datagram completed a message for a waiting reader: that
//!   one is left to the reader's task, whose reply carries the ACKs (driven first,
//!   the engine's interval flush would send them alone, a second datagram per
//!   message), with a timer at the end of the ACKs' hold in case it does not reply.
//!
//! # Timers and idle cost
//!
//! A driver keeps one tokio timer: the earliest [`Conversation::next_deadline`] of
//! its sessions. A session whose conversation has no deadline registers nothing, so
//! idle sessions cost no wake-ups until their idle timeout (or a keepalive) is due.
//! A stream wakes its driver only when its conversation needs a timer sooner than the
//! one the driver holds (the retransmission timer of a message it just sent, when
//! nothing else was in flight) or wants to close; a timer a stream's drive made later
//! is moved by the driver when it reaches it, without waking for it. Taking a message
//! does not flush the ACKs held for it: they wait at most a millisecond (`ACK_HOLD`)
//! for the reply and leave with it. In a paced echo the server's driver wakes at most
//! three times per message (2.0 measured): the request, the end of the ACKs' hold
//! (the reply has moved it by then; the driver only moves its entry), the client's
//! ACK when it does not ride on the next request (`tests/wakeups.rs`).
//!
//! # Backpressure
//!
//! A write waits (`Poll::Pending`) while the conversation holds its queue limit
//! (`max_queued_bytes`), and is woken when an incoming datagram (an ACK) arrives; no
//! data is buffered beyond the limit and nothing spins.
//!
//! # Ending
//!
//! Raw KCP has no FIN. A stream reads EOF once its conversation ended (idle timeout,
//! dead link, peer timeout, its listener dropped, and in the secure mode the peer's
//! close); [`KcpStream::close_reason`] says why. Dropping a stream closes its conversation after what is queued is
//! acknowledged (at most the linger); dropping a listener does the same for all its
//! sessions, then its task stops.
//!
//! # Portability
//!
//! Datagrams move through `kcp-net`'s batch I/O ([`kcp_net::udp`]) on a socket tokio
//! watches for reading only (a sent datagram does not wake the runtime again):
//! on Linux `recvmmsg`/`sendmmsg`, up to 32 messages per syscall, with UDP GSO and GRO
//! where the kernel grants them (the `io` field of the configs, [`IoBackend`];
//! `Auto` by default); elsewhere, or with `IoBackend::Portable`, one call per
//! datagram. Every session driven in a turn of the driver writes into one batch; a
//! stream's own sends are one `sendto` per datagram. A turn reads at most
//! [`kcp_net::MAX_DATAGRAMS_PER_TURN`] datagrams before timers run, for `kcp-net`'s
//! reason (the ACKs waiting in the socket are counted before anything is judged
//! lost).
//!
//! # Current behaviour, not guaranteed
//!
//! - A full socket buffer is waited out (the wait alone registers for writability), where `kcp-net`'s loops
//!   drop the rest of the turn's datagrams; a datagram the OS refuses is dropped (KCP
//!   retransmits it).
//! - Sessions are admitted by `kcp-net`'s own rules ([`kcp_net::admission`]).
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod driver;
mod handshake;
mod listener;
mod session;
mod socket;
mod stream;
mod timers;
mod udp;

use std::io;
use std::net::SocketAddr;

pub use kcp_net::{
    ClientConfig, CloseReason, Conversation, ConversationConfig, IoBackend, LoopStats, Preset,
    ServerConfig, SessionStats,
};
pub use listener::KcpListener;
pub use stream::{KcpStream, OwnedReadHalf, OwnedWriteHalf};

/// The socket layer, re-exported so users need one dependency.
pub use kcp_net;

/// The first address `addr` resolves to.
async fn resolve(addr: impl tokio::net::ToSocketAddrs) -> io::Result<SocketAddr> {
    tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind"))
}

/// A non-blocking UDP socket bound to `addr` with the requested buffer sizes (the OS
/// may grant less; a refusal is not an error).
fn bind_udp(addr: SocketAddr, recv_buffer: usize, send_buffer: usize) -> io::Result<udp::Udp> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(recv_buffer);
    let _ = socket.set_send_buffer_size(send_buffer);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    udp::Udp::from_std(socket.into())
}

/// A configuration error as an `io::Error`.
fn invalid(e: kcp_net::NetError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}
