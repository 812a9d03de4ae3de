//! A raw-KCP echo client: sends `--count` messages of `--size` bytes, at most
//! `--inflight` unanswered at once, through a KCP window of `--window` segments; verifies every echoed byte and message boundary, and
//! prints one line with counts and p50/p99 round-trip latency. Exits non-zero on any
//! loss, corruption or timeout.
//!
//! ```sh
//! cargo run --release -p kcp-net --example echo_client -- --server 127.0.0.1:9000 --count 1000 --size 1000
//! ```
//!
//! Works against any raw-KCP echo server (the C reference's included) using the same
//! mode (message or `--stream`) and MTU (1400).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use kcp_net::{ClientConfig, IoBackend, KcpClient, Preset};

#[derive(Parser, Debug)]
#[command(about = "Raw-KCP echo client with verification and latency percentiles")]
struct Args {
    /// The echo server.
    #[arg(long, default_value = "127.0.0.1:9000")]
    server: SocketAddr,
    /// Messages to send.
    #[arg(long, default_value_t = 1000)]
    count: u32,
    /// Bytes per message (at most 174,752 in message mode, 127 segments).
    #[arg(long, default_value_t = 1000)]
    size: usize,
    /// Engine preset: fast, normal or default.
    #[arg(long, default_value = "fast")]
    preset: Preset,
    /// KCP send window in segments (the receive window is at least 128, as in ikcp).
    #[arg(long, default_value_t = 128)]
    window: u32,
    /// Messages sent but not yet echoed, at most (1 measures pure round trips).
    #[arg(long, default_value_t = 8)]
    inflight: u32,
    /// Stream mode (the server must use it too): bytes are verified as one stream.
    #[arg(long)]
    stream: bool,
    /// Give up after this many seconds in all.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Use the reference's timing (flush on the interval tick) instead of flushing
    /// each send and each batch of input (the ACKs it owes) at once.
    #[arg(long)]
    no_flush: bool,
    /// One recv_from/send_to per datagram instead of recvmmsg/sendmmsg.
    #[arg(long)]
    portable: bool,
}

/// The content of message `index`: its index, then a pattern that depends on both the
/// index and the position, so a shifted, swapped or corrupted byte shows.
fn message(index: u32, size: usize) -> Vec<u8> {
    let mut m: Vec<u8> = (0..size)
        .map(|j| (index as usize * 31 + j * 7 + 3) as u8)
        .collect();
    let tag = index.to_le_bytes();
    let n = size.min(4);
    m[..n].copy_from_slice(&tag[..n]);
    m
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank]
}

fn run(args: &Args) -> anyhow::Result<()> {
    if args.count == 0 || args.inflight == 0 {
        bail!("--count and --inflight must be at least 1");
    }
    if !(1..=65_535).contains(&args.window) {
        bail!("--window must be 1..=65535 segments");
    }
    if args.size == 0 && args.stream {
        bail!("--size must be at least 1 in stream mode");
    }
    let mut config = ClientConfig::new(args.preset);
    config.engine.stream = args.stream;
    config.engine.snd_wnd = args.window;
    config.engine.rcv_wnd = args.window.max(128);
    config.flush_on_send = !args.no_flush;
    config.flush_on_input = !args.no_flush;
    if args.portable {
        config.io = IoBackend::Portable;
    }
    let mut client = KcpClient::connect(args.server, config).context("connecting")?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);

    let mut sent_at = Vec::with_capacity(args.count as usize);
    let mut latencies = Vec::with_capacity(args.count as usize);
    let mut next_send = 0u32;
    let mut next_recv = 0u32;
    // Stream mode: bytes received of the message `next_recv`.
    let mut partial: Vec<u8> = Vec::new();
    let started = Instant::now();

    while next_recv < args.count {
        while next_send < args.count && next_send - next_recv < args.inflight {
            client
                .send(&message(next_send, args.size))
                .with_context(|| format!("sending message {next_send}"))?;
            sent_at.push(Instant::now());
            next_send += 1;
        }
        let now = Instant::now();
        if now >= deadline {
            bail!(
                "timeout: {next_recv} of {} echoed after {} s",
                args.count,
                args.timeout
            );
        }
        let Some(chunk) = client
            .recv(deadline - now)
            .with_context(|| format!("waiting for echo {next_recv}"))?
        else {
            continue;
        };
        let arrived = Instant::now();
        if args.stream {
            let mut chunk = &chunk[..];
            while !chunk.is_empty() {
                let need = args.size - partial.len();
                let take = need.min(chunk.len());
                partial.extend_from_slice(&chunk[..take]);
                chunk = &chunk[take..];
                if partial.len() == args.size {
                    if next_recv >= next_send || partial != message(next_recv, args.size) {
                        bail!("stream corrupted at message {next_recv}");
                    }
                    latencies.push(arrived - sent_at[next_recv as usize]);
                    next_recv += 1;
                    partial.clear();
                }
            }
        } else {
            if next_recv >= next_send {
                bail!("unexpected extra message of {} bytes", chunk.len());
            }
            if chunk.len() != args.size {
                bail!(
                    "message {next_recv}: boundary broken, {} bytes instead of {}",
                    chunk.len(),
                    args.size
                );
            }
            if chunk[..] != message(next_recv, args.size)[..] {
                bail!("message {next_recv}: content corrupted or out of order");
            }
            latencies.push(arrived - sent_at[next_recv as usize]);
            next_recv += 1;
        }
    }
    let elapsed = started.elapsed();
    // Acknowledge the last echoes before exiting, so the server does not retransmit
    // them to a closed port.
    client
        .wait_acknowledged(Duration::from_secs(1))
        .context("flushing the last acknowledgements")?;
    latencies.sort();
    let stats = client.stats();
    println!(
        "ok: {} messages x {} bytes echoed and verified in {:.3} s ({:.0} msg/s), p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, retransmits {}, conv {:#010x}",
        args.count,
        args.size,
        elapsed.as_secs_f64(),
        f64::from(args.count) / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        stats.engine.retransmits_timeout + stats.engine.retransmits_fast,
        client.conv(),
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_client: {e:#}");
            ExitCode::FAILURE
        }
    }
}
