//! `Conversation`: one KCP engine and everything a conversation needs beyond it.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kcp_core::{Kcp, PollAt, Timestamp, Transmit};

use crate::amplification::{AMPLIFICATION_FACTOR, Budgeted, Held, PADDED_OPENING, PaddedOpening};
use crate::clock::Clock;
use crate::config::{ConversationConfig, WireMode};
use crate::error::{NetError, QueueError, Refused};
use crate::hold_budget::without_held;
use crate::lifecycle::{CloseReason, SessionState};
use crate::secure::{
    DatagramError, Delivered, PeerClose, RekeyPolicy, SecureChannel, SecureCounters, SecureSession,
    TRANSPORT_OVERHEAD,
};
use crate::stats::{SessionCounters, SessionStats};
use crate::timer::earliest;

/// How long the ACKs owed under `flush_on_input` are held while received messages
/// wait for the application, so that they leave with its reply.
pub(crate) const ACK_HOLD: Duration = Duration::from_millis(1);

/// One KCP conversation: the engine, and what a conversation needs beyond it: the
/// wire mode, liveness (last heard, keepalive, dead link, idle and peer timeouts),
/// the ACK-holding rule, the queue limit, its state and its counters.
///
/// It is sans-IO like the engine: every method that depends on time takes `now`, it
/// never reads a clock, and it never touches a socket. Its datagrams go to a
/// [`Transmit`] sink the caller lends for one call. [`KcpSession`](crate::KcpSession)
/// (server side), [`KcpClient`](crate::KcpClient) and the server drivers are shells
/// around it; drive one yourself to run KCP over a transport of your own, or to test
/// its rules on virtual time.
///
/// # Method families and the calling order
///
/// - getters: [`conv`](Self::conv), [`state`](Self::state), [`stats`](Self::stats),
///   [`last_heard`](Self::last_heard), [`queued_bytes`](Self::queued_bytes) ...
/// - network input: [`input`](Self::input).
/// - application commands: [`send`](Self::send), [`recv`](Self::recv),
///   [`close`](Self::close).
/// - output and timers: [`drive`](Self::drive) (or [`flush`](Self::flush)),
///   [`poll_close`](Self::poll_close), [`next_deadline`](Self::next_deadline).
///
/// After any input or command, call `drive`, then [`poll_close`](Self::poll_close)
/// and [`next_deadline`](Self::next_deadline) to learn whether it ended and when to
/// come back. `now` must never go backwards; driving early is harmless.
///
/// # Example
///
/// Two conversations on virtual time, datagrams carried by hand:
///
/// ```
/// use std::time::{Duration, Instant};
/// use kcp_net::{Conversation, ConversationConfig, Preset};
///
/// # fn main() -> Result<(), kcp_net::NetError> {
/// let config = ConversationConfig::new(Preset::Fast);
/// let t0 = Instant::now(); // only a base: no real time passes below
/// let mut a = Conversation::new(7, config.clone(), t0)?;
/// let mut b = Conversation::new(7, config, t0)?;
/// a.send(t0, "hello".into())?;
/// let mut wire = Vec::new();
/// for ms in 0..50 {
///     let now = t0 + Duration::from_millis(ms);
///     a.drive_to_vec(now, &mut wire);
///     for datagram in wire.drain(..) {
///         b.input(now, &datagram).expect("valid KCP");
///     }
///     b.drive_to_vec(now, &mut wire);
///     for datagram in wire.drain(..) {
///         a.input(now, &datagram).expect("valid KCP");
///     }
/// }
/// assert_eq!(b.recv().as_deref(), Some(&b"hello"[..]));
/// assert_eq!(a.queued_bytes(), 0, "acknowledged");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Conversation {
    kcp: Kcp,
    config: ConversationConfig,
    clock: Clock,
    state: SessionState,
    counters: SessionCounters,
    opened_at: Instant,
    last_heard: Instant,
    /// When we last emitted a datagram (keepalive timing).
    last_out: Instant,
    /// When the engine was last driven.
    last_drive: Instant,
    /// Since when we wait to hear from the peer (we sent and it has not answered).
    waiting_since: Option<Instant>,
    /// A message was queued since the last drive.
    sent: bool,
    /// Since when ACKs are owed under `flush_on_input` (`None`: nothing owed).
    acks_owed: Option<Instant>,
    /// Engine retransmissions already reported by `drive`.
    retransmits_seen: u64,
    /// The peer proved once that it receives at its address (or the config trusts it).
    confirmed: bool,
    /// While the peer's current address is unproven: the bytes accepted from it and
    /// the bytes sent to it (the amplification budget and its spending).
    unproven: Option<PathBudget>,
    /// Datagrams the budget could not cover yet.
    held: Held,
    /// The first datagram went out padded (`pad_opening`).
    opening_padded: bool,
    /// Since when the queue is full for the peer: a send was refused for it, and the
    /// queue has not drained below half its limit since (`slow_consumer`).
    full_since: Option<Instant>,
    /// The secure wire mode's part (`None`: raw KCP).
    secure: Option<Box<SecureSession>>,
}

/// What an unproven address sent us and what we sent it.
#[derive(Clone, Copy, Debug, Default)]
struct PathBudget {
    accepted: u64,
    sent: u64,
}

