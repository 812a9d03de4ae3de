//! Helpers shared by the socket tests: handlers that echo or report events, configs
//! with short timeouts, and a driver for many clients on a few threads.
//!
//! Every wait is bounded: channel waits use `recv_timeout`, client waits use
//! `recv(timeout)`, loops carry a deadline.
#![allow(dead_code, unreachable_pub)]

pub mod forge;
pub mod virtual_link;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kcp_net::{
    ClientConfig, CloseCtx, CloseReason, EventHandler, KcpClient, KcpServer, LoopStats, Preset,
    ServerConfig, SessionCtx, SessionKey,
};
use mio::{Events, Interest, Poll, Token};

/// Generous bound for anything that should take milliseconds on loopback.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// What a [`Reporter`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Opened(SessionKey, SocketAddr, u32),
    Message(SessionKey, Bytes),
    Closed(SessionKey, CloseReason),
}

/// Echoes every message, and reports every event on a channel.
#[derive(Clone)]
pub struct Reporter {
    pub events: Sender<Event>,
    pub echo: bool,
}

impl EventHandler for Reporter {
    fn on_open(&mut self, session: &mut SessionCtx<'_>) {
        let _ = self
            .events
            .send(Event::Opened(session.key(), session.peer(), session.conv()));
    }

    fn on_message(&mut self, session: &mut SessionCtx<'_>, message: Bytes) {
        if self.echo {
            session.send_bytes(message.clone()).expect("echo queued");
        }
        let _ = self.events.send(Event::Message(session.key(), message));
    }

    fn on_close(&mut self, session: &CloseCtx<'_>, reason: CloseReason) {
        let _ = self.events.send(Event::Closed(session.key(), reason));
    }
}

/// A plain echo handler.
#[derive(Clone)]
pub struct Echo;

impl EventHandler for Echo {
    fn on_message(&mut self, session: &mut SessionCtx<'_>, message: Bytes) {
        let _ = session.send_bytes(message);
    }
}

/// An echo server that reports events.
pub fn reporting_server(config: ServerConfig) -> (KcpServer, Receiver<Event>) {
    let (tx, rx) = mpsc::channel();
    let handler = Reporter {
        events: tx,
        echo: true,
    };
    (KcpServer::bind(localhost(), config, handler).unwrap(), rx)
}

/// Fast preset, low latency, no surprises from the rate cap.
pub fn server_config() -> ServerConfig {
    let mut config = ServerConfig::new(Preset::Fast);
    config.flush_on_send = true;
    config.new_sessions_per_sec = 100_000;
    // Every client of these tests comes from 127.0.0.1.
    config.max_sessions_per_ip = 100_000;
    config.new_sessions_per_ip_per_sec = 100_000;
    config
}

/// Fast preset, flush on send.
pub fn client_config() -> ClientConfig {
    let mut config = ClientConfig::new(Preset::Fast);
    config.flush_on_send = true;
    config
}

/// The next event that `want` accepts, skipping others, within `timeout`.
#[track_caller]
pub fn expect_event(
    events: &Receiver<Event>,
    timeout: Duration,
    mut want: impl FnMut(&Event) -> bool,
) -> Event {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(event) if want(&event) => return event,
            Ok(_) => {}
            Err(e) => panic!("no matching event within {timeout:?}: {e}"),
        }
    }
}

/// The next session opened, within [`WAIT`]: its key, peer and conv.
#[track_caller]
pub fn expect_opened(events: &Receiver<Event>) -> (SessionKey, SocketAddr, u32) {
    match expect_event(events, WAIT, |e| matches!(e, Event::Opened(..))) {
        Event::Opened(key, peer, conv) => (key, peer, conv),
        _ => unreachable!("filtered to Opened"),
    }
}

/// The next session closed, within [`WAIT`]: its key and why.
#[track_caller]
pub fn expect_closed(events: &Receiver<Event>) -> (SessionKey, CloseReason) {
    match expect_event(events, WAIT, |e| matches!(e, Event::Closed(..))) {
        Event::Closed(key, reason) => (key, reason),
        _ => unreachable!("filtered to Closed"),
    }
}

/// Sends `message` and expects it echoed back within [`WAIT`].
#[track_caller]
pub fn echo_once(client: &mut KcpClient, message: &[u8]) {
    client.send(message).unwrap();
    let reply = client.recv(WAIT).unwrap().expect("echo within the bound");
    assert_eq!(&reply[..], message);
}

