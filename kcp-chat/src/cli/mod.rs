//! The command line: one file per subcommand, and what they share.

mod bench;
mod client;
mod config_file;
mod demo;
mod events;
mod line_editor;
mod logging;
mod metrics;
mod server;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use kcp_chat::engine::EngineArgs;
use kcp_net::kcp_core::Config;

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
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a chat server. Prints `listening ADDR` when ready; Ctrl-C (SIGINT) or
    /// SIGTERM tells the clients and shuts down cleanly; SIGUSR1 prints the counters
    /// on stderr.
    Server(server::ServerArgs),
    /// Chat from the terminal (or a pipe): lines are said in the current room,
    /// /commands do the rest (/help lists them). At the end of input it quits and
    /// exits 0. Lines typed while the server is unreachable are sent once it is back,
    /// or reported as not sent.
    Client(client::ClientArgs),
    /// Server and scripted bots in one process over a lossy simulated link; prints the
    /// conversation and a summary (sent, delivered, lost, latency, retransmissions).
    /// Exits non-zero if any message was lost or duplicated.
    Demo(demo::DemoArgs),
    /// Many clients saying messages at a fixed rate in shared rooms; reports delivery,
    /// loss, duplicates, latency percentiles and the server's CPU (if local).
    Bench(bench::BenchArgs),
}

impl Cli {
    /// Parses the command line (exits with the usage on an error) and runs the
    /// subcommand.
    pub(crate) fn run() -> anyhow::Result<ExitCode> {
        let matches = Self::command().get_matches();
        let cli = Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let given = matches.subcommand().map(|(_, given)| given);
        match cli.command {
            Command::Server(args) => server::run(args, given.unwrap_or(&matches)),
            Command::Client(args) => client::run(args),
            Command::Demo(args) => demo::run(args),
            Command::Bench(args) => bench::run(args),
        }
    }
}

/// The exit code of a demo or bench report.
fn passed(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The engine configuration the flags ask for, or an error naming them.
fn engine_config(engine: &EngineArgs) -> anyhow::Result<Config> {
    engine
        .config()
        .with_context(|| format!("engine settings ({engine})"))
}