/// Feeds KCP bytes to the engine; unless `may_hold`, without the data it would hold
/// out of order (counted in `counters.dropped_over_budget`).
fn engine_input(
    kcp: &mut Kcp,
    counters: &mut SessionCounters,
    ts: Timestamp,
    bytes: &[u8],
    may_hold: bool,
) -> Result<(), Refused> {
    if !may_hold {
        if let Some((kept, left_out)) = without_held(bytes, kcp.rcv_nxt()) {
            counters.dropped_over_budget += left_out;
            if kept.is_empty() {
                // Authentic, fresh, and all of it data we cannot keep now.
                return Ok(());
            }
            return kcp.input(ts, &kept).map_err(Refused::Engine);
        }
    }
    kcp.input(ts, bytes).map_err(Refused::Engine)
}

impl Conversation {
    /// A conversation with id `conv` starting at `now`.
    ///
    /// # Errors
    /// An invalid `config` ([`ConversationConfig::validate`]).
    pub fn new(conv: u32, config: ConversationConfig, now: Instant) -> Result<Self, NetError> {
        config.validate()?;
        let mut kcp = Kcp::new(conv, config.engine.clone())?;
        // An unconfirmed peer proves its address by echoing the `ts` of a segment we
        // sent; an engine clock that starts at a random point makes `ts` unguessable.
        let clock = if config.unconfirmed.is_some() {
            Clock::starting_at(now, rand::random())
        } else {
            Clock::new(now)
        };
        let confirmed = config.unconfirmed.is_none();
        // Start the engine's update grid now (a new engine has nothing to send).
        let Ok(()) = kcp.update(clock.timestamp(now), |_| Ok::<(), Infallible>(()));
        Ok(Self {
            kcp,
            config,
            clock,
            state: SessionState::Active,
            counters: SessionCounters::default(),
            opened_at: now,
            last_heard: now,
            last_out: now,
            last_drive: now,
            waiting_since: None,
            sent: false,
            acks_owed: None,
            retransmits_seen: 0,
            confirmed,
            unproven: (!confirmed).then_some(PathBudget::default()),
            held: Held::default(),
            opening_padded: false,
            full_since: None,
            secure: None,
        })
    }

    /// A conversation in the secure wire mode over an established channel. Its
    /// engine's MTU is the configured one less [`TRANSPORT_OVERHEAD`], so that sealed
    /// datagrams stay within the configured MTU. `unproven` is `Some((accepted,
    /// sent))` on a server whose client has not yet shown it got the response.
    pub(crate) fn secure(
        conv: u32,
        mut config: ConversationConfig,
        channel: SecureChannel,
        unproven: Option<(u64, u64)>,
        now: Instant,
    ) -> Result<Self, NetError> {
        let mtu = config.engine.mtu;
        config.engine.mtu = mtu.saturating_sub(TRANSPORT_OVERHEAD);
        // A secure session proves its peer by the handshake and the seal, not by
        // echoed timestamps, and never pads its first KCP datagram.
        config.unconfirmed = None;
        config.pad_opening = false;
        let mut conversation = Self::new(conv, config, now)?;
        conversation.secure = Some(Box::new(SecureSession::new(channel, mtu)));
        if let Some((accepted, sent)) = unproven {
            conversation.confirmed = false;
            conversation.unproven = Some(PathBudget { accepted, sent });
        }
        Ok(conversation)
    }

    // ---------------------------------------------------------------- getters

    /// The conversation id.
    pub fn conv(&self) -> u32 {
        self.kcp.conv()
    }

    /// The engine, to read its state (its mutating calls stay with the conversation).
    pub const fn engine(&self) -> &Kcp {
        &self.kcp
    }

    /// The settings it runs with.
    pub const fn config(&self) -> &ConversationConfig {
        &self.config
    }

    /// The wire mode.
    pub const fn wire(&self) -> WireMode {
        if self.secure.is_some() {
            WireMode::Secure
        } else {
            WireMode::Raw
        }
    }

    /// Active or closing.
    pub const fn state(&self) -> SessionState {
        self.state
    }

    /// When it started.
    pub const fn opened_at(&self) -> Instant {
        self.opened_at
    }

    /// When the last valid datagram from the peer arrived (the start, before any).
    pub const fn last_heard(&self) -> Instant {
        self.last_heard
    }

    /// How long the peer has been silent while we waited for it (`None` if we do not
    /// wait: nothing sent since it last answered).
    pub fn silent_for(&self, now: Instant) -> Option<Duration> {
        self.waiting_since
            .map(|since| now.saturating_duration_since(since))
    }

    /// Bytes queued or in flight, counted in whole segments.
    pub fn queued_bytes(&self) -> usize {
        self.kcp.wait_send() * self.kcp.config().mss()
    }

    /// Whether the peer has proved that it receives at its address: it acknowledged a
    /// segment we sent, echoing the `ts` of our transmission (which starts at a random
    /// point, so a sender that cannot see our datagrams cannot forge it). Until then
    /// we send at most three times the bytes we accepted from it. Always `true` for a
    /// conversation without [`ConversationConfig::unconfirmed`] limits.
    pub const fn is_confirmed(&self) -> bool {
        self.confirmed
    }

    /// Whether a whole message waits for [`recv`](Self::recv).
    pub fn has_message(&self) -> bool {
        self.kcp.peek_size().is_some()
    }

    /// Until when the ACKs owed under `flush_on_input` wait for the application's
    /// reply (`None`: no ACKs are held). [`drive`](Self::drive) sends them with the
    /// next message queued before, or alone once received messages were all taken or
    /// from this instant on. A driver that knows the application is about to take a
    /// message can leave the conversation until then instead of driving it first
    /// (which could flush the ACKs alone on the engine's interval).
    pub fn acks_held_until(&self) -> Option<Instant> {
        self.acks_owed.map(|since| since + ACK_HOLD)
    }