/// Message `i` of client `c`: distinct content, `size` bytes.
pub fn payload(c: usize, i: usize, size: usize) -> Vec<u8> {
    let mut m: Vec<u8> = (0..size)
        .map(|j| (c * 131 + i * 31 + j * 7) as u8)
        .collect();
    let tag = [(c as u32).to_le_bytes(), (i as u32).to_le_bytes()].concat();
    let n = tag.len().min(size);
    m[..n].copy_from_slice(&tag[..n]);
    m
}

/// Runs `clients` echo clients spread over `threads` threads, each sending `messages`
/// messages of `size` bytes at once and verifying every echo in order. The clients of
/// a thread share one `mio` poll (each client is a `mio::event::Source`).
pub fn run_echo_clients(
    server: SocketAddr,
    clients: usize,
    threads: usize,
    messages: usize,
    size: usize,
    config: &ClientConfig,
    timeout: Duration,
) {
    let per_thread = clients.div_ceil(threads);
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let config = config.clone();
            let first = t * per_thread;
            let count = per_thread.min(clients.saturating_sub(first));
            std::thread::spawn(move || {
                drive_clients(server, first, count, messages, size, &config, timeout)
            })
        })
        .collect();
    for w in workers {
        w.join().expect("client thread panicked");
    }
}

fn drive_clients(
    server: SocketAddr,
    first: usize,
    count: usize,
    messages: usize,
    size: usize,
    config: &ClientConfig,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    let clients = (0..count)
        .map(|_| KcpClient::connect(server, config.clone()).unwrap())
        .collect();
    echo_on_one_poll(clients, first, messages, size, deadline);
}

/// Registers `clients` (numbered from `first`) with one `mio` poll, as a load
/// generator does, sends `messages` messages of `size` bytes on each at once and
/// verifies every echo in order, by `deadline`.
#[track_caller]
pub fn echo_on_one_poll(
    mut clients: Vec<KcpClient>,
    first: usize,
    messages: usize,
    size: usize,
    deadline: Instant,
) {
    let timeout = deadline.saturating_duration_since(Instant::now());
    let count = clients.len();
    let mut poll = Poll::new().unwrap();
    for (i, client) in clients.iter_mut().enumerate() {
        poll.registry()
            .register(client, Token(i), Interest::READABLE)
            .unwrap_or_else(|e| panic!("registering client {}: {e}", first + i));
        for m in 0..messages {
            client.send(&payload(first + i, m, size)).unwrap();
        }
    }
    let mut received = vec![0usize; count];
    let mut done = 0;
    let mut events = Events::with_capacity(1024);
    let mut ready: HashMap<usize, ()> = HashMap::new();
    while done < count {
        let now = Instant::now();
        assert!(
            now < deadline,
            "clients {first}..{}: {done} of {count} finished within {timeout:?}; received {:?}",
            first + count,
            received
        );
        let next = clients
            .iter()
            .zip(&received)
            .filter(|(_, r)| **r < messages)
            .filter_map(|(c, _)| c.next_deadline())
            .min()
            .unwrap_or(now + Duration::from_millis(50))
            .min(deadline);
        poll.poll(&mut events, Some(next.saturating_duration_since(now)))
            .unwrap();
        ready.clear();
        for e in events.iter() {
            ready.insert(e.token().0, ());
        }
        let now = Instant::now();
        for (i, client) in clients.iter_mut().enumerate() {
            if received[i] == messages {
                continue;
            }
            let due = client.next_deadline().is_some_and(|d| d <= now);
            if !due && !ready.contains_key(&i) {
                continue;
            }
            while let Some(message) = client.try_recv().unwrap() {
                assert_eq!(
                    message[..],
                    payload(first + i, received[i], size)[..],
                    "client {} message {}",
                    first + i,
                    received[i]
                );
                received[i] += 1;
            }
            if received[i] == messages {
                done += 1;
            }
        }
    }
}

/// Waits until the server's counters satisfy `done` (they are published once per
/// loop turn), keeping `client` alive meanwhile.
#[track_caller]
pub fn wait_for_stats(
    server: &KcpServer,
    client: &mut KcpClient,
    mut done: impl FnMut(&LoopStats) -> bool,
) -> LoopStats {
    let deadline = Instant::now() + WAIT;
    loop {
        let total = server.handle().stats().total;
        if done(&total) {
            return total;
        }
        assert!(
            Instant::now() < deadline,
            "counters never got there: {total:?}"
        );
        client.tick().unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
}
