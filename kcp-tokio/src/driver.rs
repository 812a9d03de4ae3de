//! The driver task: one per listener (all its sessions) or per client stream. It
//! owns the UDP socket, routes datagrams to sessions, opens sessions by kcp-net's
//! rules, and runs one timer: the earliest `next_deadline` of the sessions that have
//! one. A session with no deadline registers nothing, so idle costs no wake-ups.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kcp_core::conv_of;
use kcp_net::{CloseReason, Conversation, ConversationConfig, LoopStats, ServerConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::session::{DriverShared, Session, State, lock};
use crate::stream::KcpStream;
use kcp_net::admission::{Admission, Opening, Refusal, Room, UnconfirmedPool};

/// Datagrams read in one turn before timers and output get theirs (kcp-net reads up
/// to 256 per turn too): a flood delays timers by one bounded turn, never starves
/// them.
const MAX_DATAGRAMS_PER_TURN: usize = 256;

/// What the driver serves.
#[derive(Debug)]
pub(crate) enum Role {
    /// A listener: sessions open on valid first datagrams within the limits.
    Server(Box<ServerRole>),
    /// One client conversation: datagrams from anyone but its server are dropped.
    Client,
}

/// A listener's admission state and settings.
#[derive(Debug)]
pub(crate) struct ServerRole {
    config: ServerConfig,
    conversation: ConversationConfig,
    admission: Admission,
    unconfirmed: UnconfirmedPool<u64>,
    accepted: mpsc::UnboundedSender<KcpStream>,
    next_id: u64,
    /// Shutdown began (the listener was dropped).
    shutting_down: bool,
}

/// The driver's state; [`run`](Self::run) is the task.
#[derive(Debug)]
pub(crate) struct Driver {
    socket: UdpSocket,
    local: SocketAddr,
    shared: Arc<DriverShared>,
    role: Role,
    sessions: HashMap<u64, Arc<Session>>,
    routes: HashMap<(SocketAddr, u32), u64>,
    /// Lazy timer heap: an entry is live only while it equals its session's
    /// `next_wake`.
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Sessions to drive this turn.
    dirty: Vec<u64>,
    /// Datagrams to send this turn.
    out: Vec<(SocketAddr, Vec<u8>)>,
    /// A conversation's datagrams of one drive, before they are tagged with its peer.
    wire: Vec<Vec<u8>>,
    max_datagram: usize,
    stats: LoopStats,
    published: Arc<Mutex<LoopStats>>,
}

impl Driver {
    /// A listener's driver.
    pub(crate) fn server(
        socket: UdpSocket,
        local: SocketAddr,
        config: ServerConfig,
        accepted: mpsc::UnboundedSender<KcpStream>,
        now: Instant,
    ) -> (Self, Arc<DriverShared>, Arc<Mutex<LoopStats>>) {
        let shared = Arc::new(DriverShared::default());
        let published = Arc::new(Mutex::new(LoopStats::default()));
        let max_datagram = config.engine.mtu.max(1500);
        let role = Role::Server(Box::new(ServerRole {
            conversation: config.conversation(),
            admission: Admission::new(&config, now),
            unconfirmed: UnconfirmedPool::new(&config),
            config,
            accepted,
            next_id: 1,
            shutting_down: false,
        }));
        let driver = Self::with_role(socket, local, Arc::clone(&shared), role, max_datagram);
        let driver = Self {
            published: Arc::clone(&published),
            ..driver
        };
        (driver, shared, published)
    }

    /// A client's driver, for its one session.
    pub(crate) fn client(socket: UdpSocket, session: Arc<Session>, max_datagram: usize) -> Self {
        let mut driver = Self::with_role(
            socket,
            session.local,
            Arc::clone(&session.driver),
            Role::Client,
            max_datagram,
        );
        driver
            .routes
            .insert((session.peer, session.conv), session.id);
        driver.sessions.insert(session.id, session);
        driver.stats.sessions_opened = 1;
        driver
    }

    fn with_role(
        socket: UdpSocket,
        local: SocketAddr,
        shared: Arc<DriverShared>,
        role: Role,
        max_datagram: usize,
    ) -> Self {
        Self {
            socket,
            local,
            shared,
            role,
            sessions: HashMap::new(),
            routes: HashMap::new(),
            timers: BinaryHeap::new(),
            dirty: Vec::new(),
            out: Vec::new(),
            wire: Vec::new(),
            max_datagram,
            stats: LoopStats::default(),
            published: Arc::new(Mutex::new(LoopStats::default())),
        }
    }

    /// The task: until the listener is gone and its sessions closed (or the client's
    /// session ended).
    pub(crate) async fn run(mut self) {
        // One byte more than we accept, to tell a datagram that was cut short.
        let mut buf = vec![0u8; self.max_datagram + 1];
        let shared = Arc::clone(&self.shared);
        loop {
            if shared.is_shut_down() {
                self.begin_shutdown(Instant::now());
            }
            if self.is_finished() {
                break;
            }
            let timer = self.timers.peek().map(|Reverse((at, _))| *at);
            let received = tokio::select! {
                biased;
                () = shared.notify.notified() => None,
                r = self.socket.recv_from(&mut buf) => Some(r),
                () = sleep_until(timer) => None,
            };
            self.stats.wakeups += 1;
            let now = Instant::now();
            if let Some(r) = received {
                self.stats.recv_syscalls += 1;
                if let Ok((n, from)) = r {
                    self.datagram(&buf, n, from, now);
                    self.drain_socket(&mut buf, now);
                }
                // Errors (ICMP reports) are consumed by the call that returned them.
            }
            self.run_timers(now);
            self.service_dirty(now);
            self.send_out().await;
            self.publish();
        }
        self.publish();
        tracing::debug!(local = %self.local, "KCP driver stopped");
    }

    fn is_finished(&self) -> bool {
        match &self.role {
            Role::Server(server) => server.shutting_down && self.sessions.is_empty(),
            Role::Client => self.sessions.is_empty(),
        }
    }

    fn publish(&mut self) {
        self.stats.sessions_active = self.sessions.len() as u64;
        *lock(&self.published) = self.stats;
    }

    // ---------------------------------------------------------------- input

    /// Reads what else the socket holds, up to the per-turn bound.
    fn drain_socket(&mut self, buf: &mut [u8], now: Instant) {
        for _ in 1..MAX_DATAGRAMS_PER_TURN {
            self.stats.recv_syscalls += 1;
            match self.socket.try_recv_from(buf) {
                Ok((n, from)) => self.datagram(buf, n, from, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {}
            }
        }
    }

    /// Routes one received datagram (`buf[..n]`) to its session, or opens one.
    fn datagram(&mut self, buf: &[u8], n: usize, from: SocketAddr, now: Instant) {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += n as u64;
        if n > self.max_datagram {
            self.stats.dropped_truncated += 1;
            return;
        }
        let datagram = &buf[..n];
        let Some(conv) = conv_of(datagram) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let id = match self.routes.get(&(from, conv)) {
            Some(&id) => id,
            None => match self.open(datagram, from, conv, now) {
                Some(id) => id,
                None => return,
            },
        };
        self.deliver(id, datagram, now);
    }

    fn deliver(&mut self, id: u64, datagram: &[u8], now: Instant) {
        let Some(session) = self.sessions.get(&id) else {
            return;
        };
        let mut state = session.lock();
        let _span = session.span.enter();
        let was_confirmed = state.conversation.is_confirmed();
        if state.conversation.input(now, datagram).is_err() {
            self.stats.dropped_rejected += 1;
            return;
        }
        // ACKs may have freed room for a blocked writer or finished a shutdown.
        let has_message = state.conversation.has_message();
        state.wake(has_message, true);
        mark(&mut state, id, &mut self.dirty);
        let confirmed = !was_confirmed && state.conversation.is_confirmed();
        drop(state);
        if confirmed {
            if let Role::Server(server) = &mut self.role {
                server.admission.confirm();
                server.unconfirmed.left();
            }
            self.stats.sessions_confirmed += 1;
        }
    }

    /// Opens a session for an unknown (peer, conv) if the datagram starts a
    /// conversation and the limits allow (kcp-net's rules and counters).
    fn open(&mut self, datagram: &[u8], peer: SocketAddr, conv: u32, now: Instant) -> Option<u64> {
        let Role::Server(server) = &mut self.role else {
            self.stats.dropped_unknown_session += 1;
            return None;
        };
        match Opening::of(datagram, server.config.engine.initial_sn) {
            Opening::Malformed => {
                self.stats.dropped_malformed += 1;
                return None;
            }
            Opening::NotFirst => {
                self.stats.dropped_unknown_session += 1;
                return None;
            }
            _ => {}
        }
        if server.shutting_down || server.accepted.is_closed() {
            self.stats.dropped_refused += 1;
            return None;
        }
        if let Err(refusal) = server.admission.admit(peer.ip(), now) {
            refusal.count(&mut self.stats);
            return None;
        }
        if !self.room_for_unconfirmed(now) {
            Refusal::UnconfirmedFull.count(&mut self.stats);
            if let Role::Server(server) = &self.role {
                server.admission.release(peer.ip(), false);
            }
            return None;
        }
        let Role::Server(server) = &mut self.role else {
            return None;
        };
        let ServerRole {
            config,
            conversation,
            admission,
            accepted,
            next_id,
            ..
        } = &mut **server;
        // The config was validated at bind, so this cannot fail.
        let Ok(conversation) = Conversation::new(conv, conversation.clone(), now) else {
            admission.release(peer.ip(), false);
            return None;
        };
        let id = *next_id;
        *next_id += 1;
        let session = Arc::new(Session {
            id,
            peer,
            local: self.local,
            conv,
            linger: config.close_linger,
            span: tracing::debug_span!("kcp_session", id, %peer, conv),
            state: Mutex::new(State::new(conversation)),
            driver: Arc::clone(&self.shared),
        });
        let stream = KcpStream::new(Arc::clone(&session));
        if accepted.send(stream).is_err() {
            // The listener went away meanwhile; the stream closed itself on drop.
            admission.release(peer.ip(), false);
            return None;
        }
        tracing::debug!(parent: &session.span, "session opened");
        self.sessions.insert(id, session);
        self.routes.insert((peer, conv), id);
        self.stats.sessions_opened += 1;
        self.admit_unconfirmed(id, now);
        Some(id)
    }

    /// Makes room in the unconfirmed pool for one more session (kcp-net's rule:
    /// the oldest is evicted once it is `unconfirmed.min_age` old); `false` if the
    /// pool is full of younger ones.
    fn room_for_unconfirmed(&mut self, now: Instant) -> bool {
        loop {
            let Role::Server(server) = &mut self.role else {
                return true;
            };
            let sessions = &self.sessions;
            let unconfirmed = |k| {
                sessions
                    .get(&k)
                    .is_some_and(|s: &Arc<Session>| !s.lock().conversation.is_confirmed())
            };
            match server.unconfirmed.make_room(now, unconfirmed) {
                Room::Free => return true,
                Room::Evict(oldest) => self.close_now(oldest, CloseReason::Evicted, now),
                _ => return false,
            }
        }
    }

    /// Lists a new (unconfirmed) session.
    fn admit_unconfirmed(&mut self, id: u64, now: Instant) {
        let Role::Server(server) = &mut self.role else {
            return;
        };
        let sessions = &self.sessions;
        server.unconfirmed.push(id, now, |k| {
            sessions
                .get(&k)
                .is_some_and(|s| !s.lock().conversation.is_confirmed())
        });
    }

    // ---------------------------------------------------------------- timers and output

    fn run_timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(session) = self.sessions.get(&id) else {
                continue; // closed since
            };
            let mut state = session.lock();
            if state.next_wake != Some(at) {
                continue; // superseded
            }
            state.next_wake = None;
            self.stats.timer_fires += 1;
            mark(&mut state, id, &mut self.dirty);
        }
        if self.timers.len() > 2 * self.sessions.len() + 1024 {
            self.timers = self
                .sessions
                .iter()
                .filter_map(|(&id, s)| s.lock().next_wake.map(|at| Reverse((at, id))))
                .collect();
        }
    }

    /// Drives every session touched this turn (input, timers, its stream), closes
    /// those that are done and reschedules the rest.
    fn service_dirty(&mut self, now: Instant) {
        self.shared.take_dirty(&mut self.dirty);
        let mut dirty = std::mem::take(&mut self.dirty);
        for id in dirty.drain(..) {
            let Some(session) = self.sessions.get(&id).map(Arc::clone) else {
                continue;
            };
            let mut state = session.lock();
            let _span = session.span.enter();
            state.dirty = false;
            let flush = std::mem::take(&mut state.flush);
            let retransmits = if flush {
                state.conversation.flush_to_vec(now, &mut self.wire)
            } else {
                state.conversation.drive_to_vec(now, &mut self.wire)
            };
            let peer = session.peer;
            self.out.extend(self.wire.drain(..).map(|d| (peer, d)));
            self.stats.retransmits += retransmits;
            if let Some(reason) = state.conversation.poll_close(now) {
                drop(state);
                self.close_now(id, reason, now);
                continue;
            }
            let due = state.conversation.next_deadline(now);
            if due != state.next_wake {
                state.next_wake = due;
                if let Some(at) = due {
                    self.timers.push(Reverse((at, id)));
                }
            }
        }
        self.dirty = dirty;
    }

    /// Removes a session for good. It is flushed first, so the ACKs it owes leave;
    /// data still unacknowledged is abandoned. Its stream sees EOF.
    fn close_now(&mut self, id: u64, reason: CloseReason, now: Instant) {
        let Some(session) = self.sessions.remove(&id) else {
            return;
        };
        let mut state = session.lock();
        state.conversation.flush_to_vec(now, &mut self.wire);
        let peer = session.peer;
        self.out.extend(self.wire.drain(..).map(|d| (peer, d)));
        state.ended = Some(reason);
        state.next_wake = None;
        state.wake(true, true);
        let confirmed = state.conversation.is_confirmed();
        drop(state);
        self.routes.remove(&(session.peer, session.conv));
        if let Role::Server(server) = &mut self.role {
            server.admission.release(session.peer.ip(), confirmed);
            if !confirmed {
                server.unconfirmed.left();
            }
        }
        if self.sessions.is_empty() {
            self.timers.clear();
        }
        let counter = match reason {
            CloseReason::IdleTimeout => &mut self.stats.closed_idle,
            CloseReason::DeadLink | CloseReason::PeerGone => &mut self.stats.closed_dead_link,
            CloseReason::Local => &mut self.stats.closed_local,
            CloseReason::Shutdown => &mut self.stats.closed_shutdown,
            CloseReason::Unconfirmed => &mut self.stats.closed_unconfirmed,
            CloseReason::Evicted => &mut self.stats.evicted_unconfirmed,
            _ => &mut self.stats.closed_local,
        };
        *counter += 1;
        tracing::debug!(parent: &session.span, ?reason, "session closed");
    }

    /// The listener is gone: no new sessions; each session closes once its queued
    /// data is acknowledged, or at `close_linger` from now.
    fn begin_shutdown(&mut self, now: Instant) {
        let Role::Server(server) = &mut self.role else {
            return;
        };
        if server.shutting_down {
            return;
        }
        server.shutting_down = true;
        let deadline = now + server.config.close_linger;
        for (&id, session) in &self.sessions {
            let mut state = session.lock();
            state.conversation.close(CloseReason::Shutdown, deadline);
            state.flush = true;
            mark(&mut state, id, &mut self.dirty);
        }
    }

    /// Sends this turn's datagrams. A send error (an ICMP report, a full buffer) drops
    /// the datagram; KCP retransmits it like any loss.
    async fn send_out(&mut self) {
        for (peer, datagram) in self.out.drain(..) {
            self.stats.send_syscalls += 1;
            match self.socket.send_to(&datagram, peer).await {
                Ok(_) => {
                    self.stats.datagrams_out += 1;
                    self.stats.bytes_out += datagram.len() as u64;
                }
                Err(_) => self.stats.send_errors += 1,
            }
        }
    }
}

/// Lists a session for this turn once.
fn mark(state: &mut State, id: u64, dirty: &mut Vec<u64>) {
    if !state.dirty {
        state.dirty = true;
        dirty.push(id);
    }
}

/// Sleeps until `at`, or forever without a timer.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// How long a dropped client stream keeps delivering what it queued.
pub(crate) const CLIENT_LINGER: Duration = Duration::from_secs(2);
