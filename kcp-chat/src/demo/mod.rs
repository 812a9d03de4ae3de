//! `kcp-chat demo`: a server and a handful of scripted bots in one process, over
//! loopback through a simulated lossy link, with a delivery check at the end.
//!
//! The server and every bot impair what they send (so loss hits both directions),
//! each with its own seed. One bot narrates what it sees. Every message carries a tag,
//! is recorded with the bots in its room when it is said, and is checked off at each
//! receiver; the report counts what was sent, delivered, lost and duplicated, and the
//! latency from `send` to arrival.

mod bot;
mod tracker;

use std::collections::BTreeSet;
use std::fmt;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use kcp_net::kcp_core::Config;
use kcp_net::secure::{ClientSecurity, ServerSecurity};
use kcp_net::{ClientConfig, NetError, Preset};

pub use tracker::Deliveries;

use crate::cluster::redis_server::{RedisServer, RedisServerError};
use crate::cluster::{ClusterConfig, ClusterError};
use crate::engine::EngineArgs;
use crate::impair_spec::ImpairSpec;
use crate::latency::LatencySummary;
use crate::protocol::LOBBY;
use crate::server::{ChatServer, ChatServerConfig};
use bot::{BotPlan, Stage, run_bot};
use tracker::Tracker;

/// The bots' names, and the nick each switches to if it is the one that renames.
const NAMES: &[&str] = &[
    "ada", "grace", "linus", "ken", "barbara", "dennis", "margaret", "alan", "radia", "vint",
];

/// The second room, joined by the even-numbered bots.
const SIDE_ROOM: &str = "kcp";

/// Settings of a demo run.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Scripted bots (at least 1).
    pub bots: usize,
    /// The link every datagram crosses, both ways.
    pub link: ImpairSpec,
    /// Engine settings of the server and the bots: a preset and knobs on top.
    pub engine: EngineArgs,
    /// How long the bots chat.
    pub duration: Duration,
    /// How long after chatting the bots wait for stragglers before the count.
    pub drain: Duration,
    /// How long the bots may take to connect and join their rooms.
    pub setup: Duration,
    /// Mean time between two messages of one bot.
    pub message_interval: Duration,
    /// Print the conversation.
    pub narrate: bool,
    /// Chat servers: 1 is a single server; more start a `redis-server` and that many
    /// cluster nodes joined through it, with the bots spread over them.
    pub nodes: usize,
    /// The secure wire mode (the default; the bots pin the server's fresh key);
    /// `false` speaks raw KCP.
    pub secure: bool,
}

impl Default for DemoOptions {
    /// 4 bots, 10 s of chat, a link with 10% loss and 30±20 ms one-way delay, fast
    /// preset: about 60 messages, done in about 11 s.
    fn default() -> Self {
        Self {
            bots: 4,
            link: ImpairSpec {
                loss: 0.10,
                delay: Duration::from_millis(30),
                jitter: Duration::from_millis(20),
                seed: 7,
                ..ImpairSpec::default()
            },
            engine: EngineArgs::preset(Preset::Fast),
            duration: Duration::from_secs(10),
            drain: Duration::from_secs(4),
            setup: Duration::from_secs(10),
            message_interval: Duration::from_millis(650),
            narrate: true,
            nodes: 1,
            secure: true,
        }
    }
}