    /// Our counters so far.
    pub const fn counters(&self) -> SessionCounters {
        self.counters
    }

    /// Our counters, borrowed (the hot paths read one field).
    pub(crate) const fn counters_ref(&self) -> &SessionCounters {
        &self.counters
    }

    /// Our counters and the engine's.
    pub fn stats(&self) -> SessionStats {
        SessionStats {
            counters: self.counters,
            engine: self.kcp.stats(),
        }
    }

    // ---------------------------------------------------------------- input

    /// Feeds a datagram from the peer. An `Err` (not KCP, another conv; in the secure
    /// mode also anything not authentic and fresh) changes nothing but a counter.
    ///
    /// # Errors
    /// [`Refused`]: the engine's or the seal's verdict.
    pub fn input(&mut self, now: Instant, datagram: &[u8]) -> Result<(), Refused> {
        self.accept(now, datagram, true).map(|_| ())
    }

    /// Feeds a datagram that came from another address than the peer's (secure mode):
    /// if it is authentic and the newest so far, the conversation moves to that
    /// address and returns `true`; the new address gets at most three times what it
    /// sent until it answers a path challenge. In raw mode a new address is a new
    /// conversation, so this refuses.
    ///
    /// # Errors
    /// As [`input`](Self::input); [`Refused::NotSecure`] in raw mode.
    pub fn input_from_new_address(
        &mut self,
        now: Instant,
        datagram: &[u8],
    ) -> Result<bool, Refused> {
        self.accept_moved(now, datagram, true)
    }

    /// [`input_from_new_address`](Self::input_from_new_address), holding data out of
    /// order only if `may_hold`.
    fn accept_moved(
        &mut self,
        now: Instant,
        datagram: &[u8],
        may_hold: bool,
    ) -> Result<bool, Refused> {
        if self.secure.is_none() {
            self.counters.rejected_in += 1;
            return Err(Refused::NotSecure);
        }
        let newest = self.accept(now, datagram, may_hold)?;
        if newest {
            if let Some(secure) = &mut self.secure {
                secure.challenge_path();
            }
            self.unproven = Some(PathBudget {
                accepted: datagram.len() as u64,
                sent: 0,
            });
        }
        Ok(newest)
    }

    /// Feeds a datagram that came from `from` to a conversation whose peer was last
    /// at `peer`: [`input`](Self::input) if the two are the same,
    /// [`input_from_new_address`](Self::input_from_new_address) if not. Returns
    /// whether the conversation moved to `from` (the caller then sends there): the
    /// one rule every server applies to a datagram of a known session.
    ///
    /// # Errors
    /// As [`input_from_new_address`](Self::input_from_new_address).
    pub fn input_from(
        &mut self,
        now: Instant,
        peer: std::net::SocketAddr,
        from: std::net::SocketAddr,
        datagram: &[u8],
    ) -> Result<bool, Refused> {
        self.input_within_budget(now, peer, from, datagram, true)
    }

    /// [`input_from`](Self::input_from) for a server whose sessions may or may not
    /// hold more data out of order ([`HoldBudget`](crate::HoldBudget), which calls
    /// this): when `may_hold` is `false`, the data segments the engine would hold
    /// beyond the in-order run it waits for are left out (after the seal is opened,
    /// so they are judged by what they carry) and counted in
    /// [`SessionCounters::dropped_over_budget`]; the rest of the datagram (ACKs,
    /// in-order data) is taken. The peer sends the left-out data again once the gap
    /// before it is filled.
    ///
    /// # Errors
    /// As [`input_from`](Self::input_from).
    pub fn input_within_budget(
        &mut self,
        now: Instant,
        peer: std::net::SocketAddr,
        from: std::net::SocketAddr,
        datagram: &[u8],
        may_hold: bool,
    ) -> Result<bool, Refused> {
        if from == peer {
            self.accept(now, datagram, may_hold).map(|_| false)
        } else {
            self.accept_moved(now, datagram, may_hold)
        }
    }

    /// Accepts a datagram, holding data out of order only if `may_hold`; returns
    /// whether it is the newest (secure mode; raw: true).
    fn accept(&mut self, now: Instant, datagram: &[u8], may_hold: bool) -> Result<bool, Refused> {
        let ts = self.clock.timestamp(now);
        let (kcp, counters) = (&mut self.kcp, &mut self.counters);
        let (accepted, newest) = match &mut self.secure {
            None => (engine_input(kcp, counters, ts, datagram, may_hold), true),
            Some(secure) => match secure.open(now, datagram) {
                Ok((Delivered::Kcp(bytes), newest)) => {
                    (engine_input(kcp, counters, ts, bytes, may_hold), newest)
                }
                Ok((Delivered::Handled, newest)) => (Ok(()), newest),
                Err(e) => (Err(Refused::Seal(e)), false),
            },
        };
        if let Err(e) = accepted {
            self.counters.rejected_in += 1;
            return Err(e);
        }
        self.last_heard = now;
        self.counters.datagrams_in += 1;
        self.counters.bytes_in += datagram.len() as u64;
        if let Some(budget) = &mut self.unproven {
            budget.accepted += datagram.len() as u64;
        }
        let proven = match &self.secure {
            // An RTT sample is taken only from an ACK that echoes the `ts` of one of
            // our transmissions of that segment: the peer received it.
            None => self.kcp.rtt_samples() > 0,
            // A first authentic datagram shows the client got our response (it holds
            // the keys it made); after a move, the answer to the path challenge.
            Some(secure) => secure.path_validated(),
        };
        if proven && self.unproven.is_some() {
            self.unproven = None;
            self.confirmed = true;
        }
        if self.full_since.is_some() && !self.is_over_half_full() {
            self.full_since = None;
        }
        // We heard the peer: restart the silence clock if we still wait for it.
        self.waiting_since = (self.kcp.wait_send() > 0).then_some(now);
        if self.config.flush_on_input {
            self.acks_owed.get_or_insert(now);
        }
        Ok(newest)
    }

