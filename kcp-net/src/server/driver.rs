//! `ServerDriver`: a server on one socket that owns no thread. The caller passes
//! `now`, polls the socket when it likes and takes events back as values; the
//! threaded [`KcpServer`](crate::KcpServer) runs one per loop thread.

use crate::HoldBudget;
use crate::loop_busy::BusyMeter;
use crate::loop_lag::LagMeter;
use crate::retransmit_share::{RetransmitMeter, Sent};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, atomic::Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kcp_core::conv_of;
use mio::net::UdpSocket;

use crate::admission::{Opening, Refusal, Room, UnconfirmedPool};
use crate::clock::Clock;
use crate::config::{ConversationConfig, ServerConfig, max_datagram};
use crate::conversation::Conversation;
use crate::error::{NetError, QueueError};
use crate::lifecycle::{CloseReason, SessionState};
use crate::outbox::Outbox;
use crate::server::request::{SessionInfo, Shared};
use crate::session::KcpSession;
use crate::stats::LoopStats;
use crate::store::{Entry, SessionKey, Store};
use crate::timer::{TimerHeap, earliest};
use crate::trim;
use crate::udp::{self, BATCH, DatagramIo, PolledSocket, RecvBatch, SocketOptions};

use super::secure_front::DriverFront;

/// Datagrams received in one [`ServerDriver::poll_io`] after which no further read
/// starts before timers and output get their turn: 64 batches (one GRO read may bring
/// up to 1,024, so a call can end above it). Bounds the latency a flood can add to
/// timers and to other sessions' output (quinn's `IO_LOOP_BOUND` idea): at ~1 µs per
/// datagram, ~2 ms of work.
///
/// It was 8 batches. Measured with `kcp-chat bench --clients 1000` on a loaded
/// machine, a loop that fell behind then ran its timers every 256 datagrams while the
/// ACKs that answered them still waited in the socket: 19% of segments were
/// retransmitted for nothing, the extra traffic filled the 8 MiB receive buffer (57 k
/// datagrams dropped by the kernel in 8 s) and p99 reached 7.5 s. Reading 2,048 first
/// lets the ACKs in before the timers judge, and each session touched by many of them
/// is flushed once: 2.5% retransmitted, no kernel drops, p99 1.5 s, same load.
pub const MAX_DATAGRAMS_PER_TURN: usize = 64 * BATCH;

/// How often, at most, the driver logs a summary of the datagrams it dropped.
const DROP_LOG_EVERY: Duration = Duration::from_secs(1);

/// What happened on a [`ServerDriver`], taken with [`ServerDriver::next_event`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A session was opened by a datagram from a new (peer, conv); its messages
    /// follow.
    Opened {
        /// Its key.
        key: SessionKey,
        /// The peer's address.
        peer: SocketAddr,
        /// The conversation id.
        conv: u32,
    },
    /// A whole message arrived (empty messages are keepalives and do not arrive here
    /// unless `swallow_empty_messages` is off).
    Message {
        /// The session it came on.
        key: SessionKey,
        /// The message.
        message: Bytes,
    },
    /// An unreliable datagram arrived (secure mode).
    Datagram {
        /// The session it came on.
        key: SessionKey,
        /// Its bytes.
        datagram: Bytes,
    },
    /// A session was closed and removed; its key is stale from now on.
    Closed {
        /// The key it had.
        key: SessionKey,
        /// Why it closed.
        reason: CloseReason,
        /// The session as it ended (state, counters, peer, conv).
        session: Box<KcpSession>,
    },
}

