//! One bench thread: drives its share of the clients on one `mio` poll.
//!
//! Each client says `b SENDER SEQ MICROS` (padded to the message size) at its rate in
//! its room; every client records each such message it receives: a bitmap per sender
//! finds duplicates, and the send time in the text gives the latency (all clients of a
//! run share one epoch).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use kcp_net::ClientConfig;
use mio::{Events, Interest, Poll, Token};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::cpu;
use crate::client::{ChatClient, ChatError};
use crate::latency::Latencies;
use crate::protocol::{ClientFrame, ErrorCode, ServerFrame};

/// Counters every worker adds to while it runs (read by the progress line).
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub(crate) joined: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) errors: AtomicU64,
    /// Clients the server refused as busy (admission control).
    pub(crate) refused: AtomicU64,
    /// Workers whose send phase is over (sent counts are final when all are).
    pub(crate) done_sending: AtomicUsize,
}

/// What all workers share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The server, or the nodes of a cluster: client `i` uses `servers[i % len]`.
    pub(crate) servers: Vec<std::net::SocketAddr>,
    pub(crate) config: ClientConfig,
    pub(crate) epoch: Instant,
    pub(crate) run: String,
    pub(crate) rate: f64,
    pub(crate) size: usize,
    pub(crate) room_size: usize,
    pub(crate) clients: usize,
    pub(crate) workers: usize,
    pub(crate) setup_timeout: Duration,
    pub(crate) duration: Duration,
    pub(crate) drain: Duration,
    pub(crate) live: Live,
    /// Messages each client sent (final once `sending_done`).
    pub(crate) sent_by: Vec<AtomicU64>,
    /// Clients the server refused as busy: not members of their rooms, so nothing is
    /// expected at them.
    pub(crate) refused: Vec<AtomicBool>,
    /// Workers and the main thread meet here when everyone has joined.
    pub(crate) ready: Barrier,
}

impl Shared {
    /// The node client `i` talks to.
    pub(crate) fn node_of(&self, client: usize) -> usize {
        client % self.servers.len().max(1)
    }

    pub(crate) fn room_of(&self, client: usize) -> usize {
        client / self.room_size.max(1)
    }

    /// The clients in `client`'s room.
    pub(crate) fn room_mates(&self, client: usize) -> std::ops::Range<usize> {
        let size = self.room_size.max(1);
        let first = self.room_of(client) * size;
        first..(first + size).min(self.clients)
    }
}

/// What a worker hands back.
#[derive(Debug, Default)]
pub(crate) struct WorkerResult {
    pub(crate) latencies: Latencies,
    /// Of those, deliveries from a client on another node.
    pub(crate) cross_node: Latencies,
    /// Unique deliveries per client of this worker: (client, count).
    pub(crate) delivered: Vec<(usize, u64)>,
    /// Clients that failed (connect, join or link), the refused not included.
    pub(crate) failed: usize,
    /// Clients the server refused as busy.
    pub(crate) refused: usize,
    pub(crate) retransmits: u64,
    /// This worker thread's CPU over the sending phase (`None` where `/proc` is not).
    pub(crate) sending_cpu: Option<Duration>,
}

struct BenchClient {
    index: usize,
    chat: ChatClient,
    room: String,
    joined: bool,
    failed: bool,
    /// Refused as busy (also `failed`: it takes no further part).
    refused: bool,
    seq: u64,
    next_send: Instant,
    /// Per sender, a bitmap of the sequence numbers received.
    seen: HashMap<usize, Vec<u64>>,
    unique: u64,
}

impl BenchClient {
    /// Marks `(sender, seq)` received; `false` if it was already.
    fn mark(&mut self, sender: usize, seq: u64) -> bool {
        let bits = self.seen.entry(sender).or_default();
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        let fresh = bits[word] & (1 << bit) == 0;
        bits[word] |= 1 << bit;
        fresh
    }
}

/// Parses `b SENDER SEQ MICROS ...`.
fn parse(text: &str) -> Option<(usize, u64, u64)> {
    let mut words = text.split(' ');
    if words.next()? != "b" {
        return None;
    }
    Some((
        words.next()?.parse().ok()?,
        words.next()?.parse().ok()?,
        words.next()?.parse().ok()?,
    ))
}

struct Worker<'a> {
    shared: &'a Shared,
    clients: Vec<BenchClient>,
    poll: Poll,
    latencies: Latencies,
    cross_node: Latencies,
    rng: SmallRng,
}

