//! The floor under `kcp-chat bench`: the same room traffic over bare UDP.
//!
//! Relay threads do what the chat server does with a line, minus everything that
//! makes it chat: each datagram a client sends is copied to every member of its room,
//! with no reliability, no session, no frame decoding, and kcp-net's batched I/O
//! (`recvmmsg`/`sendmmsg`). There are as many relays as the chat server has event
//! loops (`--server-threads`), each with its own socket on one port
//! (`SO_REUSEPORT`), so the kernel spreads the clients over them as it spreads the
//! chat's sessions over its loops. Clients are driven by `threads` threads over
//! shared sockets exactly as the chat bench's are (`lane.rs`), sending at `rate`
//! each. What the relays manage is the machine's ceiling of deliveries per second for
//! this traffic; the chat's capacity is reported as a fraction of it.
//!
//! A datagram is `[sender: u32][receiver: u32][seq: u64][sent at: u64 µs since the
//! run's epoch]`, padded to `size`; the relay writes each copy's receiver (the lanes
//! route by it); seq 0 is a join, which the relay records and echoes.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use kcp_net::udp::{IoBackend, RecvBatch, SendBatch, datagram_io, send_all};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use super::lane::{Lane, bind_udp};
use super::seen::Seen;
use super::{BenchOptions, LatencyMs, ServerCpu, cpu, expected_deliveries};
use crate::latency::Latencies;

/// Bytes of the header every datagram starts with.
const HEADER: usize = 24;
/// Socket buffers of each relay (each way).
const RELAY_BUFFER: usize = 8 << 20;

/// What a bare-UDP run measured.
#[derive(Clone, Debug, Serialize)]
pub struct BareReport {
    /// Clients asked for.
    pub clients: usize,
    /// Clients whose join the relay echoed.
    pub clients_joined: usize,
    /// Messages per second per client.
    pub rate: f64,
    /// Sending phase, seconds.
    pub duration_s: f64,
    /// Datagram size, bytes.
    pub size: usize,
    /// Lines sent.
    pub sent: u64,
    /// Deliveries expected (each line at every joined member of its room).
    pub expected: u64,
    /// Deliveries that arrived.
    pub delivered: u64,
    /// Expected but not delivered (nothing retransmits here).
    pub lost: u64,
    /// Deliveries per second of the sending phase.
    pub deliveries_per_sec: f64,
    /// Send to arrival.
    pub latency_ms: LatencyMs,
    /// Datagrams the relays could not send at once (socket buffer full) and dropped.
    pub relay_dropped_full: u64,
    /// Relay threads (one socket each, on one port).
    pub relays: usize,
    /// The relay threads' CPU over the sending phase.
    pub relay_cpu: Option<ServerCpu>,
    /// The client threads' CPU over the sending phase.
    pub load_cpu: Option<ServerCpu>,
}

impl fmt::Display for BareReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency_ms;
        writeln!(
            f,
            "bare UDP: {} clients ({} joined), {} msg/s each for {:.0} s, {} B datagrams, {} relay thread(s)",
            self.clients, self.clients_joined, self.rate, self.duration_s, self.size, self.relays
        )?;
        writeln!(f, "  sent         {}", self.sent)?;
        writeln!(
            f,
            "  delivered    {} of {} expected ({:.0} deliveries/s)",
            self.delivered, self.expected, self.deliveries_per_sec
        )?;
        writeln!(
            f,
            "  lost         {} ({} dropped by the relay at a full socket buffer)",
            self.lost, self.relay_dropped_full
        )?;
        writeln!(
            f,
            "  latency      p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            l.p50, l.p90, l.p99, l.max
        )?;
        for (name, cpu) in [
            ("relay CPU", &self.relay_cpu),
            ("load CPU ", &self.load_cpu),
        ] {
            if let Some(cpu) = cpu {
                writeln!(
                    f,
                    "  {name}    {:.2} s, {:.0}% of one core ({})",
                    cpu.seconds, cpu.percent_of_one_core, cpu.source
                )?;
            }
        }
        Ok(())
    }
}

/// A datagram's header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    client: u32,
    /// The member a copy is for (the sender's own index in what it sends).
    to: u32,
    seq: u64,
    micros: u64,
}

impl Header {
    fn write(self, buf: &mut [u8]) {
        buf[..4].copy_from_slice(&self.client.to_le_bytes());
        buf[4..8].copy_from_slice(&self.to.to_le_bytes());
        buf[8..16].copy_from_slice(&self.seq.to_le_bytes());
        buf[16..24].copy_from_slice(&self.micros.to_le_bytes());
    }