/// A KCP server on one UDP socket that starts no thread: what a game server drives
/// from its own loop (kcp2k's `Tick`), and what each loop of the threaded
/// [`KcpServer`](crate::KcpServer) runs.
///
/// Each frame, call [`poll_io`](Self::poll_io) (read the socket into the sessions),
/// take the events with [`next_event`](Self::next_event) (replying with
/// [`send`](Self::send)), then [`tick`](Self::tick) (timers, closes, and every
/// datagram out); or [`poll`](Self::poll) for both, whose replies then leave at the
/// next call. Every method takes `now`; none blocks or reads the clock. Sleep until
/// [`next_deadline`](Self::next_deadline), or register the driver (it is a
/// [`mio::event::Source`]) and wake when its socket is readable.
///
/// The limits and counters are the threaded server's: `max_sessions`, the
/// new-session rate, idle timeout, queue limits ([`ServerConfig`]; `threads` is
/// ignored: a driver is one loop), counted in [`LoopStats`].
///
/// # Example
///
/// ```no_run
/// use std::time::{Duration, Instant};
/// use kcp_net::{Preset, ServerConfig, ServerDriver, ServerEvent};
///
/// # fn main() -> Result<(), kcp_net::NetError> {
/// let mut server = ServerDriver::bind("127.0.0.1:4000".parse().unwrap(), ServerConfig::new(Preset::Fast))?;
/// loop {
///     let now = Instant::now();
///     server.poll_io(now)?;
///     while let Some(event) = server.next_event() {
///         if let ServerEvent::Message { key, message } = event {
///             let _ = server.send(now, key, message); // echo
///         }
///     }
///     server.tick(now);
///     std::thread::sleep(Duration::from_millis(16)); // a 60 Hz frame
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct ServerDriver {
    pub(super) id: u16,
    pub(super) socket: PolledSocket,
    pub(super) io: Box<dyn DatagramIo>,
    pub(super) recv: RecvBatch,
    pub(super) outbox: Outbox,
    pub(super) config: Arc<ServerConfig>,
    pub(super) conversation: ConversationConfig,
    pub(super) shared: Arc<Shared>,
    pub(super) store: Store<KcpSession>,
    pub(super) routes: HashMap<(SocketAddr, u32), SessionKey>,
    pub(super) timers: TimerHeap<SessionKey>,
    /// Reused buffer for the dirty keys of a tick.
    pub(super) dirty: Vec<SessionKey>,
    pub(super) socket_readable: bool,
    pub(super) shutdown: Option<Instant>,
    pub(super) stats: LoopStats,
    pub(super) events: VecDeque<ServerEvent>,
    /// The drop counters at the last drop log, and when the next may be written.
    pub(super) drops_logged: (LoopStats, Instant),
    /// The loop's unconfirmed sessions, oldest first.
    pub(super) unconfirmed: UnconfirmedPool<SessionKey>,
    /// Received bytes the loop's sessions hold (estimated, see `Buffers`).
    pub(super) buffers: Buffers,
    /// The secure wire mode's handshakes and session indices (`None`: raw KCP).
    pub(super) front: Option<DriverFront>,
    /// How late the timers fire (`loop_lag_us`).
    pub(super) lag: LagMeter,
    /// How much of what the loop sends is retransmitted (`retransmit_permille`).
    pub(super) retransmit_share: RetransmitMeter,
    /// How much of its time the loop works (`loop_busy_permille`), as far as the
    /// event loop that runs it says ([`record_poll_wait`](Self::record_poll_wait)).
    pub(super) busy: BusyMeter,
    /// Sealed datagrams received for other loops' sessions, for the event loop to
    /// post: (loop, source, datagram).
    pub(super) forwards: Vec<(usize, SocketAddr, Bytes)>,
}

/// The loop's share of `max_buffered_bytes` and what its sessions hold.
#[derive(Clone, Copy, Debug)]
pub(super) struct Buffers {
    budget: HoldBudget,
    /// Held data closed sessions freed since the heap was last trimmed.
    freed: usize,
}

impl ServerDriver {
    /// Binds a socket to `addr` (port 0 picks one) for a driver with `config`.
    ///
    /// # Errors
    /// [`NetError::Bind`] if the socket cannot be bound, [`NetError::Config`] /
    /// [`NetError::Setting`] for an invalid `config`.
    pub fn bind(addr: SocketAddr, config: ServerConfig) -> Result<Self, NetError> {
        Self::bind_at(addr, config, Instant::now())
    }

    /// As [`bind`](Self::bind), starting the driver's clock (engine time, the
    /// new-session rate) at `now`: for a driver on virtual time, where every later
    /// `now` is `now + elapsed`.
    ///
    /// # Errors
    /// As [`bind`](Self::bind).
    pub fn bind_at(addr: SocketAddr, config: ServerConfig, now: Instant) -> Result<Self, NetError> {
        config.validate()?;
        let socket = udp::bind(
            addr,
            SocketOptions {
                reuse_port: false,
                recv_buffer: config.recv_buffer,
                send_buffer: config.send_buffer,
            },
        )?;
        let config = ServerConfig {
            threads: 1,
            ..config
        };
        let shared = Shared::new(&config, now);
        Ok(Self::with_socket(0, socket, Arc::new(config), shared, now))
    }

