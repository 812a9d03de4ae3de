//! KCP over UDP: event loops, sessions, a server and a client.
//!
//! `kcp-net` puts the sans-IO engine of [`kcp_core`] on real sockets, in three
//! layers:
//!
//! - [`Conversation`]: one engine and everything a conversation needs beyond it
//!   (wire mode, keepalive, liveness, the ACK-holding rule, the queue limit,
//!   counters). Sans-IO like the engine: every method takes `now`, and its datagrams
//!   go to a sink you lend. Everything below is built on it; use it alone to run KCP
//!   over a transport of your own, or to test its rules on virtual time.
//! - [`ServerDriver`]: a server on one socket that owns no thread. You pass `now`,
//!   poll the socket when you like and take [`ServerEvent`]s back as values: what a
//!   game server drives from its own frame loop (`examples/game_server.rs`).
//! - [`KcpServer`]: one driver per thread, each owning a UDP socket bound to the same
//!   port (`SO_REUSEPORT`), calling an [`EventHandler`] and taking requests that other
//!   threads post through a [`ServerHandle`]. A [`KcpClient`] is one conversation
//!   driven by its owner's thread: blocking, from a game loop that takes
//!   [`ClientEvent`]s each frame ([`KcpClient::poll_event`],
//!   `examples/game_client.rs`), or from your own `mio` poll.
//!
//! The settings ([`ServerConfig`], [`ClientConfig`], [`ConversationConfig`]) are
//! `#[non_exhaustive]`; outside this crate write them with their builders
//! (`ServerConfig::builder().threads(2).build()?`), which validate at `build`.
//!
//! It is not an async runtime, and it knows nothing of what the messages mean.
//!
//! # Example: loopback echo
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use kcp_net::{ClientConfig, EventHandler, KcpClient, KcpServer, Preset, ServerConfig, SessionCtx};
//!
//! #[derive(Clone)]
//! struct Echo;
//!
//! impl EventHandler for Echo {
//!     fn on_message(&mut self, session: &mut SessionCtx<'_>, message: Bytes) {
//!         let _ = session.send_bytes(message); // a full queue drops the echo
//!     }
//! }
//!
//! # fn main() -> Result<(), kcp_net::NetError> {
//! let server = KcpServer::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::new(Preset::Fast), Echo)?;
//! let mut client = KcpClient::connect(server.local_addr(), ClientConfig::new(Preset::Fast))?;
//! client.send(b"hello")?;
//! let reply = client.recv(Duration::from_secs(5))?.expect("an echo within 5 s");
//! assert_eq!(&reply[..], b"hello");
//! let stats = server.shutdown(Duration::from_secs(1))?;
//! assert_eq!(stats.total.sessions_opened, 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Sessions
//!
//! A datagram for an unknown (address, conv) opens a session only if it is valid KCP
//! and carries the *first* data segment of a conversation (`sn` equal to the engine's
//! `initial_sn`, 0 as in the C reference), and only within the limits of
//! [`ServerConfig`] (`max_sessions`, `new_sessions_per_sec`, the per-IP limits, the
//! unconfirmed pool; see *Security*) and the handler's [`EventHandler::accept`]. Everything else is counted by reason in [`LoopStats`] and
//! dropped. A session ends ([`CloseReason`]) after the idle timeout, on a dead link,
//! when closed locally, or at shutdown; see [`SessionState`] for the lifecycle.
//!
//! # Keepalives
//!
//! KCP has no ping. A [`KcpClient`] in message mode sends an *empty message* after
//! [`ClientConfig::keepalive`] without sending anything: one `PUSH` segment with no
//! payload, which every KCP peer (the C reference included) acknowledges and delivers
//! as a 0-byte message. Our server swallows 0-byte messages as keepalives
//! ([`ServerConfig::swallow_empty_messages`]); a C-reference echo server echoes them
//! back, and the client drops received 0-byte messages. The acknowledgement tells the
//! client the server is alive ([`ClientConfig::server_timeout`]). Stream mode cannot
//! send an empty message, so there the client sends no keepalives: keep the stream busy
//! or raise the server's idle timeout.
//!
//! # Portability
//!
//! On Linux, datagrams move with `recvmmsg`/`sendmmsg`, up to 32 messages per
//! syscall, and where the kernel grants UDP GSO and GRO each message carries a run of
//! up to 64 datagrams ([`IoBackend::Offload`], the default; [`IoBackend::Batched`]
//! without offload). Elsewhere, and whenever [`IoBackend::Portable`] is chosen, one
//! `recv_from`/`send_to` per datagram.
//!
//! # Throughput
//!
//! For bulk transfer, set [`ServerConfig::flush_on_input`] and
//! [`ClientConfig::flush_on_input`] (ACKs leave at once, and data waiting for the
//! window goes out as soon as ACKs open it) beside `flush_on_send`, and a window of a
//! few thousand segments. On loopback that moved 16 KiB messages at 0.7–1.2× TCP's
//! rate across runs (`docs/bench/loopback.md`). `SO_REUSEPORT` (needed for more
//! than one thread) exists on Linux and the BSDs; on Linux the kernel hashes each peer
//! to one socket, so a peer stays on one loop. If the set of sockets changes (another
//! process binds the port too), peers may be rehashed to a loop that does not know
//! them: run one server per port.
//!
//! # Draining
//!
//! Readiness is edge-triggered. A loop stops reading once a turn has brought 256
//! datagrams (with GRO one read may bring up to 1,024, so a turn may end with more),
//! then runs timers and sends, and comes back at once (zero poll timeout) until a
//! read returns `WouldBlock` or fills fewer slots than it offered (the queue was then
//! empty, so the next datagram raises a new edge): a flood delays timers by one
//! bounded turn, never starves them. On the send side, a full socket buffer drops the
//! rest of that turn's datagrams (counted as
//! `dropped_send_full`); KCP retransmits them like any loss.
//!
//! # Timer precision
//!
//! Engine time is whole milliseconds. Deadlines are rounded *up* to the next
//! millisecond and `mio` rounds poll timeouts up too, so a timer never fires early
//! and may fire up to ~1 ms (plus scheduling delay) late. Sessions are scheduled at
//! their engine's `check` time, so with the fast preset a busy session wakes every
//! 10 ms and an idle one only at its idle deadline: 10,000 idle sessions cost nothing
//! until they time out (or until a keepalive moves the deadline, which costs one
//! wake-up per idle period).
//!
//! # Security
//!
//! Raw KCP has no authentication: any datagram carrying the right `conv` is processed,
//! and `conv`, `sn` and `una` are small, predictable numbers. What this crate and
//! [`kcp_core`] defend against, and what they cannot:
//!
//! - **Forged control fields.** The engine refuses, segment by segment and without
//!   changing any state, what no genuine peer can have sent: a `una` beyond what we
//!   sent, an ACK of a sequence number we never sent, an ACK whose echoed timestamp is
//!   in the future or outside the times that segment was actually sent. A forged
//!   timestamp cannot inflate the RTO, a forged cumulative ACK cannot throw away data
//!   in flight, and a zero window that acknowledges none of our data is asked again at
//!   once (one round trip, not ikcp's 7 s probe timer). One datagram can claim at most
//!   one receive window of data. Each refusal is counted in [`kcp_core::Stats`].
//! - **Amplification.** A server session is *unconfirmed* until its peer acknowledges
//!   a segment we sent, echoing the `ts` of our transmission; a server conversation's
//!   engine clock starts at a random point, so a sender that cannot see our datagrams
//!   cannot guess it ([`Conversation::is_confirmed`]). Until then the session sends at
//!   most three times the bytes it accepted from that address, retransmissions
//!   included; the rest is held (at most 64 KiB) until the peer sends more or is
//!   confirmed. Our [`KcpClient`] pads its first datagram to 1,200 bytes, so that a
//!   first reply of up to 3,600 bytes leaves at once.
//! - **Session floods.** Unconfirmed sessions have their own small pool per loop
//!   ([`ServerConfig::max_unconfirmed_sessions`]) and idle timeout
//!   ([`UnconfirmedLimits`]); when the pool is full the oldest unconfirmed session is
//!   evicted, so spoofed first segments churn the pool instead of filling
//!   [`ServerConfig::max_sessions`], which counts confirmed sessions only. Each source
//!   IP may hold [`ServerConfig::max_sessions_per_ip`] sessions and open
//!   [`ServerConfig::new_sessions_per_ip_per_sec`].
//!
//! What raw KCP cannot prevent: an attacker who sees the traffic, or guesses `conv`
//! and a current sequence number, can inject data into the receive window (the peer's
//! real segments with those numbers are then discarded as duplicates), acknowledge
//! data the peer never received, advertise a false window, or replay old datagrams; an
//! on-path attacker can also confirm a spoofed session. A flood of spoofed first
//! segments faster than the pool turns over can evict a real client that has not
//! confirmed yet (on a long round trip). Only an authenticated session protocol on top
//! defends against that.
//!
//! # Handlers that fail
//!
//! An [`EventHandler`] method that panics does not take its loop down: the panic is
//! caught, the session it was called for is closed at once
//! ([`CloseReason::HandlerPanicked`], counted in [`LoopStats`] and logged) and the
//! loop goes on serving the others. Logging goes through `tracing` (sessions opened
//! and closed at debug level, drops summarised at most once a second), never a line
//! per datagram.
//!
//! # Current behaviour, not guaranteed
//!
//! - A session closed locally or by timeout leaves no trace: a later first segment from
//!   the same peer and conv opens a new session.
//! - Handle calls from handlers are posted without waiting for the result.
//! - The new-session rate cap and `max_sessions` are shared by all loops.
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]
#![doc(test(attr(deny(warnings))))]

