//! The driver task: one per listener (all its sessions) or per client stream. It
//! owns the UDP socket, routes datagrams to sessions, opens sessions by kcp-net's
//! rules, and runs one timer: the earliest `next_deadline` of the sessions that have
//! one. A session with no deadline registers nothing, so idle costs no wake-ups.
//! Datagrams move in batches ([`Socket`]): every session driven in a turn writes into
//! one send batch, which leaves in as few syscalls as the backend allows.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kcp_core::conv_of;
use kcp_net::admission::{Admission, Opening, Refusal, Room, UnconfirmedPool};
use kcp_net::secure::{Route, Screening, SecureFront};
use kcp_net::udp::{CLIENT_GRO_SLOTS, LOOP_GRO_SLOTS, RecvBatch, RecvMeta, SendBatch};
use kcp_net::{
    CloseReason, Conversation, ConversationConfig, Fed, HoldBudget, LoopStats, ServerConfig,
};
use tokio::sync::mpsc;

use crate::session::{DriverShared, Session, Spill, State, latency_bound, lock};
use crate::socket::Socket;
use crate::stream::KcpStream;
use crate::timers::Timers;

/// Datagrams read in one turn before timers and output get theirs: kcp-net's bound,
/// for kcp-net's reason (see [`kcp_net::MAX_DATAGRAMS_PER_TURN`]): the ACKs waiting in
/// the socket must be counted before retransmission timers judge segments lost, and
/// a flood still delays timers by one bounded turn, never starves them.
const MAX_DATAGRAMS_PER_TURN: usize = kcp_net::MAX_DATAGRAMS_PER_TURN;

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
    /// What the sessions hold out of order, against `max_buffered_bytes`
    /// (`kcp-net`'s budget and rule).
    hold: HoldBudget,
    accepted: mpsc::UnboundedSender<KcpStream>,
    /// The secure wire mode's front door (`None`: raw KCP): `kcp-net`'s own, so a
    /// secure listener screens, admits and routes exactly as `kcp-net`'s server.
    front: Option<SecureFront<u64>>,
    next_id: u64,
    /// Shutdown began (the listener was dropped).
    shutting_down: bool,
}

/// Lets the tasks woken so far run before the caller goes on: wakes its own task once
/// and returns `Pending`, so the scheduler queues it behind them (tokio's `yield_now`
/// would also wait for a poll of the I/O driver, a syscall).
struct LetWokenRun(bool);

