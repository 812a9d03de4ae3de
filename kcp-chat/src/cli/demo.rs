//! `kcp-chat demo`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use kcp_chat::demo::{DemoOptions, run_demo};
use kcp_chat::engine::EngineArgs;
use kcp_chat::impair_spec::ImpairSpec;

use super::logging::{self, LogFormat};

#[derive(Args, Debug)]
pub(super) struct DemoArgs {
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
    #[command(flatten)]
    engine: EngineArgs,
    /// How long the bots chat (then up to --drain for the last deliveries).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// How long to wait for the last deliveries after chatting.
    #[arg(long, default_value = "4s", value_parser = humantime::parse_duration)]
    drain: Duration,
    /// Mean time between two messages of one bot (--interval is the engine's tick).
    #[arg(long, default_value = "650ms", value_parser = humantime::parse_duration)]
    message_interval: Duration,
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

fn probability(name: &str, value: &str) -> anyhow::Result<f64> {
    let spec: ImpairSpec = format!("loss={value}")
        .parse()
        .with_context(|| format!("--{name} {value}"))?;
    Ok(spec.loss)
}

pub(super) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    logging::init(None, "warn", LogFormat::Text);
    super::engine_config(&args.engine)?;
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
        engine: args.engine,
        duration: args.duration,
        drain: args.drain,
        setup: args.setup_timeout,
        message_interval: args.message_interval,
        narrate: !args.quiet,
        nodes: args.nodes.max(1),
        secure: !args.raw,
    };
    let mut out = std::io::stdout();
    let report = run_demo(&options, &mut out).context("demo")?;
    writeln!(out, "{report}")?;
    Ok(super::passed(report.passed()))
}