    // ---------------------------------------------------------------- secure mode

    /// Queues an unreliable datagram (secure mode): no retransmission, no order, one
    /// sealed datagram each, at most [`max_datagram_size`](Self::max_datagram_size)
    /// bytes. It leaves at the next [`drive`](Self::drive).
    ///
    /// # Errors
    /// [`DatagramError`]: raw mode, too large, too many waiting, or closing.
    pub fn send_datagram(&mut self, datagram: Bytes) -> Result<(), DatagramError> {
        if self.state != SessionState::Active {
            return Err(DatagramError::Closed);
        }
        let secure = self.secure.as_mut().ok_or(DatagramError::NotSecure)?;
        secure.queue_datagram(datagram)?;
        self.sent = true;
        Ok(())
    }

    /// The next unreliable datagram from the peer (secure mode).
    pub fn recv_datagram(&mut self) -> Option<Bytes> {
        self.secure.as_mut()?.recv_datagram()
    }

    /// The largest unreliable datagram (secure mode; `None` in raw mode).
    pub fn max_datagram_size(&self) -> Option<usize> {
        Some(self.secure.as_ref()?.max_datagram_size())
    }

    /// Sends a ping (secure mode) at the next drive; its answer sets
    /// [`ping_rtt`](Self::ping_rtt). Returns `false` in raw mode.
    pub fn ping(&mut self, now: Instant) -> bool {
        let Some(secure) = &mut self.secure else {
            return false;
        };
        secure.ping(now);
        self.sent = true;
        true
    }

    /// The round trip of the last answered [`ping`](Self::ping).
    pub fn ping_rtt(&self) -> Option<Duration> {
        self.secure.as_ref()?.last_rtt()
    }

    /// How the peer said it closed, once it has (secure mode).
    pub fn peer_close(&self) -> Option<&PeerClose> {
        self.secure.as_ref()?.peer_close()
    }

    /// The secure receive path's counters (`None` in raw mode).
    pub fn secure_counters(&self) -> Option<SecureCounters> {
        self.secure.as_ref().map(|s| *s.counters())
    }

    /// Unreliable datagrams dropped because [`MAX_DATAGRAMS_IN`](crate::secure::MAX_DATAGRAMS_IN)
    /// were waiting.
    pub fn datagrams_dropped(&self) -> u64 {
        self.secure.as_ref().map_or(0, |s| s.datagrams_dropped())
    }

    /// Our session index (secure mode): what the peer puts at the head of its
    /// datagrams.
    pub fn local_index(&self) -> Option<u32> {
        Some(self.secure.as_ref()?.local_index())
    }

    /// The cipher that seals this conversation's datagrams (secure mode), as the
    /// handshake agreed it.
    pub fn cipher(&self) -> Option<crate::secure::Cipher> {
        Some(self.secure.as_ref()?.cipher())
    }

    /// Whether the peer's current address is proven (raw: confirmed; secure: the
    /// handshake completed and, after a move, the new path answered).
    pub const fn is_address_proven(&self) -> bool {
        self.unproven.is_none()
    }

    /// Queues a close for the peer (secure mode; raw KCP has none) that leaves with
    /// the next output, so the peer learns of it at once: call it when the
    /// conversation ends, then [`flush`](Self::flush). Once only; nothing if the peer
    /// closed first.
    pub fn announce_close(&mut self, reason: CloseReason, text: &str) {
        if let Some(secure) = &mut self.secure {
            secure.announce_close(reason, text);
            self.sent = true;
        }
    }

    /// The rekey policy in force (secure mode).
    pub fn rekey_policy(&self) -> Option<RekeyPolicy> {
        self.secure.as_ref().map(|s| s.rekey_policy())
    }

    // ---------------------------------------------------------------- commands

    /// Queues a message for the peer (it leaves at the next [`drive`](Self::drive)).
    ///
    /// # Errors
    /// [`QueueError::Closed`] once closing, [`QueueError::Full`] beyond
    /// `max_queued_bytes`, [`QueueError::Engine`] if the engine refuses it. Nothing is
    /// queued on an error.
    pub fn send(&mut self, now: Instant, message: Bytes) -> Result<(), QueueError> {
        if self.state != SessionState::Active {
            self.counters.sends_refused += 1;
            return Err(QueueError::Closed);
        }
        let queued = self.queued_bytes();
        let limit = self.config.max_queued_bytes;
        if queued + message.len() > limit {
            self.counters.sends_refused += 1;
            self.full_since.get_or_insert(now);
            return Err(QueueError::Full {
                queued,
                message: message.len(),
                limit,
            });
        }
        if let Err(e) = self.kcp.send_bytes(message) {
            self.counters.sends_refused += 1;
            return Err(e.into());
        }
        self.counters.messages_out += 1;
        self.sent = true;
        self.waiting_since.get_or_insert(now);
        Ok(())
    }

    /// The next whole message from the peer. Empty messages are keepalives: with
    /// `swallow_empty_messages` they are counted (`keepalives_in`) and skipped.
    pub fn recv(&mut self) -> Option<Bytes> {
        loop {
            let message = self.kcp.recv()?;
            if message.is_empty() && self.config.swallow_empty_messages {
                self.counters.keepalives_in += 1;
                continue;
            }
            self.counters.messages_in += 1;
            return Some(message);
        }
    }

