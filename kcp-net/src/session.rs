//! One server-side conversation: an engine, its peer and its bookkeeping.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kcp_core::{InputError, Kcp, PollAt, Timestamp};

use crate::clock::Clock;
use crate::config::{enqueue, queued_bytes};
use crate::error::NetError;
use crate::outbox::Outbox;
use crate::stats::{SessionCounters, SessionStats};
use crate::store::SessionKey;
use crate::timer::earliest;

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// Nothing was heard from the peer for the idle timeout.
    IdleTimeout,
    /// A segment was retransmitted `dead_link` times without an acknowledgement: the
    /// peer is gone or unreachable.
    DeadLink,
    /// The application closed it (handler or handle).
    Local,
    /// The server shut down.
    Shutdown,
}

/// Where a session is in its life.
///
/// ```text
///            close() / shutdown
///  Active ─────────────────────────▶ Closing(reason, deadline)
///    │                                  │  all data acknowledged,
///    │ idle timeout, dead link          │  or deadline passed
///    ▼                                  ▼
///  Closed(IdleTimeout | DeadLink)     Closed(reason)
/// ```
///
/// A closing session still receives (and delivers) data and retransmits what it has
/// queued, but accepts no new messages. Closed sessions are removed from the server; the
/// handler's `on_close` sees them one last time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// Sending and receiving.
    Active,
    /// Delivering what is queued, then closing with `reason`.
    Closing {
        /// Why it closes.
        reason: CloseReason,
        /// When it closes even if data is still unacknowledged.
        deadline: Instant,
    },
}

/// One server-side KCP conversation: the engine, the peer's address and conv, when we
/// last heard from the peer, its state and its counters.
///
/// Handlers see it through [`SessionCtx`](crate::SessionCtx) and in `on_close`.
#[derive(Debug)]
pub struct KcpSession {
    key: SessionKey,
    peer: SocketAddr,
    pub(crate) kcp: Kcp,
    opened_at: Instant,
    last_heard: Instant,
    state: SessionState,
    counters: SessionCounters,
    /// The live timer entry, if any (see `timer.rs`).
    pub(crate) next_wake: Option<Instant>,
    /// Listed in the loop's dirty list this turn.
    pub(crate) dirty: bool,
    /// A message was queued since the last drive (for `flush_on_send`).
    pub(crate) sent: bool,
    /// A datagram was input since the last drive (for `flush_on_input`).
    pub(crate) received: bool,
    /// Engine retransmits already added to the loop's counter.
    retransmits_seen: u64,
}

impl KcpSession {
    pub(crate) fn new(key: SessionKey, peer: SocketAddr, kcp: Kcp, now: Instant) -> Self {
        Self {
            key,
            peer,
            kcp,
            opened_at: now,
            last_heard: now,
            state: SessionState::Active,
            counters: SessionCounters::default(),
            next_wake: None,
            dirty: false,
            sent: false,
            received: false,
            retransmits_seen: 0,
        }
    }

    /// This session's key.
    pub const fn key(&self) -> SessionKey {
        self.key
    }

    /// The peer's address.
    pub const fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The conversation id.
    pub fn conv(&self) -> u32 {
        self.kcp.conv()
    }

    /// When the session was opened.
    pub const fn opened_at(&self) -> Instant {
        self.opened_at
    }

    /// When the last valid datagram from the peer arrived.
    pub const fn last_heard(&self) -> Instant {
        self.last_heard
    }

    /// Active or closing.
    pub const fn state(&self) -> SessionState {
        self.state
    }

    /// Bytes queued or in flight, counted in whole segments.
    pub fn queued_bytes(&self) -> usize {
        queued_bytes(&self.kcp)
    }

    /// Counters so far.
    pub fn stats(&self) -> SessionStats {
        SessionStats {
            counters: self.counters,
            engine: self.kcp.stats(),
        }
    }

    /// Feeds a datagram from the peer to the engine.
    pub(crate) fn input(
        &mut self,
        now: Instant,
        ts: Timestamp,
        datagram: &[u8],
    ) -> Result<(), InputError> {
        match self.kcp.input(ts, datagram) {
            Ok(()) => {
                self.last_heard = now;
                self.received = true;
                self.counters.datagrams_in += 1;
                self.counters.bytes_in += datagram.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.counters.rejected_in += 1;
                Err(e)
            }
        }
    }

    /// The next whole message from the peer; keepalives (empty messages) are counted
    /// and skipped when `swallow_empty` is set.
    pub(crate) fn recv(&mut self, swallow_empty: bool) -> Option<Bytes> {
        loop {
            let message = self.kcp.recv()?;
            if message.is_empty() && swallow_empty {
                self.counters.keepalives += 1;
                continue;
            }
            self.counters.messages_in += 1;
            return Some(message);
        }
    }

    /// Queues a message, enforcing the state and the queued-bytes limit.
    pub(crate) fn queue(&mut self, message: Bytes, limit: usize) -> Result<(), NetError> {
        if self.state != SessionState::Active {
            return Err(NetError::SessionClosed);
        }
        enqueue(&mut self.kcp, &mut self.counters, message, limit)?;
        self.sent = true;
        Ok(())
    }

    /// Starts closing (no-op if already closing).
    pub(crate) fn close(&mut self, reason: CloseReason, deadline: Instant) {
        if self.state == SessionState::Active {
            self.state = SessionState::Closing { reason, deadline };
        }
    }

    /// Runs the engine's timer (or an immediate flush) and queues its datagrams for
    /// the peer in `outbox`. Returns the retransmissions since the last call.
    pub(crate) fn drive(&mut self, ts: Timestamp, flush: bool, outbox: &mut Outbox) -> u64 {
        outbox.drive(&mut self.kcp, self.peer, ts, flush, &mut self.counters);
        let stats = self.kcp.stats();
        let total = stats.retransmits_timeout + stats.retransmits_fast;
        let new = total - self.retransmits_seen;
        self.retransmits_seen = total;
        new
    }

    /// Why the session must close now, if it must.
    pub(crate) fn close_due(&self, now: Instant, idle_timeout: Duration) -> Option<CloseReason> {
        if self.kcp.is_dead() {
            return Some(CloseReason::DeadLink);
        }
        if now >= self.last_heard + idle_timeout {
            return Some(CloseReason::IdleTimeout);
        }
        match self.state {
            SessionState::Closing { reason, deadline }
                if self.kcp.wait_send() == 0 || now >= deadline =>
            {
                Some(reason)
            }
            _ => None,
        }
    }

    /// When the session next needs the loop: its engine's `check`, its idle deadline
    /// and its closing deadline, whichever is first. An idle engine contributes
    /// nothing, so an idle session wakes only for its idle deadline.
    pub(crate) fn wake_at(&self, now: Instant, clock: &Clock, idle_timeout: Duration) -> Instant {
        let engine = match self.kcp.check(clock.timestamp(now)) {
            // Just driven, so "now" would spin; a millisecond later is the next time
            // the engine clock can read differently.
            PollAt::Now => Some(now + Duration::from_millis(1)),
            PollAt::At(t) => Some(clock.instant_of(now, t)),
            PollAt::Idle => None,
        };
        let closing = match self.state {
            SessionState::Closing { deadline, .. } => Some(deadline),
            SessionState::Active => None,
        };
        let idle = self.last_heard + idle_timeout;
        earliest(earliest(engine, closing), Some(idle)).unwrap_or(idle)
    }
}