impl Future for LetWokenRun {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

/// The driver's state; [`run`](Self::run) is the task.
#[derive(Debug)]
pub(crate) struct Driver {
    socket: Socket,
    local: SocketAddr,
    shared: Arc<DriverShared>,
    role: Role,
    /// Keyed by the ids the driver hands out (not by anything a peer chooses), so a
    /// plain multiplicative hash serves: SipHash cost a few hundred instructions per
    /// lookup, several lookups per datagram.
    sessions: HashMap<u64, Arc<Session>, BuildHasherDefault<IdHasher>>,
    routes: HashMap<(SocketAddr, u32), u64>,
    /// The sessions' deadlines.
    timers: Timers,
    /// Sessions to drive this turn.
    dirty: Vec<u64>,
    /// Datagrams to send this turn, written by the engines straight into the batch.
    out: SendBatch,
    /// The streams' own sends, swapped out of [`DriverShared`] each turn.
    spill: Spill,
    max_datagram: usize,
    /// This turn handed a message to a waiting reader that will answer it.
    handed_to_reader: bool,
    stats: LoopStats,
    published: Arc<Mutex<LoopStats>>,
}

impl Driver {
    /// A listener's driver.
    pub(crate) fn server(
        socket: Socket,
        local: SocketAddr,
        config: ServerConfig,
        accepted: mpsc::UnboundedSender<KcpStream>,
        now: Instant,
    ) -> (Self, Arc<DriverShared>, Arc<Mutex<LoopStats>>) {
        let shared = Arc::new(DriverShared::default());
        let published = Arc::new(Mutex::new(LoopStats::default()));
        let max_datagram = config.engine.mtu.max(1500);
        let front = config
            .secure
            .clone()
            .map(|security| SecureFront::new(security, 0, now));
        let role = Role::Server(Box::new(ServerRole {
            front,
            conversation: config.conversation(),
            admission: Admission::new(&config, now),
            unconfirmed: UnconfirmedPool::new(&config),
            hold: HoldBudget::new(&config, 1),
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
    pub(crate) fn client(socket: Socket, session: Arc<Session>, max_datagram: usize) -> Self {
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
        socket: Socket,
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
            sessions: HashMap::default(),
            routes: HashMap::new(),
            timers: Timers::default(),
            dirty: Vec::new(),
            out: SendBatch::default(),
            spill: Spill::default(),
            max_datagram,
            handed_to_reader: false,
            stats: LoopStats::default(),
            published: Arc::new(Mutex::new(LoopStats::default())),
        }
    }

    /// The task: until the listener is gone and its sessions closed (or the client's
    /// session ended).
    pub(crate) async fn run(mut self) {
        let gro_slots = match self.role {
            Role::Server(_) => LOOP_GRO_SLOTS,
            Role::Client => CLIENT_GRO_SLOTS,
        };
        let mut recv = self.socket.recv_batch(self.max_datagram, gro_slots);
        let shared = Arc::clone(&self.shared);
        // One timer for the task's life, moved only when the earliest deadline
        // changes: a new `Sleep` each turn registered and deregistered an entry of
        // tokio's timer wheel every turn, though most turns keep the same deadline.
        let mut sleep = std::pin::pin!(tokio::time::sleep_until(tokio::time::Instant::now()));
        let mut armed = None;
        loop {
            if shared.is_shut_down() {
                self.begin_shutdown(Instant::now());
            }
            if self.is_finished() {
                break;
            }
            let timer = self.next_live_timer();
            if timer != armed {
                if let Some(at) = timer {
                    sleep.as_mut().reset(at.into());
                }
                armed = timer;
            }
            let readable = tokio::select! {
                biased;
                () = shared.notify.notified() => false,
                r = self.socket.readable() => r.is_ok(),
                () = &mut sleep, if armed.is_some() => {
                    armed = None;
                    false
                }
            };
            self.stats.wakeups += 1;
            let now = Instant::now();
            if readable {
                self.drain_socket(&mut recv, now);
            }
            if std::mem::take(&mut self.handed_to_reader) {
                // The readers' replies leave before the rest of this turn.
                LetWokenRun(false).await;
            }
            self.run_timers(now);
            self.service_dirty(now);
            self.collect_spill();
            self.send_out().await;
            self.publish();
        }
        self.publish();
        tracing::debug!(local = %self.local, "KCP driver stopped");
    }

    /// The earliest timer still wanted. Entries superseded since they were pushed
    /// are dropped here rather than woken for: the session closed, went quiet, or a
    /// stream's task drove it and moved its deadline later (it sets `next_wake` and
    /// leaves the entry; its current entry is moved to the new deadline, once).
    fn next_live_timer(&mut self) -> Option<Instant> {
        let sessions = &self.sessions;
        self.timers.next(|id| sessions.get(&id).map(|s| s.lock()))
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

    /// Reads what the socket holds, up to the per-turn bound, in batches. Stops early
    /// once a read left the kernel's queue empty (the next datagram wakes us again),
    /// or on an error (an ICMP report, consumed by the call that returned it).
    fn drain_socket(&mut self, recv: &mut RecvBatch, now: Instant) {
        let mut read = 0;
        while read < MAX_DATAGRAMS_PER_TURN {
            self.stats.recv_syscalls += 1;
            let Ok(n) = self.socket.try_recv(recv) else {
                break;
            };
            for i in 0..n {
                let (meta, datagram) = recv.get(i);
                self.datagram(meta, datagram, now);
            }
            read += n;
            if !recv.may_hold_more() {
                break;
            }
        }
    }

    /// Routes one received datagram to its session, or opens one.
    fn datagram(&mut self, meta: RecvMeta, datagram: &[u8], now: Instant) {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += meta.len as u64;
        if meta.truncated {
            self.stats.dropped_truncated += 1;
            return;
        }
        let from = meta.addr;
        if let Role::Client = self.role {
            // One conversation: whatever its server sends is for it (a sealed
            // datagram shows no KCP conv); the conversation refuses what is not.
            let id = self.routes.iter().find(|((peer, _), _)| *peer == from);
            match id.map(|(_, &id)| id) {
                Some(id) => self.deliver(id, from, datagram, now),
                None => self.stats.dropped_unknown_session += 1,
            }
            return;
        }
        if let Role::Server(server) = &self.role {
            if let Some(front) = &server.front {
                match front.route(datagram, &mut self.stats) {
                    Route::Session(id) => self.deliver(id, from, datagram, now),
                    Route::Initiation => self.initiation(from, datagram, now),
                    Route::Unknown { .. } => self.stats.dropped_unknown_index += 1,
                    _ => {}
                }
                return;
            }
        }
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
        self.deliver(id, from, datagram, now);
    }

    /// Feeds a datagram from `from` to session `id`: a secure session moves to a
    /// new address on an authentic, newest datagram from it (`kcp-net`'s rule,
    /// [`Conversation::input_from`]); a listener's sessions hold data out of order
    /// only within its budget ([`HoldBudget`]). What a session holds is counted again
    /// at each of its datagrams, so messages its reader took since count until then.
    fn deliver(&mut self, id: u64, from: SocketAddr, datagram: &[u8], now: Instant) {
        let Some(session) = self.sessions.get(&id) else {
            return;
        };
        let mut state = session.lock();
        let _span = session.span.enter();
        let was_confirmed = state.conversation.is_confirmed();
        let peer = state.peer;
        let fed = match &self.role {
            Role::Server(server) => {
                server
                    .hold
                    .input(&mut state.conversation, now, peer, from, datagram)
            }
            Role::Client => state
                .conversation
                .input_from(now, peer, from, datagram)
                .map(|moved| Fed { moved, left_out: 0 }),
        };
        if let Role::Server(server) = &mut self.role {
            let state = &mut *state;
            server
                .hold
                .recount(&mut state.held_bytes, &state.conversation);
        }
        match fed {
            Ok(fed) => {
                self.stats.dropped_memory_budget += fed.left_out;
                if fed.moved {
                    tracing::debug!(old = %peer, new = %from, "session moved");
                    state.peer = from;
                    self.stats.migrations += 1;
                }
            }
            Err(refused) => {
                self.stats.count_refused(refused);
                return;
            }
        }
        // ACKs may have freed room for a blocked writer or finished a shutdown.
        let has_message = state.conversation.has_message();
        let reader_waits = has_message && state.read_waker.is_some();
        state.wake(has_message, true);
        let held = state.conversation.acks_held_until();
        match held {
            // The reader's task takes the message and drives the conversation with
            // its reply, which carries the ACKs held for it. Driving it here first
            // would let the engine's interval flush send those ACKs alone: a second
            // datagram per message (kcp-net drives a session after its handler ran,
            // for the same reason). So it is left until its hold ends, when the
            // driver sends what is still owed; other work due meanwhile waits as long
            // (at most `ACK_HOLD`, a millisecond) if the reader does not answer.
            Some(until)
                if reader_waits
                    && latency_bound(&state.conversation)
                    && state.conversation.poll_close(now).is_none() =>
            {
                self.timers.schedule(&mut state, id, until);
                self.handed_to_reader = true;
            }
            _ => mark(&mut state, id, &mut self.dirty),
        }
        let confirmed = !was_confirmed && state.conversation.is_confirmed();
        drop(state);
        if confirmed {
            if let Role::Server(server) = &mut self.role {
                server.admission.confirm();
                server.unconfirmed.left();
                if let Some(front) = &mut server.front {
                    front.confirmed(id);
                }
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
        self.admit(peer, now).ok()?;
        let Role::Server(server) = &self.role else {
            return None;
        };
        // The config was validated at bind, so this cannot fail.
        let Ok(conversation) = Conversation::new(conv, server.conversation.clone(), now) else {
            server.admission.release(peer.ip(), false);
            return None;
        };
        let id = self.start(peer, conversation, now)?;
        self.routes.insert((peer, conv), id);
        Some(id)
    }

    /// Screens an initiation (secure mode) with `kcp-net`'s [`SecureFront`] and, if
    /// it is a valid handshake the limits admit, opens its session. Every answer
    /// (cookie, reject, response) goes back to `peer` in this turn's batch.
    fn initiation(&mut self, peer: SocketAddr, datagram: &[u8], now: Instant) {
        let Role::Server(server) = &mut self.role else {
            return;
        };
        let ServerRole {
            front: Some(front),
            unconfirmed,
            ..
        } = &mut **server
        else {
            return;
        };
        let offer = match front.initiation(now, peer, datagram, unconfirmed.len(), &mut self.stats)
        {
            Screening::Offer(offer) => *offer,
            Screening::Reply(reply) => {
                self.out.push(peer, reply);
                return;
            }
            _ => return,
        };
        let admitted = self.admit(peer, now);
        let Role::Server(server) = &mut self.role else {
            return;
        };
        let ServerRole {
            front: Some(front),
            conversation,
            admission,
            ..
        } = &mut **server
        else {
            return;
        };
        match admitted {
            Ok(()) => {}
            Err(Some(Refusal::SessionLimit)) => {
                self.out
                    .push(peer, front.refuse_full(offer, &mut self.stats));
                return;
            }
            Err(_) => return,
        }
        let Ok((conversation, opened)) = front.accept(offer, conversation.clone(), now) else {
            admission.release(peer.ip(), false);
            return;
        };
        let Some(id) = self.start(peer, conversation, now) else {
            return;
        };
        if let Role::Server(server) = &mut self.role {
            if let Some(front) = &mut server.front {
                self.out
                    .push(peer, front.register(opened, id, &mut self.stats));
            }
        }
    }

    /// Whether a new session from `peer` may open: not shutting down, the shared
    /// limits, room in the unconfirmed pool (kcp-net's rules and counters). On `Ok`
    /// the admission counts it (released when the session closes, or by the caller
    /// if it is not started after all).
    fn admit(&mut self, peer: SocketAddr, now: Instant) -> Result<(), Option<Refusal>> {
        let Role::Server(server) = &mut self.role else {
            return Err(None);
        };
        if server.shutting_down || server.accepted.is_closed() {
            self.stats.dropped_refused += 1;
            return Err(None);
        }
        if let Err(refusal) = server.admission.admit(peer.ip(), now) {
            refusal.count(&mut self.stats);
            return Err(Some(refusal));
        }
        if !self.room_for_unconfirmed(now) {
            Refusal::UnconfirmedFull.count(&mut self.stats);
            if let Role::Server(server) = &self.role {
                server.admission.release(peer.ip(), false);
            }
            return Err(Some(Refusal::UnconfirmedFull));
        }
        Ok(())
    }

    /// Starts an admitted session: its stream goes to the listener's queue. `None`
    /// (its admission released) if the listener went away meanwhile.
    fn start(&mut self, peer: SocketAddr, conversation: Conversation, now: Instant) -> Option<u64> {
        let Role::Server(server) = &mut self.role else {
            return None;
        };
        let ServerRole {
            config,
            admission,
            accepted,
            next_id,
            ..
        } = &mut **server;
        let conv = conversation.conv();
        let id = *next_id;
        *next_id += 1;
        let session = Arc::new(Session {
            id,
            peer,
            local: self.local,
            conv,
            linger: config.close_linger,
            span: tracing::debug_span!("kcp_session", id, %peer, conv),
            state: Mutex::new(State::new(conversation, peer)),
            driver: Arc::clone(&self.shared),
            udp: self.socket.shared(),
        });
        let stream = KcpStream::new(Arc::clone(&session));
        if accepted.send(stream).is_err() {
            // The listener went away meanwhile; the stream closed itself on drop.
            admission.release(peer.ip(), false);
            return None;
        }
        tracing::debug!(parent: &session.span, "session opened");
        self.sessions.insert(id, session);
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
        let Self {
            sessions,
            timers,
            stats,
            dirty,
            ..
        } = self;
        let state_of = |id| sessions.get(&id).map(|s: &Arc<Session>| s.lock());
        timers.fire(now, state_of, |state, id| {
            stats.timer_fires += 1;
            mark(state, id, dirty);
        });
        timers.compact(
            sessions.len(),
            sessions.iter().map(|(&id, s)| (id, s.lock())),
        );
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
            let out = &mut self.out.to(state.peer);
            let Ok(retransmits) = if flush {
                state.conversation.flush(now, out)
            } else {
                state.conversation.drive(now, out)
            };
            self.stats.retransmits += retransmits;
            if let Some(reason) = state.conversation.poll_close(now) {
                drop(state);
                self.close_now(id, reason, now);
                continue;
            }
            let due = state.conversation.next_deadline(now);
            if let Some(at) = due {
                self.timers.schedule(&mut state, id, at);
            }
            // Later or never: the entry already in the heap is moved (or dropped)
            // when it comes up, as for a deadline a stream's drive made later.
            state.next_wake = due;
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
        // Secure mode: the peer learns why at once (nothing in raw mode, or if the
        // peer closed first).
        let text = match self.role {
            Role::Server(_) => reason.server_text(),
            Role::Client => "",
        };
        state.conversation.announce_close(reason, text);
        let peer = state.peer;
        let Ok(_) = state.conversation.flush(now, &mut self.out.to(peer));
        state.ended = Some(reason);
        state.next_wake = None;
        state.wake(true, true);
        let confirmed = state.conversation.is_confirmed();
        let held = state.held_bytes;
        drop(state);
        self.routes.remove(&(session.peer, session.conv));
        if let Role::Server(server) = &mut self.role {
            server.hold.release(held);
            if let Some(front) = &mut server.front {
                front.forget(id);
            }
            server.admission.release(session.peer.ip(), confirmed);
            if !confirmed {
                server.unconfirmed.left();
            }
        }
        if self.sessions.is_empty() {
            self.timers.clear();
        }
        self.stats.count_close(reason);
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

    /// Counts what the streams' tasks sent themselves, and adds what the socket
    /// refused them to this turn's batch.
    fn collect_spill(&mut self) {
        self.shared.take_spill(&mut self.spill);
        let spill = &mut self.spill;
        self.stats.datagrams_out += spill.datagrams;
        self.stats.bytes_out += spill.bytes;
        self.stats.send_syscalls += spill.syscalls;
        self.stats.send_errors += spill.errors;
        self.stats.retransmits += spill.retransmits;
        for i in 0..spill.batch.len() {
            let (to, datagram) = spill.batch.get(i);
            self.out.push(to, datagram);
        }
        *spill = Spill {
            batch: std::mem::take(&mut spill.batch),
            ..Spill::default()
        };
        spill.batch.clear();
    }

    /// Sends this turn's datagrams in batches, waiting while the socket buffer is
    /// full. A datagram the OS refuses (an ICMP report, too large) is dropped; KCP
    /// retransmits it like any loss.
    async fn send_out(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let outcome = self.socket.send(&mut self.out).await;
        self.stats.datagrams_out += outcome.datagrams;
        self.stats.bytes_out += outcome.bytes;
        self.stats.send_syscalls += outcome.syscalls;
        self.stats.send_errors += outcome.errors;
    }
}

/// The hasher of the driver's session ids: one multiplication by a large odd
/// constant (Fibonacci hashing), whose high bits, which the map's control bytes use,
/// depend on every bit of the id. Only for ids the driver allocates: a peer cannot
/// choose them.
#[derive(Debug, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = (self.0 ^ id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Lists a session for this turn once.
fn mark(state: &mut State, id: u64, dirty: &mut Vec<u64>) {
    if !state.dirty {
        state.dirty = true;
        dirty.push(id);
    }
}

/// How long a dropped client stream keeps delivering what it queued.
pub(crate) const CLIENT_LINGER: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    /// A task that wakes another and then awaits `LetWokenRun` resumes after the
    /// woken task ran, on both of tokio's schedulers.
    fn woken_task_runs_first(runtime: tokio::runtime::Runtime) {
        let order = runtime.block_on(async {
            let order = Arc::new(Mutex::new(Vec::new()));
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let reader = {
                let order = Arc::clone(&order);
                tokio::spawn(async move {
                    rx.await.unwrap();
                    order.lock().unwrap().push("reader");
                })
            };
            tokio::task::yield_now().await; // the reader now waits on `rx`
            let driver = {
                let order = Arc::clone(&order);
                tokio::spawn(async move {
                    tx.send(()).unwrap();
                    LetWokenRun(false).await;
                    order.lock().unwrap().push("driver");
                })
            };
            driver.await.unwrap();
            reader.await.unwrap();
            Arc::try_unwrap(order).unwrap().into_inner().unwrap()
        });
        assert_eq!(order, ["reader", "driver"]);
    }

    #[test]
    fn a_woken_reader_runs_before_the_rest_of_the_turn_on_the_current_thread_runtime() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        woken_task_runs_first(runtime);
    }

    #[test]
    fn a_woken_reader_runs_before_the_rest_of_the_turn_on_one_worker_thread() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        woken_task_runs_first(runtime);
    }

    #[test]
    fn sequential_ids_hash_apart_in_their_high_bits() {
        let hash = |id: u64| {
            let mut hasher = IdHasher::default();
            hasher.write_u64(id);
            hasher.finish()
        };
        let mut high: Vec<u64> = (1..=128).map(|id| hash(id) >> 57).collect();
        high.sort_unstable();
        high.dedup();
        // 128 ids over the 128 values of the map's 7-bit control tags: most differ.
        assert!(high.len() > 64, "{} distinct tags", high.len());
        let mut all: Vec<u64> = (1..=10_000).map(hash).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 10_000);
    }
}