    fn read(buf: &[u8]) -> Option<Self> {
        Some(Self {
            client: u32::from_le_bytes(buf.get(..4)?.try_into().ok()?),
            to: Self::receiver(buf)?,
            seq: u64::from_le_bytes(buf.get(8..16)?.try_into().ok()?),
            micros: u64::from_le_bytes(buf.get(16..24)?.try_into().ok()?),
        })
    }

    /// The receiver field alone (what the lanes route by).
    fn receiver(buf: &[u8]) -> Option<u32> {
        Some(u32::from_le_bytes(buf.get(4..8)?.try_into().ok()?))
    }
}

/// Runs the bare-UDP fan-out with `options`' clients, rate, duration, drain, room size,
/// message size, threads, clients per socket and server threads (as many relays; the
/// rest is ignored).
///
/// # Errors
/// If a socket cannot be made.
pub fn run_bare(options: &BenchOptions) -> io::Result<BareReport> {
    let clients = options.clients.max(1);
    let room_size = options.room_size.max(1);
    let size = options.size.max(HEADER);
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let members: Arc<Members> = Arc::new((0..clients).map(|_| OnceLock::new()).collect());
    let relays = Relay::bind_all(options.server_threads.max(1), &members, room_size)?;
    let relay_addr = relays[0].local_addr()?;
    let relay_count = relays.len();
    let dropped_full = Arc::new(AtomicU64::new(0));
    let relay_threads = relays
        .into_iter()
        .enumerate()
        .map(|(i, relay)| {
            let (stop, dropped_full) = (Arc::clone(&stop), Arc::clone(&dropped_full));
            thread::Builder::new()
                .name(format!("bare-relay-{i}"))
                .spawn(move || relay.run(&stop, &dropped_full))
        })
        .collect::<io::Result<Vec<_>>>()?;
    let workers = options.threads.clamp(1, clients);
    let per = clients.div_ceil(workers);
    let ready = Arc::new(Barrier::new(workers + 1));
    let plan = Plan {
        relay: relay_addr,
        epoch,
        rate: options.rate,
        size,
        duration: options.duration,
        drain: options.drain,
        setup: options.setup_timeout,
        room_size,
        clients_per_socket: options.clients_per_socket.max(1),
        ready: Arc::clone(&ready),
    };
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let first = w * per;
            let count = per.min(clients.saturating_sub(first));
            let plan = plan.clone();
            thread::Builder::new()
                .name(format!("bare-client-{w}"))
                .spawn(move || plan.run(w, first, count))
        })
        .collect::<io::Result<_>>()?;
    ready.wait();
    let relay_start = cpu::own_threads_cpu("bare-relay");
    let load_start = cpu::own_threads_cpu("bare-client-");
    thread::sleep(options.duration);
    let relay_end = cpu::own_threads_cpu("bare-relay");
    let load_end = cpu::own_threads_cpu("bare-client-");
    let mut results = Vec::with_capacity(workers);
    for handle in handles {
        results.push(handle.join().unwrap_or_default());
    }
    stop.store(true, Relaxed);
    for relay in relay_threads {
        let _ = relay.join();
    }

    let mut sent_by = vec![0u64; clients];
    let mut joined = vec![false; clients];
    let mut latencies = Latencies::new();
    let mut delivered = 0;
    for r in &results {
        for &(client, sent, was_joined) in &r.clients {
            sent_by[client] = sent;
            joined[client] = was_joined;
        }
        delivered += r.delivered;
        latencies.merge(&r.latencies);
    }
    let expected = expected_deliveries(|i| sent_by[i], clients, room_size, |j| joined[j]);
    let phase = options.duration.as_secs_f64().max(0.001);
    let usage = |source: &str, start: Option<Duration>, end: Option<Duration>| {
        Some(ServerCpu::over(
            source,
            end?.saturating_sub(start?),
            options.duration,
        ))
    };
    Ok(BareReport {
        clients,
        clients_joined: joined.iter().filter(|j| **j).count(),
        rate: options.rate,
        duration_s: options.duration.as_secs_f64(),
        size,
        sent: sent_by.iter().sum(),
        expected,
        delivered,
        lost: expected.saturating_sub(delivered),
        deliveries_per_sec: delivered as f64 / phase,
        latency_ms: LatencyMs::of(&latencies),
        relay_dropped_full: dropped_full.load(Relaxed),
        relays: relay_count,
        relay_cpu: usage("relay threads", relay_start, relay_end),
        load_cpu: usage("client threads", load_start, load_end),
    })
}

/// Where each client joined from (set once, by whichever relay took its join).
type Members = Vec<OnceLock<SocketAddr>>;

/// One relay: its socket, and who is in which room (shared by all relays).
struct Relay {
    socket: UdpSocket,
    members: Arc<Members>,
    room_size: usize,
}

