//! `kcp-chat server`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use anyhow::Context as _;
use clap::{ArgMatches, Args, Parser};
use kcp_chat::cluster::ClusterConfig;
use kcp_chat::endpoint::Endpoint;
use kcp_chat::engine::EngineArgs;
use kcp_chat::impair_spec::ImpairSpec;
use kcp_chat::server::{CLIENT_KEEPALIVE, ChatServer, ChatServerConfig, SettingWarning, metrics};
use kcp_chat::trust;
use kcp_net::secure::{ServerIdentity, ServerSecurity};
use serde::{Deserialize, Serialize};

use super::config_file;
use super::events::{self, Event};
use super::logging::{self, LogFormat};
use super::metrics::MetricsServer;

/// `kcp-chat server`'s flags, also the keys of its config file (`--config`): a key
/// is the flag's name with `_` for `-` (engine knobs in `[engine]`, cluster settings
/// in `[cluster]`), its value what the flag takes.
#[derive(Args, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct ServerArgs {
    /// Read the settings from this TOML file; flags given on the command line override
    /// its keys. Unknown keys are errors.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Print the effective settings (defaults, then the file, then the flags) as
    /// TOML, ready for --config, and exit.
    #[arg(long)]
    #[serde(skip)]
    print_config: bool,
    /// Address to listen on, HOST:PORT (use 0.0.0.0:4000 to accept other machines).
    #[arg(long, default_value = "127.0.0.1:4000")]
    listen: Endpoint,
    /// The server's key file (X25519, mode 0600), created on first start. Default
    /// $KCP_CHAT_HOME/server.key, else ~/.kcp-chat/server.key.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    key_file: Option<PathBuf>,
    /// Speak raw KCP instead of the secure protocol (for other KCP peers and tests):
    /// no handshake, no encryption, anyone who sees or guesses traffic can forge it.
    #[arg(long)]
    raw: bool,
    #[command(flatten)]
    engine: EngineArgs,
    /// Event loop threads (sockets sharing the port with SO_REUSEPORT).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Most users at once.
    #[arg(long, default_value_t = 1000)]
    max_clients: usize,
    /// Longest message, in bytes.
    #[arg(long, default_value_t = 1000)]
    max_message: usize,
    /// Longest nick, in characters.
    #[arg(long, default_value_t = 24)]
    max_nick: usize,
    /// Frames per second a client (one conversation) may send on average.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Frames a client (one conversation) may send in a burst.
    #[arg(long, default_value_t = 40)]
    burst: u32,
    /// Frames per second all conversations from one source IP (an IPv6 /64) may send
    /// together on average, so a new conversation per burst gains nothing. Raise it
    /// when many clients share one address (an office behind NAT, a load test).
    #[arg(long, default_value_t = 100.0)]
    ip_rate: f64,
    /// Frames all conversations from one source IP may send in a burst.
    #[arg(long, default_value_t = 200)]
    ip_burst: u32,
    /// Abuse errors (bad frames, floods, over-long frames) tolerated per 10 s from one
    /// client; one more disconnects it.
    #[arg(long, default_value_t = 5)]
    strikes: u32,
    /// Abuse errors tolerated per 10 s from all clients of one source IP; beyond it,
    /// each further abuse error disconnects the client that made it.
    #[arg(long, default_value_t = 20)]
    ip_strikes: u32,
    /// Most sessions from one source IP (raise it when many clients share one address,
    /// as a load test on one machine does).
    #[arg(long, default_value_t = 512)]
    max_sessions_per_ip: u32,
    /// New sessions per second from one source IP.
    #[arg(long, default_value_t = 64)]
    new_sessions_per_ip: u32,
    /// Sessions whose client has not proved its address yet (acknowledged something
    /// the server sent), per event loop; the oldest is evicted when full.
    #[arg(long, default_value_t = 1024)]
    max_unconfirmed: usize,
    /// Close sessions silent this long (clients send keepalives every 3 s).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    idle_timeout: Duration,
    /// Messages of a room replayed to whoever joins it.
    #[arg(long, default_value_t = 20)]
    history: usize,
    /// Admission control's first signal: while the event loop works more than this
    /// share of the time (outside its wait for events, over the last one to two
    /// seconds), new users are refused with "server busy, retry in 5 s": the loop is at
    /// its capacity and still serves those it has well. 0: never refuse for it.
    #[arg(long, default_value_t = kcp_chat::server::DEFAULT_BUSY_LOAD, value_parser = parse_share)]
    busy_load: f64,
    /// Admission control: while the event loop serves its timers later than this, new
    /// users are refused with "server busy, retry in 5 s" instead of slowing everyone
    /// down (users resuming are let in). 0s: never refuse.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    busy_lag: Duration,
    /// Admission control's second signal: while more than this share of what the event
    /// loop sends is retransmission (retransmitted segments per message, over the last
    /// one to two seconds, once 500 messages were sent), new users are refused as busy
    /// too. An overloaded loop reads its ACKs late and retransmits what was not lost
    /// while its lag can stay low. Lossy client paths raise the share as well (a loss
    /// of p costs about p/(1-p)). 0: never refuse for it.
    #[arg(long, default_value_t = kcp_chat::server::DEFAULT_BUSY_RETRANSMITS, value_parser = parse_share)]
    busy_retransmits: f64,
    /// Disconnect a client that cannot keep up: its queue was full and stayed over
    /// half full this long (a secure client is told why). 0s: never.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    slow_consumer_timeout: Duration,
    /// Frames a retransmission delayed arrive together: a client's rate limit tolerates
    /// min(8 RTOs, this) of late frames before it counts a flood.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    max_late: Duration,
    /// Print the session count and counters this often (e.g. 10s).
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    stats_every: Option<Duration>,
    /// Serve the counters in the Prometheus text format at http://ADDR/metrics
    /// (e.g. 127.0.0.1:9100; keep it off public addresses). SIGUSR1 prints them on
    /// stderr, with or without this.
    #[arg(long, value_name = "HOST:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<Endpoint>,
    /// Impair what the server sends, e.g. loss=0.1,delay=40ms,jitter=20ms,seed=7.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    impair: Option<ImpairSpec>,
    /// Log filter (overrides RUST_LOG), e.g. info, debug, kcp_chat=debug.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<String>,
    /// Log output: text, or json (one object per line, for log collectors).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// `kcp-chat server`'s cluster flags (`[cluster]` in the config file).