    /// A driver for loop `id` of a server, on a bound socket, sharing `shared` with
    /// the server's other loops. `config` was validated.
    pub(crate) fn with_socket(
        id: u16,
        socket: UdpSocket,
        config: Arc<ServerConfig>,
        shared: Arc<Shared>,
        now: Instant,
    ) -> Self {
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
        let buffers = Buffers {
            budget: HoldBudget::new(&config, config.threads),
            freed: 0,
        };
        let unconfirmed = UnconfirmedPool::new(&config);
        let front = config
            .secure
            .clone()
            .map(|security| DriverFront::new(security, (id & 0xFF) as u8, now));
        let io = udp::datagram_io(config.io, &socket);
        let recv = RecvBatch::for_io(
            io.as_ref(),
            max_datagram(&config.engine),
            udp::LOOP_GRO_SLOTS,
        );
        Self {
            id,
            socket: PolledSocket::new(socket),
            io,
            recv,
            outbox,
            conversation: config.conversation(),
            config,
            shared,
            store: Store::new(id),
            routes: HashMap::new(),
            timers: TimerHeap::new(),
            dirty: Vec::new(),
            socket_readable: true,
            shutdown: None,
            stats: LoopStats::default(),
            events: VecDeque::new(),
            drops_logged: (LoopStats::default(), now),
            front,
            unconfirmed,
            buffers,
            lag: LagMeter::new(now),
            retransmit_share: RetransmitMeter::new(now, Sent::default()),
            busy: BusyMeter::new(now),
            forwards: Vec::new(),
        }
    }

    // ---------------------------------------------------------------- getters

