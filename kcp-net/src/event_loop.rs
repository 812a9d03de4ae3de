//! One event loop: a socket, its sessions, their timers and a command queue.
//!
//! Each turn:
//!
//! 1. Pick the poll timeout: zero if the socket may still hold data, else the earliest
//!    of the session timers, the impaired link's next release and the shutdown
//!    deadline (`mio` rounds sub-millisecond timeouts up, so the loop never spins on a
//!    deadline that is less than 1 ms away).
//! 2. Poll. The socket event sets `socket_readable`; the waker needs no handling, since
//!    commands are drained every turn.
//! 3. Drain commands from other threads.
//! 4. Receive at most [`MAX_DATAGRAMS_PER_TURN`]; clear `socket_readable` only on
//!    `WouldBlock` or a read that did not fill every slot (the queue was empty then),
//!    because with edge-triggered readiness no new event comes for data left in the
//!    socket.
//! 5. Run the due session timers.
//! 6. Drive every session touched this turn (input, sends, closes) and reschedule it;
//!    flush one that is done once more (the ACKs it owes leave) and remove it.
//! 7. Send the whole turn's datagrams in as few syscalls as the backend allows.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, atomic::Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kcp_core::segment::{Command as Cmd, HEADER_LEN, Header};
use kcp_core::{Kcp, conv_of};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::clock::Clock;
use crate::command::{Command, SessionInfo, Shared, mark_loop_thread};
use crate::config::{ServerConfig, max_datagram};
use crate::error::NetError;
use crate::outbox::Outbox;
use crate::server::{CloseCtx, EventHandler, ServerHandle, SessionCtx};
use crate::session::{CloseReason, KcpSession, SessionState};
use crate::stats::LoopStats;
use crate::store::{SessionKey, Store};
use crate::timer::{TimerHeap, earliest};
use crate::udp::{self, BATCH, DatagramIo, RecvBatch};

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

/// Datagrams received in a turn after which no further read starts before timers and
/// output get their turn: 8 batches (one GRO read may bring up to 1,024, so a turn
/// can end above it). Bounds the latency a flood can add to timers and to other
/// sessions' output (quinn's `IO_LOOP_BOUND` idea); at ~1 µs per datagram it is
/// ~0.3 ms of work.
pub(crate) const MAX_DATAGRAMS_PER_TURN: usize = 8 * BATCH;

/// A loop before and while it runs on its thread.
#[derive(Debug)]
pub(crate) struct EventLoop {
    id: u16,
    poll: Poll,
    socket: UdpSocket,
    io: Box<dyn DatagramIo>,
    recv: RecvBatch,
    commands: Receiver<Command>,
    config: Arc<ServerConfig>,
    shared: Arc<Shared>,
    clock: Clock,
    outbox: Outbox,
}

impl EventLoop {
    /// Registers `socket` and a waker with a new poll.
    pub(crate) fn new(
        id: u16,
        mut socket: UdpSocket,
        commands: Receiver<Command>,
        config: Arc<ServerConfig>,
        shared: Arc<Shared>,
    ) -> Result<(Self, Arc<Waker>), NetError> {
        let poll = Poll::new().map_err(|e| NetError::io("creating a poll", e))?;
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE)
            .map_err(|e| NetError::io("registering the socket", e))?;
        let waker =
            Waker::new(poll.registry(), WAKER).map_err(|e| NetError::io("creating a waker", e))?;
        let now = Instant::now();
        let clock = Clock::new(now);
        let outbox = Outbox::new(clock, now);
        #[cfg(feature = "impair")]
        let outbox = outbox.impaired(
            config
                .impair
                .as_ref()
                .map(|i| {
                    let mut i = i.clone();
                    i.seed = i.seed.wrapping_add(u64::from(id));
                    i
                })
                .as_ref(),
        );
        let io = udp::datagram_io(config.io, &socket);
        let recv = RecvBatch::for_io(
            io.as_ref(),
            max_datagram(&config.engine),
            udp::LOOP_GRO_SLOTS,
        );
        let event_loop = Self {
            id,
            poll,
            socket,
            io,
            recv,
            commands,
            clock,
            outbox,
            config,
            shared,
        };
        Ok((event_loop, Arc::new(waker)))
    }

    /// Runs until shut down.
    pub(crate) fn run<H: EventHandler>(
        self,
        handler: H,
        handle: ServerHandle,
    ) -> Result<(), NetError> {
        mark_loop_thread();
        let Self {
            id,
            mut poll,
            socket,
            io,
            recv,
            commands,
            config,
            shared,
            clock,
            outbox,
        } = self;
        let mut state = LoopState {
            id,
            socket,
            io,
            outbox,
            clock,
            store: Store::new(id),
            routes: HashMap::new(),
            timers: TimerHeap::new(),
            dirty: Vec::new(),
            socket_readable: true,
            shutdown: None,
            stats: LoopStats::default(),
            handler,
            handle,
            config,
            shared,
        };
        let result = state.turns(&mut poll, recv, &commands);
        state.close_all(Instant::now());
        state.publish();
        result
    }
}

