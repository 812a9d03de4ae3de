//! The handler API of the threaded server: what a server does with its sessions
//! ([`EventHandler`]) and what a handler may do during a callback ([`SessionCtx`],
//! [`CloseCtx`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::QueueError;
use crate::lifecycle::CloseReason;
use crate::server::driver::{begin_close, queue};
use crate::server::handle::ServerHandle;
use crate::session::KcpSession;
use crate::stats::LoopStats;
use crate::store::{Entry, SessionKey};

/// What a server does with its sessions. One clone runs on each event loop (thread),
/// and is called only from that thread, so it needs no locks of its own.
///
/// Calls happen inside the loop: keep them short, and do not block. To hand work to
/// other threads, send it through a channel; to reply, use the [`SessionCtx`].
///
/// A method that panics does not take the loop down: the panic is caught, the
/// session it was called for is closed at once with
/// [`CloseReason::HandlerPanicked`] (counted in `handler_panics` and
/// `closed_handler_panicked`, and logged), and the loop goes on serving the others.
/// A panic in [`accept`](Self::accept) refuses that session.
pub trait EventHandler: Send + 'static {
    /// A datagram from a new (peer, conv) wants to open a session. Return `false` to
    /// refuse it (counted as `dropped_refused`). Called after the `max_sessions` and
    /// rate checks. Default: accept.
    fn accept(&mut self, peer: SocketAddr, conv: u32) -> bool {
        let _ = (peer, conv);
        true
    }

    /// A session was opened; its first datagram is processed right after.
    fn on_open(&mut self, session: &mut SessionCtx<'_>) {
        let _ = session;
    }

    /// A whole message arrived (empty messages are keepalives and do not arrive here
    /// unless `swallow_empty_messages` is off).
    fn on_message(&mut self, session: &mut SessionCtx<'_>, message: Bytes);

    /// An unreliable datagram arrived (secure mode). By default it is dropped.
    fn on_datagram(&mut self, session: &mut SessionCtx<'_>, datagram: Bytes) {
        let _ = (session, datagram);
    }

    /// A session was closed and removed. `session` shows its final state and counters,
    /// and its [`handle`](CloseCtx::handle) reaches the rest of the server (tell the
    /// other sessions, say). Its key is stale from now on: sends to it are refused.
    fn on_close(&mut self, session: &CloseCtx<'_>, reason: CloseReason) {
        let _ = (session, reason);
    }
}

/// A handler's view of a session that was just closed and removed, in
/// [`EventHandler::on_close`]: its final state and counters, and the server's handle.
#[derive(Debug)]
pub struct CloseCtx<'a> {
    pub(crate) session: &'a KcpSession,
    pub(crate) handle: &'a ServerHandle,
}

impl CloseCtx<'_> {
    /// The session as it ended (state, counters, timestamps, peer, conv).
    pub fn session(&self) -> &KcpSession {
        self.session
    }

    /// The key the session had; no longer valid.
    pub fn key(&self) -> SessionKey {
        self.session.key()
    }

    /// The server's handle, as in [`SessionCtx::handle`]: calls on it post work
    /// without waiting. When a session closes because its loop is stopping (the
    /// loop's last sessions at shutdown), what is posted may never run.
    pub fn handle(&self) -> &ServerHandle {
        self.handle
    }
}

/// A handler's access to one session during a callback: reply, close, read counters,
/// and reach the rest of the server through [`handle`](Self::handle).
#[derive(Debug)]
pub struct SessionCtx<'a> {
    pub(crate) entry: Entry<'a, KcpSession>,
    pub(crate) stats: &'a mut LoopStats,
    pub(crate) handle: &'a ServerHandle,
    pub(crate) linger: Duration,
    pub(crate) now: Instant,
}

impl SessionCtx<'_> {
    /// The session's key, valid on any thread through a [`ServerHandle`].
    pub fn key(&self) -> SessionKey {
        self.entry.key()
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.entry.get().peer()
    }

    /// The conversation id.
    pub fn conv(&self) -> u32 {
        self.entry.get().conv()
    }

    /// The session itself (state, counters, timestamps).
    pub fn session(&self) -> &KcpSession {
        self.entry.get()
    }

    /// Queues a message to the peer (copied once).
    ///
    /// # Errors
    /// [`QueueError::Full`] beyond `max_queued_bytes_per_session`,
    /// [`QueueError::Engine`] if the engine refuses it, [`QueueError::Closed`] if the
    /// session is closing. Each converts into [`NetError`](crate::NetError) with `?`.
    pub fn send(&mut self, message: &[u8]) -> Result<(), QueueError> {
        self.send_bytes(Bytes::copy_from_slice(message))
    }

    /// Queues a message without copying (the engine's segments slice it).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn send_bytes(&mut self, message: Bytes) -> Result<(), QueueError> {
        queue(&mut self.entry, self.stats, self.now, message)
    }

    /// Queues an unreliable datagram (secure mode): no retransmission, no order.
    ///
    /// # Errors
    /// [`DatagramError`](crate::secure::DatagramError): raw mode, too large, too many
    /// waiting, or closing.
    pub fn send_datagram(&mut self, datagram: Bytes) -> Result<(), crate::secure::DatagramError> {
        self.entry.get_mut().conversation.send_datagram(datagram)?;
        self.entry.mark_dirty();
        Ok(())
    }

    /// How late this loop serves its timers, at worst, over the last one to two
    /// seconds ([`LoopStats::loop_lag_us`](crate::LoopStats::loop_lag_us)): its
    /// scheduling delay. A loop that is behind delays every session it holds; refuse
    /// new work while it is high.
    pub fn loop_lag(&self) -> Duration {
        Duration::from_micros(self.stats.loop_lag_us)
    }

    /// How much of this loop's sending is retransmission, over the last one to two
    /// seconds ([`LoopStats::retransmit_permille`](crate::LoopStats::retransmit_permille)),
    /// as a share (0.1 is 10%). A loop that reads its ACKs late retransmits what was
    /// not lost; refuse new work while it is high.
    pub fn retransmit_share(&self) -> f64 {
        self.stats.retransmit_permille as f64 / 1000.0
    }

    /// How much of its time this loop works, over the last one to two seconds
    /// ([`LoopStats::loop_busy_permille`](crate::LoopStats::loop_busy_permille)), as a
    /// share (0.9 is 90%). A loop near 1.0 is at its capacity: refuse new work before
    /// it falls behind.
    pub fn loop_busy(&self) -> f64 {
        self.stats.loop_busy_permille as f64 / 1000.0
    }

    /// Closes the session once what it has queued is acknowledged, or after the
    /// configured `close_linger`.
    pub fn close(&mut self) {
        begin_close(&mut self.entry, CloseReason::Local, self.now + self.linger);
    }

    /// The server's handle: send to other sessions, broadcast, stats. Calls on it from
    /// a handler post work without waiting (see [`ServerHandle`]).
    pub fn handle(&self) -> &ServerHandle {
        self.handle
    }
}
