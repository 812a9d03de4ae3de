//! [`ServerDriver`] on virtual time over a real loopback socket.
//!
//! The driver's socket is real (`127.0.0.1:0`), and so are the clients' (plain
//! `std::net::UdpSocket`s, non-blocking), but every `now` handed to the driver and to
//! the clients' [`Conversation`]s is `t0 + n ms`, computed by the test: the clock is
//! read once, for `t0`, after the driver is bound. Five seconds of idle timeout
//! therefore take no real time. Loopback delivery is effectively immediate, so each
//! virtual step is: clients drive and send → the driver reads (a bounded number of
//! `poll_io` calls, until its counters show every datagram arrived) → events →
//! `tick` → clients read their sockets (bounded the same way) → `input`. Nothing
//! sleeps; every loop carries a step limit.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kcp_net::{
    CloseReason, Conversation, ConversationConfig, NetError, Preset, QueueError, ServerConfig,
    ServerDriver, ServerEvent, SessionKey,
};

/// Most `poll_io` calls (or client socket reads) per step while waiting for datagrams
/// already sent on loopback; each is a non-blocking syscall, so this bounds a step.
const READ_ATTEMPTS: usize = 1_000;

/// One client: a conversation on its own socket, driven by the harness.
struct Client {
    socket: UdpSocket,
    conversation: Conversation,
    /// Messages it received, with the virtual ms they arrived.
    received: Vec<(u64, Bytes)>,
    /// A silent client is neither driven nor fed: it sends nothing, acknowledges
    /// nothing. What reaches its socket is read and discarded.
    silent: bool,
}

/// A driver, its clients and the events it produced, on virtual time.
struct Harness {
    t0: Instant,
    ms: u64,
    driver: ServerDriver,
    server: SocketAddr,
    clients: Vec<Client>,
    /// Every event taken from the driver, with the virtual ms it was taken at.
    events: Vec<(u64, ServerEvent)>,
    /// Echo every received message back with `send`.
    echo: bool,
}

/// The fast preset and nothing else changed (idle timeout 30 s).
fn config() -> ServerConfig {
    ServerConfig::new(Preset::Fast)
}

impl Harness {
    fn new(config: ServerConfig) -> Self {
        // The only clock read: every later instant is `t0 + n ms`.
        let t0 = Instant::now();
        let driver = ServerDriver::bind_at("127.0.0.1:0".parse().unwrap(), config, t0).unwrap();
        let server = driver.local_addr().unwrap();
        Self {
            t0,
            ms: 0,
            driver,
            server,
            clients: Vec::new(),
            events: Vec::new(),
            echo: false,
        }
    }

    /// The instant of virtual ms `ms`.
    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn now(&self) -> Instant {
        self.at(self.ms)
    }

    /// A new client with conv `conv`, created at the current virtual time. Returns its
    /// index.
    fn client(&mut self, conv: u32) -> usize {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let mut config = ConversationConfig::new(Preset::Fast);
        config.flush_on_send = true;
        let conversation = Conversation::new(conv, config, self.now()).unwrap();
        self.clients.push(Client {
            socket,
            conversation,
            received: Vec::new(),
            silent: false,
        });
        self.clients.len() - 1
    }

    fn client_addr(&self, client: usize) -> SocketAddr {
        self.clients[client].socket.local_addr().unwrap()
    }

    /// Client `client` queues `message` now (it leaves at the next step).
    fn client_send(&mut self, client: usize, message: &[u8]) {
        let now = self.now();
        self.clients[client]
            .conversation
            .send(now, Bytes::copy_from_slice(message))
            .unwrap();
    }

    /// Advances one virtual millisecond and runs a step there.
    fn step(&mut self) {
        self.jump(self.ms + 1);
    }

