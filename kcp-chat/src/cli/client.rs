//! `kcp-chat client`.

use std::io::{BufReader, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use kcp_chat::endpoint::Endpoint;
use kcp_chat::engine::EngineArgs;
use kcp_chat::impair_spec::ImpairSpec;
use kcp_chat::interactive::{ClientExit, ClientOptions, run_client, run_client_from};
use kcp_chat::protocol::LOBBY;
use kcp_chat::server::CLIENT_KEEPALIVE;
use kcp_chat::trust::{self, KnownServers, Trusted};
use kcp_net::ClientConfig;
use kcp_net::secure::ClientSecurity;

use super::line_editor::{self, LineEditor};
use super::logging::{self, LogFormat};

#[derive(Args, Debug)]
pub(super) struct ClientArgs {
    /// The server's address, HOST:PORT (a name is resolved at start).
    #[arg(long, default_value = "127.0.0.1:4000")]
    server: Endpoint,
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
    #[command(flatten)]
    engine: EngineArgs,
    /// Route this client's traffic through the simulator's link model, e.g.
    /// loss=0.1,delay=40ms,jitter=20ms,dup=0.01,seed=7. Keys: loss, delay, jitter,
    /// dup, reorder, seed.
    #[arg(long)]
    impair: Option<ImpairSpec>,
    /// Send a keepalive after this long without sending anything (servers refuse
    /// an idle timeout shorter than the default, 3 s).
    #[arg(long, default_value_t = CLIENT_KEEPALIVE.into())]
    keepalive: humantime::Duration,
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
    /// Read plain lines from stdin even on a terminal (no line editor: a message
    /// arriving while you type is printed in the middle of your line). Pipes are
    /// always read plainly.
    #[arg(long)]
    plain: bool,
    /// Log filter (overrides RUST_LOG); default warn.
    #[arg(long)]
    log: Option<String>,
    /// Log output: text, or json (one object per line, for log collectors).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

pub(super) fn run(args: ClientArgs) -> anyhow::Result<ExitCode> {
    logging::init(args.log.as_deref(), "warn", args.log_format);
    let mut config = ClientConfig::new(args.engine.preset);
    config.engine = super::engine_config(&args.engine)?;
    config.flush_on_send = true;
    config.flush_on_input = true;
    config.keepalive = Some(args.keepalive.into());
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
        let trusted = trust::settle(&name, args.server.addr(), args.server_key, &known, &config)?;
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
        args.server.addr(),
        &args.nick,
        args.room.trim_start_matches('#'),
        config,
    );
    options.offline_queue = args.offline_queue;
    options.give_up_after = args.give_up_after;
    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let result = if terminal && !args.plain {
        let editor = line_editor::start()?;
        let LineEditor { lines, out, .. } = editor;
        run_client_from(options, lines, out)
    } else {
        run_client(options, BufReader::new(std::io::stdin()), std::io::stdout())
    };
    let exit = match result {
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