impl Worker<'_> {
    fn handle(&mut self, i: usize, frame: ServerFrame) {
        let shared = self.shared;
        let client = &mut self.clients[i];
        match frame {
            ServerFrame::Joined { room, nick }
                if nick == client.chat.nick() && room == client.room =>
            {
                client.joined = true;
                shared.live.joined.fetch_add(1, Relaxed);
            }
            ServerFrame::Message {
                text,
                history: false,
                ..
            } => {
                let Some((sender, seq, micros)) = parse(&text) else {
                    return;
                };
                if client.mark(sender, seq) {
                    client.unique += 1;
                    shared.live.delivered.fetch_add(1, Relaxed);
                    let now = shared.epoch.elapsed().as_micros() as u64;
                    let latency = Duration::from_micros(now.saturating_sub(micros));
                    self.latencies.push(latency);
                    if shared.node_of(sender) != shared.node_of(client.index) {
                        self.cross_node.push(latency);
                    }
                } else {
                    shared.live.duplicates.fetch_add(1, Relaxed);
                }
            }
            ServerFrame::Error {
                code: ErrorCode::ServerBusy,
                ..
            } if !client.joined => {
                client.failed = true;
                client.refused = true;
                shared.refused[client.index].store(true, Relaxed);
                shared.live.refused.fetch_add(1, Relaxed);
            }
            ServerFrame::Error { .. } => {
                shared.live.errors.fetch_add(1, Relaxed);
            }
            _ => {}
        }
    }

    /// Drains client `i`'s received frames.
    fn receive(&mut self, i: usize) {
        loop {
            let client = &mut self.clients[i];
            if client.failed {
                return;
            }
            match client.chat.try_recv() {
                Ok(Some(frame)) => self.handle(i, frame),
                Ok(None) => return,
                Err(ChatError::Codec(_)) => {
                    self.shared.live.errors.fetch_add(1, Relaxed);
                }
                Err(_) => {
                    client.failed = true;
                    self.shared.live.errors.fetch_add(1, Relaxed);
                    return;
                }
            }
        }
    }

    fn send(&mut self, i: usize) {
        let shared = self.shared;
        let client = &mut self.clients[i];
        client.seq += 1;
        let micros = shared.epoch.elapsed().as_micros();
        let mut text = format!("b {} {} {micros} ", client.index, client.seq);
        while text.len() < shared.size {
            let _ = write!(text, "{}", client.seq % 10);
        }
        let frame = ClientFrame::Say {
            room: client.room.clone(),
            text,
        };
        if client.chat.send(&frame).is_ok() {
            shared.sent_by[client.index].fetch_add(1, Relaxed);
            shared.live.sent.fetch_add(1, Relaxed);
        } else {
            client.seq -= 1;
            shared.live.errors.fetch_add(1, Relaxed);
        }
        let gap = 1.0 / shared.rate.max(0.001);
        client.next_send += Duration::from_secs_f64(gap * self.rng.random_range(0.8..1.2));
    }

    /// Runs the poll until `until` or until `done` says so; sends if `sending`.
    fn drive(&mut self, until: Instant, sending: bool, mut done: impl FnMut(&Self) -> bool) {
        let mut events = Events::with_capacity(1024);
        let mut ready = vec![false; self.clients.len()];
        loop {
            let now = Instant::now();
            if now >= until || done(self) {
                return;
            }
            let mut next = until.min(now + Duration::from_millis(5));
            for c in self.clients.iter().filter(|c| !c.failed) {
                if let Some(d) = c.chat.kcp().next_deadline() {
                    next = next.min(d);
                }
                if sending {
                    next = next.min(c.next_send);
                }
            }
            let _ = self
                .poll
                .poll(&mut events, Some(next.saturating_duration_since(now)));
            for e in &events {
                if let Some(r) = ready.get_mut(e.token().0) {
                    *r = true;
                }
            }
            let now = Instant::now();
            for (i, was_ready) in ready.iter_mut().enumerate() {
                if self.clients[i].failed {
                    continue;
                }
                if sending && self.clients[i].joined && now >= self.clients[i].next_send {
                    self.send(i);
                }
                let due = self.clients[i]
                    .chat
                    .kcp()
                    .next_deadline()
                    .is_some_and(|d| d <= now);
                if std::mem::take(was_ready) || due {
                    self.receive(i);
                }
            }
        }
    }

    /// Unique deliveries each of our clients should get, once sending is over.
    fn expected(&self, client: usize) -> u64 {
        self.shared
            .room_mates(client)
            .map(|j| self.shared.sent_by[j].load(Relaxed))
            .sum()
    }
}