    /// The address the socket is bound to.
    ///
    /// # Errors
    /// If the OS cannot tell.
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        self.socket
            .local_addr()
            .map_err(|e| NetError::io("reading the local address", e))
    }

    /// The settings it runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Counters since it started.
    pub fn stats(&self) -> LoopStats {
        let mut stats = self.stats;
        stats.sessions_active = self.store.len() as u64;
        stats.dropped_impaired = self.outbox.impaired_drops();
        stats
    }

    /// A session by key (`None` once it is closed).
    pub fn session(&self, key: SessionKey) -> Option<&KcpSession> {
        self.store.get(key)
    }

    /// Every open session.
    pub fn sessions(&self) -> impl Iterator<Item = &KcpSession> {
        self.store.iter().map(|(_, session)| session)
    }

    /// Sessions open now.
    pub fn session_count(&self) -> usize {
        self.store.len()
    }

    /// Shut down and every session gone: nothing more will happen.
    pub fn is_finished(&self) -> bool {
        self.shutdown.is_some() && self.store.is_empty()
    }

    /// When the driver next has work even if nothing arrives: the earliest session
    /// timer (engines, idle and closing deadlines, shutdown included) and the
    /// impaired link's next release. `now` if work is due already (the socket may
    /// still hold datagrams, or events or touched sessions wait); `None` if only a
    /// datagram can create work.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        if self.socket_readable || !self.events.is_empty() || self.store.has_dirty() {
            return Some(now);
        }
        earliest(self.timers.peek(), self.outbox.next_release())
    }

    // ---------------------------------------------------------------- events

    /// The next event, oldest first.
    pub fn next_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    // ---------------------------------------------------------------- commands

    /// Queues a message to a session (it leaves at the next [`tick`](Self::tick)).
    ///
    /// # Errors
    /// [`QueueError::Closed`] for a closed or closing session (or a stale key), the
    /// queue limit, or the engine's refusal.
    pub fn send(
        &mut self,
        now: Instant,
        key: SessionKey,
        message: impl Into<Bytes>,
    ) -> Result<(), QueueError> {
        match self.store.entry(key) {
            Some(mut entry) => queue(&mut entry, &mut self.stats, now, message.into()),
            None => {
                self.stats.sends_refused += 1;
                Err(QueueError::Closed)
            }
        }
    }

    /// Queues a message to every active session; returns how many accepted it (the
    /// others are over their queue limit, counted in `sends_refused`). The message is
    /// shared, not copied.
    pub fn broadcast(&mut self, now: Instant, message: impl Into<Bytes>) -> usize {
        let message = message.into();
        let mut accepted = 0;
        for key in self.store.keys() {
            if let Some(mut entry) = self.store.entry(key) {
                if entry.get().state() != SessionState::Active {
                    continue;
                }
                if queue(&mut entry, &mut self.stats, now, message.clone()).is_ok() {
                    accepted += 1;
                }
            }
        }
        accepted
    }

    /// Closes a session once what it has queued is acknowledged, or after
    /// `close_linger`.
    ///
    /// # Errors
    /// [`NetError::SessionClosed`] if it is already gone.
    pub fn close(&mut self, now: Instant, key: SessionKey) -> Result<(), NetError> {
        let linger = self.config.close_linger;
        let mut entry = self.store.entry(key).ok_or(NetError::SessionClosed)?;
        begin_close(&mut entry, CloseReason::Local, now + linger);
        Ok(())
    }

    /// Starts a graceful shutdown: no new sessions; every session closes once its
    /// queued data is acknowledged, or with [`CloseReason::Shutdown`] at `deadline`
    /// (one already closing keeps its reason, and closes by `deadline` at the latest).
    /// Keep calling [`tick`](Self::tick) until [`is_finished`](Self::is_finished).
    pub fn shutdown(&mut self, deadline: Instant) {
        let deadline = self.shutdown.map_or(deadline, |d| d.min(deadline));
        self.shutdown = Some(deadline);
        for key in self.store.keys() {
            if let Some(mut entry) = self.store.entry(key) {
                begin_close(&mut entry, CloseReason::Shutdown, deadline);
            }
        }
    }

    // ---------------------------------------------------------------- input

    /// Reads what the socket holds (at most 256 datagrams a call;
    /// `next_deadline` says "now" while more may wait) into the sessions, opening new
    /// ones within the limits. Returns the datagrams read.
    ///
    /// # Errors
    /// None today: errors the socket reports (ICMP errors) are consumed and the read
    /// retried at the next call. The `Result` leaves room for fatal socket errors.
    pub fn poll_io(&mut self, now: Instant) -> Result<usize, NetError> {
        // The caller asks to read now: whether its poll said readable or not, try
        // (a read that finds nothing costs one `WouldBlock`).
        self.socket_readable = true;
        Ok(self.poll_io_with(now, &mut |_, _| true))
    }

    /// As [`poll_io`](Self::poll_io), asking `accept(peer, conv)` before opening a
    /// session (after the limits); `false` refuses it (`dropped_refused`).
    pub(crate) fn poll_io_with(
        &mut self,
        now: Instant,
        accept: &mut dyn FnMut(SocketAddr, u32) -> bool,
    ) -> usize {
        self.outbox.set_now(now);
        if !self.socket_readable {
            return 0;
        }
        let mut received = 0;
        while received < MAX_DATAGRAMS_PER_TURN {
            self.stats.recv_syscalls += 1;
            match self.io.recv(&self.socket, &mut self.recv) {
                Ok(n) => {
                    received += n;
                    // A short read emptied the socket: the next datagram raises a new
                    // edge, so skip the call that would only say `WouldBlock`.
                    self.socket_readable = self.recv.may_hold_more();
                    for i in 0..n {
                        let (meta, _) = self.recv.get(i);
                        self.stats.datagrams_in += 1;
                        self.stats.bytes_in += meta.len as u64;
                        if meta.truncated {
                            self.stats.dropped_truncated += 1;
                        } else {
                            self.datagram(i, now, accept);
                        }
                    }
                    if !self.socket_readable {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.socket_readable = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Errors queued on the socket (ICMP reports) are consumed by the call
                // that returns them; try again next turn.
                Err(_) => break,
            }
        }
        received
    }

    /// Routes received datagram `i` to its session, or opens one for it.
    pub(super) fn datagram(
        &mut self,
        i: usize,
        now: Instant,
        accept: &mut dyn FnMut(SocketAddr, u32) -> bool,
    ) {
        if self.front.is_some() {
            self.secure_datagram(i, now, accept);
            return;
        }
        let (meta, datagram) = self.recv.get(i);
        let peer = meta.addr;
        let Some(conv) = conv_of(datagram) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let key = match self.routes.get(&(peer, conv)) {
            Some(&key) => key,
            None => match Opening::of(datagram, self.config.engine.initial_sn) {
                Opening::Malformed => {
                    self.stats.dropped_malformed += 1;
                    return;
                }
                Opening::NotFirst => {
                    self.stats.dropped_unknown_session += 1;
                    return;
                }
                Opening::Opens => match self.open(peer, conv, now, accept) {
                    Some(key) => key,
                    None => return,
                },
            },
        };
        self.deliver(i, key, now);
    }

    /// Takes `datagram` from `from` as if the socket had just delivered it (counted,
    /// routed, opening a session within the limits), for the fuzz harness.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn inject(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.outbox.set_now(now);
        self.recv.load(from, datagram);
        let (meta, _) = self.recv.get(0);
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += meta.len as u64;
        if meta.truncated {
            self.stats.dropped_truncated += 1;
        } else {
            self.datagram(0, now, &mut |_, _| true);
        }
    }

    /// Feeds datagram `i` of the receive batch to session `key`.
    pub(super) fn deliver(&mut self, i: usize, key: SessionKey, now: Instant) {
        let (meta, datagram) = self.recv.get(i);
        let confirmed = deliver(
            &mut self.store,
            &mut self.stats,
            &mut self.events,
            &mut self.buffers,
            key,
            meta.addr,
            datagram,
            now,
        );
        if confirmed {
            self.confirmed(key);
        }
    }

    /// Opens a session for a new (peer, conv) if the limits and `accept` allow.
    fn open(
        &mut self,
        peer: SocketAddr,
        conv: u32,
        now: Instant,
        accept: &mut dyn FnMut(SocketAddr, u32) -> bool,
    ) -> Option<SessionKey> {
        self.admit(peer, conv, now, accept).ok()?;
        // The config was validated at bind, so this cannot fail.
        let conversation = Conversation::new(conv, self.conversation.clone(), now).ok()?;
        let key = self.insert(peer, conversation, now);
        self.routes.insert((peer, conv), key);
        Some(key)
    }

    /// Whether a new session from `peer` may open: not shutting down, the shared
    /// limits, room in the unconfirmed pool, and the application's `accept`. On `Ok`
    /// the admission counts it (released when the session closes, or by the caller if
    /// it is not inserted after all).
    pub(super) fn admit(
        &mut self,
        peer: SocketAddr,
        conv: u32,
        now: Instant,
        accept: &mut dyn FnMut(SocketAddr, u32) -> bool,
    ) -> Result<(), Option<Refusal>> {
        if self.shutdown.is_some() {
            self.stats.dropped_refused += 1;
            return Err(None);
        }
        if let Err(refusal) = self.shared.admission.admit(peer.ip(), now) {
            refusal.count(&mut self.stats);
            return Err(Some(refusal));
        }
        loop {
            let store = &self.store;
            let unconfirmed = |k| store.get(k).is_some_and(|s| !s.conversation.is_confirmed());
            match self.unconfirmed.make_room(now, unconfirmed) {
                Room::Free => break,
                Room::Evict(oldest) => self.close_now(oldest, CloseReason::Evicted, now),
                _ => {
                    Refusal::UnconfirmedFull.count(&mut self.stats);
                    self.shared.admission.release(peer.ip(), false);
                    return Err(Some(Refusal::UnconfirmedFull));
                }
            }
        }
        if !accept(peer, conv) {
            self.stats.dropped_refused += 1;
            self.shared.admission.release(peer.ip(), false);
            return Err(None);
        }
        Ok(())
    }

    /// Stores an admitted session and announces it.
    pub(super) fn insert(
        &mut self,
        peer: SocketAddr,
        conversation: Conversation,
        now: Instant,
    ) -> SessionKey {
        let conv = conversation.conv();
        let key = self
            .store
            .insert(|key| KcpSession::new(key, peer, conversation));
        self.shared.sessions.fetch_add(1, Ordering::Relaxed);
        self.stats.sessions_opened += 1;
        let store = &self.store;
        self.unconfirmed.push(key, now, |k| {
            store.get(k).is_some_and(|s| !s.conversation.is_confirmed())
        });
        tracing::debug!(loop_id = self.id, %key, %peer, conv, "session opened");
        self.events
            .push_back(ServerEvent::Opened { key, peer, conv });
        key
    }

    // ---------------------------------------------------------------- timers and output

    /// Runs the due timers, drives every session touched since the last tick
    /// (input, sends, closes), closes those that are done (their `Closed` events
    /// follow) and sends every datagram due.
    pub fn tick(&mut self, now: Instant) {
        self.outbox.set_now(now);
        self.run_timers(now);
        self.stats.loop_lag_us = u64::try_from(self.lag.lag(now).as_micros()).unwrap_or(u64::MAX);
        let sent = Sent {
            retransmits: self.stats.retransmits,
            messages: self.stats.messages_out,
        };
        self.stats.retransmit_permille = self.retransmit_share.permille(now, sent);
        self.service_dirty(now);
        self.send_datagrams(now);
        self.log_drops(now);
        if self.buffers.freed >= trim::TRIM_AFTER {
            self.buffers.freed = 0;
            trim::release_free_memory();
        }
    }

    /// [`poll_io`](Self::poll_io) then [`tick`](Self::tick): one call a frame.
    /// Replies queued while handling this call's events leave at the next call (or
    /// call [`tick`](Self::tick) after handling them).
    ///
    /// # Errors
    /// As [`poll_io`](Self::poll_io).
    pub fn poll(&mut self, now: Instant) -> Result<usize, NetError> {
        let read = self.poll_io(now)?;
        self.tick(now);
        Ok(read)
    }

    fn run_timers(&mut self, now: Instant) {
        while let Some((at, key)) = self.timers.pop_due(now) {
            let Some(mut entry) = self.store.entry(key) else {
                continue; // closed since
            };
            let session = entry.get_mut();
            if session.next_wake != Some(at) {
                continue; // superseded by an earlier entry
            }
            session.next_wake = None;
            self.stats.timer_fires += 1;
            self.lag.record(at, now);
            entry.mark_dirty();
        }
        if self.timers.len() > 2 * self.store.len() + 1024 {
            let live = self
                .store
                .iter()
                .filter_map(|(key, s)| s.next_wake.map(|at| (at, key)));
            self.timers.rebuild(live);
        }
    }

    /// Drives every dirty session, closes those that are done and reschedules the
    /// rest.
    fn service_dirty(&mut self, now: Instant) {
        let mut dirty = std::mem::take(&mut self.dirty);
        self.store.take_dirty(&mut dirty);
        for &key in &dirty {
            let Some(session) = self.store.get_mut(key) else {
                continue;
            };
            emit(session, &mut self.outbox, &mut self.stats, now, Emit::Due);
            if let Some(reason) = session.conversation.poll_close(now) {
                self.close_now(key, reason, now);
                continue;
            }
            if let Some(wake) = session.conversation.next_deadline(now) {
                if session.next_wake.is_none_or(|current| wake < current) {
                    session.next_wake = Some(wake);
                    self.timers.push(wake, key);
                }
            }
        }
        self.dirty = dirty;
    }

    /// Removes a session for good and queues its `Closed` event. It is flushed first,
    /// so that everything it owes leaves: above all the ACKs for data it received this
    /// turn, which the interval grid would otherwise hold back (the peer would then
    /// retransmit to a session that no longer exists). Data still unacknowledged is
    /// abandoned.
    pub(crate) fn close_now(&mut self, key: SessionKey, reason: CloseReason, now: Instant) {
        let Some(session) = self.store.get_mut(key) else {
            return;
        };
        session
            .conversation
            .announce_close(reason, reason.server_text());
        emit(session, &mut self.outbox, &mut self.stats, now, Emit::All);
        let Some(session) = self.store.remove(key) else {
            return;
        };
        match &mut self.front {
            Some(front) => front.forget(key),
            None => {
                self.routes.remove(&(session.peer(), session.conv()));
            }
        }
        self.shared.sessions.fetch_sub(1, Ordering::Relaxed);
        self.buffers.budget.release(session.held_bytes);
        self.buffers.freed += session.held_bytes;
        let confirmed = session.conversation.is_confirmed();
        if !confirmed {
            self.unconfirmed.left();
        }
        self.shared
            .admission
            .release(session.admitted_ip, confirmed);
        if self.store.is_empty() {
            // Only stale timer entries are left: drop them, so an empty driver asks
            // for no wake-up.
            self.timers.rebuild(std::iter::empty());
        }
        self.stats.count_close(reason);
        tracing::debug!(loop_id = self.id, %key, peer = %session.peer(), conv = session.conv(), ?reason, "session closed");
        self.events.push_back(ServerEvent::Closed {
            key,
            reason,
            session: Box::new(session),
        });
    }

    /// A session just proved its peer's address: it counts as confirmed from now on.
    fn confirmed(&mut self, key: SessionKey) {
        if let Some(front) = &mut self.front {
            front.confirmed(key);
        }
        self.unconfirmed.left();
        self.shared.admission.confirm();
        self.stats.sessions_confirmed += 1;
    }

    /// Closes every session still open, at once (the loop is stopping).
    pub(crate) fn close_all(&mut self, now: Instant) {
        for key in self.store.keys() {
            self.close_now(key, CloseReason::Shutdown, now);
        }
        self.send_datagrams(now);
    }

    fn send_datagrams(&mut self, now: Instant) {
        let outcome = self.outbox.send(now, self.io.as_mut(), &self.socket);
        self.stats.datagrams_out += outcome.datagrams;
        self.stats.bytes_out += outcome.bytes;
        self.stats.send_syscalls += outcome.syscalls;
        self.stats.dropped_send_full += outcome.dropped_full;
        self.stats.send_errors += outcome.errors;
    }

    /// Logs what was dropped since the last log, at most once per
    /// [`DROP_LOG_EVERY`], at debug level (never a line per datagram).
    fn log_drops(&mut self, now: Instant) {
        let (last, next_at) = &mut self.drops_logged;
        if now < *next_at || !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let s = &self.stats;
        let drops = [
            ("malformed", s.dropped_malformed, last.dropped_malformed),
            ("truncated", s.dropped_truncated, last.dropped_truncated),
            (
                "unknown_session",
                s.dropped_unknown_session,
                last.dropped_unknown_session,
            ),
            ("rejected", s.dropped_rejected, last.dropped_rejected),
            (
                "session_limit",
                s.dropped_session_limit,
                last.dropped_session_limit,
            ),
            (
                "rate_limited",
                s.dropped_rate_limited,
                last.dropped_rate_limited,
            ),
            ("refused", s.dropped_refused, last.dropped_refused),
            ("send_full", s.dropped_send_full, last.dropped_send_full),
            ("send_errors", s.send_errors, last.send_errors),
        ];
        for (cause, now_count, then) in drops {
            if now_count > then {
                tracing::debug!(
                    loop_id = self.id,
                    cause,
                    count = now_count - then,
                    "datagrams dropped"
                );
            }
        }
        *last = self.stats;
        *next_at = now + DROP_LOG_EVERY;
    }

    // ---------------------------------------------------------------- for the threaded loop

    /// The parts a handler's context borrows: the session's entry and the counters.
    pub(crate) fn entry_and_stats(
        &mut self,
        key: SessionKey,
    ) -> Option<(Entry<'_, KcpSession>, &mut LoopStats)> {
        Some((self.store.entry(key)?, &mut self.stats))
    }

    /// The session list of [`ServerHandle::sessions`](crate::ServerHandle::sessions).
    pub(crate) fn session_infos(&self) -> Vec<SessionInfo> {
        self.sessions()
            .map(|s| SessionInfo {
                key: s.key(),
                peer: s.peer(),
                conv: s.conv(),
            })
            .collect()
    }

    /// Counts a handler panic the loop caught.
    pub(crate) fn count_handler_panic(&mut self) {
        self.stats.handler_panics += 1;
    }

    /// Counts a request received from another thread.
    pub(crate) fn count_request(&mut self) {
        self.stats.commands += 1;
    }

    /// Counts a wake-up of the loop's poll.
    pub(crate) fn count_wakeup(&mut self) {
        self.stats.wakeups += 1;
    }

    /// Records that the turn ending at `now` waited `waited` of its time in `poll`
    /// (the event loop's busy share, `loop_busy_permille`).
    pub(crate) fn record_poll_wait(&mut self, waited: Duration, now: Instant) {
        self.busy.record(waited, now);
        self.stats.loop_busy_permille = self.busy.permille(now);
    }

    /// Marks the socket readable (its readiness event fired).
    pub(crate) fn set_readable(&mut self) {
        self.socket_readable = true;
    }

    /// The id of this loop.
    /// The sealed datagrams received this turn for other loops' sessions.
    pub(crate) fn take_forwards(&mut self) -> Vec<(usize, SocketAddr, Bytes)> {
        std::mem::take(&mut self.forwards)
    }

    pub(crate) const fn loop_id(&self) -> u16 {
        self.id
    }
}

