//! The floor under `kcp-chat bench`: the same room traffic over bare UDP.
//!
//! A relay thread does what the chat server does with a line, minus everything that
//! makes it chat: each datagram a client sends is copied to every member of its room,
//! with no reliability, no session, no frame decoding, and kcp-net's batched I/O
//! (`recvmmsg`/`sendmmsg`). Clients are plain UDP sockets driven by `threads` threads,
//! sending at `rate` each as the chat bench's do. What the relay manages is the
//! machine's ceiling of deliveries per second for this traffic; the chat's capacity is
//! reported as a fraction of it.
//!
//! A datagram is `[client index: u32][seq: u64][sent at: u64 µs since the run's
//! epoch]`, padded to `size`; seq 0 is a join, which the relay records and echoes.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use kcp_net::udp::{IoBackend, RecvBatch, SendBatch, datagram_io, send_all};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use super::{BenchOptions, LatencyMs, ServerCpu, cpu, expected_deliveries};
use crate::latency::Latencies;

/// Bytes of the header every datagram starts with.
const HEADER: usize = 20;
/// Socket buffers of the relay (each way).
const RELAY_BUFFER: usize = 8 << 20;
/// Socket buffers of each client (each way).
const CLIENT_BUFFER: usize = 256 << 10;

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
    /// Datagrams the relay could not send at once (socket buffer full) and dropped.
    pub relay_dropped_full: u64,
    /// The relay thread's CPU over the sending phase.
    pub relay_cpu: Option<ServerCpu>,
    /// The client threads' CPU over the sending phase.
    pub load_cpu: Option<ServerCpu>,
}

impl fmt::Display for BareReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency_ms;
        writeln!(
            f,
            "bare UDP: {} clients ({} joined), {} msg/s each for {:.0} s, {} B datagrams, one relay thread",
            self.clients, self.clients_joined, self.rate, self.duration_s, self.size
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
    seq: u64,
    micros: u64,
}

impl Header {
    fn write(self, buf: &mut [u8]) {
        buf[..4].copy_from_slice(&self.client.to_le_bytes());
        buf[4..12].copy_from_slice(&self.seq.to_le_bytes());
        buf[12..20].copy_from_slice(&self.micros.to_le_bytes());
    }

    fn read(buf: &[u8]) -> Option<Self> {
        Some(Self {
            client: u32::from_le_bytes(buf.get(..4)?.try_into().ok()?),
            seq: u64::from_le_bytes(buf.get(4..12)?.try_into().ok()?),
            micros: u64::from_le_bytes(buf.get(12..20)?.try_into().ok()?),
        })
    }
}

/// Runs the bare-UDP fan-out with `options`' clients, rate, duration, drain, room size,
/// message size and threads (the rest is ignored).
///
/// # Errors
/// If a socket cannot be made.
pub fn run_bare(options: &BenchOptions) -> io::Result<BareReport> {
    let clients = options.clients.max(1);
    let room_size = options.room_size.max(1);
    let size = options.size.max(HEADER);
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let relay = Relay::bind(clients, room_size)?;
    let relay_addr = relay.local_addr()?;
    let dropped_full = Arc::new(AtomicU64::new(0));
    let relay_thread = {
        let (stop, dropped_full) = (Arc::clone(&stop), Arc::clone(&dropped_full));
        thread::Builder::new()
            .name("bare-relay".into())
            .spawn(move || relay.run(&stop, &dropped_full))?
    };
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
    let _ = relay_thread.join();

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
        relay_cpu: usage("relay thread", relay_start, relay_end),
        load_cpu: usage("client threads", load_start, load_end),
    })
}

/// The relay: who is in which room, and the socket.
struct Relay {
    socket: UdpSocket,
    members: Vec<Option<SocketAddr>>,
    room_size: usize,
}

