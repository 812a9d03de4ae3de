//! `kcp-chat bench`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use kcp_chat::bench::{BenchOptions, run_bare, run_bench, write_json};
use kcp_chat::endpoint::Endpoint;
use kcp_chat::engine::EngineArgs;

use super::logging::{self, LogFormat};

#[derive(Args, Debug)]
pub(super) struct BenchArgs {
    /// Raw KCP instead of the secure protocol (to compare their costs).
    #[arg(long)]
    raw: bool,
    /// The floor instead of the chat: the same room traffic over bare UDP (relay
    /// threads, as many as --server-threads on one SO_REUSEPORT port, copy each
    /// datagram to its room's members, batched I/O, no reliability), the machine's
    /// ceiling of deliveries per second to compare the chat with. Uses --clients,
    /// --rate, --duration, --drain, --room-size, --size, --threads, --server-threads
    /// and --clients-per-socket.
    #[arg(long, conflicts_with_all = ["server", "raw", "server_key", "nodes", "redis"])]
    bare_udp: bool,
    /// The key of the --server servers (secure mode); in-process servers get a fresh
    /// key.
    #[arg(long)]
    server_key: Option<kcp_net::secure::PublicKey>,
    /// The server to load (HOST:PORT); without it a server is started in this process. Repeat it
    /// for the nodes of a cluster (--server A --server B): client i talks to the
    /// (i mod n)th, so every room spans the nodes.
    #[arg(long)]
    server: Vec<Endpoint>,
    /// Event loop threads of each in-process server (with --bare-udp: relay threads).
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
    /// Join during load: spread the joins evenly over this while the clients already
    /// in say (uncounted) lines at --rate, so the server's admission control meets
    /// each join under the load of those before it; the counted --duration starts
    /// once everyone has joined or been refused as busy. 0s: everyone joins first.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    ramp: Duration,
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
    /// Clients of a thread that share one UDP socket: one receive call then serves
    /// many deliveries (about 10% less load-generator CPU), but the shared receive
    /// buffer overflows under the room fan-out (kernel drops, retransmissions, a
    /// higher p99), so the default 1 gives every client its own socket, as clients on
    /// hosts of their own have. The server's view of sessions is the same either way.
    #[arg(long, default_value_t = kcp_chat::bench::DEFAULT_CLIENTS_PER_SOCKET)]
    clients_per_socket: usize,
    #[command(flatten)]
    engine: EngineArgs,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// No progress line on stderr.
    #[arg(long)]
    no_progress: bool,
}

pub(super) fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    logging::init(None, "warn", LogFormat::Text);
    super::engine_config(&args.engine)?;
    let options = BenchOptions {
        servers: args.server.iter().map(Endpoint::addr).collect(),
        server_threads: args.server_threads,
        nodes: args.nodes.max(1),
        redis: args.redis,
        clients: args.clients,
        rate: args.rate,
        duration: args.duration,
        drain: args.drain,
        ramp: Some(args.ramp),
        room_size: args.room_size,
        size: args.size,
        threads: args.threads,
        clients_per_socket: args.clients_per_socket,
        engine: args.engine,
        progress: !args.no_progress,
        secure: !args.raw,
        server_key: args.server_key,
        ..BenchOptions::default()
    };
    if args.bare_udp {
        let report = run_bare(&options).context("bare-UDP bench")?;
        let mut out = std::io::stdout();
        if args.json {
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        } else {
            writeln!(out, "{report}")?;
        }
        return Ok(super::passed(report.lost == 0));
    }
    let report = run_bench(&options).context("bench")?;
    let mut out = std::io::stdout();
    if args.json {
        write_json(&report, &mut out)?;
    } else {
        writeln!(out, "{report}")?;
    }
    Ok(super::passed(report.passed()))
}