    /// Starts closing: no new messages; [`poll_close`](Self::poll_close) reports
    /// `reason` once everything queued is acknowledged or at `deadline`. If already
    /// closing, the first reason stays and the earlier deadline holds (a shutdown
    /// cuts a long linger short).
    pub fn close(&mut self, reason: CloseReason, deadline: Instant) {
        self.state = match self.state {
            SessionState::Active => SessionState::Closing { reason, deadline },
            SessionState::Closing {
                reason,
                deadline: first,
            } => SessionState::Closing {
                reason,
                deadline: first.min(deadline),
            },
        };
    }

    // ---------------------------------------------------------------- output and timers

    /// Does what is due at `now`: queues a keepalive if one is due, then runs the
    /// engine's timer, or flushes it at once when a rule asks for it (`flush_on_send`
    /// after a send; `flush_on_input` once received messages were taken, or after
    /// a millisecond of holding the ACKs for the application's reply). Datagrams go to
    /// `out`. Returns the engine's retransmissions since the last drive.
    ///
    /// # Errors
    /// The sink's error, which stops the engine's output early (see [`Kcp::flush_into`]).
    pub fn drive<T: Transmit<Buf = Vec<u8>>>(
        &mut self,
        now: Instant,
        out: &mut T,
    ) -> Result<u64, T::Error> {
        self.keepalive(now);
        let flush = (self.sent && self.config.flush_on_send)
            || self
                .acks_owed
                .is_some_and(|since| self.sent || !self.has_message() || now >= since + ACK_HOLD);
        self.emit(now, flush, out)
    }

    /// Flushes the engine at once whatever the rules: everything due leaves, and
    /// every ACK owed. Use it before dropping a conversation (so that what the peer
    /// sent last is acknowledged) or when the application knows it is done.
    ///
    /// # Errors
    /// As [`drive`](Self::drive).
    pub fn flush<T: Transmit<Buf = Vec<u8>>>(
        &mut self,
        now: Instant,
        out: &mut T,
    ) -> Result<u64, T::Error> {
        self.emit(now, true, out)
    }

    /// [`drive`](Self::drive) into a `Vec` of datagrams (tests, simple transports).
    pub fn drive_to_vec(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) -> u64 {
        let mut sink = VecSink {
            out,
            buf: Vec::new(),
        };
        let Ok(retransmits) = self.drive(now, &mut sink);
        retransmits
    }

    /// [`flush`](Self::flush) into a `Vec` of datagrams.
    pub fn flush_to_vec(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) -> u64 {
        let mut sink = VecSink {
            out,
            buf: Vec::new(),
        };
        let Ok(retransmits) = self.flush(now, &mut sink);
        retransmits
    }

    /// Why the conversation must end now, if it must: a dead link, the idle timeout,
    /// the peer timeout (we wait and it is silent), or a close whose data is all
    /// acknowledged or whose deadline passed.
    pub fn poll_close(&self, now: Instant) -> Option<CloseReason> {
        if self.peer_close().is_some() {
            return Some(CloseReason::PeerClosed);
        }
        if self.kcp.is_dead() {
            return Some(CloseReason::DeadLink);
        }
        if let Some(limits) = self.unconfirmed_limits() {
            if now >= self.last_heard + limits.idle_timeout {
                return Some(CloseReason::Unconfirmed);
            }
        }
        if self.idle_deadline().is_some_and(|at| now >= at) {
            return Some(CloseReason::IdleTimeout);
        }
        if self.peer_deadline().is_some_and(|at| now >= at) {
            return Some(CloseReason::PeerGone);
        }
        if self.slow_consumer_deadline().is_some_and(|at| now >= at) {
            return Some(CloseReason::SlowConsumer);
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

    /// When the conversation next needs [`drive`](Self::drive) or
    /// [`poll_close`](Self::poll_close) even if nothing arrives: the engine's timer,
    /// the keepalive, the ACKs held for the application, the idle, peer and closing
    /// deadlines. `None` if only a datagram or a command can create work (an idle
    /// engine with no timeouts set), so an idle conversation costs nothing.
    ///
    /// A deadline is a fixed instant: asked again before the next drive, the answer
    /// is the same, and work already due answers an instant in the past.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let engine = match self.kcp.check(self.clock.timestamp(now)) {
            // Due already: a millisecond after the last drive, the next time the
            // engine clock can read differently (never "now", which would spin).
            PollAt::Now => Some(self.last_drive + Duration::from_millis(1)),
            PollAt::At(t) => Some(self.clock.instant_of(now, t)),
            PollAt::Idle => None,
        };
        let closing = match self.state {
            SessionState::Closing { deadline, .. } => Some(deadline),
            SessionState::Active => None,
        };
        let owed = self.acks_owed.map(|since| since + ACK_HOLD);
        let secure = self.secure.as_ref().and_then(|s| {
            if s.has_control(now) {
                Some(self.last_drive + Duration::from_millis(1))
            } else {
                s.challenge_deadline()
            }
        });
        let owed = earliest(owed, secure);
        let unconfirmed = self
            .unconfirmed_limits()
            .map(|limits| self.last_heard + limits.idle_timeout);
        let timeouts = earliest(
            earliest(self.idle_deadline(), self.peer_deadline()),
            earliest(unconfirmed, self.slow_consumer_deadline()),
        );
        earliest(
            earliest(engine, self.keepalive_deadline()),
            earliest(closing, earliest(owed, timeouts)),
        )
    }