/// Why a demo could not run (a run that loses messages is not an error: see
/// [`DemoReport::passed`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The server could not start.
    #[error("starting the server: {0}")]
    Server(#[from] NetError),
    /// A bot thread panicked or never finished.
    #[error("bot {0} did not finish")]
    BotStuck(usize),
    /// The cluster's Redis could not start.
    #[error("starting redis-server for the cluster: {0}")]
    Redis(#[from] RedisServerError),
    /// A cluster node could not start.
    #[error("starting a cluster node: {0}")]
    Node(#[from] ClusterError),
}

/// The outcome of a demo run.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DemoReport {
    /// The settings it ran with.
    pub options: DemoOptions,
    /// Delivery counts.
    pub deliveries: Deliveries,
    /// Latency from a bot's send to each receiver's arrival.
    pub latency: LatencySummary,
    /// Segments retransmitted by the server.
    pub server_retransmits: u64,
    /// Segments retransmitted by the bots.
    pub bot_retransmits: u64,
    /// Datagrams the server sent.
    pub server_datagrams: u64,
    /// Datagrams of the server's that the simulated link dropped.
    pub server_datagrams_dropped: u64,
    /// Datagrams the bots sent.
    pub bot_datagrams: u64,
    /// Datagrams of the bots' that their simulated links dropped.
    pub bot_datagrams_dropped: u64,
    /// Some messages that were not delivered, for the report.
    pub undelivered: Vec<String>,
    /// With several nodes: the Redis they met in, and the deliveries (arrived,
    /// expected) whose sender and receiver were on different nodes.
    pub cross_node: Option<(String, u64, u64)>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Bots that failed (could not connect, say, over a link that loses everything),
    /// with why: the run still reports, and does not pass.
    pub bots_failed: Vec<(usize, String)>,
}

impl DemoReport {
    /// Nothing lost, duplicated or misdelivered, and every bot ran.
    pub fn passed(&self) -> bool {
        self.deliveries.lost == 0
            && self.deliveries.duplicates == 0
            && self.deliveries.unexpected == 0
            && self.deliveries.sent > 0
            && self.bots_failed.is_empty()
    }
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.deliveries;
        let o = &self.options;
        writeln!(
            f,
            "demo summary: {} bots, {:.1} s of chat, link {} each way, preset {}",
            o.bots,
            o.duration.as_secs_f64(),
            o.link.describe(),
            o.engine
        )?;
        if !self.bots_failed.is_empty() {
            writeln!(f, "  bots failed       {}", self.bots_failed.len())?;
            for (bot, why) in self.bots_failed.iter().take(5) {
                writeln!(f, "    bot {bot}: {why}")?;
            }
        }
        writeln!(f, "  messages sent     {}", d.sent)?;
        writeln!(
            f,
            "  delivered         {} (every bot in the room got it: {} of {} deliveries)",
            d.delivered, d.deliveries, d.expected_deliveries
        )?;
        writeln!(f, "  lost              {}", d.lost)?;
        writeln!(f, "  duplicates        {}", d.duplicates)?;
        if d.unexpected > 0 {
            writeln!(f, "  misdelivered      {}", d.unexpected)?;
        }
        writeln!(f, "  latency           {}", self.latency)?;
        let pct = |dropped: u64, of: u64| {
            if of == 0 {
                0.0
            } else {
                100.0 * dropped as f64 / of as f64
            }
        };
        writeln!(
            f,
            "  retransmissions   {} (server {}, bots {})",
            self.server_retransmits + self.bot_retransmits,
            self.server_retransmits,
            self.bot_retransmits
        )?;
        writeln!(
            f,
            "  datagrams         server {} ({} dropped by the link, {:.1}%), bots {} ({} dropped, {:.1}%)",
            self.server_datagrams,
            self.server_datagrams_dropped,
            pct(self.server_datagrams_dropped, self.server_datagrams),
            self.bot_datagrams,
            self.bot_datagrams_dropped,
            pct(self.bot_datagrams_dropped, self.bot_datagrams)
        )?;
        if let Some((redis, got, expected)) = &self.cross_node {
            writeln!(
                f,
                "  cluster           {} nodes through Redis at {redis}: {got} of {expected} \
                 cross-node deliveries arrived",
                o.nodes
            )?;
        }
        for line in &self.undelivered {
            writeln!(f, "  undelivered       {line}")?;
        }
        if d.lost > 0 {
            writeln!(
                f,
                "  (lost: not delivered within {:.1} s after the chat ended; a slower preset \
                 backs off longer, try a longer --drain)",
                o.drain.as_secs_f64()
            )?;
        }
        write!(
            f,
            "{} in {:.1} s: lost {}",
            if self.passed() { "PASS" } else { "FAIL" },
            self.elapsed.as_secs_f64(),
            d.lost
        )
    }
}

fn plans(options: &DemoOptions, engine: &Config) -> Vec<BotPlan> {
    let bots = options.bots.max(1);
    let lobby: BTreeSet<usize> = (0..bots).collect();
    let side: BTreeSet<usize> = (0..bots).step_by(2).collect();
    (0..bots)
        .map(|i| {
            let base = NAMES[i % NAMES.len()];
            let nick = if i < NAMES.len() {
                base.to_owned()
            } else {
                format!("{base}{}", i / NAMES.len())
            };
            let mut config = ClientConfig::new(options.engine.preset);
            config.engine = engine.clone();
            config.flush_on_send = true;
            config.flush_on_input = true;
            config.impair = Some(
                options
                    .link
                    .to_config_seeded(options.link.seed + 1 + i as u64),
            );
            let (rooms, members) = if i % 2 == 0 {
                (
                    vec![LOBBY.to_owned(), SIDE_ROOM.to_owned()],
                    vec![lobby.clone(), side.clone()],
                )
            } else {
                (vec![LOBBY.to_owned()], vec![lobby.clone()])
            };
            BotPlan {
                index: i,
                node: i % options.nodes.max(1),
                rename_to: (i == 1).then(|| format!("{nick}_h")),
                nick,
                rooms,
                members,
                interval: options.message_interval,
                config,
                seed: options.link.seed.wrapping_mul(1000) + i as u64,
                narrate: i == 0,
            }
        })
        .collect()
}

