//! `kcp-chat bench`: many clients, each saying messages at a fixed rate into shared
//! rooms, every delivery checked.
//!
//! Clients are split into rooms of `room_size` and driven by a few threads (each a
//! `mio` poll over its share). After everyone has joined, each client says `rate`
//! messages a second for `duration`; then the run waits up to `drain` for the last
//! deliveries. With a ramp, the joins are spread over it while those in already say
//! uncounted lines, so admission control meets a join at peak load. A message is expected at every member of its room (the sender
//! included: the server echoes it). The report counts sent, expected, delivered
//! (unique), lost (expected − delivered), duplicates, the send-to-arrival latency, and
//! the server's CPU time when the server is on this machine.
//!
//! With several servers (the nodes of a cluster, given or started here with a Redis
//! of our own), client `i` talks to node `i mod n`, so every room spans the nodes;
//! the report then also gives the latency of the deliveries between nodes and the
//! CPU of the Redis we started.

mod bare;
mod cpu;
mod lane;
mod link;
mod seen;
mod server_side;
mod worker;

pub use bare::{BareReport, run_bare};
pub use server_side::ServerSide;

use std::fmt;
use std::io::{IsTerminal, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use kcp_net::secure::{ClientSecurity, PublicKey, ServerIdentity, ServerSecurity};
use kcp_net::{ClientConfig, NetError, Preset};
use serde::Serialize;

use crate::cluster::redis_server::{RedisServer, RedisServerError};
use crate::cluster::{ClusterConfig, ClusterError};
use crate::engine::EngineArgs;
use crate::latency::Latencies;
use crate::server::{ChatServer, ChatServerConfig};
use worker::{Live, Shared, run_worker};

/// Clients sharing a socket by default: none. Shared sockets ("lanes") cut the load
/// generator's syscalls sevenfold and its CPU by about a tenth, but under the room
/// fan-out their shared receive buffers overflow: 2,000 clients, 10 s, quiet machine,
/// 32 a socket gave 53,567 kernel drops, 3.0% of the server's segments retransmitted
/// and p99 530 ms, where a socket each gave 0 drops, 1.8% and 178 ms.
pub const DEFAULT_CLIENTS_PER_SOCKET: usize = 1;

/// Socket buffer (each way) of one client's share of a shared socket.
const SOCKET_BUFFER_PER_CLIENT: usize = 64 << 10;

/// Settings of a bench run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// The servers to load (client `i` on `servers[i mod n]`); empty starts them in
    /// this process on 127.0.0.1 (see [`nodes`](Self::nodes)).
    pub servers: Vec<SocketAddr>,
    /// Event loop threads of each in-process server.
    pub server_threads: usize,
    /// In-process servers: 1 is a single server (unless [`redis`](Self::redis));
    /// more start a `redis-server` of our own and that many cluster nodes.
    pub nodes: usize,
    /// Run even a single in-process server as a cluster node with its Redis (to
    /// measure what Redis alone costs).
    pub redis: bool,
    /// Clients.
    pub clients: usize,
    /// Messages per second per client.
    pub rate: f64,
    /// How long the clients send.
    pub duration: Duration,
    /// How long to wait for the last deliveries after sending stops.
    pub drain: Duration,
    /// How long clients may take to connect and join (after the ramp, if any).
    pub setup_timeout: Duration,
    /// Join during load: the clients' joins are spread evenly over this, and those
    /// in already say lines (uncounted warm-up lines) at the rate, so the server's
    /// admission control judges each join under the load of everyone before it, as
    /// it would at a real peak. The counted sending starts once all have joined or
    /// been refused. `None`: everyone joins an idle server first.
    pub ramp: Option<Duration>,
    /// Clients per room.
    pub room_size: usize,
    /// Message text size in bytes (at least the header `b SENDER SEQ MICROS`).
    pub size: usize,
    /// Threads driving the clients.
    pub threads: usize,
    /// Clients of a thread that share one UDP socket (see `lane.rs`): 1 gives every
    /// client a socket of its own, as clients on hosts of their own have; more cut
    /// the load generator's syscalls (one `recvmmsg` serves them all).
    pub clients_per_socket: usize,
    /// Engine settings of the clients and the in-process servers: a preset and
    /// knobs on top.
    pub engine: EngineArgs,
    /// Show a progress line on stderr while running.
    pub progress: bool,
    /// The secure wire mode (the default); `false` speaks raw KCP, to compare.
    pub secure: bool,
    /// The key of the `servers` (secure mode with servers of its own); in-process
    /// servers get a fresh key the clients pin.
    pub server_key: Option<PublicKey>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            server_threads: 1,
            nodes: 1,
            redis: false,
            clients: 100,
            rate: 10.0,
            duration: Duration::from_secs(10),
            drain: Duration::from_secs(5),
            setup_timeout: Duration::from_secs(20),
            ramp: None,
            room_size: 10,
            size: 64,
            threads: 2,
            clients_per_socket: DEFAULT_CLIENTS_PER_SOCKET,
            engine: EngineArgs::preset(Preset::Fast),
            progress: true,
            secure: true,
            server_key: None,
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct LatencyMs {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl LatencyMs {
    /// The percentiles of `latencies`, in milliseconds.
    pub(crate) fn of(latencies: &Latencies) -> Self {
        let summary = latencies.summary();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Self {
            count: summary.count,
            p50: ms(summary.p50),
            p90: ms(summary.p90),
            p99: ms(summary.p99),
            max: ms(summary.max),
        }
    }
}

/// Deliveries expected when client `i` sent `sent_by[i]` lines, each to every member
/// of its room (`room_size` consecutive clients, the sender included) for whom
/// `member(j)` holds.
pub(crate) fn expected_deliveries(
    sent_by: impl Fn(usize) -> u64,
    clients: usize,
    room_size: usize,
    member: impl Fn(usize) -> bool,
) -> u64 {
    let size = room_size.max(1);
    (0..clients)
        .map(|i| {
            let first = i / size * size;
            let members = (first..(first + size).min(clients))
                .filter(|&j| member(j))
                .count();
            sent_by(i) * members as u64
        })
        .sum()
}

/// A process's (or some threads') CPU use over the sending phase.
#[derive(Clone, Debug, Serialize)]
pub struct ServerCpu {
    /// `in-process`, or the pids found owning the servers' UDP ports, or Redis's.
    pub source: String,
    /// CPU seconds used.
    pub seconds: f64,
    /// Of one core, over the sending phase.
    pub percent_of_one_core: f64,
}

impl ServerCpu {
    /// `used` CPU time of `source` over a phase of `over`.
    pub(crate) fn over(source: impl Into<String>, used: Duration, over: Duration) -> Self {
        let seconds = used.as_secs_f64();
        Self {
            source: source.into(),
            seconds,
            percent_of_one_core: 100.0 * seconds / over.as_secs_f64().max(0.001),
        }
    }
}

/// How the cluster nodes of a run batched their publishes.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct RedisBatching {
    /// Events published (lines, joins, leaves).
    pub events: u64,
    /// Pipelines they went in.
    pub pipelines: u64,
}

/// The outcome of a bench run (`--json` prints it as is).
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct BenchReport {
    /// The servers loaded.
    pub server: String,
    /// How many (cluster nodes, or 1).
    pub nodes: usize,
    /// The wire mode: `"secure"` (the default) or `"raw"` (`--raw`).
    pub wire: &'static str,
    /// Clients asked for.
    pub clients: usize,
    /// Clients that joined their room and stayed up.
    pub clients_ok: usize,
    /// Rooms.
    pub rooms: usize,
    /// Messages per second per client.
    pub rate: f64,
    /// Sending phase, seconds.
    pub duration_s: f64,
    /// Message text size.
    pub size: usize,
    /// Messages said.
    pub sent: u64,
    /// Deliveries expected (each message at every member of its room).
    pub expected: u64,
    /// Unique deliveries.
    pub delivered: u64,
    /// Expected but never arrived.
    pub lost: u64,
    /// Arrivals of a message a client already had.
    pub duplicates: u64,
    /// Error frames and client failures.
    pub errors: u64,
    /// The same by cause: an error frame's code (`rate-limited`, ...), or what
    /// failed at the client (`handshake failed`, `closed by the server`, ...).
    pub errors_by_cause: std::collections::BTreeMap<&'static str, u64>,
    /// Deliveries per second over the sending phase.
    pub deliveries_per_sec: f64,
    /// Send-to-arrival latency.
    pub latency_ms: LatencyMs,
    /// Of those, deliveries between clients on different nodes (several nodes only).
    pub cross_node_latency_ms: Option<LatencyMs>,
    /// Retransmitted segments, clients' side.
    pub client_retransmits: u64,
    /// The servers' CPU (all nodes together), when they run on this machine.
    pub server_cpu: Option<ServerCpu>,
    /// The CPU of the Redis this run started (in-process cluster nodes only).
    pub redis_cpu: Option<ServerCpu>,
    /// Events the in-process cluster nodes published to Redis, and in how many
    /// pipelines (one per publisher turn).
    pub redis_batching: Option<RedisBatching>,
    /// Time to connect and join everyone, seconds.
    pub setup_s: f64,
    /// The ramp the joins were spread over (while those in sent), seconds; 0: all
    /// joined an idle server.
    pub ramp_s: f64,
    /// Clients the server refused as busy (admission control): not counted as failed,
    /// and nothing is expected at them.
    pub refused_busy: usize,
    /// The CPU of the bench's own client threads over the sending phase: how much of
    /// the machine the load generator takes.
    pub load_cpu: Option<ServerCpu>,
    /// UDP sockets the clients shared (`clients_per_socket` a socket).
    pub load_sockets: usize,
    /// The client threads' receive and send syscalls over the sending phase.
    pub load_syscalls: u64,
    /// Datagrams the clients' sockets refused (full buffers) over the run.
    pub load_send_drops: u64,
    /// UDP datagrams the kernel dropped at full socket receive buffers over the
    /// sending phase, on the whole machine (`RcvbufErrors` of `/proc/net/snmp`): loss
    /// on a link that loses nothing.
    pub udp_rcvbuf_drops: Option<u64>,
    /// The in-process servers' counters over the sending phase.
    pub server_side: Option<ServerSide>,
}

impl BenchReport {
    /// Nothing lost or duplicated and every client admitted stayed up.
    pub const fn passed(&self) -> bool {
        self.lost == 0
            && self.duplicates == 0
            && self.clients_ok + self.refused_busy == self.clients
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency_ms;
        writeln!(
            f,
            "bench: {} clients ({} ok) in {} rooms, {} msg/s each for {:.0} s, {} B messages, server {} ({})",
            self.clients,
            self.clients_ok,
            self.rooms,
            self.rate,
            self.duration_s,
            self.size,
            self.server,
            self.wire
        )?;
        if self.ramp_s > 0.0 {
            writeln!(
                f,
                "  setup        {:.1} s to connect and join, the joins spread over {:.0} s while those in said warm-up lines",
                self.setup_s, self.ramp_s
            )?;
        } else {
            writeln!(
                f,
                "  setup        {:.1} s to connect and join",
                self.setup_s
            )?;
        }
        if self.refused_busy > 0 {
            writeln!(
                f,
                "  refused      {} clients: server busy",
                self.refused_busy
            )?;
        }
        writeln!(f, "  sent         {}", self.sent)?;
        writeln!(
            f,
            "  delivered    {} of {} expected ({:.0} deliveries/s)",
            self.delivered, self.expected, self.deliveries_per_sec
        )?;
        writeln!(f, "  lost         {}", self.lost)?;
        writeln!(f, "  duplicates   {}", self.duplicates)?;
        write!(f, "  errors       {}", self.errors)?;
        if !self.errors_by_cause.is_empty() {
            let causes: Vec<String> = self
                .errors_by_cause
                .iter()
                .map(|(cause, n)| format!("{cause} {n}"))
                .collect();
            write!(f, " ({})", causes.join(", "))?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "  latency      p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            l.p50, l.p90, l.p99, l.max
        )?;
        if let Some(l) = &self.cross_node_latency_ms {
            writeln!(
                f,
                "  cross-node   p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms ({} deliveries between nodes)",
                l.p50, l.p90, l.p99, l.max, l.count
            )?;
        }
        writeln!(f, "  retransmits  {} (clients)", self.client_retransmits)?;
        if let Some(s) = &self.server_side {
            writeln!(
                f,
                "  server       {} messages out, {} retransmits ({:.1}%), datagrams in {} out {}, \
                 {} turns, {} receive calls, worst loop lag {:.0} ms, worst retransmit share {:.0}%, \
                 highest loop busy share {:.0}%",
                s.messages_out,
                s.retransmits,
                s.retransmit_percent(),
                s.datagrams_in,
                s.datagrams_out,
                s.wakeups,
                s.recv_syscalls,
                s.max_loop_lag_ms,
                s.max_retransmit_share * 100.0,
                s.max_busy_share * 100.0
            )?;
            writeln!(
                f,
                "  refusals     {} sends refused (full queues), {} slow consumers closed, \
                 {} kicked, {} rate-limited, {} busy ({} for load, {} for retransmissions)",
                s.sends_refused,
                s.slow_consumers,
                s.kicked,
                s.rate_limited,
                s.refused_busy,
                s.refused_busy_load,
                s.refused_busy_retransmits
            )?;
        }
        if let Some(drops) = self.udp_rcvbuf_drops {
            writeln!(
                f,
                "  kernel       {drops} UDP datagrams dropped at full receive buffers (whole machine)"
            )?;
        }
        if let Some(cpu) = &self.load_cpu {
            writeln!(
                f,
                "  load CPU     {:.2} s, {:.0}% of one core ({}), {:.1} µs per delivery",
                cpu.seconds,
                cpu.percent_of_one_core,
                cpu.source,
                cpu.seconds * 1e6 / self.delivered.max(1) as f64
            )?;
        }
        writeln!(
            f,
            "  load I/O     {} sockets, {} syscalls while sending ({:.2} per delivery), {} datagrams refused",
            self.load_sockets,
            self.load_syscalls,
            self.load_syscalls as f64 / self.delivered.max(1) as f64,
            self.load_send_drops
        )?;
        match &self.server_cpu {
            Some(cpu) => write!(
                f,
                "  server CPU   {:.2} s, {:.0}% of one core ({})",
                cpu.seconds, cpu.percent_of_one_core, cpu.source
            )?,
            None => write!(f, "  server CPU   unknown (not a local server we can see)")?,
        }
        if let Some(cpu) = &self.redis_cpu {
            write!(
                f,
                "\n  redis CPU    {:.2} s, {:.0}% of one core ({})",
                cpu.seconds, cpu.percent_of_one_core, cpu.source
            )?;
        }
        if let Some(b) = &self.redis_batching {
            write!(
                f,
                "\n  redis calls  {} events in {} pipelines ({:.1} per pipeline)",
                b.events,
                b.pipelines,
                b.events as f64 / b.pipelines.max(1) as f64
            )?;
        }
        Ok(())
    }
}

/// Where a CPU time comes from.
enum CpuProbe {
    /// This process's event loops and cluster threads.
    InProcess,
    /// Processes, added up.
    Pids(Vec<u32>),
    None,
}

impl CpuProbe {
    fn read(&self) -> Option<Duration> {
        match self {
            Self::InProcess => {
                let loops = cpu::own_threads_cpu("kcp-net-loop")?;
                Some(loops + cpu::own_threads_cpu("kcp-chat-").unwrap_or_default())
            }
            Self::Pids(pids) => pids.iter().map(|pid| cpu::process_cpu(*pid)).sum(),
            Self::None => None,
        }
    }

    fn source(&self) -> String {
        match self {
            Self::InProcess => "in-process".into(),
            Self::Pids(pids) => {
                let pids: Vec<String> = pids.iter().map(ToString::to_string).collect();
                format!("pid {}", pids.join("+"))
            }
            Self::None => String::new(),
        }
    }

    /// The use between two readings, over `over`.
    fn between(
        &self,
        start: Option<Duration>,
        end: Option<Duration>,
        over: Duration,
    ) -> Option<ServerCpu> {
        Some(ServerCpu::over(
            self.source(),
            end?.saturating_sub(start?),
            over,
        ))
    }
}

/// Why a bench could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// An in-process server did not start.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The Redis of in-process cluster nodes did not start.
    #[error("starting redis-server: {0}")]
    Redis(#[from] RedisServerError),
    /// An in-process cluster node did not start.
    #[error("starting a cluster node: {0}")]
    Cluster(#[from] ClusterError),
}

/// The servers a bench starts itself.
struct Local {
    servers: Vec<ChatServer>,
    redis: Option<RedisServer>,
    key: Option<PublicKey>,
}

/// Starts the in-process servers `options` asks for.
fn start_local(options: &BenchOptions) -> Result<Local, BenchError> {
    let mut config = ChatServerConfig::new(options.engine.preset);
    config.net.engine = options.engine.config().map_err(NetError::from)?;
    let identity = crate::trust::in_process_identity(options.secure)?;
    let key = identity.as_ref().map(ServerIdentity::public);
    config.net.secure = identity.map(ServerSecurity::new);
    config.net.threads = options.server_threads.max(1);
    config.net.new_sessions_per_sec = 100_000;
    // Every bench client comes from 127.0.0.1.
    config.net.max_sessions_per_ip = u32::MAX;
    config.net.new_sessions_per_ip_per_sec = 100_000;
    config.max_clients = options.clients + 16;
    config.rate = (options.rate * 2.0).max(20.0);
    config.burst = 40;
    // ... so the per-address budget is every client's budget together.
    let clients = (options.clients + 16) as f64;
    config.ip_rate = config.rate * clients;
    config.ip_burst = config
        .burst
        .saturating_mul(u32::try_from(options.clients + 16).unwrap_or(u32::MAX));
    config.ip_strikes = config
        .strikes
        .saturating_mul(u32::try_from(options.clients + 16).unwrap_or(u32::MAX));
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let nodes = options.nodes.max(1);
    if nodes == 1 && !options.redis {
        return Ok(Local {
            servers: vec![ChatServer::bind(loopback, config)?],
            redis: None,
            key,
        });
    }
    let redis = RedisServer::start()?;
    let servers = (0..nodes)
        .map(|n| {
            let mut cluster = ClusterConfig::new(redis.url(), format!("bench{}", n + 1));
            // Every event of the run may be in flight at once.
            cluster.buffer = cluster.buffer.max(options.clients * 4);
            ChatServer::bind_cluster(loopback, config.clone(), cluster)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Local {
        servers,
        redis: Some(redis),
        key,
    })
}

fn progress_line(live: &Live, elapsed: Duration, options: &BenchOptions, sending: bool) -> String {
    format!(
        "[{:5.1}s/{:.0}s] {} joined {}/{}  sent {}  delivered {}  dup {}  errors {}",
        elapsed.as_secs_f64(),
        options.duration.as_secs_f64(),
        if sending { "sending" } else { "waiting" },
        live.joined.load(Relaxed),
        options.clients,
        live.sent.load(Relaxed),
        live.delivered.load(Relaxed),
        live.duplicates.load(Relaxed),
        live.errors.load(Relaxed),
    )
}

/// Runs the bench; progress (if asked) goes to stderr.
///
/// # Errors
/// [`BenchError`] if the in-process servers (or their Redis) cannot start.
pub fn run_bench(options: &BenchOptions) -> Result<BenchReport, BenchError> {
    let local = if options.servers.is_empty() {
        Some(start_local(options)?)
    } else {
        None
    };
    let servers = match &local {
        Some(local) => local.servers.iter().map(ChatServer::local_addr).collect(),
        None => options.servers.clone(),
    };
    let probe = if local.is_some() {
        CpuProbe::InProcess
    } else if servers.iter().all(|s| s.ip().is_loopback()) {
        let pids: Option<Vec<u32>> = servers
            .iter()
            .map(|s| cpu::pid_of_udp_port(s.port()))
            .collect();
        pids.map_or(CpuProbe::None, |mut pids| {
            pids.dedup();
            CpuProbe::Pids(pids)
        })
    } else {
        CpuProbe::None
    };
    let redis_probe = local
        .as_ref()
        .and_then(|l| l.redis.as_ref())
        .and_then(RedisServer::pid)
        .map_or(CpuProbe::None, |pid| CpuProbe::Pids(vec![pid]));
    let workers = options.threads.clamp(1, options.clients.max(1));
    let mut config = ClientConfig::new(options.engine.preset);
    config.engine = options.engine.config().map_err(NetError::from)?;
    config.flush_on_send = true;
    config.flush_on_input = true;
    if options.secure {
        let key = local
            .as_ref()
            .and_then(|l| l.key)
            .or(options.server_key)
            .ok_or(NetError::Setting(
                "a secure bench of servers of its own needs their key (--server-key)",
            ))?;
        config.secure = Some(ClientSecurity::new(key));
    }
    let shared = Arc::new(Shared {
        servers: servers.clone(),
        config,
        epoch: Instant::now(),
        run: format!("b{:04x}", rand::random::<u16>()),
        rate: options.rate,
        size: options.size,
        room_size: options.room_size.max(1),
        clients: options.clients,
        workers,
        setup_timeout: options.setup_timeout,
        ramp: options.ramp.filter(|r| !r.is_zero()),
        duration: options.duration,
        drain: options.drain,
        clients_per_socket: options.clients_per_socket.max(1),
        socket_buffer: (SOCKET_BUFFER_PER_CLIENT * options.clients_per_socket.max(1))
            .clamp(256 << 10, 8 << 20),
        live: Live::default(),
        sent_by: (0..options.clients).map(|_| AtomicU64::new(0)).collect(),
        refused: (0..options.clients)
            .map(|_| AtomicBool::new(false))
            .collect(),
        ready: Barrier::new(workers + 1),
    });
    let per = options.clients.div_ceil(workers);
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let shared = Arc::clone(&shared);
            let first = w * per;
            let count = per.min(options.clients.saturating_sub(first));
            thread::Builder::new()
                .name(format!("bench-{w}"))
                .spawn(move || run_worker(&shared, w, first, count))
                .expect("spawning a bench thread")
        })
        .collect();
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    // Setup progress until the workers meet at the barrier.
    let waiter = {
        let shared = Arc::clone(&shared);
        thread::spawn(move || {
            shared.ready.wait();
        })
    };
    while !waiter.is_finished() {
        if options.progress && tty {
            let line = progress_line(&shared.live, Duration::ZERO, options, false);
            let _ = write!(std::io::stderr(), "\r{line}\x1b[K");
        }
        thread::sleep(Duration::from_millis(200));
    }
    let _ = waiter.join();
    let setup = started.elapsed();
    let begin = Instant::now();
    let cpu_start = probe.read();
    let redis_start = redis_probe.read();
    let drops_start = server_side::udp_rcvbuf_errors();
    let side = || {
        local.as_ref().map(|l| {
            let stats: Vec<_> = l.servers.iter().map(ChatServer::stats).collect();
            ServerSide::of(&stats)
        })
    };
    let side_start = side();
    let mut worst_lag: f64 = 0.0;
    let mut worst_share: f64 = 0.0;
    let mut worst_busy: f64 = 0.0;
    let mut last_line = Instant::now();
    let mut cpu_end = None;
    let mut redis_end = None;
    let mut drops_end = None;
    let mut side_end = None;
    while handles.iter().any(|h| !h.is_finished()) {
        thread::sleep(Duration::from_millis(250));
        let elapsed = begin.elapsed();
        let sending = elapsed < options.duration;
        if sending {
            if let Some(now) = side() {
                worst_lag = worst_lag.max(now.max_loop_lag_ms);
                worst_share = worst_share.max(now.max_retransmit_share);
                worst_busy = worst_busy.max(now.max_busy_share);
            }
        }
        if !sending && cpu_end.is_none() {
            cpu_end = probe.read();
            redis_end = redis_probe.read();
            drops_end = server_side::udp_rcvbuf_errors();
            side_end = side();
        }
        if options.progress && (tty || last_line.elapsed() >= Duration::from_secs(5)) {
            let line = progress_line(&shared.live, elapsed, options, sending);
            if tty {
                let _ = write!(std::io::stderr(), "\r{line}\x1b[K");
            } else {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
            last_line = Instant::now();
        }
    }
    if options.progress && tty {
        let _ = writeln!(std::io::stderr());
    }
    let cpu_end = cpu_end.or_else(|| probe.read());
    let redis_end = redis_end.or_else(|| redis_probe.read());
    let drops_end = drops_end.or_else(server_side::udp_rcvbuf_errors);
    let server_side = side_end.or_else(side).zip(side_start).map(|(end, start)| {
        let mut side = end.since(&start);
        side.max_loop_lag_ms = side.max_loop_lag_ms.max(worst_lag);
        side.max_retransmit_share = side.max_retransmit_share.max(worst_share);
        side.max_busy_share = side.max_busy_share.max(worst_busy);
        side
    });
    let mut latencies = Latencies::new();
    let mut cross_node = Latencies::new();
    let mut failed = 0;
    let mut refused = 0;
    // The workers' own CPU over the sending phase: the load generator.
    let mut load_seconds = Some(Duration::ZERO);
    let mut retransmits = 0;
    let mut delivered = 0;
    let (mut sockets, mut syscalls, mut send_drops) = (0, 0, 0);
    for handle in handles {
        let result = handle.join().unwrap_or_default();
        latencies.merge(&result.latencies);
        cross_node.merge(&result.cross_node);
        failed += result.failed;
        refused += result.refused;
        load_seconds = match (load_seconds, result.sending_cpu) {
            (Some(sum), Some(cpu)) => Some(sum + cpu),
            _ => None,
        };
        retransmits += result.retransmits;
        delivered += result.delivered.iter().map(|(_, n)| *n).sum::<u64>();
        sockets += result.sockets;
        syscalls += result.sending_syscalls;
        send_drops += result.send_drops;
    }
    let mut batching = None;
    if let Some(local) = local {
        for chat in local.servers {
            if let Some(cluster) = chat.stats().cluster {
                let (events, pipelines) = batching.unwrap_or((0, 0));
                batching = Some((events + cluster.published, pipelines + cluster.pipelines));
            }
            let _ = chat.shutdown("bench over", Duration::from_millis(200));
        }
    }
    let sent: u64 = shared.sent_by.iter().map(|s| s.load(Relaxed)).sum();
    // Every admitted member of the sender's room (a client refused as busy is none).
    let expected = expected_deliveries(
        |i| shared.sent_by[i].load(Relaxed),
        options.clients,
        shared.room_size,
        |j| !shared.refused[j].load(Relaxed),
    );
    let server_cpu = probe.between(cpu_start, cpu_end, options.duration);
    let redis_cpu = redis_probe.between(redis_start, redis_end, options.duration);
    let load_cpu =
        load_seconds.map(|used| ServerCpu::over("bench client threads", used, options.duration));
    let names: Vec<String> = servers.iter().map(ToString::to_string).collect();
    Ok(BenchReport {
        server: names.join(" "),
        nodes: servers.len(),
        wire: if options.secure { "secure" } else { "raw" },
        clients: options.clients,
        clients_ok: options.clients - failed - refused,
        refused_busy: refused,
        rooms: options.clients.div_ceil(shared.room_size),
        rate: options.rate,
        duration_s: options.duration.as_secs_f64(),
        size: options.size,
        sent,
        expected,
        delivered,
        lost: expected.saturating_sub(delivered),
        duplicates: shared.live.duplicates.load(Relaxed),
        errors: shared.live.errors.load(Relaxed),
        errors_by_cause: shared
            .live
            .errors_by_cause
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone(),
        deliveries_per_sec: delivered as f64 / options.duration.as_secs_f64().max(0.001),
        latency_ms: LatencyMs::of(&latencies),
        cross_node_latency_ms: (servers.len() > 1).then(|| LatencyMs::of(&cross_node)),
        client_retransmits: retransmits,
        server_cpu,
        redis_cpu,
        redis_batching: batching.map(|(events, pipelines)| RedisBatching { events, pipelines }),
        setup_s: setup.as_secs_f64(),
        ramp_s: options.ramp.unwrap_or_default().as_secs_f64(),
        load_cpu,
        load_sockets: sockets,
        load_syscalls: syscalls,
        load_send_drops: send_drops,
        udp_rcvbuf_drops: drops_end
            .zip(drops_start)
            .map(|(end, start)| end.saturating_sub(start)),
        server_side,
    })
}

/// Writes the report as JSON.
///
/// # Errors
/// If writing fails.
pub fn write_json(report: &BenchReport, out: &mut dyn Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}
