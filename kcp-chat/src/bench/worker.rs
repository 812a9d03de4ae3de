//! One bench thread: drives its share of the clients on one `mio` poll, over a few
//! UDP sockets they share (lanes, see `lane.rs`): each turn reads every readable
//! lane in batches, runs the clients that got datagrams or whose timer is due
//! (a heap of deadlines, not a scan of every client), and sends what they wrote in
//! one batch per lane.
//!
//! Each client says `b SENDER SEQ MICROS` (padded to the message size) at its rate in
//! its room; every client records each such message it receives: a bitmap per sender
//! finds duplicates, and the send time in the text gives the latency (all clients of a
//! run share one epoch).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kcp_net::{ClientConfig, Conversation};
use mio::{Events, Interest, Poll, Token};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::cpu;
use super::lane::Lane;
use super::link::{Input, Link, key_of};
use super::seen::Seen;
use crate::latency::Latencies;
use crate::protocol::{ClientFrame, ErrorCode, ServerFrame, decode_server, encode};

/// Clients of a worker that may be connecting at once (handshake, hello and join
/// under way): the rest wait their turn, so that setup does not flood the server
/// with handshakes (which would put its loop behind and have joins refused as busy).
const MAX_STARTING: usize = 64;

/// Counters every worker adds to while it runs (read by the progress line).
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub(crate) joined: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) errors: AtomicU64,
    /// The same by cause: an error frame's code, or what went wrong at the client
    /// (rare events, so a lock is cheap).
    pub(crate) errors_by_cause: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Clients the server refused as busy (admission control).
    pub(crate) refused: AtomicU64,
    /// Workers whose send phase is over (sent counts are final when all are).
    pub(crate) done_sending: AtomicUsize,
    /// Workers whose clients have all joined or failed.
    pub(crate) set_up: AtomicUsize,
}

impl Live {
    /// Counts one error of `cause`.
    pub(crate) fn error(&self, cause: &'static str) {
        self.errors.fetch_add(1, Relaxed);
        let mut causes = self
            .errors_by_cause
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *causes.entry(cause).or_default() += 1;
    }
}

/// Why a client's conversation ended, as a cause of the report's errors.
fn closed_cause(reason: kcp_net::CloseReason) -> &'static str {
    use kcp_net::CloseReason as R;
    match reason {
        R::PeerClosed => "closed by the server",
        R::IdleTimeout => "idle timeout",
        R::DeadLink => "dead link",
        R::PeerGone => "server gone",
        _ => "closed",
    }
}

/// What all workers share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The server, or the nodes of a cluster: client `i` uses `servers[i % len]`.
    pub(crate) servers: Vec<SocketAddr>,
    pub(crate) config: ClientConfig,
    pub(crate) epoch: Instant,
    pub(crate) run: String,
    pub(crate) rate: f64,
    pub(crate) size: usize,
    pub(crate) room_size: usize,
    pub(crate) clients: usize,
    pub(crate) workers: usize,
    pub(crate) setup_timeout: Duration,
    /// Joins spread evenly over this, while those in already send (uncounted) lines;
    /// `None`: everyone joins first, at once, and the sending starts after.
    pub(crate) ramp: Option<Duration>,
    pub(crate) duration: Duration,
    pub(crate) drain: Duration,
    /// Clients per shared socket (1: a socket each, as separate hosts would have).
    pub(crate) clients_per_socket: usize,
    /// Socket buffer of each shared socket, each way.
    pub(crate) socket_buffer: usize,
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
    /// Sockets the worker's clients shared.
    pub(crate) sockets: usize,
    /// Receive and send syscalls over the sending phase.
    pub(crate) sending_syscalls: u64,
    /// Outgoing datagrams the sockets refused (full buffers), over the whole run.
    pub(crate) send_drops: u64,
}

struct BenchClient {
    index: usize,
    nick: String,
    room: String,
    /// The server (or node) it talks to.
    server: SocketAddr,
    /// Its lane, and the key the lane routes its datagrams by.
    lane: usize,
    key: u32,
    link: Link,
    /// Hello and join sent (once the conversation is up).
    greeted: bool,
    joined: bool,
    failed: bool,
    /// Refused as busy (also `failed`: it takes no further part).
    refused: bool,
    /// The server refused its handshake (noticed at its next run).
    link_refused: bool,
    seq: u64,
    /// When it may start connecting (the ramp spreads these).
    start_at: Instant,
    next_send: Instant,
    /// When its timer is set for (the heap may hold older entries, which are skipped).
    wake: Option<Instant>,
    /// In the worker's list of clients to run this turn.
    dirty: bool,
    /// The lines of each room member received.
    seen: Seen,
    unique: u64,
}

