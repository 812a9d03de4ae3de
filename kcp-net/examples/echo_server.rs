//! A raw-KCP echo server: accepts any conv from any peer (one session per peer address
//! and conv) and echoes every message. Prints `listening ADDR` when ready, and its
//! counters on Ctrl-C (or after `--run-for` seconds).
//!
//! ```sh
//! cargo run --release -p kcp-net --example echo_server -- --listen 127.0.0.1:9000 --preset fast
//! ```
//!
//! Any KCP peer built on the C reference (`ikcp.c`, window up to 128, any preset,
//! MTU 1400) can use it. Empty messages are keepalives and are not echoed unless
//! `--echo-empty` is given.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use kcp_net::{
    CloseCtx, CloseReason, EventHandler, IoBackend, KcpServer, Preset, ServerConfig, SessionCtx,
};

#[derive(Parser, Debug)]
#[command(about = "Raw-KCP echo server")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Engine preset: fast, normal or default.
    #[arg(long, default_value = "fast")]
    preset: Preset,
    /// Stream mode (the peer must use it too).
    #[arg(long)]
    stream: bool,
    /// Send and receive window, in segments.
    #[arg(long, default_value_t = 128)]
    window: u32,
    /// Event loop threads (sockets sharing the port with SO_REUSEPORT).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Close sessions silent for this many seconds.
    #[arg(long, default_value_t = 30)]
    idle_timeout: u64,
    /// Most sessions from one source IP (raise it to load-test from one machine).
    #[arg(long, default_value_t = 512)]
    max_sessions_per_ip: u32,
    /// New sessions per second from one source IP.
    #[arg(long, default_value_t = 64)]
    new_sessions_per_ip: u32,
    /// Sessions whose peer has not proved its address yet (acknowledged something we
    /// sent), per loop; the oldest is evicted when full.
    #[arg(long, default_value_t = 1024)]
    max_unconfirmed: usize,
    /// Use the reference's timing (flush on the interval tick) instead of flushing
    /// each echo and each batch of input (the ACKs it owes) at once.
    #[arg(long)]
    no_flush: bool,
    /// Echo empty messages instead of treating them as keepalives.
    #[arg(long)]
    echo_empty: bool,
    /// One recv_from/send_to per datagram instead of recvmmsg/sendmmsg.
    #[arg(long)]
    portable: bool,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    run_for: Option<u64>,
    /// Print a line per opened and closed session.
    #[arg(long)]
    verbose: bool,
}

#[derive(Clone)]
struct Echo {
    verbose: bool,
}

impl EventHandler for Echo {
    fn on_open(&mut self, session: &mut SessionCtx<'_>) {
        if self.verbose {
            println!("open {} conv {:#010x}", session.peer(), session.conv());
        }
    }

    fn on_message(&mut self, session: &mut SessionCtx<'_>, message: Bytes) {
        if let Err(e) = session.send_bytes(message) {
            eprintln!("echo to {} dropped: {e}", session.peer());
        }
    }

    fn on_close(&mut self, closed: &CloseCtx<'_>, reason: CloseReason) {
        if self.verbose {
            let session = closed.session();
            let stats = session.stats();
            println!(
                "close {} conv {:#010x}: {reason:?}, {} messages in, {} retransmits",
                session.peer(),
                session.conv(),
                stats.counters.messages_in,
                stats.engine.retransmits_timeout + stats.engine.retransmits_fast,
            );
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = ServerConfig::new(args.preset);
    config.engine.stream = args.stream;
    config.engine.snd_wnd = args.window;
    config.engine.rcv_wnd = args.window.max(128);
    config.threads = args.threads;
    config.idle_timeout = Duration::from_secs(args.idle_timeout);
    config.max_sessions_per_ip = args.max_sessions_per_ip;
    config.new_sessions_per_ip_per_sec = args.new_sessions_per_ip;
    config.max_unconfirmed_sessions = args.max_unconfirmed;
    config.flush_on_send = !args.no_flush;
    config.flush_on_input = !args.no_flush;
    config.swallow_empty_messages = !args.echo_empty;
    if args.portable {
        config.io = IoBackend::Portable;
    }
    let handler = Echo {
        verbose: args.verbose,
    };
    let server = KcpServer::bind(args.listen, config, handler).context("starting the server")?;
    println!("listening {}", server.local_addr());

    let (stop_tx, stop_rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .context("installing the Ctrl-C handler")?;
    match args.run_for {
        Some(secs) => {
            let _ = stop_rx.recv_timeout(Duration::from_secs(secs));
        }
        None => {
            let _ = stop_rx.recv();
        }
    }

    let stats = server.shutdown(Duration::from_secs(1))?;
    let t = stats.total;
    println!(
        "sessions opened {} confirmed {} active {} closed idle {} dead {} local {} shutdown {} unconfirmed {} evicted {}",
        t.sessions_opened,
        t.sessions_confirmed,
        t.sessions_active,
        t.closed_idle,
        t.closed_dead_link,
        t.closed_local,
        t.closed_shutdown,
        t.closed_unconfirmed,
        t.evicted_unconfirmed
    );
    println!(
        "datagrams in {} out {} bytes in {} out {} messages in {} out {} keepalives {} retransmits {}",
        t.datagrams_in,
        t.datagrams_out,
        t.bytes_in,
        t.bytes_out,
        t.messages_in,
        t.messages_out,
        t.keepalives_in,
        t.retransmits
    );
    println!(
        "dropped malformed {} truncated {} unknown-session {} rejected {} limit {} rate {} ip-limit {} ip-rate {} refused {} send-full {}; withheld from unconfirmed peers {}",
        t.dropped_malformed,
        t.dropped_truncated,
        t.dropped_unknown_session,
        t.dropped_rejected,
        t.dropped_session_limit,
        t.dropped_rate_limited,
        t.dropped_ip_limit,
        t.dropped_ip_rate,
        t.dropped_refused,
        t.dropped_send_full,
        t.withheld_unconfirmed
    );
    Ok(())
}