    /// The limits in force while the peer is unconfirmed (`None` once confirmed).
    fn unconfirmed_limits(&self) -> Option<crate::config::UnconfirmedLimits> {
        self.config.unconfirmed.filter(|_| !self.confirmed)
    }

    /// When a full queue makes the peer a slow consumer: `slow_consumer` after a send
    /// was refused for it, unless the queue drained below half its limit since.
    fn slow_consumer_deadline(&self) -> Option<Instant> {
        let bound = self.config.slow_consumer?;
        let since = self.full_since?;
        self.is_over_half_full().then_some(since + bound)
    }

    fn is_over_half_full(&self) -> bool {
        self.queued_bytes() > self.config.max_queued_bytes / 2
    }

    fn idle_deadline(&self) -> Option<Instant> {
        self.config.idle_timeout.map(|t| self.last_heard + t)
    }

    fn peer_deadline(&self) -> Option<Instant> {
        Some(self.waiting_since? + self.config.peer_timeout?)
    }

    /// When a keepalive is due: message mode, nothing waiting to be acknowledged (the
    /// engine's own timers cover that), and `keepalive` since we last sent.
    fn keepalive_deadline(&self) -> Option<Instant> {
        let interval = self
            .config
            .keepalive
            .filter(|_| !self.config.engine.stream)?;
        (self.kcp.wait_send() == 0).then(|| self.last_out + interval)
    }

    fn keepalive(&mut self, now: Instant) {
        if self.keepalive_deadline().is_none_or(|at| now < at) {
            return;
        }
        // An empty message: one PUSH segment with no payload, acknowledged like any.
        if self.kcp.send(&[]).is_ok() {
            self.counters.keepalives_out += 1;
            self.waiting_since.get_or_insert(now);
            self.last_out = now; // if the drive below sends nothing, do not retry at once
        }
    }

    fn emit<T: Transmit<Buf = Vec<u8>>>(
        &mut self,
        now: Instant,
        flush: bool,
        out: &mut T,
    ) -> Result<u64, T::Error> {
        let ts = self.clock.timestamp(now);
        self.last_drive = now;
        self.sent = false;
        if flush {
            self.acks_owed = None;
        }
        let (kcp, secure) = (&mut self.kcp, self.secure.as_deref_mut());
        let mut counted = Counted::new(out);
        let result = if let Some(path) = self.unproven {
            let budget = AMPLIFICATION_FACTOR * path.accepted;
            let mut left = Some(budget.saturating_sub(path.sent));
            self.held.release(&mut counted, &mut left)?;
            let left = left.unwrap_or(0);
            let mut guarded = Budgeted::new(&mut counted, left, &mut self.held);
            let result = run_engine(kcp, secure, ts, now, flush, &mut guarded);
            self.counters.withheld += guarded.withheld;
            result
        } else if !self.held.is_empty() {
            // Proven since they were held: everything goes, in order.
            self.held.release(&mut counted, &mut None)?;
            run_engine(kcp, secure, ts, now, flush, &mut counted)
        } else if self.config.pad_opening && !self.opening_padded {
            let mtu = kcp.config().mtu;
            let mut padded = PaddedOpening::new(&mut counted, PADDED_OPENING, mtu);
            let result = run_engine(kcp, secure, ts, now, flush, &mut padded);
            self.opening_padded = padded.padded();
            result
        } else {
            run_engine(kcp, secure, ts, now, flush, &mut counted)
        };
        let (datagrams, bytes) = (counted.datagrams, counted.bytes);
        self.counters.datagrams_out += datagrams;
        self.counters.bytes_out += bytes;
        if let Some(path) = &mut self.unproven {
            path.sent += bytes;
        }
        if datagrams > 0 {
            self.last_out = now;
            // Whenever the engine emits, it flushes whole: every ACK owed went out.
            self.acks_owed = None;
        }
        let retransmits = self.kcp.retransmits();
        let new = retransmits - self.retransmits_seen;
        self.retransmits_seen = retransmits;
        result.map(|()| new)
    }
}

/// The conversation's output at `ts`: in the secure mode first what is not KCP
/// (pongs, challenges, datagrams, a close), then the engine's datagrams sealed; the
/// engine's timer (`update`), or everything at once (`flush`).
fn run_engine<T: Transmit<Buf = Vec<u8>>>(
    kcp: &mut Kcp,
    secure: Option<&mut SecureSession>,
    ts: Timestamp,
    now: Instant,
    flush: bool,
    out: &mut T,
) -> Result<(), T::Error> {
    match secure {
        None if flush => kcp.flush_into(ts, out),
        None => kcp.update_into(ts, out),
        Some(secure) => {
            secure.emit_control(now, out)?;
            let mut sealing = secure.sealing(now, out);
            if flush {
                kcp.flush_into(ts, &mut sealing)
            } else {
                kcp.update_into(ts, &mut sealing)
            }
        }
    }
}

/// Counts the datagrams and bytes that pass to the sink underneath.
struct Counted<'a, T> {
    inner: &'a mut T,
    datagrams: u64,
    bytes: u64,
}

impl<'a, T> Counted<'a, T> {
    const fn new(inner: &'a mut T) -> Self {
        Self {
            inner,
            datagrams: 0,
            bytes: 0,
        }
    }
}

