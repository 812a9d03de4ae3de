//! `KcpClient`: one conversation with a server, driven by its owner's thread.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kcp_core::{Kcp, PollAt};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Registry, Token};

use crate::clock::Clock;
use crate::config::{ClientConfig, enqueue, max_datagram, queued_bytes};
use crate::error::NetError;
use crate::outbox::Outbox;
use crate::stats::{SessionCounters, SessionStats};
use crate::timer::earliest;
use crate::udp::{self, BATCH, DatagramIo, RecvBatch, SocketOptions};

/// Most datagrams one `tick` reads before running timers (as the server loop's bound).
const MAX_DATAGRAMS_PER_TICK: usize = 8 * BATCH;

/// How long [`KcpClient::try_recv`] hands out already-read messages before it reads
/// the socket and runs the engine again.
const INBOX_FRESH: Duration = Duration::from_millis(1);

/// Why a conversation ended (kept so every later call reports it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    DeadLink,
    ServerGone(Duration),
}

/// A KCP client over UDP: one socket, one conversation with one server.
///
/// It starts no thread. Use it from a thread that blocks in [`recv`](Self::recv), or
/// from a game loop that calls [`tick`](Self::tick) (or [`try_recv`](Self::try_recv))
/// each frame and sleeps until [`next_deadline`](Self::next_deadline), or from your own
/// `mio` loop: the client is a [`mio::event::Source`], so register it and call `tick`
/// when it is readable or its deadline passes.
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
#[derive(Debug)]
pub struct KcpClient {
    socket: UdpSocket,
    io: Box<dyn DatagramIo>,
    server: SocketAddr,
    config: ClientConfig,
    kcp: Kcp,
    clock: Clock,
    recv: RecvBatch,
    outbox: Outbox,
    inbox: VecDeque<Bytes>,
    counters: SessionCounters,
    /// Datagrams from addresses other than the server's.
    foreign: u64,
    /// Datagrams the socket did not take (full buffer, refused by the OS).
    send_drops: u64,
    /// When we last sent any datagram (keepalive timing).
    last_out: Instant,
    /// Since when we have been waiting to hear from the server.
    waiting_since: Option<Instant>,
    failure: Option<Failure>,
    readable: bool,
    /// ACKs owed under `flush_on_input`, held back while received messages wait in
    /// the inbox so that they leave with the application's reply (see `tick`).
    /// Since when (`None`: nothing owed).
    flush_owed: Option<Instant>,
    /// When the socket was last read.
    last_read: Instant,
    /// When the engine was last driven (`update` or `flush`).
    last_drive: Instant,
    /// Our own poll for blocking calls, created on first use.
    poll: Option<(Poll, Events)>,
    externally_polled: bool,
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
        let kcp = Kcp::new(conv, config.engine.clone())?;
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
        let now = Instant::now();
        let clock = Clock::new(now);
        let outbox = Outbox::new(clock, now);
        #[cfg(feature = "impair")]
        let outbox = outbox.impaired(config.impair.as_ref());
        let mut client = Self {
            socket,
            io,
            server,
            recv,
            config,
            kcp,
            clock,
            outbox,
            inbox: VecDeque::new(),
            counters: SessionCounters::default(),
            foreign: 0,
            send_drops: 0,
            last_out: now,
            waiting_since: None,
            failure: None,
            readable: true,
            flush_owed: None,
            last_read: now,
            last_drive: now,
            poll: None,
            externally_polled: false,
        };
        client.drive(now, false); // starts the engine's update grid
        Ok(client)
    }

    /// The conversation id.
    pub fn conv(&self) -> u32 {
        self.kcp.conv()
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
        SessionStats {
            counters: self.counters,
            engine: self.kcp.stats(),
        }
    }

    /// Datagrams received from addresses other than the server's (dropped).
    pub fn foreign_datagrams(&self) -> u64 {
        self.foreign
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
        queued_bytes(&self.kcp)
    }

    /// Messages received and not yet taken.
    pub fn pending(&self) -> usize {
        self.inbox.len()
    }

    fn check_failure(&self) -> Result<(), NetError> {
        match self.failure {
            None => Ok(()),
            Some(Failure::DeadLink) => Err(NetError::DeadLink { conv: self.conv() }),
            Some(Failure::ServerGone(silent_for)) => Err(NetError::ServerGone {
                conv: self.conv(),
                silent_for,
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
        enqueue(
            &mut self.kcp,
            &mut self.counters,
            message,
            self.config.max_queued_bytes,
        )?;
        let now = Instant::now();
        self.waiting_since.get_or_insert(now);
        self.drive(now, self.config.flush_on_send || self.flush_owed.is_some());
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
        self.check_failure()?;
        let now = Instant::now();
        self.outbox.set_now(now);
        let heard = self.read_socket(now)?;
        self.keepalive(now);
        // With `flush_on_input`, the ACKs for what we read leave now, unless messages
        // wait in the inbox: then the application is about to take them and perhaps
        // reply, and the ACKs leave with that reply, or at the first tick that finds
        // the inbox empty or comes a millisecond later (`next_deadline` asks for it).
        if heard && self.config.flush_on_input {
            self.flush_owed.get_or_insert(now);
        }
        let flush = self
            .flush_owed
            .is_some_and(|since| self.inbox.is_empty() || now >= since + INBOX_FRESH);
        self.drive(now, flush);
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
        if !self.inbox.is_empty() && self.last_read.elapsed() < INBOX_FRESH {
            return Ok(self.inbox.pop_front());
        }
        let ticked = self.tick();
        if let Some(message) = self.inbox.pop_front() {
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
    pub fn flush(&mut self, timeout: Duration) -> Result<bool, NetError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.tick()?;
            if self.kcp.wait_send() == 0 {
                let now = Instant::now();
                self.drive(now, true);
                self.flush_socket(now);
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let until = earliest(self.next_deadline(), Some(deadline)).unwrap_or(deadline);
            self.wait(until.saturating_duration_since(now))?;
        }
    }

    /// When [`tick`](Self::tick) next has work even if nothing arrives: the engine's
    /// timer, the keepalive, the server timeout, the impaired link's next release, the
    /// ACKs held for the inbox. `None` if only a datagram can create work.
    ///
    /// A deadline is a fixed instant: asked again before `tick` runs, the answer is
    /// the same, and work already due answers an instant in the past. So comparing it
    /// with an `Instant` you took earlier (`deadline <= now`) is safe.
    pub fn next_deadline(&self) -> Option<Instant> {
        let now = Instant::now();
        let ts = self.clock.timestamp(now);
        let engine = match self.kcp.check(ts) {
            // Due already, some time since it was last driven: that instant stays put
            // until the next tick (never "now", which would stay ahead of a caller's
            // own earlier reading of the clock for as long as it keeps asking).
            PollAt::Now => Some(self.last_drive),
            PollAt::At(t) => Some(self.clock.instant_of(now, t)),
            PollAt::Idle => None,
        };
        let keepalive = self.keepalive_interval().map(|k| self.last_out + k);
        let gone = self.waiting_since.map(|t| t + self.config.server_timeout);
        let owed = self.flush_owed.map(|since| since + INBOX_FRESH);
        let next = earliest(earliest(engine, keepalive), earliest(gone, owed));
        earliest(next, self.outbox.next_release())
    }

    /// Starts a new conversation with a new random conv (different from the old one)
    /// on the same socket, dropping whatever the old one had queued. Messages already
    /// received stay available. Returns the new conv.
    ///
    /// # Errors
    /// [`NetError::Config`] cannot happen (the config was validated at connect).
    pub fn reconnect(&mut self) -> Result<u32, NetError> {
        let conv = random_conv(self.kcp.conv());
        self.kcp = Kcp::new(conv, self.config.engine.clone())?;
        let now = Instant::now();
        self.failure = None;
        self.waiting_since = None;
        self.last_out = now;
        self.counters = SessionCounters::default();
        self.drive(now, false);
        Ok(conv)
    }

    fn keepalive_interval(&self) -> Option<Duration> {
        self.config.keepalive.filter(|_| !self.config.engine.stream)
    }

    fn keepalive(&mut self, now: Instant) {
        let Some(interval) = self.keepalive_interval() else {
            return;
        };
        if now < self.last_out + interval || self.kcp.wait_send() > 0 {
            return;
        }
        // An empty message: one PUSH segment with no payload, acknowledged like any.
        if self.kcp.send(&[]).is_ok() {
            self.counters.keepalives += 1;
            self.waiting_since.get_or_insert(now);
            self.last_out = now; // if the flush below sends nothing, do not retry at once
        }
    }

    /// Reads what the socket holds into the engine and the inbox; returns whether any
    /// datagram from the server was accepted.
    fn read_socket(&mut self, now: Instant) -> Result<bool, NetError> {
        let ts = self.clock.timestamp(now);
        let mut received = 0;
        let mut heard = false;
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
                    continue;
                }
                if meta.truncated || self.kcp.input(ts, datagram).is_err() {
                    self.counters.rejected_in += 1;
                    continue;
                }
                heard = true;
                self.counters.datagrams_in += 1;
                self.counters.bytes_in += meta.len as u64;
                // We heard the server: restart the silence clock if we still wait.
                self.waiting_since = (self.kcp.wait_send() > 0).then_some(now);
            }
            if !self.recv.may_hold_more() {
                // The read emptied the socket; the next datagram raises a new edge.
                self.readable = false;
                break;
            }
        }
        while let Some(message) = self.kcp.recv() {
            if message.is_empty() {
                // A keepalive echoed by an echo server, or one sent by the server.
                continue;
            }
            self.counters.messages_in += 1;
            self.inbox.push_back(message);
        }
        Ok(heard)
    }

    fn drive(&mut self, now: Instant, flush: bool) {
        self.last_drive = now;
        let ts = self.clock.timestamp(now);
        self.outbox.set_now(now);
        if flush {
            self.flush_owed = None;
        }
        let sent = self
            .outbox
            .drive(&mut self.kcp, self.server, ts, flush, &mut self.counters);
        if sent {
            self.last_out = now;
            // Whenever the engine emits, it flushes whole: every ACK owed went out.
            self.flush_owed = None;
        }
    }

    fn flush_socket(&mut self, now: Instant) {
        let outcome = self.outbox.send(now, self.io.as_mut(), &self.socket);
        self.send_drops += outcome.dropped_full + outcome.errors;
    }

    fn detect_failure(&mut self, now: Instant) {
        if self.failure.is_some() {
            return;
        }
        if self.kcp.is_dead() {
            self.failure = Some(Failure::DeadLink);
        } else if let Some(since) = self.waiting_since {
            let silent = now.saturating_duration_since(since);
            if silent >= self.config.server_timeout {
                self.failure = Some(Failure::ServerGone(silent));
            }
        }
    }

    /// Blocks until the socket is readable or `timeout` passes.
    fn wait(&mut self, timeout: Duration) -> Result<(), NetError> {
        if self.readable {
            return Ok(());
        }
        if self.externally_polled {
            return Err(NetError::ExternallyPolled);
        }
        if self.poll.is_none() {
            let poll = Poll::new().map_err(|e| NetError::io("creating a poll", e))?;
            poll.registry()
                .register(&mut self.socket, Token(0), Interest::READABLE)
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
/// A registered client cannot block in [`KcpClient::recv`] or [`KcpClient::flush`];
/// call [`KcpClient::tick`] / [`KcpClient::try_recv`] when its token fires or its
/// [`next_deadline`](KcpClient::next_deadline) passes.
impl mio::event::Source for KcpClient {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.externally_polled = true;
        self.socket.register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.socket.reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.externally_polled = false;
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