/// Runs clients `first..first + count` through setup, sending and draining.
pub(crate) fn run_worker(
    shared: &Arc<Shared>,
    worker: usize,
    first: usize,
    count: usize,
) -> WorkerResult {
    let Ok(poll) = Poll::new() else {
        shared.ready.wait();
        return WorkerResult {
            failed: count,
            ..WorkerResult::default()
        };
    };
    let mut w = Worker {
        shared,
        clients: Vec::with_capacity(count),
        poll,
        latencies: Latencies::new(),
        cross_node: Latencies::new(),
        rng: SmallRng::seed_from_u64(worker as u64),
    };
    let mut failed_connect = 0;
    let start = Instant::now();
    for index in first..first + count {
        let nick = format!("{}-{index}", shared.run);
        let server = shared.servers[shared.node_of(index)];
        let Ok(mut chat) = ChatClient::connect(server, &nick, shared.config.clone()) else {
            failed_connect += 1;
            continue;
        };
        let room = format!("{}-room{}", shared.run, shared.room_of(index));
        let token = Token(w.clients.len());
        if w.poll
            .registry()
            .register(chat.kcp_mut(), token, Interest::READABLE)
            .is_err()
            || chat.join(&room).is_err()
        {
            failed_connect += 1;
            continue;
        }
        let phase = Duration::from_secs_f64(w.rng.random_range(0.0..1.0) / shared.rate.max(0.001));
        w.clients.push(BenchClient {
            index,
            chat,
            room,
            joined: false,
            failed: false,
            refused: false,
            seq: 0,
            next_send: start + phase,
            seen: HashMap::new(),
            unique: 0,
        });
    }
    // Setup: until every client is in its room.
    w.drive(start + shared.setup_timeout, false, |w| {
        w.clients.iter().all(|c| c.joined || c.failed)
    });
    for c in w.clients.iter_mut().filter(|c| !c.joined) {
        c.failed = true;
    }
    shared.ready.wait();
    let begin = Instant::now();
    let cpu_start = cpu::this_thread_cpu();
    for c in &mut w.clients {
        c.next_send += begin - start;
    }
    w.drive(begin + shared.duration, true, |_| false);
    let sending_cpu = cpu::this_thread_cpu()
        .zip(cpu_start)
        .map(|(end, start)| end.saturating_sub(start));
    shared.live.done_sending.fetch_add(1, Relaxed);
    // Wait for the other workers to stop sending, so the expected counts are final.
    w.drive(begin + shared.duration + shared.drain, false, |_| {
        shared.live.done_sending.load(Relaxed) == shared.workers
    });
    w.drive(begin + shared.duration + shared.drain, false, |w| {
        w.clients
            .iter()
            .all(|c| c.failed || c.unique >= w.expected(c.index))
    });
    let mut result = WorkerResult {
        failed: failed_connect + w.clients.iter().filter(|c| c.failed && !c.refused).count(),
        refused: w.clients.iter().filter(|c| c.refused).count(),
        sending_cpu,
        ..WorkerResult::default()
    };
    for c in &mut w.clients {
        let stats = c.chat.kcp().stats();
        result.retransmits += stats.engine.retransmits_timeout + stats.engine.retransmits_fast;
        result.delivered.push((c.index, c.unique));
        let _ = c.chat.send(&ClientFrame::Quit {
            reason: "bench over".into(),
        });
    }
    // Give the quits a moment to leave (the server would time the sessions out anyway).
    w.drive(Instant::now() + Duration::from_millis(300), false, |w| {
        w.clients
            .iter()
            .all(|c| c.failed || c.chat.kcp().queued_bytes() == 0)
    });
    result.latencies = std::mem::take(&mut w.latencies);
    result.cross_node = std::mem::take(&mut w.cross_node);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_text_parses() {
        assert_eq!(parse("b 12 7 123456 777"), Some((12, 7, 123_456)));
        assert_eq!(parse("hello"), None);
        assert_eq!(parse("b x 1 2"), None);
    }
}