    /// Moves virtual time to `ms` at once (nothing runs in between) and runs one step
    /// there.
    fn jump(&mut self, ms: u64) {
        assert!(ms >= self.ms, "virtual time never goes backwards");
        self.ms = ms;
        let now = self.now();

        // Clients drive; their datagrams go to the server.
        let mut sent = 0;
        let mut wire = Vec::new();
        for client in self.clients.iter_mut().filter(|c| !c.silent) {
            client.conversation.drive_to_vec(now, &mut wire);
            for datagram in wire.drain(..) {
                client.socket.send_to(&datagram, self.server).unwrap();
                sent += 1;
            }
        }

        // The server reads them (the kernel may need a moment: bounded retries).
        let expected = self.driver.stats().datagrams_in + sent;
        let mut attempts = 0;
        while self.driver.stats().datagrams_in < expected {
            assert!(
                attempts < READ_ATTEMPTS,
                "at {ms} ms the driver read {} of {expected} datagrams after {READ_ATTEMPTS} poll_io calls",
                self.driver.stats().datagrams_in,
            );
            attempts += 1;
            self.driver.poll_io(now).unwrap();
        }

        // Events (echoing messages if asked), then timers and output, then the
        // events of the tick (the sessions it closed).
        self.take_events(now);
        let before = self.driver.stats().datagrams_out;
        self.driver.tick(now);
        let out = self.driver.stats().datagrams_out - before;
        self.take_events(now);

        // Clients read what the server sent (bounded), and take their messages.
        let mut read = 0;
        let mut buf = [0u8; 2048];
        for _ in 0..READ_ATTEMPTS {
            for client in &mut self.clients {
                loop {
                    match client.socket.recv_from(&mut buf) {
                        Ok((len, from)) => {
                            assert_eq!(from, self.server);
                            read += 1;
                            if !client.silent {
                                client.conversation.input(now, &buf[..len]).unwrap();
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => panic!("client socket: {e}"),
                    }
                }
            }
            if read >= out {
                break;
            }
        }
        assert_eq!(
            read, out,
            "at {ms} ms the clients read {read} of the {out} datagrams the driver sent"
        );
        for client in self.clients.iter_mut().filter(|c| !c.silent) {
            while let Some(message) = client.conversation.recv() {
                client.received.push((ms, message));
            }
        }
    }

    /// Takes the driver's events into `events`, echoing messages if asked.
    fn take_events(&mut self, now: Instant) {
        while let Some(event) = self.driver.next_event() {
            if let ServerEvent::Message { key, message } = &event {
                if self.echo {
                    self.driver.send(now, *key, message.clone()).unwrap();
                }
            }
            self.events.push((self.ms, event));
        }
    }

    /// Steps (1 ms each) until `done`, at most `limit` steps; returns the virtual ms.
    #[track_caller]
    fn run_until(&mut self, limit: u64, mut done: impl FnMut(&Self) -> bool) -> u64 {
        for _ in 0..limit {
            if done(self) {
                return self.ms;
            }
            self.step();
        }
        assert!(
            done(self),
            "not done after {limit} steps (at {} ms)",
            self.ms
        );
        self.ms
    }

    /// Every `Closed` event: the virtual ms, key and reason.
    fn closed(&self) -> Vec<(u64, SessionKey, CloseReason)> {
        self.events
            .iter()
            .filter_map(|(ms, e)| match e {
                ServerEvent::Closed { key, reason, .. } => Some((*ms, *key, *reason)),
                _ => None,
            })
            .collect()
    }

    /// The keys of every `Opened` event with their peers.
    fn opened(&self) -> Vec<(SessionKey, SocketAddr, u32)> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                ServerEvent::Opened { key, peer, conv } => Some((*key, *peer, *conv)),
                _ => None,
            })
            .collect()
    }

    /// Opens a session for `client` (it sends `hello`) and waits until it has been
    /// acknowledged; returns the session's key.
    fn open(&mut self, client: usize) -> SessionKey {
        let opened = self.opened().len();
        self.client_send(client, b"hello");
        self.run_until(200, |h| {
            h.opened().len() > opened && h.clients[client].conversation.queued_bytes() == 0
        });
        let (key, peer, conv) = self.opened()[opened];
        assert_eq!(peer, self.client_addr(client));
        assert_eq!(conv, self.clients[client].conversation.conv());
        key
    }
}

// ============================================================ messages