impl BenchClient {
    fn conversation(&mut self) -> Option<&mut Conversation> {
        self.link.conversation()
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
    lanes: Vec<Lane>,
    poll: Poll,
    events: Events,
    /// Client timers: (deadline, client), earliest first; an entry that is not the
    /// client's `wake` any more is skipped.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Clients to run this turn (datagrams arrived, or their timer is due).
    dirty: Vec<usize>,
    /// Messages taken from a conversation, reused.
    inbox: Vec<Bytes>,
    /// Clients not started yet, and how many started that have not joined (or
    /// failed) yet.
    to_start: VecDeque<usize>,
    starting: usize,
    /// Joined clients say lines: counted (`sending`) or, during a ramp, uncounted
    /// ones that only load the server (`warming`).
    sending: bool,
    warming: bool,
    /// The run is over and the clients said `quit`: the server closing their
    /// conversations is the expected answer, no error.
    quitting: bool,
    latencies: Latencies,
    cross_node: Latencies,
    rng: SmallRng,
}

impl Worker<'_> {
    fn touch(&mut self, c: usize) {
        let client = &mut self.clients[c];
        if !client.dirty && !client.failed {
            client.dirty = true;
            self.dirty.push(c);
        }
    }

    fn schedule(&mut self, c: usize, at: Option<Instant>) {
        let client = &mut self.clients[c];
        if client.wake == at {
            return;
        }
        client.wake = at;
        if let Some(at) = at {
            self.timers.push(Reverse((at, c)));
        }
    }

    fn fail(&mut self, c: usize, cause: &'static str) {
        let client = &mut self.clients[c];
        if !client.failed {
            client.failed = true;
            client.wake = None;
            if !client.joined {
                self.starting -= 1;
            }
            self.shared.live.error(cause);
        }
    }

    /// Starts waiting clients whose time has come while fewer than [`MAX_STARTING`]
    /// are connecting.
    fn start_more(&mut self, now: Instant) {
        while self.starting < MAX_STARTING {
            let Some(&c) = self.to_start.front() else {
                return;
            };
            if self.clients[c].start_at > now {
                return;
            }
            self.to_start.pop_front();
            self.starting += 1;
            self.touch(c);
        }
    }

    /// When the next waiting client may start, if one can.
    fn next_start(&self) -> Option<Instant> {
        if self.starting >= MAX_STARTING {
            return None;
        }
        self.to_start.front().map(|&c| self.clients[c].start_at)
    }