/// Everything a running loop owns besides its poll, receive slots and command queue.
struct LoopState<H> {
    id: u16,
    socket: UdpSocket,
    io: Box<dyn DatagramIo>,
    outbox: Outbox,
    clock: Clock,
    store: Store,
    routes: HashMap<(SocketAddr, u32), SessionKey>,
    timers: TimerHeap<SessionKey>,
    dirty: Vec<SessionKey>,
    socket_readable: bool,
    shutdown: Option<Instant>,
    stats: LoopStats,
    handler: H,
    handle: ServerHandle,
    config: Arc<ServerConfig>,
    shared: Arc<Shared>,
}

impl<H: EventHandler> LoopState<H> {
    fn turns(
        &mut self,
        poll: &mut Poll,
        mut recv: RecvBatch,
        commands: &Receiver<Command>,
    ) -> Result<(), NetError> {
        let mut events = Events::with_capacity(16);
        loop {
            let timeout = self.poll_timeout(Instant::now());
            if let Err(e) = poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(NetError::io("polling", e));
            }
            self.stats.wakeups += 1;
            if events.iter().any(|e| e.token() == SOCKET) {
                self.socket_readable = true;
            }
            let now = Instant::now();
            self.outbox.set_now(now);
            while let Ok(command) = commands.try_recv() {
                self.stats.commands += 1;
                self.command(command, now);
            }
            if self.socket_readable {
                self.receive(&mut recv, now);
            }
            self.run_timers(now);
            self.service_dirty(now);
            self.send(now);
            self.publish();
            if self.shutdown.is_some() && self.store.is_empty() {
                return Ok(());
            }
        }
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if self.socket_readable {
            return Some(Duration::ZERO);
        }
        let next = earliest(self.timers.peek(), self.outbox.next_release());
        let next = earliest(next, self.shutdown);
        next.map(|at| at.saturating_duration_since(now))
    }

    fn publish(&mut self) {
        self.stats.sessions_active = self.store.len() as u64;
        self.stats.dropped_impaired = self.outbox.impaired_drops();
        self.shared.stats[usize::from(self.id)].publish(&self.stats);
    }

    // ------------------------------------------------------------ commands

    fn command(&mut self, command: Command, now: Instant) {
        match command {
            Command::Send {
                key,
                message,
                reply,
            } => {
                let result = self.queue(key, message);
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            Command::SendMany {
                keys,
                message,
                reply,
            } => {
                let accepted = keys
                    .into_iter()
                    .filter(|&key| self.queue(key, message.clone()).is_ok())
                    .count();
                if let Some(reply) = reply {
                    let _ = reply.send(accepted);
                }
            }
            Command::Broadcast { message, reply } => {
                let limit = self.config.max_queued_bytes_per_session;
                let mut accepted = Vec::new();
                for session in self.store.iter_mut() {
                    if session.state() != SessionState::Active {
                        continue;
                    }
                    match session.queue(message.clone(), limit) {
                        Ok(()) => accepted.push(session.key()),
                        Err(_) => self.stats.sends_refused += 1,
                    }
                }
                self.stats.messages_out += accepted.len() as u64;
                if let Some(reply) = reply {
                    let _ = reply.send(accepted.len());
                }
                for key in accepted {
                    self.mark_dirty(key);
                }
            }
            Command::Close { key, reply } => {
                let deadline = now + self.config.close_linger;
                let result = match self.store.get_mut(key) {
                    Some(session) => {
                        session.close(CloseReason::Local, deadline);
                        Ok(())
                    }
                    None => Err(NetError::SessionClosed),
                };
                if result.is_ok() {
                    self.mark_dirty(key);
                }
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            Command::Stats { key, reply } => {
                let stats = self.store.get(key).map(KcpSession::stats);
                let _ = reply.send(stats.ok_or(NetError::SessionClosed));
            }
            Command::List { reply } => {
                let list = self
                    .store
                    .iter()
                    .map(|s| SessionInfo {
                        key: s.key(),
                        peer: s.peer(),
                        conv: s.conv(),
                    })
                    .collect();
                let _ = reply.send(list);
            }
            Command::Shutdown { deadline } => {
                let deadline = self.shutdown.map_or(deadline, |d| d.min(deadline));
                self.shutdown = Some(deadline);
                let mut keys = Vec::with_capacity(self.store.len());
                for session in self.store.iter_mut() {
                    session.close(CloseReason::Shutdown, deadline);
                    keys.push(session.key());
                }
                for key in keys {
                    self.mark_dirty(key);
                }
            }
        }
    }

    /// Queues a message posted for one session, counting it as sent or refused.
    fn queue(&mut self, key: SessionKey, message: Bytes) -> Result<(), NetError> {
        let limit = self.config.max_queued_bytes_per_session;
        let result = match self.store.get_mut(key) {
            Some(session) => session.queue(message, limit),
            None => Err(NetError::SessionClosed),
        };
        if result.is_ok() {
            self.stats.messages_out += 1;
            self.mark_dirty(key);
        } else {
            self.stats.sends_refused += 1;
        }
        result
    }

    fn mark_dirty(&mut self, key: SessionKey) {
        if let Some(session) = self.store.get_mut(key) {
            if !session.dirty {
                session.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    // ------------------------------------------------------------ input

    fn receive(&mut self, recv: &mut RecvBatch, now: Instant) {
        let mut received = 0;
        while received < MAX_DATAGRAMS_PER_TURN {
            self.stats.recv_syscalls += 1;
            match self.io.recv(&self.socket, recv) {
                Ok(n) => {
                    received += n;
                    // A short read emptied the socket: the next datagram raises a new
                    // edge, so skip the call that would only say `WouldBlock`.
                    self.socket_readable = recv.may_hold_more();
                    for i in 0..n {
                        let (meta, datagram) = recv.get(i);
                        self.stats.datagrams_in += 1;
                        self.stats.bytes_in += meta.len as u64;
                        if meta.truncated {
                            self.stats.dropped_truncated += 1;
                        } else {
                            self.datagram(meta.addr, datagram, now);
                        }
                    }
                    if !self.socket_readable {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.socket_readable = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Errors queued on the socket (ICMP reports) are consumed by the call
                // that returns them; try again next turn.
                Err(_) => return,
            }
        }
    }

    fn datagram(&mut self, peer: SocketAddr, datagram: &[u8], now: Instant) {
        let Some(conv) = conv_of(datagram) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        if let Some(&key) = self.routes.get(&(peer, conv)) {
            self.deliver(key, datagram, now);
            return;
        }
        match opens_conversation(datagram, self.config.engine.initial_sn) {
            Err(()) => self.stats.dropped_malformed += 1,
            Ok(false) => self.stats.dropped_unknown_session += 1,
            Ok(true) => {
                if let Some(key) = self.open(peer, conv, now) {
                    self.deliver(key, datagram, now);
                }
            }
        }
    }

    /// Opens a session for a new (peer, conv) if the limits and the handler allow.
    fn open(&mut self, peer: SocketAddr, conv: u32, now: Instant) -> Option<SessionKey> {
        if self.shutdown.is_some() {
            self.stats.dropped_refused += 1;
            return None;
        }
        if self.shared.sessions.load(Ordering::Relaxed) >= self.config.max_sessions {
            self.stats.dropped_session_limit += 1;
            return None;
        }
        let token = self
            .shared
            .new_sessions
            .lock()
            .map(|mut bucket| bucket.take(now))
            .unwrap_or(false);
        if !token {
            self.stats.dropped_rate_limited += 1;
            return None;
        }
        if !self.handler.accept(peer, conv) {
            self.stats.dropped_refused += 1;
            return None;
        }
        // The config was validated at bind, so this cannot fail.
        let kcp = Kcp::new(conv, self.config.engine.clone()).ok()?;
        let key = self
            .store
            .insert(|key| KcpSession::new(key, peer, kcp, now));
        self.routes.insert((peer, conv), key);
        self.shared.sessions.fetch_add(1, Ordering::Relaxed);
        self.stats.sessions_opened += 1;
        let session = self.store.get_mut(key)?;
        // Start the engine's update grid now (a new engine has nothing to send yet).
        let _ = session.drive(self.clock.timestamp(now), false, &mut self.outbox);
        let mut ctx = SessionCtx::new(
            session,
            &self.handle,
            &self.config,
            now,
            &mut self.dirty,
            &mut self.stats,
        );
        self.handler.on_open(&mut ctx);
        Some(key)
    }

    /// Feeds a datagram to its session and hands out the messages it completes.
    fn deliver(&mut self, key: SessionKey, datagram: &[u8], now: Instant) {
        let ts = self.clock.timestamp(now);
        let swallow = self.config.swallow_empty_messages;
        let Some(session) = self.store.get_mut(key) else {
            return;
        };
        if session.input(now, ts, datagram).is_err() {
            self.stats.dropped_rejected += 1;
            return;
        }
        if !session.dirty {
            session.dirty = true;
            self.dirty.push(key);
        }
        loop {
            let Some(session) = self.store.get_mut(key) else {
                return;
            };
            let before = session.stats().counters.keepalives;
            let Some(message) = session.recv(swallow) else {
                self.stats.keepalives_in += session.stats().counters.keepalives - before;
                return;
            };
            self.stats.keepalives_in += session.stats().counters.keepalives - before;
            self.stats.messages_in += 1;
            let mut ctx = SessionCtx::new(
                session,
                &self.handle,
                &self.config,
                now,
                &mut self.dirty,
                &mut self.stats,
            );
            self.handler.on_message(&mut ctx, message);
        }
    }

    // ------------------------------------------------------------ timers and output

    fn run_timers(&mut self, now: Instant) {
        while let Some((at, key)) = self.timers.pop_due(now) {
            let Some(session) = self.store.get_mut(key) else {
                continue; // closed since
            };
            if session.next_wake != Some(at) {
                continue; // superseded by an earlier entry
            }
            session.next_wake = None;
            self.stats.timer_fires += 1;
            if !session.dirty {
                session.dirty = true;
                self.dirty.push(key);
            }
        }
        if self.timers.len() > 2 * self.store.len() + 1024 {
            let live = self
                .store
                .iter()
                .filter_map(|s| s.next_wake.map(|at| (at, s.key())));
            self.timers.rebuild(live);
        }
    }

    /// Drives every session touched this turn, closes those that are done and
    /// reschedules the rest.
    fn service_dirty(&mut self, now: Instant) {
        let ts = self.clock.timestamp(now);
        let idle = self.config.idle_timeout;
        let mut dirty = std::mem::take(&mut self.dirty);
        for key in dirty.drain(..) {
            let Some(session) = self.store.get_mut(key) else {
                continue;
            };
            session.dirty = false;
            let sent = std::mem::take(&mut session.sent);
            let received = std::mem::take(&mut session.received);
            let flush =
                (self.config.flush_on_send && sent) || (self.config.flush_on_input && received);
            self.stats.retransmits += session.drive(ts, flush, &mut self.outbox);
            if let Some(reason) = session.close_due(now, idle) {
                self.close(key, reason, now);
                continue;
            }
            let wake = session.wake_at(now, &self.clock, idle);
            if session.next_wake.is_none_or(|current| wake < current) {
                session.next_wake = Some(wake);
                self.timers.push(wake, key);
            }
        }
        // Handlers may have dirtied sessions while closing others; keep the buffer.
        dirty.append(&mut self.dirty);
        self.dirty = dirty;
        if !self.dirty.is_empty() {
            self.service_dirty(now);
        }
    }

    /// Removes a session for good. It is flushed first, so that everything it owes
    /// leaves: above all the ACKs for data it received this turn, which the interval
    /// grid would otherwise hold back (the peer would then retransmit to a session
    /// that no longer exists). Data still unacknowledged at a deadline is abandoned.
    fn close(&mut self, key: SessionKey, reason: CloseReason, now: Instant) {
        let ts = self.clock.timestamp(now);
        let Some(session) = self.store.get_mut(key) else {
            return;
        };
        self.stats.retransmits += session.drive(ts, true, &mut self.outbox);
        let Some(session) = self.store.remove(key) else {
            return;
        };
        self.routes.remove(&(session.peer(), session.conv()));
        self.shared.sessions.fetch_sub(1, Ordering::Relaxed);
        match reason {
            CloseReason::IdleTimeout => self.stats.closed_idle += 1,
            CloseReason::DeadLink => self.stats.closed_dead_link += 1,
            CloseReason::Local => self.stats.closed_local += 1,
            CloseReason::Shutdown => self.stats.closed_shutdown += 1,
        }
        let ctx = CloseCtx {
            session: &session,
            handle: &self.handle,
        };
        self.handler.on_close(&ctx, reason);
    }

    /// Closes every session still open when the loop stops.
    fn close_all(&mut self, now: Instant) {
        let keys: Vec<_> = self.store.iter().map(KcpSession::key).collect();
        for key in keys {
            self.close(key, CloseReason::Shutdown, now);
        }
        self.send(now);
    }

    fn send(&mut self, now: Instant) {
        let outcome = self.outbox.send(now, self.io.as_mut(), &self.socket);
        self.stats.datagrams_out += outcome.datagrams;
        self.stats.bytes_out += outcome.bytes;
        self.stats.send_syscalls += outcome.syscalls;
        self.stats.dropped_send_full += outcome.dropped_full;
        self.stats.send_errors += outcome.errors;
    }
}

/// Whether a datagram for no existing session may open one: it must parse whole as KCP
/// (`Err` if not) and carry the first data segment of a conversation (a `Push` with
/// `sn == initial_sn`). Stragglers of a closed or forgotten conversation (after a
/// server restart, say) carry later sequence numbers and are dropped, so their client
/// sees a dead link and reconnects instead of talking to a session that can never
/// deliver its data.
fn opens_conversation(datagram: &[u8], initial_sn: u32) -> Result<bool, ()> {
    let mut rest = datagram;
    let mut opens = false;
    let conv = conv_of(datagram).ok_or(())?;
    while rest.len() >= HEADER_LEN {
        let (header, payload) = Header::parse(rest).map_err(|_| ())?;
        if header.conv != conv {
            return Err(());
        }
        if header.cmd == Cmd::Push && header.sn.get() == initial_sn {
            opens = true;
        }
        rest = &rest[HEADER_LEN + payload.len()..];
    }
    Ok(opens)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kcp_core::Sn;

    fn segment(conv: u32, cmd: Cmd, sn: u32, payload: &[u8]) -> Vec<u8> {
        Header::new(conv, cmd, Sn::new(sn)).encode(payload)
    }

    #[test]
    fn only_the_first_push_of_a_conversation_opens_a_session() {
        assert_eq!(
            opens_conversation(&segment(7, Cmd::Push, 0, b"hi"), 0),
            Ok(true)
        );
        assert_eq!(
            opens_conversation(&segment(7, Cmd::Push, 5, b"hi"), 0),
            Ok(false)
        );
        assert_eq!(
            opens_conversation(&segment(7, Cmd::Ack, 0, b""), 0),
            Ok(false)
        );
        let mut two = segment(7, Cmd::Ack, 3, b"");
        two.extend(segment(7, Cmd::Push, 0, b"x"));
        assert_eq!(opens_conversation(&two, 0), Ok(true));
        let mut mixed = segment(7, Cmd::Push, 0, b"x");
        mixed.extend(segment(8, Cmd::Push, 0, b"x"));
        assert_eq!(opens_conversation(&mixed, 0), Err(()));
        let mut garbage = segment(7, Cmd::Push, 0, b"x");
        garbage[4] = 99;
        assert_eq!(opens_conversation(&garbage, 0), Err(()));
    }
}