impl Relay {
    fn bind(clients: usize, room_size: usize) -> io::Result<Self> {
        let socket = bind_loopback(RELAY_BUFFER)?;
        Ok(Self {
            socket,
            members: vec![None; clients],
            room_size,
        })
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
                        self.relay(meta.addr, datagram, &mut out);
                    }
                }
                let outcome = send_all(&mut *io, &self.socket, &mut out);
                dropped_full.fetch_add(outcome.dropped_full, Relaxed);
            }
        }
    }

    /// A join is recorded and echoed; a line goes to every member of its room.
    fn relay(&mut self, from: SocketAddr, datagram: &[u8], out: &mut SendBatch) {
        let Some(header) = Header::read(datagram) else {
            return;
        };
        let client = header.client as usize;
        if client >= self.members.len() {
            return;
        }
        if header.seq == 0 {
            self.members[client] = Some(from);
            out.push(from, datagram);
            return;
        }
        let first = client / self.room_size * self.room_size;
        let last = (first + self.room_size).min(self.members.len());
        for member in self.members[first..last].iter().flatten() {
            out.push(*member, datagram);
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
    socket: UdpSocket,
    joined: bool,
    sent: u64,
    next_send: Instant,
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
        let mut clients = Vec::with_capacity(count);
        for index in first..first + count {
            let Ok(mut socket) = bind_loopback(CLIENT_BUFFER) else {
                continue;
            };
            if poll
                .registry()
                .register(&mut socket, Token(clients.len()), Interest::READABLE)
                .is_err()
            {
                continue;
            }
            clients.push(Client {
                index,
                socket,
                joined: false,
                sent: 0,
                next_send: Instant::now(),
            });
        }
        let mut buf = vec![0u8; self.size.max(2048)];
        let mut seen = HashSet::new();
        let mut events = Events::with_capacity(1024);
        // Setup: joins, repeated until echoed (UDP may drop one).
        let setup_end = Instant::now() + self.setup;
        let mut next_join = Instant::now();
        while Instant::now() < setup_end && clients.iter().any(|c| !c.joined) {
            if Instant::now() >= next_join {
                for c in clients.iter().filter(|c| !c.joined) {
                    let _ = c
                        .socket
                        .send_to(self.datagram(c.index, 0, &mut buf), self.relay);
                }
                next_join = Instant::now() + Duration::from_millis(200);
            }
            let _ = poll.poll(&mut events, Some(Duration::from_millis(20)));
            for event in &events {
                let c = &mut clients[event.token().0];
                while let Ok((n, _)) = c.socket.recv_from(&mut buf) {
                    if Header::read(&buf[..n]).is_some_and(|h| h.seq == 0) {
                        c.joined = true;
                    }
                }
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
                        let _ = c.socket.send_to(datagram, self.relay);
                        let gap = rng.random_range(0.8..1.2) / self.rate.max(0.001);
                        c.next_send += Duration::from_secs_f64(gap);
                    }
                    next = next.min(c.next_send);
                }
            }
            let _ = poll.poll(&mut events, Some(next.saturating_duration_since(now)));
            for event in &events {
                let c = &clients[event.token().0];
                while let Ok((n, _)) = c.socket.recv_from(&mut buf) {
                    let Some(h) = Header::read(&buf[..n]).filter(|h| h.seq > 0) else {
                        continue;
                    };
                    if seen.insert((c.index, h.client, h.seq)) {
                        result.delivered += 1;
                        let at = self.epoch.elapsed().as_micros() as u64;
                        result
                            .latencies
                            .push(Duration::from_micros(at.saturating_sub(h.micros)));
                    }
                }
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
        let header = Header {
            client: u32::try_from(index).unwrap_or(u32::MAX),
            seq,
            micros: self.epoch.elapsed().as_micros() as u64,
        };
        header.write(buf);
        buf[HEADER..self.size].fill(b'x');
        &buf[..self.size]
    }
}

/// A non-blocking UDP socket on 127.0.0.1 with `buffer` bytes each way (as far as the
/// system allows).
fn bind_loopback(buffer: usize) -> io::Result<UdpSocket> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    let _ = socket.set_recv_buffer_size(buffer);
    let _ = socket.set_send_buffer_size(buffer);
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
    Ok(UdpSocket::from_std(socket.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_short_datagrams_are_refused() {
        let h = Header {
            client: 7,
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
            ..BenchOptions::default()
        };
        let report = run_bare(&options).unwrap();
        assert_eq!(report.clients_joined, 6);
        assert!(report.sent > 0);
        // Loopback drops nothing at this rate; the sender's own copy counts.
        assert_eq!(report.expected, report.sent * 3);
        assert_eq!(report.delivered, report.expected, "{report}");
    }
}