#[test]
fn a_message_opens_a_session_and_the_echo_reaches_the_client() {
    let mut h = Harness::new(config());
    h.echo = true;
    let c = h.client(0x1001);
    h.client_send(c, b"hello");
    h.run_until(200, |h| !h.clients[c].received.is_empty());

    let kinds: Vec<_> = h.events.iter().map(|(_, e)| e).collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    let ServerEvent::Opened { key, peer, conv } = kinds[0] else {
        panic!("first event {:?}", kinds[0]);
    };
    assert_eq!((*peer, *conv), (h.client_addr(c), 0x1001));
    let ServerEvent::Message {
        key: message_key,
        message,
    } = kinds[1]
    else {
        panic!("second event {:?}", kinds[1]);
    };
    assert_eq!((message_key, &message[..]), (key, &b"hello"[..]));
    let key = *key;

    assert_eq!(h.clients[c].received.len(), 1);
    assert_eq!(&h.clients[c].received[0].1[..], b"hello");
    assert_eq!(h.driver.session_count(), 1);
    let session = h.driver.session(key).expect("still open");
    assert_eq!((session.peer(), session.conv()), (h.client_addr(c), 0x1001));
    let stats = h.driver.stats();
    assert_eq!(
        (stats.sessions_opened, stats.messages_in, stats.messages_out),
        (1, 1, 1)
    );
    assert_eq!(stats.sessions_active, 1);
}

// ============================================================ idle timeout

#[test]
fn a_silent_session_closes_exactly_at_the_idle_timeout_in_virtual_time() {
    let mut config = config();
    config.idle_timeout = Duration::from_secs(5);
    let mut h = Harness::new(config);
    let c = h.client(0x2002);
    let key = h.open(c);
    // Let the last ACKs settle, then the client falls silent.
    for _ in 0..50 {
        h.step();
    }
    h.clients[c].silent = true;
    let heard = h.driver.session(key).unwrap().last_heard();
    let heard_ms = heard.duration_since(h.t0).as_millis() as u64;
    assert!(heard_ms <= h.ms);
    assert_eq!(
        h.driver.next_deadline(h.now()),
        Some(heard + Duration::from_secs(5)),
        "an idle session's only timer is its idle deadline"
    );

    h.jump(heard_ms + 4_999);
    assert!(h.closed().is_empty(), "closed early: {:?}", h.closed());
    assert_eq!(h.driver.session_count(), 1);

    h.jump(heard_ms + 5_000);
    assert_eq!(
        h.closed(),
        [(heard_ms + 5_000, key, CloseReason::IdleTimeout)]
    );
    assert_eq!(h.driver.stats().closed_idle, 1);
    assert_eq!(h.driver.session_count(), 0);
    assert!(h.driver.session(key).is_none());
    assert_eq!(h.driver.next_deadline(h.now()), None, "nothing left to do");
}

// ============================================================ close

#[test]
fn close_ends_with_local_once_the_data_is_acknowledged_and_the_key_goes_stale() {
    let mut h = Harness::new(config());
    let c = h.client(0x3003);
    let key = h.open(c);

    let now = h.now();
    h.driver.send(now, key, &b"bye"[..]).unwrap();
    h.driver.close(now, key).unwrap();
    assert!(
        h.driver.session(key).unwrap().queued_bytes() > 0,
        "'bye' is still unacknowledged"
    );
    assert_eq!(
        h.driver.send(now, key, &b"more"[..]),
        Err(QueueError::Closed),
        "a closing session takes no new messages"
    );
    let closing_at = h.ms;
    let closed_at = h.run_until(200, |h| !h.closed().is_empty());

    assert!(closed_at > closing_at);
    assert_eq!(h.closed(), [(closed_at, key, CloseReason::Local)]);
    assert_eq!(
        h.clients[c]
            .received
            .iter()
            .map(|(_, m)| &m[..])
            .collect::<Vec<_>>(),
        [&b"bye"[..]],
        "the data queued before close arrived"
    );
    let ServerEvent::Closed { session, .. } = &h.events.last().unwrap().1 else {
        unreachable!("checked above");
    };
    assert_eq!(session.queued_bytes(), 0, "closed once acknowledged");
    assert_eq!(h.driver.stats().closed_local, 1);

    let now = h.now();
    assert_eq!(
        h.driver.send(now, key, &b"stale"[..]),
        Err(QueueError::Closed)
    );
    assert!(matches!(
        h.driver.close(now, key),
        Err(NetError::SessionClosed)
    ));
    assert!(h.driver.session(key).is_none());
}