#[derive(Args, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct ClusterArgs {
    /// Run as one node of a cluster that meets in this Redis, e.g.
    /// redis://127.0.0.1:6379: rooms, nicks, /who, /rooms and history span every
    /// node. Without it the server is a single node. See docs/cluster.md.
    #[arg(long = "cluster", value_name = "redis://HOST:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    redis: Option<String>,
    /// This node's name, unique in the cluster (letters, digits, - _ .). Default: the
    /// listening address with its port, e.g. 127.0.0.1-4000 (node-PID for port 0).
    #[arg(long, requires = "redis")]
    #[serde(skip_serializing_if = "Option::is_none")]
    node_id: Option<String>,
    /// How long this node's presence and its users' nicks live in Redis without a
    /// refresh (refreshed every quarter of it). Another node declares this one lost
    /// (its users leave with "node lost") at most this long after its last refresh;
    /// keep it above the Redis outages a node should ride out.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration, requires = "redis")]
    #[serde(with = "humantime_serde")]
    presence_ttl: Duration,
    /// Room events (lines, joins) kept while Redis is unreachable and published once
    /// it is back; lines beyond it are refused and the user told.
    #[arg(long, default_value_t = 1000, requires = "redis")]
    cluster_buffer: usize,
}

/// The flags' defaults, as a command line without flags gives them.
#[derive(Parser)]
struct Defaults {
    #[command(flatten)]
    args: ServerArgs,
}

impl Default for ServerArgs {
    /// What no flag gives: the defaults `--help` shows.
    fn default() -> Self {
        Defaults::parse_from(["server"]).args
    }
}

impl Default for ClusterArgs {
    /// What no flag gives.
    fn default() -> Self {
        ServerArgs::default().cluster
    }
}

/// `args` with the config file (if `--config` names one) under the flags given on the
/// command line (`matches`).
fn settle(args: ServerArgs, matches: &ArgMatches) -> anyhow::Result<ServerArgs> {
    let Some(path) = args.config.clone() else {
        return Ok(args);
    };
    let mut settled: ServerArgs = config_file::load(&path, &args, matches)?;
    settled.config = Some(path);
    settled.print_config = args.print_config;
    Ok(settled)
}

/// The chat server's settings the flags ask for (without the key), checked: the
/// warnings for settings that work badly, an error for one that cannot work.
fn chat_config(args: &ServerArgs) -> anyhow::Result<(ChatServerConfig, Vec<SettingWarning>)> {
    let mut config = ChatServerConfig::new(args.engine.preset);
    config.net.engine = super::engine_config(&args.engine)?;
    config.net.threads = args.threads;
    config.net.idle_timeout = args.idle_timeout;
    config.net.max_sessions_per_ip = args.max_sessions_per_ip;
    config.net.new_sessions_per_ip_per_sec = args.new_sessions_per_ip;
    config.net.max_unconfirmed_sessions = args.max_unconfirmed;
    config.net.impair = args.impair.as_ref().map(ImpairSpec::to_config);
    config.max_clients = args.max_clients;
    config.rooms.max_message = args.max_message;
    config.rooms.max_nick = args.max_nick;
    config.rooms.history = args.history;
    config.rate = args.rate;
    config.burst = args.burst;
    config.ip_rate = args.ip_rate;
    config.ip_burst = args.ip_burst;
    config.strikes = args.strikes;
    config.ip_strikes = args.ip_strikes;
    config.busy_load = (args.busy_load > 0.0).then_some(args.busy_load);
    config.busy_lag = (!args.busy_lag.is_zero()).then_some(args.busy_lag);
    config.busy_retransmits = (args.busy_retransmits > 0.0).then_some(args.busy_retransmits);
    config.net.slow_consumer_timeout =
        (!args.slow_consumer_timeout.is_zero()).then_some(args.slow_consumer_timeout);
    config.max_late = args.max_late;
    let warnings = config
        .check(CLIENT_KEEPALIVE)
        .context("refusing the settings")?;
    Ok((config, warnings))
}