/// Runs the demo, printing the conversation (if asked) to `out`.
///
/// # Errors
/// [`DemoError`] if the server or a bot could not run at all.
pub fn run_demo(options: &DemoOptions, out: &mut dyn Write) -> Result<DemoReport, DemoError> {
    let started = Instant::now();
    let nodes = options.nodes.max(1);
    let engine = options.engine.config().map_err(NetError::from)?;
    let identity = crate::trust::in_process_identity(options.secure)?;
    let server_config = |node: usize| {
        let mut config = ChatServerConfig::new(options.engine.preset);
        config.net.engine = engine.clone();
        config.net.secure = identity.clone().map(ServerSecurity::new);
        config.net.impair = Some(if node == 0 {
            options.link.to_config()
        } else {
            options
                .link
                .to_config_seeded(options.link.seed + 1000 + node as u64)
        });
        // Every bot comes from 127.0.0.1: the per-address budget is all the bots' together.
        let bots = u32::try_from(options.bots.max(1)).unwrap_or(u32::MAX);
        config.ip_rate = config.rate * f64::from(bots);
        config.ip_burst = config.burst.saturating_mul(bots);
        config.ip_strikes = config.strikes.saturating_mul(bots);
        config
    };
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let (redis, servers) = if nodes == 1 {
        (None, vec![ChatServer::bind(loopback, server_config(0))?])
    } else {
        let redis = RedisServer::start()?;
        let servers = (0..nodes)
            .map(|n| {
                let cluster = ClusterConfig::new(redis.url(), format!("node{}", n + 1));
                ChatServer::bind_cluster(loopback, server_config(n), cluster)
            })
            .collect::<Result<Vec<_>, _>>()?;
        (Some(redis), servers)
    };
    let mut plans = plans(options, &engine);
    if let Some(identity) = &identity {
        for plan in &mut plans {
            plan.config.secure = Some(ClientSecurity::new(identity.public()));
        }
    }
    let (lines_tx, lines) = mpsc::channel();
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let stage = Stage {
        servers: servers.iter().map(ChatServer::local_addr).collect(),
        tracker: Arc::clone(&tracker),
        ready: Arc::new(Barrier::new(plans.len())),
        lines: lines_tx,
        chat_for: options.duration,
        drain_for: options.drain,
        setup_for: options.setup,
    };
    let listening: Vec<String> = stage.servers.iter().map(ToString::to_string).collect();
    let _ = match &redis {
        None => writeln!(out, "kcp-chat demo: server on {}", listening.join(", ")),
        Some(redis) => writeln!(
            out,
            "kcp-chat demo: {nodes} cluster nodes on {} joined through Redis at {}",
            listening.join(", "),
            redis.url()
        ),
    };
    let _ = writeln!(
        out,
        "  {} bots (bot i on node i mod {nodes}), link {} each way",
        plans.len(),
        options.link.describe()
    );
    let handles: Vec<_> = plans
        .iter()
        .map(|plan| {
            let (plan, stage) = (plan.clone(), stage.clone());
            thread::Builder::new()
                .name(format!("bot-{}", plan.index))
                .spawn(move || run_bot(&plan, &stage))
        })
        .collect();
    drop(stage);
    // Print until every bot has hung up its end of the channel (or much too late).
    let hard_deadline =
        Instant::now() + options.setup + options.duration + options.drain + Duration::from_secs(10);
    loop {
        let left = hard_deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(line) => {
                if options.narrate {
                    let _ = writeln!(out, "{line}");
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) if left.is_zero() => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
    let mut bot_retransmits = 0;
    let mut bot_datagrams = 0;
    let mut bot_datagrams_dropped = 0;
    let mut bots_failed = Vec::new();
    for (i, handle) in handles.into_iter().enumerate() {
        let handle = handle.map_err(|_| DemoError::BotStuck(i))?;
        // A bot drops its end of the channel just before its thread ends.
        while !handle.is_finished() && Instant::now() < hard_deadline {
            thread::sleep(Duration::from_millis(5));
        }
        if !handle.is_finished() {
            return Err(DemoError::BotStuck(i));
        }
        let stats = match handle.join().map_err(|_| DemoError::BotStuck(i))? {
            Ok(stats) => stats,
            Err(e) => {
                // The whole chain: "secure handshake failed: no answer within 5 s".
                let mut why = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    why = format!("{why}: {cause}");
                    source = cause.source();
                }
                bots_failed.push((i, why));
                continue;
            }
        };
        let engine = &stats.session.engine;
        bot_retransmits += engine.retransmits_timeout + engine.retransmits_fast;
        bot_datagrams += stats.session.counters.datagrams_out;
        bot_datagrams_dropped += stats.impaired_drops;
    }
    let (mut server_retransmits, mut server_datagrams, mut server_dropped) = (0, 0, 0);
    for server in servers {
        let net = server
            .shutdown("demo over", Duration::from_millis(500))?
            .net
            .total;
        server_retransmits += net.retransmits;
        server_datagrams += net.datagrams_out + net.dropped_impaired;
        server_dropped += net.dropped_impaired;
    }
    let tracker = tracker.lock().unwrap_or_else(|p| p.into_inner());
    let cross_node = redis.map(|redis| {
        let (got, expected) = tracker.deliveries_between(|a, b| a % nodes != b % nodes);
        (redis.url(), got, expected)
    });
    Ok(DemoReport {
        options: options.clone(),
        deliveries: tracker.deliveries(),
        latency: tracker.latencies().summary(),
        server_retransmits,
        bot_retransmits,
        server_datagrams,
        server_datagrams_dropped: server_dropped,
        bot_datagrams,
        bot_datagrams_dropped,
        undelivered: tracker.undelivered(10),
        cross_node,
        elapsed: started.elapsed(),
        bots_failed,
    })
}