/// Starts closing `entry`'s session (see [`Conversation::close`]) and marks it dirty:
/// the one path every close takes (driver, handler context, shutdown).
pub(crate) fn begin_close(
    entry: &mut Entry<'_, KcpSession>,
    reason: CloseReason,
    deadline: Instant,
) {
    entry.get_mut().conversation.close(reason, deadline);
    entry.mark_dirty();
}

/// Queues `message` on `entry`'s session, counts it in `stats` and marks the session
/// dirty: the one path every send takes (driver, handler context, handle request).
pub(crate) fn queue(
    entry: &mut Entry<'_, KcpSession>,
    stats: &mut LoopStats,
    now: Instant,
    message: Bytes,
) -> Result<(), QueueError> {
    let result = entry.get_mut().conversation.send(now, message);
    match result {
        Ok(()) => {
            stats.messages_out += 1;
            entry.mark_dirty();
        }
        Err(QueueError::Full { .. }) => {
            stats.sends_refused += 1;
            // A full queue may make the peer a slow consumer: reschedule.
            entry.mark_dirty();
        }
        Err(_) => stats.sends_refused += 1,
    }
    result
}

/// What [`emit`] asks of a conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Emit {
    /// What its rules say is due ([`Conversation::drive`]).
    Due,
    /// Everything at once ([`Conversation::flush`]).
    All,
}

