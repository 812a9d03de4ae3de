//! `KcpClient`: one conversation with a server, driven by its owner's thread.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::{Events, Interest, Poll, Token};

use crate::clock::Clock;
use crate::config::{ClientConfig, max_datagram};
use crate::conversation::{ACK_HOLD, Conversation};
use crate::error::NetError;
use crate::lifecycle::CloseReason;
use crate::outbox::Outbox;
use crate::secure::{ClientHandshake, ClientSecurity, PeerClose};
use crate::stats::SessionStats;
use crate::timer::earliest;
use crate::udp::{self, BATCH, DatagramIo, PolledSocket, RecvBatch, SocketOptions};

mod events;

pub use events::ClientEvent;

/// Most datagrams one `tick` reads before running timers (as the server loop's bound).
const MAX_DATAGRAMS_PER_TICK: usize = 8 * BATCH;

/// How long a handshake under the caller's poll (which gets the readiness events)
/// sleeps before it reads the socket again: short next to a round trip's retry
/// (250 ms), long enough not to spin.
const EXTERNALLY_POLLED_STEP: Duration = Duration::from_millis(1);

/// Why a conversation ended (kept so every later call reports it).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Failure {
    DeadLink,
    ServerGone(Duration),
    Closed(PeerClose),
}

/// A KCP client over UDP: one socket, one conversation with one server.
///
/// It starts no thread. Use it from a thread that blocks in [`recv`](Self::recv), or
/// from a game loop that takes [`ClientEvent`]s each frame
/// ([`poll_event`](Self::poll_event), [`drain_events`](Self::drain_events); or calls
/// [`tick`](Self::tick) and [`try_recv`](Self::try_recv)) and sleeps until
/// [`next_deadline`](Self::next_deadline), or from your own `mio` loop: the client is
/// a [`mio::event::Source`], so register it and call `tick` (or `poll_event`) when it
/// is readable or its deadline passes.
///
/// KCP has no handshake: [`connect`](Self::connect) only picks a random non-zero conv
/// and binds a socket. The server learns of us from our first message.
///
/// # Keepalive and failure detection
///
/// In message mode, after [`keepalive`](ClientConfig::keepalive) without sending any
/// datagram the client sends an empty message; the server acknowledges it (and our
/// server swallows it, see the crate docs). If the server stays silent for
/// [`server_timeout`](ClientConfig::server_timeout) while we wait for an
/// acknowledgement, or the engine gives a segment up as dead, every call returns
/// [`NetError::ServerGone`] / [`NetError::DeadLink`] until [`reconnect`](Self::reconnect).
///
/// These rules live in the client's [`Conversation`], which takes `now` from its
/// caller: the client reads the clock, the conversation only compares instants, so
/// the rules are tested on virtual time.
#[derive(Debug)]
pub struct KcpClient {
    socket: PolledSocket,
    io: Box<dyn DatagramIo>,
    server: SocketAddr,
    config: ClientConfig,
    conversation: Conversation,
    recv: RecvBatch,
    outbox: Outbox,
    /// Datagrams from addresses other than the server's.
    foreign: u64,
    /// Datagrams longer than we accept, dropped unread.
    oversized: u64,
    /// Datagrams the socket did not take (full buffer, refused by the OS).
    send_drops: u64,
    failure: Option<Failure>,
    readable: bool,
    /// When the socket was last read.
    last_read: Instant,
    /// Our own poll for blocking calls, created on first use.
    poll: Option<(Poll, Events)>,
    /// The once-per-conversation events [`poll_event`](Self::poll_event) reported.
    events: events::Reported,
}

impl KcpClient {
    /// Binds a socket and starts a conversation with a random non-zero conv.
    ///
    /// # Errors
    /// An invalid `config`, or a socket that cannot be bound.
    pub fn connect(server: SocketAddr, config: ClientConfig) -> Result<Self, NetError> {
        Self::connect_with_conv(server, random_conv(0), config)
    }

