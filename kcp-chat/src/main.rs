//! `kcp-chat`: chat over KCP. `kcp-chat demo` shows it working in one command.

use std::io::{BufReader, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use kcp_chat::bench::{BenchOptions, run_bench, write_json};
use kcp_chat::cluster::ClusterConfig;
use kcp_chat::demo::{DemoOptions, run_demo};
use kcp_chat::impair_spec::ImpairSpec;
use kcp_chat::interactive::{ClientExit, ClientOptions, run_client};
use kcp_chat::protocol::LOBBY;
use kcp_chat::server::{ChatServer, ChatServerConfig};
use kcp_chat::trust::{self, KnownServers, Trusted};
use kcp_net::secure::{ClientSecurity, ServerIdentity, ServerSecurity};
use kcp_net::{ClientConfig, Preset};
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(
    name = "kcp-chat",
    version,
    about = "Chat over KCP (reliable UDP): server, client, demo and load generator",
    long_about = "Chat over KCP (reliable UDP).\n\n\
        Start with `kcp-chat demo`: a server and scripted bots in one process, chatting \
        through a simulated lossy link, with a delivery check at the end.\n\n\
        Then run `kcp-chat server` in one terminal and `kcp-chat client --nick NAME` in \
        others. `kcp-chat bench` loads a server with many clients."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a chat server. Prints `listening ADDR` when ready; Ctrl-C (SIGINT) or
    /// SIGTERM tells the clients and shuts down cleanly.
    Server(ServerArgs),
    /// Chat from the terminal (or a pipe): lines are said in the current room,
    /// /commands do the rest (/help lists them). At the end of input it quits and
    /// exits 0. Lines typed while the server is unreachable are sent once it is back,
    /// or reported as not sent.
    Client(ClientArgs),
    /// Server and scripted bots in one process over a lossy simulated link; prints the
    /// conversation and a summary (sent, delivered, lost, latency, retransmissions).
    /// Exits non-zero if any message was lost or duplicated.
    Demo(DemoArgs),
    /// Many clients saying messages at a fixed rate in shared rooms; reports delivery,
    /// loss, duplicates, latency percentiles and the server's CPU (if local).
    Bench(BenchArgs),
}

#[derive(Args, Debug)]
struct ServerArgs {
    /// Address to listen on (use 0.0.0.0:4000 to accept other machines).
    #[arg(long, default_value = "127.0.0.1:4000")]
    listen: SocketAddr,
    /// The server's key file (X25519, mode 0600), created on first start. Default
    /// $KCP_CHAT_HOME/server.key, else ~/.kcp-chat/server.key.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Speak raw KCP instead of the secure protocol (for other KCP peers and tests):
    /// no handshake, no encryption, anyone who sees or guesses traffic can forge it.
    #[arg(long)]
    raw: bool,
    /// Engine preset: fast, normal or default (clients must use the same MTU/mode).
    #[arg(long, default_value = "fast")]
    preset: Preset,
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
    idle_timeout: Duration,
    /// Messages of a room replayed to whoever joins it.
    #[arg(long, default_value_t = 20)]
    history: usize,
    /// Print the session count and counters this often (e.g. 10s).
    #[arg(long, value_parser = humantime::parse_duration)]
    stats_every: Option<Duration>,
    /// Impair what the server sends, e.g. loss=0.1,delay=40ms,jitter=20ms,seed=7.
    #[arg(long)]
    impair: Option<ImpairSpec>,
    /// Log filter (overrides RUST_LOG), e.g. info, debug, kcp_chat=debug.
    #[arg(long)]
    log: Option<String>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// `kcp-chat server`'s cluster flags.
#[derive(Args, Debug)]
struct ClusterArgs {
    /// Run as one node of a cluster that meets in this Redis, e.g.
    /// redis://127.0.0.1:6379: rooms, nicks, /who, /rooms and history span every
    /// node. Without it the server is a single node. See docs/cluster.md.
    #[arg(long, value_name = "redis://HOST:PORT")]
    cluster: Option<String>,
    /// This node's name, unique in the cluster (letters, digits, - _ .). Default: the
    /// listening address with its port, e.g. 127.0.0.1-4000 (node-PID for port 0).
    #[arg(long, requires = "cluster")]
    node_id: Option<String>,
    /// How long this node's presence and its users' nicks live in Redis without a
    /// refresh (refreshed every quarter of it). Another node declares this one lost
    /// (its users leave with "node lost") at most this long after its last refresh;
    /// keep it above the Redis outages a node should ride out.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration, requires = "cluster")]
    presence_ttl: Duration,
    /// Room events (lines, joins) kept while Redis is unreachable and published once
    /// it is back; lines beyond it are refused and the user told.
    #[arg(long, default_value_t = 1000, requires = "cluster")]
    cluster_buffer: usize,
}

#[derive(Args, Debug)]
struct ClientArgs {
    /// The server's address.
    #[arg(long, default_value = "127.0.0.1:4000")]
    server: SocketAddr,
    /// The server's public key (44 base64 characters, printed by the server at
    /// start). Without it the key remembered in the known-servers file is used, and
    /// a server never seen is trusted on first use and remembered.
    #[arg(long)]
    server_key: Option<kcp_net::secure::PublicKey>,
    /// The known-servers file. Default $KCP_CHAT_HOME/known_servers, else
    /// ~/.kcp-chat/known_servers.
    #[arg(long)]
    known_servers: Option<PathBuf>,
    /// Speak raw KCP (for a `kcp-chat server --raw`).
    #[arg(long)]
    raw: bool,
    /// Your nick.
    #[arg(long)]
    nick: String,
    /// The room to join first.
    #[arg(long, default_value = LOBBY)]
    room: String,
    /// Engine preset: fast, normal or default.
    #[arg(long, default_value = "fast")]
    preset: Preset,
    /// Route this client's traffic through the simulator's link model, e.g.
    /// loss=0.1,delay=40ms,jitter=20ms,dup=0.01,seed=7. Keys: loss, delay, jitter,
    /// dup, reorder, seed.
    #[arg(long)]
    impair: Option<ImpairSpec>,
    /// Send a keepalive after this long without sending anything.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    keepalive: Duration,
    /// Reconnect when the server has been silent this long while we wait for it.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    server_timeout: Duration,
    /// Lines kept while the server is unreachable, sent in order once it is back;
    /// lines beyond are reported as not sent.
    #[arg(long, default_value_t = kcp_chat::interactive::DEFAULT_OFFLINE_QUEUE)]
    offline_queue: usize,
    /// Stop reconnecting when the server has not answered for this long: the lines
    /// still waiting are reported as not sent and the client exits with status 3.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    give_up_after: Duration,
    /// Log filter (overrides RUST_LOG); default warn.
    #[arg(long)]
    log: Option<String>,
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Scripted bots.
    #[arg(long, default_value_t = 4)]
    bots: usize,
    /// Raw KCP instead of the secure protocol.
    #[arg(long)]
    raw: bool,
    /// Loss probability of each datagram, each way (0.1 or 10%).
    #[arg(long, default_value = "0.1")]
    loss: String,
    /// Mean one-way delay.
    #[arg(long, default_value = "30ms", value_parser = humantime::parse_duration)]
    delay: Duration,
    /// ± spread of the delay.
    #[arg(long, default_value = "20ms", value_parser = humantime::parse_duration)]
    jitter: Duration,
    /// Duplication probability of each datagram.
    #[arg(long, default_value = "0")]
    dup: String,
    /// Seed of the simulated link.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Engine preset: fast, normal or default.
    #[arg(long, default_value = "fast")]
    preset: Preset,
    /// How long the bots chat (then up to --drain for the last deliveries).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// How long to wait for the last deliveries after chatting.
    #[arg(long, default_value = "4s", value_parser = humantime::parse_duration)]
    drain: Duration,
    /// Mean time between two messages of one bot.
    #[arg(long, default_value = "650ms", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// How long the bots may take to connect and join their rooms.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    setup_timeout: Duration,
    /// Print only the summary.
    #[arg(long)]
    quiet: bool,
    /// Chat servers to run: with 2 or more, a redis-server of its own (needs
    /// redis-server on PATH; ./scripts/deps.sh installs it) and that many cluster
    /// nodes, the bots spread over them; the summary counts cross-node deliveries.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// Raw KCP instead of the secure protocol (to compare their costs).
    #[arg(long)]
    raw: bool,
    /// The key of the --server servers (secure mode); in-process servers get a fresh
    /// key.
    #[arg(long)]
    server_key: Option<kcp_net::secure::PublicKey>,
    /// The server to load; without it a server is started in this process. Repeat it
    /// for the nodes of a cluster (--server A --server B): client i talks to the
    /// (i mod n)th, so every room spans the nodes.
    #[arg(long)]
    server: Vec<SocketAddr>,
    /// Event loop threads of each in-process server.
    #[arg(long, default_value_t = 1)]
    server_threads: usize,
    /// In-process servers when no --server is given: 2 or more start a redis-server
    /// of the bench's own and that many cluster nodes; the report adds the latency
    /// between nodes and Redis's CPU.
    #[arg(long, default_value_t = 1, conflicts_with = "server")]
    nodes: usize,
    /// Make even a single in-process server a cluster node with its own Redis (to
    /// measure what Redis alone costs).
    #[arg(long, conflicts_with = "server")]
    redis: bool,
    /// Clients.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Messages per second per client.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// How long to send.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// How long to wait for the last deliveries.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    drain: Duration,
    /// Clients per room (each message goes to every member).
    #[arg(long, default_value_t = 10)]
    room_size: usize,
    /// Message size in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Threads driving the clients.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Engine preset: fast, normal or default.
    #[arg(long, default_value = "fast")]
    preset: Preset,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// No progress line on stderr.
    #[arg(long)]
    no_progress: bool,
}

fn init_logging(flag: Option<&str>, default: &str) {
    let filter = match flag {
        Some(f) => EnvFilter::new(f),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
    };
    // A log pipe whose reader went away must not stop anything: write errors are
    // dropped (not reported with `eprintln!`, which panics on a closed stderr).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .log_internal_errors(false)
        .try_init();
}

fn probability(name: &str, value: &str) -> anyhow::Result<f64> {
    let spec: ImpairSpec = format!("loss={value}")
        .parse()
        .with_context(|| format!("--{name} {value}"))?;
    Ok(spec.loss)
}

fn server(args: ServerArgs) -> anyhow::Result<ExitCode> {
    init_logging(args.log.as_deref(), "info");
    let mut config = ChatServerConfig::new(args.preset);
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
    let (tx, signals) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .context("installing the SIGINT/SIGTERM handler")?;
    let chat = match &args.cluster.cluster {
        None => ChatServer::bind(args.listen, config)
            .with_context(|| format!("starting the server on {}", args.listen))?,
        Some(url) => {
            let node = args
                .cluster
                .node_id
                .clone()
                .unwrap_or_else(|| match args.listen.port() {
                    0 => format!("node-{}", std::process::id()),
                    port => format!("{}-{port}", args.listen.ip()).replace([':', '[', ']'], "_"),
                });
            let mut cluster = ClusterConfig::new(url, node);
            cluster.presence_ttl = args.cluster.presence_ttl;
            cluster.buffer = args.cluster.cluster_buffer;
            ChatServer::bind_cluster(args.listen, config, cluster)
                .with_context(|| format!("starting the cluster node on {}", args.listen))?
        }
    };
    // Writes to stdout ignore errors from here on: a closed pipe must not stop a
    // clean shutdown.
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening {}", chat.local_addr());
    let _ = stdout.flush();
    tracing::info!(addr = %chat.local_addr(), preset = %args.preset, threads = args.threads, "chat server up");
    let tick = args.stats_every.unwrap_or(Duration::from_secs(3600));
    loop {
        match signals.recv_timeout(tick) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                if args.stats_every.is_some() {
                    let _ = writeln!(stdout, "stats {}", chat.stats());
                    let _ = stdout.flush();
                }
            }
        }
    }
    let stats = chat
        .shutdown("stopped by a signal", Duration::from_secs(2))
        .context("shutting down")?;
    tracing::info!("shut down");
    let _ = writeln!(stdout, "final {stats}");
    Ok(ExitCode::SUCCESS)
}