impl<T: Transmit> Transmit for Counted<'_, T> {
    type Error = T::Error;
    type Buf = T::Buf;

    fn buffer(&mut self, room: usize) -> &mut T::Buf {
        self.inner.buffer(room)
    }

    fn commit(&mut self, len: usize) -> Result<(), T::Error> {
        self.inner.commit(len)?;
        self.datagrams += 1;
        self.bytes += len as u64;
        Ok(())
    }
}

/// Collects datagrams as owned `Vec`s.
struct VecSink<'a> {
    out: &'a mut Vec<Vec<u8>>,
    buf: Vec<u8>,
}

impl Transmit for VecSink<'_> {
    type Error = Infallible;
    type Buf = Vec<u8>;

    fn buffer(&mut self, room: usize) -> &mut Vec<u8> {
        self.buf.reserve(room);
        &mut self.buf
    }

    fn commit(&mut self, _len: usize) -> Result<(), Infallible> {
        self.out.push(std::mem::take(&mut self.buf));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Preset;

    const MS: Duration = Duration::from_millis(1);

    fn config() -> ConversationConfig {
        ConversationConfig::new(Preset::Fast)
    }

    /// Carries every datagram `from` emits at `now` to `to`.
    fn carry(from: &mut Conversation, to: &mut Conversation, now: Instant) -> usize {
        let mut wire = Vec::new();
        from.drive_to_vec(now, &mut wire);
        for d in &wire {
            to.input(now, d).unwrap();
        }
        wire.len()
    }

    #[test]
    fn the_queue_limit_refuses_without_queueing_and_counts() {
        let t0 = Instant::now();
        let mut config = config();
        config.max_queued_bytes = 3000;
        let mut c = Conversation::new(1, config, t0).unwrap();
        c.send(t0, Bytes::from(vec![1; 2000])).unwrap();
        let err = c.send(t0, Bytes::from(vec![1; 2000])).unwrap_err();
        assert!(
            matches!(err, QueueError::Full { limit: 3000, .. }),
            "{err:?}"
        );
        assert_eq!(c.counters().messages_out, 1);
        assert_eq!(c.counters().sends_refused, 1);
        c.close(CloseReason::Local, t0 + Duration::from_secs(1));
        assert_eq!(
            c.send(t0, Bytes::from_static(b"x")),
            Err(QueueError::Closed)
        );
    }

    #[test]
    fn a_peer_that_leaves_the_queue_full_is_a_slow_consumer_after_the_bound() {
        let t0 = Instant::now();
        let mut config = config();
        config.max_queued_bytes = 3000;
        config.slow_consumer = Some(Duration::from_secs(1));
        let mut c = Conversation::new(1, config.clone(), t0).unwrap();
        c.send(t0, Bytes::from(vec![1; 2000])).unwrap();
        // A full queue alone is not slowness: only a refused send starts the clock.
        assert_eq!(c.poll_close(t0 + Duration::from_secs(5)), None);
        let t1 = t0 + 100 * MS;
        assert!(c.send(t1, Bytes::from(vec![1; 2000])).is_err());
        assert!(
            c.next_deadline(t1)
                .is_some_and(|at| at <= t1 + Duration::from_secs(1))
        );
        assert_eq!(c.poll_close(t1 + 999 * MS), None);
        assert_eq!(
            c.poll_close(t1 + Duration::from_secs(1)),
            Some(CloseReason::SlowConsumer)
        );

        // The same, but the peer acknowledges in time: the clock stops.
        let mut c = Conversation::new(1, config, t0).unwrap();
        let mut peer = Conversation::new(1, ConversationConfig::new(Preset::Fast), t0).unwrap();
        c.send(t0, Bytes::from(vec![1; 2000])).unwrap();
        assert!(c.send(t0, Bytes::from(vec![1; 2000])).is_err());
        for step in 0..10 {
            let now = t0 + step * 20 * MS;
            carry(&mut c, &mut peer, now);
            carry(&mut peer, &mut c, now);
        }
        assert_eq!(c.queued_bytes(), 0);
        assert_eq!(c.poll_close(t0 + Duration::from_secs(5)), None);
    }

    #[test]
    fn acks_are_held_for_waiting_messages_for_a_millisecond_at_most() {
        let t0 = Instant::now();
        let mut sender = Conversation::new(1, config(), t0).unwrap();
        let mut config = config();
        config.flush_on_input = true;
        config.engine.interval = 5000; // no grid tick during the test
        let mut receiver = Conversation::new(1, config, t0).unwrap();
        sender.send(t0, Bytes::from_static(b"one")).unwrap();
        sender.send(t0, Bytes::from_static(b"two")).unwrap();
        let mut wire = Vec::new();
        let _ = sender.flush(
            t0,
            &mut VecSink {
                out: &mut wire,
                buf: Vec::new(),
            },
        );
        for d in &wire {
            receiver.input(t0, d).unwrap();
        }
        // "two" waits for the application: the ACK is held.
        let mut out = Vec::new();
        receiver.drive_to_vec(t0, &mut out);
        assert!(out.is_empty(), "the ACK left before the application read");
        assert_eq!(receiver.next_deadline(t0), Some(t0 + ACK_HOLD));
        assert_eq!(receiver.acks_held_until(), Some(t0 + ACK_HOLD));
        // A millisecond later it leaves even though nobody read.
        receiver.drive_to_vec(t0 + ACK_HOLD, &mut out);
        assert_eq!(out.len(), 1, "the held ACK left");
        assert_eq!(receiver.acks_held_until(), None, "nothing held once sent");
        assert_eq!(receiver.recv().as_deref(), Some(&b"one"[..]));
        assert_eq!(receiver.recv().as_deref(), Some(&b"two"[..]));
    }

    #[test]
    fn a_reply_carries_the_held_acks_and_an_empty_inbox_releases_them() {
        let t0 = Instant::now();
        let mut a = Conversation::new(1, config(), t0).unwrap();
        let mut config = config();
        config.flush_on_input = true;
        config.engine.interval = 5000;
        let mut b = Conversation::new(1, config, t0).unwrap();
        a.send(t0, Bytes::from_static(b"ping")).unwrap();
        let mut wire = Vec::new();
        let _ = a.flush(
            t0,
            &mut VecSink {
                out: &mut wire,
                buf: Vec::new(),
            },
        );
        for d in &wire {
            b.input(t0, d).unwrap();
        }
        assert_eq!(b.recv().as_deref(), Some(&b"ping"[..]));
        // The inbox is empty: the ACK leaves at the next drive.
        let mut out = Vec::new();
        b.drive_to_vec(t0, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(b.next_deadline(t0), None, "nothing owed, nothing in flight");
    }

    #[test]
    fn keepalives_go_out_after_the_interval_and_wait_for_an_answer() {
        let t0 = Instant::now();
        let mut config = config();
        config.keepalive = Some(Duration::from_secs(2));
        config.peer_timeout = Some(Duration::from_secs(5));
        let mut client = Conversation::new(1, config, t0).unwrap();
        let mut server = Conversation::new(1, ConversationConfig::new(Preset::Fast), t0).unwrap();
        assert_eq!(client.next_deadline(t0), Some(t0 + Duration::from_secs(2)));
        let at = t0 + Duration::from_secs(2);
        assert_eq!(carry(&mut client, &mut server, at), 1, "one keepalive");
        assert_eq!(client.counters().keepalives_out, 1);
        assert_eq!(server.recv(), None, "swallowed");
        assert_eq!(server.counters().keepalives_in, 1);
        assert_eq!(client.silent_for(at + MS), Some(MS));
        // Its ACK answers: nothing waits any more.
        let later = at + 20 * MS;
        assert!(carry(&mut server, &mut client, later) >= 1);
        assert_eq!(client.silent_for(later), None);
        assert_eq!(client.poll_close(later + Duration::from_secs(60)), None);
    }

    #[test]
    fn a_silent_peer_is_gone_after_the_peer_timeout_and_not_before() {
        let t0 = Instant::now();
        let mut config = config();
        config.peer_timeout = Some(Duration::from_secs(5));
        let mut c = Conversation::new(1, config, t0).unwrap();
        c.send(t0, Bytes::from_static(b"anyone?")).unwrap();
        let mut lost = Vec::new();
        c.drive_to_vec(t0 + 10 * MS, &mut lost); // the first tick of the update grid
        assert!(!lost.is_empty());
        let gone = t0 + Duration::from_secs(5);
        assert!(c.next_deadline(t0).is_some_and(|at| at <= gone));
        assert_eq!(c.poll_close(gone - MS), None);
        assert_eq!(c.poll_close(gone), Some(CloseReason::PeerGone));
    }

    #[test]
    fn an_idle_conversation_closes_at_its_idle_deadline_and_input_moves_it() {
        let t0 = Instant::now();
        let mut config = config();
        config.idle_timeout = Some(Duration::from_secs(30));
        let mut server = Conversation::new(1, config, t0).unwrap();
        let mut client = Conversation::new(1, ConversationConfig::new(Preset::Fast), t0).unwrap();
        assert_eq!(server.next_deadline(t0), Some(t0 + Duration::from_secs(30)));
        client.send(t0, Bytes::from_static(b"hi")).unwrap();
        let t10 = t0 + Duration::from_secs(10);
        carry(&mut client, &mut server, t10);
        assert_eq!(server.last_heard(), t10);
        assert_eq!(server.poll_close(t0 + Duration::from_secs(30)), None);
        assert_eq!(
            server.poll_close(t10 + Duration::from_secs(30)),
            Some(CloseReason::IdleTimeout)
        );
    }

    #[test]
    fn a_closing_conversation_ends_once_acknowledged_or_at_its_deadline() {
        let t0 = Instant::now();
        let mut a = Conversation::new(1, config(), t0).unwrap();
        let mut b = Conversation::new(1, config(), t0).unwrap();
        a.send(t0, Bytes::from_static(b"last words")).unwrap();
        a.close(CloseReason::Local, t0 + Duration::from_secs(2));
        assert_eq!(a.poll_close(t0), None, "data unacknowledged");
        let mut now = t0;
        for _ in 0..10 {
            now += 10 * MS;
            carry(&mut a, &mut b, now);
            carry(&mut b, &mut a, now);
        }
        assert_eq!(a.poll_close(now), Some(CloseReason::Local));

        let mut c = Conversation::new(2, config(), t0).unwrap();
        c.send(t0, Bytes::from_static(b"into the void")).unwrap();
        c.close(CloseReason::Shutdown, t0 + Duration::from_secs(1));
        assert_eq!(
            c.poll_close(t0 + Duration::from_secs(1)),
            Some(CloseReason::Shutdown)
        );
    }

    #[test]
    fn a_rejected_datagram_changes_nothing_but_its_counter() {
        let t0 = Instant::now();
        let mut c = Conversation::new(1, config(), t0).unwrap();
        let later = t0 + Duration::from_secs(1);
        assert!(c.input(later, b"not kcp").is_err());
        assert_eq!(c.counters().rejected_in, 1);
        assert_eq!(c.counters().datagrams_in, 0);
        assert_eq!(c.last_heard(), t0);
    }
}