impl Relay {
    /// `count` relays on one port of 127.0.0.1 (`SO_REUSEPORT`).
    fn bind_all(count: usize, members: &Arc<Members>, room_size: usize) -> io::Result<Vec<Self>> {
        let mut addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let mut relays = Vec::with_capacity(count);
        for _ in 0..count {
            let socket = bind_udp(addr, RELAY_BUFFER, true)?;
            addr = socket.local_addr()?;
            relays.push(Self {
                socket,
                members: Arc::clone(members),
                room_size,
            });
        }
        Ok(relays)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Relays until `stop`.
    fn run(mut self, stop: &AtomicBool, dropped_full: &AtomicU64) {
        let Ok(mut poll) = Poll::new() else { return };
        if poll
            .registry()
            .register(&mut self.socket, Token(0), Interest::READABLE)
            .is_err()
        {
            return;
        }
        let mut io = datagram_io(IoBackend::Batched, &self.socket);
        let mut recv = RecvBatch::for_io(&*io, 2048, 0);
        let mut out = SendBatch::default();
        let mut copy = Vec::new();
        let mut events = Events::with_capacity(8);
        while !stop.load(Relaxed) {
            if poll
                .poll(&mut events, Some(Duration::from_millis(50)))
                .is_err()
            {
                continue;
            }
            loop {
                let n = match io.recv(&self.socket, &mut recv) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                for i in 0..n {
                    let (meta, datagram) = recv.get(i);
                    if !meta.truncated {
                        self.relay(meta.addr, datagram, &mut copy, &mut out);
                    }
                }
                let outcome = send_all(&mut *io, &self.socket, &mut out);
                dropped_full.fetch_add(outcome.dropped_full, Relaxed);
            }
        }
    }

    /// A join is recorded and echoed; a line goes to every member of its room, each
    /// copy naming its receiver.
    fn relay(&self, from: SocketAddr, datagram: &[u8], copy: &mut Vec<u8>, out: &mut SendBatch) {
        let Some(header) = Header::read(datagram) else {
            return;
        };
        let client = header.client as usize;
        if client >= self.members.len() {
            return;
        }
        if header.seq == 0 {
            let _ = self.members[client].set(from);
            out.push(from, datagram);
            return;
        }
        let first = client / self.room_size * self.room_size;
        let last = (first + self.room_size).min(self.members.len());
        copy.clear();
        copy.extend_from_slice(datagram);
        for member in first..last {
            if let Some(addr) = self.members[member].get() {
                let to = u32::try_from(member).unwrap_or(u32::MAX);
                copy[4..8].copy_from_slice(&to.to_le_bytes());
                out.push(*addr, copy);
            }
        }
    }
}

/// What every client thread needs.
#[derive(Clone)]
struct Plan {
    relay: SocketAddr,
    epoch: Instant,
    rate: f64,
    size: usize,
    duration: Duration,
    drain: Duration,
    setup: Duration,
    room_size: usize,
    clients_per_socket: usize,
    ready: Arc<Barrier>,
}

/// What one client thread hands back.
#[derive(Debug, Default)]
struct ThreadResult {
    /// (client, lines sent, joined).
    clients: Vec<(usize, u64, bool)>,
    delivered: u64,
    latencies: Latencies,
}

struct Client {
    index: usize,
    lane: usize,
    joined: bool,
    sent: u64,
    next_send: Instant,
    /// The lines of each room member received.
    seen: Seen,
}

impl Plan {
    /// Joins, sends for the duration, then drains. Always meets the others at the
    /// barrier, even if its sockets could not be made.
    fn run(self, worker: usize, first: usize, count: usize) -> ThreadResult {
        let mut result = ThreadResult::default();
        let Ok(mut poll) = Poll::new() else {
            self.ready.wait();
            return result;
        };
        let mut rng = SmallRng::seed_from_u64(worker as u64);
        let sockets = count
            .div_ceil(self.clients_per_socket)
            .max(count.min(2))
            .max(1);
        let buffer = (self.clients_per_socket * (64 << 10)).clamp(256 << 10, 8 << 20);
        let mut lanes = Vec::with_capacity(sockets);
        for _ in 0..sockets {
            let Ok(mut lane) = Lane::bind(self.relay, buffer) else {
                continue;
            };
            if poll
                .registry()
                .register(lane.socket_mut(), Token(lanes.len()), Interest::READABLE)
                .is_ok()
            {
                lanes.push(lane);
            }
        }
        if lanes.is_empty() {
            self.ready.wait();
            return result;
        }
        let room_size = self.room_size;
        let mut clients: Vec<Client> = (first..first + count)
            .enumerate()
            .map(|(c, index)| {
                let lane = c % lanes.len();
                lanes[lane].route(u32::try_from(index).unwrap_or(u32::MAX), c, None);
                Client {
                    index,
                    lane,
                    joined: false,
                    sent: 0,
                    next_send: Instant::now(),
                    seen: Seen::new(room_size),
                }
            })
            .collect();
        let mut buf = vec![0u8; self.size.max(2048)];
        let mut events = Events::with_capacity(1024);
        // Setup: joins, repeated until echoed (UDP may drop one).
        let setup_end = Instant::now() + self.setup;
        let mut next_join = Instant::now();
        while Instant::now() < setup_end && clients.iter().any(|c| !c.joined) {
            if Instant::now() >= next_join {
                for c in clients.iter().filter(|c| !c.joined) {
                    let datagram = self.datagram(c.index, 0, &mut buf);
                    lanes[c.lane].out.push(self.relay, datagram);
                }
                for lane in &mut lanes {
                    lane.flush();
                }
                next_join = Instant::now() + Duration::from_millis(200);
            }
            let _ = poll.poll(&mut events, Some(Duration::from_millis(20)));
            for event in &events {
                lanes[event.token().0].readable = true;
            }
            for lane in lanes.iter_mut().filter(|l| l.readable) {
                lane.receive(Header::receiver, |c, datagram| {
                    if Header::read(datagram).is_some_and(|h| h.seq == 0) {
                        clients[c].joined = true;
                    }
                });
            }
        }
        self.ready.wait();
        let begin = Instant::now();
        for c in &mut clients {
            let phase = rng.random_range(0.0..1.0) / self.rate.max(0.001);
            c.next_send = begin + Duration::from_secs_f64(phase);
        }
        let send_end = begin + self.duration;
        let end = send_end + self.drain;
        loop {
            let now = Instant::now();
            if now >= end {
                break;
            }
            let mut next = end;
            if now < send_end {
                for c in clients.iter_mut().filter(|c| c.joined) {
                    if c.next_send <= now {
                        c.sent += 1;
                        let datagram = self.datagram(c.index, c.sent, &mut buf);
                        lanes[c.lane].out.push(self.relay, datagram);
                        let gap = rng.random_range(0.8..1.2) / self.rate.max(0.001);
                        c.next_send += Duration::from_secs_f64(gap);
                    }
                    next = next.min(c.next_send);
                }
                for lane in &mut lanes {
                    lane.flush();
                }
            }
            let busy = lanes.iter().any(|l| l.readable);
            let timeout = if busy {
                Duration::ZERO
            } else {
                next.saturating_duration_since(now)
            };
            let _ = poll.poll(&mut events, Some(timeout));
            for event in &events {
                lanes[event.token().0].readable = true;
            }
            let at = self.epoch.elapsed().as_micros() as u64;
            for lane in lanes.iter_mut().filter(|l| l.readable) {
                lane.receive(Header::receiver, |c, datagram| {
                    let Some(h) = Header::read(datagram).filter(|h| h.seq > 0) else {
                        return;
                    };
                    let sender =
                        (h.client as usize).wrapping_sub(clients[c].index / room_size * room_size);
                    if clients[c].seen.mark(sender, h.seq) {
                        result.delivered += 1;
                        result
                            .latencies
                            .push(Duration::from_micros(at.saturating_sub(h.micros)));
                    }
                });
            }
        }
        result.clients = clients
            .iter()
            .map(|c| (c.index, c.sent, c.joined))
            .collect();
        result
    }