pub(super) fn run(args: ServerArgs, matches: &ArgMatches) -> anyhow::Result<ExitCode> {
    let args = settle(args, matches)?;
    let (mut config, warnings) = chat_config(&args)?;
    if args.print_config {
        // Printed settings are settings that start a server (warnings aside).
        let text = toml::to_string(&args).context("printing the settings")?;
        writeln!(std::io::stdout(), "{}", text.trim_end())?;
        return Ok(ExitCode::SUCCESS);
    }
    logging::init(args.log.as_deref(), "info", args.log_format);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    if !args.raw {
        let path = args
            .key_file
            .clone()
            .unwrap_or_else(|| trust::default_dir().join("server.key"));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let (identity, created) = ServerIdentity::load_or_create(&path)
            .with_context(|| format!("the server key {}", path.display()))?;
        let key = identity.public();
        let _ = writeln!(
            std::io::stdout(),
            "server key {key} (fingerprint {}){}",
            key.fingerprint(),
            if created {
                format!(", new, saved to {}", path.display())
            } else {
                String::new()
            }
        );
        config.net.secure = Some(ServerSecurity::new(identity));
    }
    let (tx, events) = mpsc::channel();
    let signals = events::watch_signals(tx.clone())?;
    // Before the chat server, so a metrics address in use fails before any client
    // is accepted.
    let metrics = match &args.metrics {
        Some(addr) => Some(MetricsServer::start(addr.addr(), tx)?),
        None => None,
    };
    let chat =
        match &args.cluster.redis {
            None => ChatServer::bind(args.listen.addr(), config)
                .with_context(|| format!("starting the server on {}", args.listen))?,
            Some(url) => {
                let node = args.cluster.node_id.clone().unwrap_or_else(|| {
                    match args.listen.addr().port() {
                        0 => format!("node-{}", std::process::id()),
                        port => format!("{}-{port}", args.listen.addr().ip())
                            .replace([':', '[', ']'], "_"),
                    }
                });
                let mut cluster = ClusterConfig::new(url, node);
                cluster.presence_ttl = args.cluster.presence_ttl;
                cluster.buffer = args.cluster.cluster_buffer;
                ChatServer::bind_cluster(args.listen.addr(), config, cluster)
                    .with_context(|| format!("starting the cluster node on {}", args.listen))?
            }
        };
    // Writes to stdout ignore errors from here on: a closed pipe must not stop a
    // clean shutdown.
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening {}", chat.local_addr());
    if let Some(metrics) = &metrics {
        let _ = writeln!(stdout, "metrics http://{}/metrics", metrics.addr());
    }
    let _ = stdout.flush();
    tracing::info!(addr = %chat.local_addr(), engine = %args.engine, threads = args.threads, "chat server up");
    let tick = args.stats_every.unwrap_or(Duration::from_secs(3600));
    loop {
        match events.recv_timeout(tick) {
            Ok(Event::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            Ok(Event::Dump) => {
                let _ = writeln!(std::io::stderr(), "stats {}", chat.stats());
            }
            Ok(Event::Scrape(reply)) => {
                let _ = reply.send(metrics::render(&chat.stats()));
            }
            Err(RecvTimeoutError::Timeout) => {
                if args.stats_every.is_some() {
                    let _ = writeln!(stdout, "stats {}", chat.stats());
                    let _ = stdout.flush();
                }
            }
        }
    }
    signals.close();
    if let Some(metrics) = metrics {
        metrics.stop();
    }
    let stats = chat
        .shutdown("stopped by a signal", Duration::from_secs(2))
        .context("shutting down")?;
    tracing::info!("shut down");
    let _ = writeln!(stdout, "final {stats}");
    Ok(ExitCode::SUCCESS)
}

/// A share: a finite number, 0 or more (0.1 is 10%).
fn parse_share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(share) if share.is_finite() && share >= 0.0 => Ok(share),
        _ => Err(format!(
            "{text:?} is not a share (0, or a number above it: 0.1 is 10%)"
        )),
    }
}