// ============================================================ shutdown

#[test]
fn shutdown_refuses_new_sessions_and_closes_open_ones() {
    let mut h = Harness::new(config());
    let responsive = h.client(0x4004);
    let silent = h.client(0x4005);
    let a = h.open(responsive);
    let b = h.open(silent);
    // The silent client never acknowledges what the server sends it.
    h.clients[silent].silent = true;
    let now = h.now();
    h.driver.send(now, b, &b"unacknowledged"[..]).unwrap();

    let deadline_ms = h.ms + 300;
    h.driver.shutdown(h.at(deadline_ms));
    assert!(!h.driver.is_finished());
    let late = h.client(0x4006);
    h.client_send(late, b"let me in");

    // The responsive session has nothing unacknowledged: it closes at once.
    h.run_until(50, |h| h.closed().len() == 1);
    assert_eq!(h.closed()[0].1, a);
    assert_eq!(h.closed()[0].2, CloseReason::Shutdown);
    assert!(h.driver.stats().dropped_refused >= 1, "the late client");
    assert_eq!(h.opened().len(), 2, "no session for the late client");

    // The silent one holds data nobody acknowledges: it closes at the deadline.
    h.run_until(1_000, |h| h.closed().len() == 2);
    assert_eq!(h.closed()[1], (deadline_ms, b, CloseReason::Shutdown));
    assert!(h.driver.is_finished());
    let stats = h.driver.stats();
    assert_eq!(stats.closed_shutdown, 2);
    assert_eq!(stats.sessions_opened, 2);
    assert_eq!(stats.sessions_active, 0);
    assert!(stats.dropped_refused >= 1);
}

#[test]
fn shutdown_cuts_a_closing_sessions_linger_short() {
    let mut config = config();
    config.close_linger = Duration::from_secs(10);
    let mut h = Harness::new(config);
    let c = h.client(0x4007);
    let key = h.open(c);
    h.clients[c].silent = true;
    let now = h.now();
    h.driver.send(now, key, &b"never acknowledged"[..]).unwrap();
    h.driver.close(now, key).unwrap();
    let deadline_ms = h.ms + 200;
    h.driver.shutdown(h.at(deadline_ms));
    h.run_until(1_000, |h| !h.closed().is_empty());
    // Closed at the shutdown deadline, not after the 10 s linger, with its own reason.
    assert_eq!(h.closed(), [(deadline_ms, key, CloseReason::Local)]);
    assert!(h.driver.is_finished());
    assert_eq!(
        h.driver.next_deadline(h.now()),
        None,
        "a finished driver asks for nothing"
    );
}

// ============================================================ limits

#[test]
fn max_sessions_refuses_a_second_client_until_the_first_closes() {
    let mut config = config();
    config.max_sessions = 1;
    let mut h = Harness::new(config);
    // `max_sessions` counts confirmed sessions: the echo is what the client
    // acknowledges, proving its address.
    h.echo = true;
    let first = h.client(0x5005);
    let second = h.client(0x5006);
    let a = h.open(first);
    h.run_until(100, |h| h.driver.stats().sessions_confirmed == 1);

    h.client_send(second, b"me too");
    h.run_until(5, |h| h.driver.stats().dropped_session_limit >= 1);
    assert_eq!(h.driver.stats().dropped_session_limit, 1);
    assert_eq!(h.driver.session_count(), 1);
    assert_eq!(h.opened().len(), 1);

    // Once the first session is gone, the second client's retransmission gets in.
    let now = h.now();
    h.driver.close(now, a).unwrap();
    h.run_until(2_000, |h| h.opened().len() == 2);
    assert_eq!(h.closed()[0].1, a);
    assert_eq!(h.opened()[1].1, h.client_addr(second));
    assert_eq!(h.driver.session_count(), 1);
}