    fn handle(&mut self, c: usize, frame: ServerFrame, now: Instant) {
        let (shared, warming) = (self.shared, self.warming);
        let client = &mut self.clients[c];
        match frame {
            ServerFrame::Joined { room, nick }
                if nick == client.nick && room == client.room && !client.joined =>
            {
                client.joined = true;
                if warming {
                    // Joined during a ramp: its lines start now, not in a catch-up
                    // burst from when it was created.
                    client.next_send = client.next_send.max(now);
                }
                self.starting -= 1;
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
                let member = sender.wrapping_sub(shared.room_mates(client.index).start);
                if client.seen.mark(member, seq) {
                    client.unique += 1;
                    shared.live.delivered.fetch_add(1, Relaxed);
                    let at = now.saturating_duration_since(shared.epoch).as_micros() as u64;
                    let latency = Duration::from_micros(at.saturating_sub(micros));
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
            } if !client.joined && !client.failed => {
                client.failed = true;
                client.refused = true;
                client.wake = None;
                self.starting -= 1;
                shared.refused[client.index].store(true, Relaxed);
                shared.live.refused.fetch_add(1, Relaxed);
            }
            ServerFrame::Error { code, .. } => shared.live.error(code.name()),
            _ => {}
        }
    }

    /// Queues `frame` on client `c`'s conversation; `false` if it was refused.
    fn send_frame(&mut self, c: usize, frame: &ClientFrame, now: Instant) -> bool {
        let Ok(bytes) = encode(frame) else {
            return false;
        };
        self.clients[c]
            .conversation()
            .is_some_and(|conversation| conversation.send(now, bytes).is_ok())
    }

    /// Client `c` says its next line: a counted one while `sending`, else an
    /// uncounted warm-up line (`w ...`, which receivers skip); then its next line is
    /// due at its rate, jittered.
    fn say(&mut self, c: usize, now: Instant) {
        if self.sending {
            self.say_counted(c, now);
        } else {
            self.say_warm_up(c, now);
        }
        let gap = 1.0 / self.shared.rate.max(0.001);
        self.clients[c].next_send += Duration::from_secs_f64(gap * self.rng.random_range(0.8..1.2));
    }

    /// A counted line: `b SENDER SEQ MICROS`, expected at every member of the room.
    fn say_counted(&mut self, c: usize, now: Instant) {
        let shared = self.shared;
        let client = &mut self.clients[c];
        client.seq += 1;
        let micros = now.saturating_duration_since(shared.epoch).as_micros();
        let text = format!("b {} {} {micros} ", client.index, client.seq);
        let pad = char::from(b'0' + (client.seq % 10) as u8);
        let index = client.index;
        if self.say_in_room(c, text, pad, now) {
            shared.sent_by[index].fetch_add(1, Relaxed);
            shared.live.sent.fetch_add(1, Relaxed);
        } else {
            self.clients[c].seq -= 1;
            shared.live.error("send refused");
        }
    }

    /// A warm-up line during a ramp: the same size and room as a counted one,
    /// nothing expected of it.
    fn say_warm_up(&mut self, c: usize, now: Instant) {
        let text = format!("w {} ", self.clients[c].index);
        if !self.say_in_room(c, text, '0', now) {
            self.shared.live.error("send refused");
        }
    }

    /// Queues `text`, padded with `pad` to the message size, as a line in client
    /// `c`'s room; `false` if it was refused.
    fn say_in_room(&mut self, c: usize, mut text: String, pad: char, now: Instant) -> bool {
        while text.len() < self.shared.size {
            text.push(pad);
        }
        let frame = ClientFrame::Say {
            room: self.clients[c].room.clone(),
            text,
        };
        self.send_frame(c, &frame, now)
    }

    /// Runs client `c` at `now`: its handshake's timer, or its line if due, the
    /// frames it received, its conversation's output and timer; then sets its timer.
    fn service(&mut self, c: usize, now: Instant) {
        let client = &mut self.clients[c];
        client.dirty = false;
        if client.failed {
            return;
        }
        if client.link_refused {
            return self.fail(c, "socket refused");
        }
        if let Link::Handshake(handshake) = &client.link {
            let key = handshake.sender_index();
            if key != client.key {
                // A handshake that had to start again, under a new index.
                self.lanes[client.lane].route(key, c, Some(client.key));
                client.key = key;
            }
        }
        let lane = &mut self.lanes[client.lane];
        match client.link.drive_handshake(now, client.server, lane) {
            Err(_) => return self.fail(c, "handshake failed"),
            Ok(Some(at)) => return self.schedule(c, Some(at)),
            Ok(None) => {}
        }
        if !client.greeted {
            client.greeted = true;
            let (nick, room) = (client.nick.clone(), client.room.clone());
            if !self.send_frame(c, &ClientFrame::hello(nick), now)
                || !self.send_frame(c, &ClientFrame::Join { room }, now)
            {
                return self.fail(c, "hello refused");
            }
        }
        let client = &self.clients[c];
        if (self.sending || self.warming) && client.joined && now >= client.next_send {
            self.say(c, now);
        }
        let mut inbox = std::mem::take(&mut self.inbox);
        if let Some(conversation) = self.clients[c].conversation() {
            while let Some(message) = conversation.recv() {
                inbox.push(message);
            }
        }
        for message in inbox.drain(..) {
            match decode_server(&message) {
                Ok(frame) => self.handle(c, frame, now),
                Err(_) => self.shared.live.error("undecodable frame"),
            }
        }
        self.inbox = inbox;
        let client = &mut self.clients[c];
        if client.failed {
            return;
        }
        let (server, sending) = (
            client.server,
            (self.sending || self.warming) && client.joined,
        );
        let next_send = client.next_send;
        let lane = &mut self.lanes[client.lane];
        let Some(conversation) = client.link.conversation() else {
            return;
        };
        let Ok(_) = conversation.drive(now, &mut lane.out.to(server));
        if let Some(reason) = conversation.poll_close(now) {
            if self.quitting {
                client.failed = true;
                return;
            }
            return self.fail(c, closed_cause(reason));
        }
        let mut wake = conversation.next_deadline(now);
        if sending {
            wake = Some(wake.map_or(next_send, |at| at.min(next_send)));
        }
        self.schedule(c, wake);
    }

    /// One turn: wait for a lane or a timer (at most until `until`), read the lanes,
    /// run the clients that need it, send.
    fn turn(&mut self, until: Instant) {
        let now = Instant::now();
        self.start_more(now);
        let busy = !self.dirty.is_empty() || self.lanes.iter().any(|l| l.readable);
        let timeout = if busy {
            Duration::ZERO
        } else {
            let next = self
                .timers
                .peek()
                .map_or(until, |Reverse((at, _))| until.min(*at));
            let next = self.next_start().map_or(next, |at| next.min(at));
            next.saturating_duration_since(now)
        };
        let _ = self.poll.poll(&mut self.events, Some(timeout));
        for event in &self.events {
            if let Some(lane) = self.lanes.get_mut(event.token().0) {
                lane.readable = true;
            }
        }
        let now = Instant::now();
        let secure = self.shared.config.secure.is_some();
        for lane in &mut self.lanes {
            if !lane.readable {
                continue;
            }
            let (clients, dirty) = (&mut self.clients, &mut self.dirty);
            lane.receive(
                |datagram| key_of(secure, datagram),
                |c, datagram| {
                    let client = &mut clients[c];
                    if client.failed {
                        return;
                    }
                    if client.link.input(now, datagram) == Input::Refused {
                        client.link_refused = true;
                    }
                    if !client.dirty {
                        client.dirty = true;
                        dirty.push(c);
                    }
                },
            );
        }
        while let Some(&Reverse((at, c))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.clients[c].wake == Some(at) {
                self.clients[c].wake = None;
                self.touch(c);
            }
        }
        let mut dirty = std::mem::take(&mut self.dirty);
        for c in dirty.drain(..) {
            self.service(c, now);
        }
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
        for lane in &mut self.lanes {
            lane.flush();
        }
    }

    /// Runs turns until `until` or until `done` says so.
    fn drive(&mut self, until: Instant, mut done: impl FnMut(&Self) -> bool) {
        while Instant::now() < until && !done(self) {
            self.turn(until);
        }
    }

    /// Starts sending (or stops): every joined client's timer includes its next line.
    fn set_sending(&mut self, sending: bool) {
        self.sending = sending;
        for c in 0..self.clients.len() {
            self.touch(c);
        }
    }

    /// Unique deliveries each of our clients should get, once sending is over.
    fn expected(&self, client: usize) -> u64 {
        self.shared
            .room_mates(client)
            .map(|j| self.shared.sent_by[j].load(Relaxed))
            .sum()
    }

    fn syscalls(&self) -> u64 {
        self.lanes.iter().map(|l| l.syscalls).sum()
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
        lanes: Vec::new(),
        poll,
        events: Events::with_capacity(1024),
        timers: BinaryHeap::new(),
        dirty: Vec::new(),
        inbox: Vec::new(),
        to_start: VecDeque::new(),
        starting: 0,
        sending: false,
        warming: shared.ramp.is_some(),
        quitting: false,
        latencies: Latencies::new(),
        cross_node: Latencies::new(),
        rng: SmallRng::seed_from_u64(worker as u64),
    };
    let mut failed_connect = 0;
    let start = Instant::now();
    // Lanes per server, so that a lane's datagrams all go to one address; client
    // `j` of a server's share is on lane `j mod lanes`, so the members of a room
    // (consecutive clients) sit on different lanes.
    let nodes = shared.servers.len().max(1);
    let per_node = count.div_ceil(nodes);
    let lanes_per_node = per_node
        .div_ceil(shared.clients_per_socket.max(1))
        .max(per_node.min(2))
        .max(1);
    let mut lane_of_node: Vec<Vec<usize>> = vec![Vec::new(); nodes];
    for (node, lanes) in lane_of_node.iter_mut().enumerate() {
        for _ in 0..lanes_per_node {
            let Ok(mut lane) = Lane::bind(shared.servers[node], shared.socket_buffer) else {
                continue;
            };
            let token = Token(w.lanes.len());
            if w.poll
                .registry()
                .register(lane.socket_mut(), token, Interest::READABLE)
                .is_ok()
            {
                lanes.push(w.lanes.len());
                w.lanes.push(lane);
            }
        }
    }
    let mut on_node = vec![0usize; nodes];
    // With a ramp, client k of this worker's `count` may start at k/count of it.
    let ramp = shared.ramp.unwrap_or_default();
    let start_at = |k: usize| start + ramp.mul_f64(k as f64 / count.max(1) as f64);
    for index in first..first + count {
        let node = shared.node_of(index);
        let lanes = &lane_of_node[node];
        if lanes.is_empty() {
            failed_connect += 1;
            continue;
        }
        let lane = lanes[on_node[node] % lanes.len()];
        on_node[node] += 1;
        let c = w.clients.len();
        // Its handshake's clock starts when the client may start, not now (a ramp's
        // last clients would otherwise time out before they send anything).
        let Ok(link) = Link::start(&shared.config, &w.lanes[lane], start_at(c)) else {
            failed_connect += 1;
            continue;
        };
        let key = link.key();
        w.lanes[lane].route(key, c, None);
        let phase = Duration::from_secs_f64(w.rng.random_range(0.0..1.0) / shared.rate.max(0.001));
        w.clients.push(BenchClient {
            index,
            nick: format!("{}-{index}", shared.run),
            room: format!("{}-room{}", shared.run, shared.room_of(index)),
            server: shared.servers[node],
            lane,
            key,
            link,
            greeted: false,
            joined: false,
            failed: false,
            refused: false,
            link_refused: false,
            seq: 0,
            start_at: start_at(c),
            next_send: start + phase,
            wake: None,
            dirty: false,
            seen: Seen::new(shared.room_size),
            unique: 0,
        });
        w.to_start.push_back(c);
    }
    // Setup: until every client is in its room (or refused, or failed); with a
    // ramp, those in say warm-up lines meanwhile.
    let set_up_by = start + ramp + shared.setup_timeout;
    w.drive(set_up_by, |w| {
        w.clients.iter().all(|c| c.joined || c.failed)
    });
    for c in w.clients.iter_mut().filter(|c| !c.joined) {
        c.failed = true;
    }
    // Keep serving (and, with a ramp, loading) until every worker is set up, so that
    // no client goes silent while another worker's clients still join.
    shared.live.set_up.fetch_add(1, Relaxed);
    w.drive(set_up_by + Duration::from_secs(5), |_| {
        shared.live.set_up.load(Relaxed) == shared.workers
    });
    shared.ready.wait();
    let begin = Instant::now();
    let cpu_start = cpu::this_thread_cpu();
    let syscalls_start = w.syscalls();
    for c in &mut w.clients {
        if shared.ramp.is_some() {
            // Already saying (warm-up) lines at their pace: go on at it.
            c.next_send = c.next_send.max(begin);
        } else {
            c.next_send += begin - start;
        }
    }
    w.warming = false;
    w.set_sending(true);
    w.drive(begin + shared.duration, |_| false);
    w.set_sending(false);
    let sending_cpu = cpu::this_thread_cpu()
        .zip(cpu_start)
        .map(|(end, start)| end.saturating_sub(start));
    let sending_syscalls = w.syscalls() - syscalls_start;
    shared.live.done_sending.fetch_add(1, Relaxed);
    // Wait for the other workers to stop sending, so the expected counts are final.
    w.drive(begin + shared.duration + shared.drain, |_| {
        shared.live.done_sending.load(Relaxed) == shared.workers
    });
    w.drive(begin + shared.duration + shared.drain, |w| {
        w.clients
            .iter()
            .all(|c| c.failed || c.unique >= w.expected(c.index))
    });
    let mut result = WorkerResult {
        failed: failed_connect + w.clients.iter().filter(|c| c.failed && !c.refused).count(),
        refused: w.clients.iter().filter(|c| c.refused).count(),
        sending_cpu,
        sockets: w.lanes.len(),
        sending_syscalls,
        ..WorkerResult::default()
    };
    let now = Instant::now();
    w.quitting = true;
    for c in 0..w.clients.len() {
        let client = &mut w.clients[c];
        result.delivered.push((client.index, client.unique));
        let Some(conversation) = client.conversation() else {
            continue;
        };
        let stats = conversation.stats();
        result.retransmits += stats.engine.retransmits_timeout + stats.engine.retransmits_fast;
        let quit = ClientFrame::Quit {
            reason: "bench over".into(),
        };
        let _ = w.send_frame(c, &quit, now);
        w.touch(c);
    }
    // Give the quits a moment to leave (the server would time the sessions out anyway).
    w.drive(Instant::now() + Duration::from_millis(300), |w| {
        w.clients.iter().all(|c| {
            c.failed
                || matches!(&c.link, Link::Open(conversation) if conversation.queued_bytes() == 0)
        })
    });
    result.send_drops = w.lanes.iter().map(|l| l.send_drops).sum();
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