    /// As [`connect`](Self::connect) with a conv of your choice (say, one the server
    /// assigned out of band).
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn connect_with_conv(
        server: SocketAddr,
        conv: u32,
        config: ClientConfig,
    ) -> Result<Self, NetError> {
        config.validate()?;
        let now = Instant::now();
        // Secure mode: a placeholder until the handshake below gives the real one.
        let conversation = Conversation::new(conv, config.conversation(), now)?;
        let bind = config.bind.unwrap_or_else(|| {
            let ip = match server.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            };
            SocketAddr::new(ip, 0)
        });
        let socket = udp::bind(
            bind,
            SocketOptions {
                reuse_port: false,
                recv_buffer: config.recv_buffer,
                send_buffer: config.send_buffer,
            },
        )?;
        let io = udp::datagram_io(config.io, &socket);
        let recv = RecvBatch::for_io(
            io.as_ref(),
            max_datagram(&config.engine),
            udp::CLIENT_GRO_SLOTS,
        );
        let outbox = Outbox::new(Clock::new(now), now);
        #[cfg(feature = "impair")]
        let outbox = outbox.impaired(config.impair.as_ref());
        let mut client = Self {
            socket: PolledSocket::new(socket),
            io,
            server,
            recv,
            config,
            conversation,
            outbox,
            foreign: 0,
            oversized: 0,
            send_drops: 0,
            failure: None,
            readable: true,
            last_read: now,
            poll: None,
            events: events::Reported::default(),
        };
        if let Some(security) = client.config.secure.clone() {
            client.handshake(conv, &security)?;
        }
        Ok(client)
    }

    /// Runs the secure handshake on the socket (blocking up to the handshake
    /// timeout) and starts the sealed conversation.
    fn handshake(&mut self, conv: u32, security: &ClientSecurity) -> Result<(), NetError> {
        let mut handshake = ClientHandshake::new(
            security.clone(),
            conv,
            self.config.conversation(),
            Instant::now(),
        )?;
        let mut received: Vec<Vec<u8>> = Vec::new();
        // A poll the handshake makes for its wait is let go when it ends, so that a
        // connected client holds one file descriptor (its socket) in both wire
        // modes; a later blocking call makes its own again.
        let had_poll = self.poll.is_some();
        loop {
            let now = Instant::now();
            handshake.check_timeout(now)?;
            if let Some(initiation) = handshake.poll_transmit(now) {
                self.outbox.set_now(now);
                let mut sink = self.outbox.to(self.server);
                let buf = kcp_core::Transmit::buffer(&mut sink, initiation.len());
                buf.extend_from_slice(initiation);
                let Ok(()) = kcp_core::Transmit::commit(&mut sink, initiation.len());
                self.flush_socket(now);
            }
            let left = handshake.next_deadline().saturating_duration_since(now);
            if self.socket.is_registered() {
                // The caller's poll gets the readiness events (a reconnect under it):
                // look again in short steps, up to the handshake timeout.
                std::thread::sleep(left.min(EXTERNALLY_POLLED_STEP));
                self.readable = true;
            } else {
                self.wait(left)?;
            }
            self.read_raw(&mut received)?;
            let now = Instant::now();
            for datagram in received.drain(..) {
                if let Some(conversation) = handshake.handle(now, &datagram)? {
                    self.conversation = conversation;
                    self.failure = None;
                    if !had_poll {
                        self.release_own_poll()
                            .map_err(|e| NetError::io("leaving the handshake's poll", e))?;
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Drops the poll of our own, if there is one, taking the socket out of it.
    fn release_own_poll(&mut self) -> io::Result<()> {
        if let Some((poll, _)) = self.poll.take() {
            poll.registry().deregister(self.socket.inner_mut())?;
        }
        Ok(())
    }

    /// Reads what the socket holds from the server, as copies (the handshake).
    fn read_raw(&mut self, into: &mut Vec<Vec<u8>>) -> Result<(), NetError> {
        loop {
            let n = match self.io.recv(&self.socket, &mut self.recv) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return Ok(());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionRefused
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(NetError::io("receiving", e)),
            };
            for i in 0..n {
                let (meta, datagram) = self.recv.get(i);
                if meta.addr == self.server && !meta.truncated && into.len() < 64 {
                    into.push(datagram.to_vec());
                } else {
                    self.foreign += 1;
                }
            }
            if !self.recv.may_hold_more() {
                self.readable = false;
                return Ok(());
            }
        }
    }

    /// Closes the conversation: waits up to `timeout` for what was sent to be
    /// acknowledged, then (secure mode) tells the server, which closes its session at
    /// once instead of after its idle timeout. The client cannot send afterwards
    /// (call [`reconnect`](Self::reconnect) to start again). Returns whether
    /// everything was acknowledged.
    ///
    /// # Errors
    /// As [`wait_acknowledged`](Self::wait_acknowledged).
    pub fn close(&mut self, timeout: Duration) -> Result<bool, NetError> {
        let acknowledged = self.wait_acknowledged(timeout)?;
        let now = Instant::now();
        self.conversation
            .announce_close(CloseReason::Local, "client closed");
        self.conversation.close(CloseReason::Local, now);
        self.outbox.set_now(now);
        let Ok(_) = self
            .conversation
            .flush(now, &mut self.outbox.to(self.server));
        self.flush_socket(now);
        Ok(acknowledged)
    }

    /// Sends an unreliable datagram (secure mode): no retransmission, no order, at
    /// most [`Conversation::max_datagram_size`] bytes.
    ///
    /// # Errors
    /// [`NetError::Datagram`], or the failure that ended the conversation.
    pub fn send_datagram(&mut self, datagram: Bytes) -> Result<(), NetError> {
        self.check_failure()?;
        let now = Instant::now();
        self.conversation.send_datagram(datagram)?;
        self.drive(now);
        self.flush_socket(now);
        Ok(())
    }

    /// The next unreliable datagram from the server, without blocking (reads the
    /// socket if none is waiting).
    ///
    /// # Errors
    /// As [`tick`](Self::tick).
    pub fn try_recv_datagram(&mut self) -> Result<Option<Bytes>, NetError> {
        if let Some(d) = self.conversation.recv_datagram() {
            return Ok(Some(d));
        }
        let ticked = self.tick();
        if let Some(d) = self.conversation.recv_datagram() {
            return Ok(Some(d));
        }
        ticked.map(|()| None)
    }

    /// Moves the client to a new local port, keeping its conversation, as a NAT
    /// rebinding would: in the secure mode the server follows (the session is named by
    /// its index, not by our address); a raw KCP server would see a stranger. Returns
    /// the new local address.
    ///
    /// # Errors
    /// The new socket cannot be bound; [`NetError::ExternallyPolled`] if the client is
    /// registered with another poll (deregister it first).
    pub fn rebind(&mut self) -> Result<SocketAddr, NetError> {
        if self.socket.is_registered() {
            return Err(NetError::ExternallyPolled);
        }
        let local = self.local_addr()?;
        let socket = udp::bind(
            SocketAddr::new(local.ip(), 0),
            SocketOptions {
                reuse_port: false,
                recv_buffer: self.config.recv_buffer,
                send_buffer: self.config.send_buffer,
            },
        )?;
        self.io = udp::datagram_io(self.config.io, &socket);
        self.socket = PolledSocket::new(socket);
        self.poll = None;
        self.readable = true;
        self.local_addr()
    }

    /// The conversation id.
    pub fn conv(&self) -> u32 {
        self.conversation.conv()
    }

    /// The conversation itself (engine, liveness, counters).
    pub const fn conversation(&self) -> &Conversation {
        &self.conversation
    }

    /// The server's address.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Our socket's address.
    ///
    /// # Errors
    /// If the OS cannot tell.
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        self.socket
            .local_addr()
            .map_err(|e| NetError::io("reading the local address", e))
    }

    /// Counters so far (this conversation's engine; ours since `connect`).
    pub fn stats(&self) -> SessionStats {
        self.conversation.stats()
    }

    /// Datagrams received from addresses other than the server's (dropped).
    pub fn foreign_datagrams(&self) -> u64 {
        self.foreign
    }

    /// Datagrams longer than we accept (the engine's `mtu`, at least 1,500 bytes),
    /// dropped unread.
    pub fn oversized_datagrams(&self) -> u64 {
        self.oversized
    }

    /// Outgoing datagrams the socket did not take: its buffer was full, or the OS
    /// refused them (the server's `dropped_send_full` and `send_errors` together). KCP
    /// retransmits them like any loss.
    pub fn send_drops(&self) -> u64 {
        self.send_drops
    }

    /// Outgoing datagrams the impaired-socket mode (`ClientConfig::impair`, feature
    /// `impair`) dropped on purpose, for whatever cause the link model gives (loss, a
    /// full bottleneck queue, the MTU): the client's side of the server's
    /// `dropped_impaired`. Always 0 without impairment. Not part of
    /// [`send_drops`](Self::send_drops).
    pub fn impaired_drops(&self) -> u64 {
        self.outbox.impaired_drops()
    }

    /// Bytes queued or in flight, counted in whole segments.
    pub fn queued_bytes(&self) -> usize {
        self.conversation.queued_bytes()
    }

    /// Whether a received message waits for [`try_recv`](Self::try_recv). Received
    /// messages wait in the engine, whose receive window bounds them: a client that
    /// does not read makes the server wait, not our memory grow.
    pub fn has_message(&self) -> bool {
        self.conversation.has_message()
    }

    fn check_failure(&self) -> Result<(), NetError> {
        match &self.failure {
            None => Ok(()),
            Some(Failure::DeadLink) => Err(NetError::DeadLink { conv: self.conv() }),
            Some(Failure::ServerGone(silent_for)) => Err(NetError::ServerGone {
                conv: self.conv(),
                silent_for: *silent_for,
            }),
            Some(Failure::Closed(close)) => Err(NetError::ClosedByServer {
                reason: close.reason,
                text: close.text.clone(),
            }),
        }
    }

    /// Queues a message for the server and runs the engine (which sends it now if
    /// `flush_on_send`, else at its next `interval` tick, during a later `tick`/`recv`).
    ///
    /// # Errors
    /// [`NetError::QueueFull`], [`NetError::Send`], or the link failure that ended
    /// the conversation.
    pub fn send(&mut self, message: &[u8]) -> Result<(), NetError> {
        self.send_bytes(Bytes::copy_from_slice(message))
    }

    /// As [`send`](Self::send), without copying.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn send_bytes(&mut self, message: Bytes) -> Result<(), NetError> {
        self.check_failure()?;
        let now = Instant::now();
        self.conversation.send(now, message)?;
        self.drive(now);
        self.flush_socket(now);
        Ok(())
    }

    /// Does all pending work without blocking: reads the socket, runs the engine's
    /// timer, sends keepalives and datagrams. Call it each frame of a game loop, or
    /// when the socket is readable or [`next_deadline`](Self::next_deadline) passes.
    /// Received messages wait for [`try_recv`](Self::try_recv).
    ///
    /// # Errors
    /// The link failure that ended the conversation, or a socket error.
    pub fn tick(&mut self) -> Result<(), NetError> {
        let now = self.read_phase()?;
        self.drive_phase(now)
    }

    /// The first half of a tick: fails if the conversation has failed, else reads the
    /// socket. Returns the time it read at.
    fn read_phase(&mut self) -> Result<Instant, NetError> {
        self.check_failure()?;
        let now = Instant::now();
        self.outbox.set_now(now);
        self.read_socket(now)?;
        Ok(now)
    }

    /// The second half: drives the conversation, sends, and notes a failure.
    fn drive_phase(&mut self, now: Instant) -> Result<(), NetError> {
        // With `flush_on_input`, the ACKs for what we read leave now, unless messages
        // wait: then the application is about to take them and perhaps reply, and
        // the ACKs leave with that reply, or at the first tick that finds nothing
        // waiting or comes a millisecond later (`next_deadline` asks for it).
        self.drive(now);
        self.flush_socket(now);
        self.detect_failure(now);
        self.check_failure()
    }

    /// The next message, without blocking (runs [`tick`](Self::tick) first). Messages
    /// that arrived before the link failed are still returned; then the failure is.
    ///
    /// # Errors
    /// As [`tick`](Self::tick).
    pub fn try_recv(&mut self) -> Result<Option<Bytes>, NetError> {
        // Messages already read are handed out without touching the socket again for
        // up to a millisecond (timers and ACKs lose nothing at that scale).
        if self.conversation.has_message() && self.last_read.elapsed() < ACK_HOLD {
            if let Some(message) = self.conversation.recv() {
                return Ok(Some(message));
            }
        }
        let ticked = self.tick();
        if let Some(message) = self.conversation.recv() {
            return Ok(Some(message));
        }
        ticked.map(|()| None)
    }

    /// The next message, waiting up to `timeout` for it while driving the
    /// conversation. `Ok(None)` if none arrived in time.
    ///
    /// # Errors
    /// As [`tick`](Self::tick); [`NetError::ExternallyPolled`] if the client is
    /// registered with another `mio` poll.
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<Bytes>, NetError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(message) = self.try_recv()? {
                return Ok(Some(message));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let until = earliest(self.next_deadline(), Some(deadline)).unwrap_or(deadline);
            self.wait(until.saturating_duration_since(now))?;
        }
    }

    /// Drives the conversation until everything sent is acknowledged, for up to
    /// `timeout`, and sends the acknowledgements we owe the server right away (not at
    /// the next `interval` tick), so that nothing it sent last is retransmitted after we
    /// stop. Returns whether everything was acknowledged; received messages stay queued.
    /// Call it before dropping a client whose last messages matter.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn wait_acknowledged(&mut self, timeout: Duration) -> Result<bool, NetError> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.read_phase()?;
            // Asked before the drive, which may queue a keepalive: a keepalive of
            // ours is not what the caller waits for.
            if self.conversation.engine().wait_send() == 0 {
                let Ok(_) = self
                    .conversation
                    .flush(now, &mut self.outbox.to(self.server));
                self.flush_socket(now);
                return Ok(true);
            }
            self.drive_phase(now)?;
            if now >= deadline {
                return Ok(false);
            }
            let until = earliest(self.next_deadline(), Some(deadline)).unwrap_or(deadline);
            self.wait(until.saturating_duration_since(now))?;
        }
    }

    /// When [`tick`](Self::tick) next has work even if nothing arrives: the
    /// conversation's deadlines (engine timer, keepalive, server timeout, ACKs held
    /// for the application; see [`Conversation::next_deadline`]) and the impaired
    /// link's next release. `None` if only a datagram can create work.
    ///
    /// A deadline is a fixed instant: asked again before `tick` runs, the answer is
    /// the same, and work already due answers an instant in the past. So comparing it
    /// with an `Instant` you took earlier (`deadline <= now`) is safe.
    pub fn next_deadline(&self) -> Option<Instant> {
        let conversation = self.conversation.next_deadline(Instant::now());
        earliest(conversation, self.outbox.next_release())
    }

    /// Starts a new conversation with a new random conv (different from the old one)
    /// on the same socket, dropping whatever the old one had queued. Messages already
    /// received stay available. Returns the new conv.
    ///
    /// In the secure mode this runs a new handshake (blocking up to its timeout).
    ///
    /// # Errors
    /// [`NetError::Handshake`] in the secure mode if the handshake fails; the client
    /// then reports [`NetError::ServerGone`] until a reconnect succeeds.
    pub fn reconnect(&mut self) -> Result<u32, NetError> {
        let conv = random_conv(self.conversation.conv());
        self.conversation = Conversation::new(conv, self.config.conversation(), Instant::now())?;
        self.failure = None;
        self.events = events::Reported::default();
        if let Some(security) = self.config.secure.clone() {
            if let Err(e) = self.handshake(conv, &security) {
                // No sealed conversation: every call reports the server gone until a
                // reconnect succeeds (the placeholder must never speak raw KCP).
                self.failure = Some(Failure::ServerGone(security.handshake_timeout));
                return Err(e);
            }
        }
        Ok(conv)
    }

    /// Reads what the socket holds into the conversation.
    fn read_socket(&mut self, now: Instant) -> Result<(), NetError> {
        let mut received = 0;
        self.last_read = now;
        // Always try: under an external poll we learn of readiness only through `tick`.
        self.readable = true;
        while received < MAX_DATAGRAMS_PER_TICK {
            let n = match self.io.recv(&self.socket, &mut self.recv) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP port unreachable and the like: the server timeout handles it.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(NetError::io("receiving", e)),
            };
            received += n;
            for i in 0..n {
                let (meta, datagram) = self.recv.get(i);
                if meta.addr != self.server {
                    self.foreign += 1;
                } else if meta.truncated {
                    self.oversized += 1;
                } else {
                    // A rejected datagram is counted by the conversation.
                    let _ = self.conversation.input(now, datagram);
                }
            }
            if !self.recv.may_hold_more() {
                // The read emptied the socket; the next datagram raises a new edge.
                self.readable = false;
                break;
            }
        }
        Ok(())
    }

    fn drive(&mut self, now: Instant) {
        self.outbox.set_now(now);
        let Ok(_) = self
            .conversation
            .drive(now, &mut self.outbox.to(self.server));
    }

    fn flush_socket(&mut self, now: Instant) {
        let outcome = self.outbox.send(now, self.io.as_mut(), &self.socket);
        self.send_drops += outcome.dropped_full + outcome.errors;
    }

    fn detect_failure(&mut self, now: Instant) {
        if self.failure.is_some() {
            return;
        }
        self.failure = match self.conversation.poll_close(now) {
            Some(CloseReason::DeadLink) => Some(Failure::DeadLink),
            Some(CloseReason::PeerGone) => Some(Failure::ServerGone(
                self.conversation.silent_for(now).unwrap_or_default(),
            )),
            Some(CloseReason::PeerClosed) => {
                self.conversation.peer_close().cloned().map(Failure::Closed)
            }
            // A client sets no idle timeout and never closes its conversation.
            _ => None,
        };
    }

    /// Blocks until the socket is readable or `timeout` passes.
    fn wait(&mut self, timeout: Duration) -> Result<(), NetError> {
        if self.readable {
            return Ok(());
        }
        if self.socket.is_registered() {
            return Err(NetError::ExternallyPolled);
        }
        if self.poll.is_none() {
            let poll = Poll::new().map_err(|e| NetError::io("creating a poll", e))?;
            poll.registry()
                .register(self.socket.inner_mut(), Token(0), Interest::READABLE)
                .map_err(|e| NetError::io("registering the socket", e))?;
            self.poll = Some((poll, Events::with_capacity(4)));
        }
        if let Some((poll, events)) = &mut self.poll {
            match poll.poll(events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(NetError::io("polling", e)),
            }
            if !events.is_empty() {
                self.readable = true;
            }
        }
        Ok(())
    }
}

/// Registering the client registers its socket (readable interest is what matters).
/// A registered client cannot block in [`KcpClient::recv`] or [`KcpClient::wait_acknowledged`];
/// call [`KcpClient::tick`] / [`KcpClient::try_recv`] when its token fires or its
/// [`next_deadline`](KcpClient::next_deadline) passes.
///
/// The poll of its own that a blocking call (a secure handshake in
/// [`KcpClient::connect`], [`KcpClient::recv`]) created is dropped first: `mio`
/// allows a socket in one registry at a time (debug builds refuse a second one with
/// `AlreadyExists`), and readiness belongs to the caller's poll from now on. After a
/// `deregister`, a blocking call makes a new one.
impl mio::event::Source for KcpClient {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.release_own_poll()?;
        self.socket.register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.socket.reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        self.socket.deregister(registry)
    }
}

/// A random conv, never 0 and never `old`.
fn random_conv(old: u32) -> u32 {
    loop {
        let conv: u32 = rand::random();
        if conv != 0 && conv != old {
            return conv;
        }
    }
}