/// Lets `session` write its datagrams into `outbox`, counting its retransmissions.
fn emit(
    session: &mut KcpSession,
    outbox: &mut Outbox,
    stats: &mut LoopStats,
    now: Instant,
    what: Emit,
) {
    let out = &mut outbox.to(session.peer());
    let withheld = session.conversation.counters_ref().withheld;
    let Ok(retransmits) = match what {
        Emit::Due => session.conversation.drive(now, out),
        Emit::All => session.conversation.flush(now, out),
    };
    stats.retransmits += retransmits;
    stats.withheld_unconfirmed += session.conversation.counters_ref().withheld - withheld;
}

/// Feeds a datagram to its session and queues the messages it completes. Returns
/// whether the datagram confirmed the session's peer. Over the buffer budget, the
/// data it carries that would be held out of order is left out.
#[allow(clippy::too_many_arguments)] // the driver's parts it works on, borrowed apart
fn deliver(
    store: &mut Store<KcpSession>,
    stats: &mut LoopStats,
    events: &mut VecDeque<ServerEvent>,
    buffers: &mut Buffers,
    key: SessionKey,
    from: SocketAddr,
    datagram: &[u8],
    now: Instant,
) -> bool {
    let Some(mut entry) = store.entry(key) else {
        return false;
    };
    let session = entry.get_mut();
    let was_confirmed = session.conversation.is_confirmed();
    let peer = session.peer();
    match buffers
        .budget
        .input(&mut session.conversation, now, peer, from, datagram)
    {
        Ok(fed) => {
            stats.dropped_memory_budget += fed.left_out;
            if fed.moved {
                tracing::debug!(%key, old = %session.peer(), new = %from, "session moved");
                session.set_peer(from);
                stats.migrations += 1;
            }
        }
        Err(refused) => {
            stats.count_refused(refused);
            return false;
        }
    }
    let conversation = &mut session.conversation;
    while let Some(datagram) = conversation.recv_datagram() {
        events.push_back(ServerEvent::Datagram { key, datagram });
    }
    let keepalives = conversation.counters_ref().keepalives_in;
    while let Some(message) = conversation.recv() {
        stats.messages_in += 1;
        events.push_back(ServerEvent::Message { key, message });
    }
    stats.keepalives_in += conversation.counters_ref().keepalives_in - keepalives;
    let confirmed = !was_confirmed && conversation.is_confirmed();
    buffers
        .budget
        .recount(&mut session.held_bytes, conversation);
    entry.mark_dirty();
    confirmed
}

/// A driver that goes away (its loop stopped, or its thread died) takes its
/// sessions off the server's count, so [`ServerHandle::session_count`] agrees with
/// what the loops still serve.
///
/// [`ServerHandle::session_count`]: crate::ServerHandle::session_count
impl Drop for ServerDriver {
    fn drop(&mut self) {
        self.shared
            .sessions
            .fetch_sub(self.store.len(), Ordering::Relaxed);
        for (_, session) in self.store.iter() {
            let confirmed = session.conversation.is_confirmed();
            self.shared
                .admission
                .release(session.admitted_ip, confirmed);
        }
    }
}

/// Registering the driver registers its socket (readable interest is what matters):
/// call [`ServerDriver::poll_io`] when its token fires, and [`ServerDriver::tick`] at
/// [`ServerDriver::next_deadline`].
impl mio::event::Source for ServerDriver {
    crate::udp::delegate_source!(socket);
}