fn client(args: ClientArgs) -> anyhow::Result<ExitCode> {
    init_logging(args.log.as_deref(), "warn");
    let mut config = ClientConfig::new(args.preset);
    config.flush_on_send = true;
    config.flush_on_input = true;
    config.keepalive = Some(args.keepalive);
    config.server_timeout = args.server_timeout;
    config.impair = args.impair.as_ref().map(ImpairSpec::to_config);
    let name = args.server.to_string();
    let known = KnownServers::at(
        args.known_servers
            .clone()
            .unwrap_or_else(|| trust::default_dir().join("known_servers")),
    );
    let trusted = if args.raw {
        None
    } else {
        let trusted = trust::settle(&name, args.server, args.server_key, &known, &config)?;
        if let Trusted::FirstUse(key) = trusted {
            eprintln!(
                "*** trusting {name} on first use: key {key} (fingerprint {}), remembered in {}",
                key.fingerprint(),
                known.path().display()
            );
        }
        let mut security = ClientSecurity::new(trusted.key());
        // Short, so that a reconnect to a server that is down blocks typing little:
        // the next attempt follows at once.
        security.handshake_timeout = Duration::from_secs(1);
        config.secure = Some(security);
        Some(trusted)
    };
    let mut options = ClientOptions::new(
        args.server,
        &args.nick,
        args.room.trim_start_matches('#'),
        config,
    );
    options.offline_queue = args.offline_queue;
    options.give_up_after = args.give_up_after;
    let input = BufReader::new(std::io::stdin());
    let exit = match run_client(options, input, std::io::stdout()) {
        Ok(exit) => exit,
        Err(e) => {
            let changed = trusted.and_then(|trusted| {
                let source: &(dyn std::error::Error + 'static) = &e;
                std::iter::successors(Some(source), |e| e.source())
                    .find_map(|e| e.downcast_ref::<kcp_net::secure::HandshakeError>())
                    .and_then(|net| trust::changed(&name, trusted, net, &known))
            });
            return Err(match changed {
                Some(changed) => anyhow::Error::new(changed),
                None => anyhow::Error::new(e).context("chat client"),
            });
        }
    };
    Ok(match exit {
        ClientExit::Quit | ClientExit::ServerShutdown => ExitCode::SUCCESS,
        ClientExit::Refused(_) => ExitCode::from(2),
        ClientExit::Unreachable => ExitCode::from(3),
    })
}

fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    init_logging(None, "warn");
    let options = DemoOptions {
        bots: args.bots.max(1),
        link: ImpairSpec {
            loss: probability("loss", &args.loss)?,
            delay: args.delay,
            jitter: args.jitter,
            duplicate: probability("dup", &args.dup)?,
            seed: args.seed,
            ..ImpairSpec::default()
        },
        preset: args.preset,
        duration: args.duration,
        drain: args.drain,
        setup: args.setup_timeout,
        interval: args.interval,
        narrate: !args.quiet,
        nodes: args.nodes.max(1),
        secure: !args.raw,
    };
    let mut out = std::io::stdout();
    let report = run_demo(&options, &mut out).context("demo")?;
    writeln!(out, "{report}")?;
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    init_logging(None, "warn");
    let options = BenchOptions {
        servers: args.server,
        server_threads: args.server_threads,
        nodes: args.nodes.max(1),
        redis: args.redis,
        clients: args.clients,
        rate: args.rate,
        duration: args.duration,
        drain: args.drain,
        room_size: args.room_size,
        size: args.size,
        threads: args.threads,
        preset: args.preset,
        progress: !args.no_progress,
        secure: !args.raw,
        server_key: args.server_key,
        ..BenchOptions::default()
    };
    let report = run_bench(&options).context("bench")?;
    let mut out = std::io::stdout();
    if args.json {
        write_json(&report, &mut out)?;
    } else {
        writeln!(out, "{report}")?;
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Server(args) => server(args),
        Command::Client(args) => client(args),
        Command::Demo(args) => demo(args),
        Command::Bench(args) => bench(args),
    };
    result.unwrap_or_else(|e| {
        let _ = writeln!(std::io::stderr(), "kcp-chat: {e:#}");
        ExitCode::FAILURE
    })
}