    /// The datagram of client `index`'s line `seq` (0: its join), in `buf`.
    fn datagram<'b>(&self, index: usize, seq: u64, buf: &'b mut [u8]) -> &'b [u8] {
        let client = u32::try_from(index).unwrap_or(u32::MAX);
        let header = Header {
            client,
            to: client,
            seq,
            micros: self.epoch.elapsed().as_micros() as u64,
        };
        header.write(buf);
        buf[HEADER..self.size].fill(b'x');
        &buf[..self.size]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_short_datagrams_are_refused() {
        let h = Header {
            client: 7,
            to: 9,
            seq: 42,
            micros: 123_456,
        };
        let mut buf = [0u8; HEADER];
        h.write(&mut buf);
        assert_eq!(Header::read(&buf), Some(h));
        assert_eq!(Header::read(&buf[..HEADER - 1]), None);
    }

    #[test]
    fn a_small_run_delivers_every_line_to_every_member() {
        let options = BenchOptions {
            clients: 6,
            room_size: 3,
            rate: 20.0,
            duration: Duration::from_millis(500),
            drain: Duration::from_millis(300),
            threads: 2,
            server_threads: 2,
            ..BenchOptions::default()
        };
        let report = run_bare(&options).unwrap();
        assert_eq!(report.relays, 2);
        assert_eq!(report.clients_joined, 6);
        assert!(report.sent > 0);
        // Loopback drops nothing at this rate; the sender's own copy counts.
        assert_eq!(report.expected, report.sent * 3);
        assert_eq!(report.delivered, report.expected, "{report}");
    }
}