pub mod admission;
mod amplification;
mod builder;
mod client;
mod clock;
mod config;
mod conversation;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)] // the fuzz targets' entry points, not public API
pub mod fuzzing;
mod hold_budget;
#[cfg(feature = "impair")]
pub mod impair;
mod lifecycle;
mod limits;
mod loop_busy;
mod loop_lag;
mod outbox;
mod retransmit_share;
pub mod secure;
mod server;
mod session;
mod stats;
mod store;
mod timer;
mod trim;
mod two_windows;
pub mod udp;

pub use builder::{ClientConfigBuilder, ConversationConfigBuilder, ServerConfigBuilder};
pub use client::{ClientEvent, KcpClient};
pub use config::{
    ClientConfig, ConversationConfig, DEFAULT_SOCKET_BUFFER, Preset, ServerConfig,
    UnconfirmedLimits, WireMode,
};
pub use conversation::Conversation;
pub use error::{NetError, QueueError, Refused};
pub use hold_budget::{Fed, HoldBudget};
pub use lifecycle::{CloseReason, SessionState};
pub use server::{
    CloseCtx, EventHandler, KcpServer, MAX_DATAGRAMS_PER_TURN, ServerDriver, ServerEvent,
    ServerHandle, SessionCtx, SessionInfo,
};
pub use session::KcpSession;
pub use stats::{LoopStats, ServerStats, SessionCounters, SessionStats};
pub use store::SessionKey;
pub use udp::IoBackend;

/// The engine crate, re-exported so users need one dependency.
pub use kcp_core;
