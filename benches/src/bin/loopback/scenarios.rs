//! The measured workloads. Each starts a fresh server process, drives it from this
//! process, and reports what the clients saw plus the server's CPU use.

use std::net::UdpSocket;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kcp_core::Sn;
use kcp_core::segment::{Command, Header};

use crate::Impl;
use crate::child::ServerProcess;
use crate::clients::{EchoClient, connect};
use crate::servers::{BULK_WINDOW, KCP_WINDOW};

/// Round trips as the clients saw them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Latencies {
    /// Completed round trips per second, all clients together.
    pub(crate) per_sec: f64,
    /// Median round trip.
    pub(crate) p50: Duration,
    /// 99th percentile round trip.
    pub(crate) p99: Duration,
    /// Server CPU over the run, as a fraction of one core.
    pub(crate) server_cpu: f64,
    /// Clients that stopped early: an echo missing for 5 s, or wrong.
    pub(crate) failed_clients: usize,
}

/// Bulk transfer as the client saw it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Throughput {
    /// Echoed payload bytes per second (each byte crossed loopback twice).
    pub(crate) bytes_per_sec: f64,
    /// Server CPU over the run, as a fraction of one core.
    pub(crate) server_cpu: f64,
}

/// A 100-byte-ish message whose content depends on `i`.
pub(crate) fn message(i: usize, size: usize) -> Vec<u8> {
    (0..size).map(|j| (i * 31 + j * 7) as u8).collect()
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// CPU used by `server` while `run` runs, as a fraction of one core.
pub(crate) fn measure_cpu<T>(
    server: &ServerProcess,
    run: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, f64)> {
    let (cpu0, t0) = (server.cpu_time()?, Instant::now());
    let out = run()?;
    let cpu = (server.cpu_time()? - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
    Ok((out, cpu))
}

fn summarise(run: Run, elapsed: Duration, server_cpu: f64) -> Latencies {
    let mut rtts = run.rtts;
    rtts.sort_unstable();
    Latencies {
        per_sec: rtts.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&rtts, 0.50),
        p99: percentile(&rtts, 0.99),
        server_cpu,
        failed_clients: run.failed,
    }
}

/// Round trips measured, and how many clients stopped at a failed one.
#[derive(Default)]
struct Run {
    rtts: Vec<Duration>,
    failed: usize,
}

/// Round trips of `client`, at most `rate` per second (`None`: back to back), for
/// `duration`, after a short warm-up; a client stops at its first failed round trip.
fn round_trips(
    client: &mut dyn EchoClient,
    size: usize,
    rate: Option<f64>,
    duration: Duration,
) -> Run {
    let mut rtts = Vec::new();
    let failed = measure_round_trips(client, size, rate, duration, &mut rtts).is_err();
    Run {
        rtts,
        failed: usize::from(failed),
    }
}

fn measure_round_trips(
    client: &mut dyn EchoClient,
    size: usize,
    rate: Option<f64>,
    duration: Duration,
    rtts: &mut Vec<Duration>,
) -> anyhow::Result<()> {
    // Back to back, warm up for a moment; paced clients (many at once) just open.
    let warm_up = if rate.is_some() { 1 } else { 50 };
    for i in 0..warm_up {
        client.round_trip(&message(i, size))?;
    }
    let start = Instant::now();
    let mut i = 0usize;
    while start.elapsed() < duration {
        if let Some(rate) = rate {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
        }
        let m = message(i, size);
        let sent = Instant::now();
        client.round_trip(&m)?;
        rtts.push(sent.elapsed());
        i += 1;
    }
    Ok(())
}

/// One client, `size`-byte messages, at `rate` per second or back to back.
pub(crate) fn one_client(
    which: Impl,
    size: usize,
    rate: Option<f64>,
    duration: Duration,
) -> anyhow::Result<Latencies> {
    one_client_of(which, which, size, rate, duration)
}

/// [`one_client`] with `client`'s client against `server`'s server (two that speak
/// the same wire).
pub(crate) fn one_client_of(
    client: Impl,
    server: Impl,
    size: usize,
    rate: Option<f64>,
    duration: Duration,
) -> anyhow::Result<Latencies> {
    let server = ServerProcess::start(server, KCP_WINDOW)?;
    let mut client = connect(client, server.addr, KCP_WINDOW)?;
    let start = Instant::now();
    let (run, cpu) = measure_cpu(&server, || {
        Ok(round_trips(client.as_mut(), size, rate, duration))
    })?;
    Ok(summarise(run, start.elapsed(), cpu))
}

/// `clients` clients, each on its own thread, each at `rate` round trips per second.
pub(crate) fn many_clients(
    which: Impl,
    clients: usize,
    size: usize,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<Latencies> {
    let server = ServerProcess::start(which, KCP_WINDOW)?;
    let addr = server.addr;
    let ready = Arc::new(Barrier::new(clients + 1));
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let ready = Arc::clone(&ready);
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || -> Run {
                    let client = connect(which, addr, KCP_WINDOW);
                    ready.wait();
                    let Ok(mut client) = client else {
                        return Run {
                            rtts: Vec::new(),
                            failed: 1,
                        };
                    };
                    // Spread the clients' sending instants over one period.
                    thread::sleep(Duration::from_secs_f64(c as f64 / clients as f64 / rate));
                    round_trips(client.as_mut(), size, Some(rate), duration)
                })
                .context("spawning a client thread")
        })
        .collect::<anyhow::Result<_>>()?;
    ready.wait();
    let start = Instant::now();
    let (run, cpu) = measure_cpu(&server, || {
        let mut all = Run::default();
        for w in workers {
            let run = w.join().map_err(|_| anyhow::anyhow!("client panicked"))?;
            all.rtts.extend(run.rtts);
            all.failed += run.failed;
        }
        Ok(all)
    })?;
    Ok(summarise(run, start.elapsed(), cpu))
}

/// One client sending `total` bytes in `size`-byte messages with up to `inflight`
/// awaiting their echo, every echo checked.
pub(crate) fn bulk(
    which: Impl,
    total: usize,
    size: usize,
    inflight: usize,
) -> anyhow::Result<Throughput> {
    let server = ServerProcess::start(which, BULK_WINDOW)?;
    let mut client = connect(which, server.addr, BULK_WINDOW)?;
    let count = total.div_ceil(size);
    let messages: Vec<Vec<u8>> = (0..inflight.min(count)).map(|i| message(i, size)).collect();
    let start = Instant::now();
    let ((), cpu) = measure_cpu(&server, || {
        let (mut sent, mut received) = (0, 0);
        while received < count {
            while sent < count && sent - received < inflight {
                client.send(&messages[sent % messages.len()])?;
                sent += 1;
            }
            let echo = client.recv()?;
            anyhow::ensure!(
                echo == messages[received % messages.len()],
                "bulk echo differs"
            );
            received += 1;
        }
        Ok(())
    })?;
    Ok(Throughput {
        bytes_per_sec: (count * size) as f64 / start.elapsed().as_secs_f64(),
        server_cpu: cpu,
    })
}

/// Server CPU (fraction of one core) with `sessions` open and idle for `window`:
/// each session is opened by its own socket with one empty data segment, then nothing.
/// A secure session needs its handshake, so each is a real client instead, connected
/// one after another and then left alone (not driven: it answers nothing).
pub(crate) fn idle_sessions(which: Impl, sessions: usize, window: Duration) -> anyhow::Result<f64> {
    let server = ServerProcess::start(which, KCP_WINDOW)?;
    let mut sockets = Vec::with_capacity(sessions);
    let mut clients = Vec::new();
    if which == Impl::KcpNetSecure {
        for _ in 0..sessions {
            clients.push(connect(which, server.addr, KCP_WINDOW)?);
        }
    } else {
        for i in 0..sessions {
            let socket = UdpSocket::bind("127.0.0.1:0").context("one socket per idle session")?;
            let header = Header::new(i as u32 + 1, Command::Push, Sn::new(0));
            socket.send_to(&header.to_bytes(), server.addr)?;
            sockets.push(socket);
            if i % 500 == 499 {
                thread::sleep(Duration::from_millis(5)); // do not overrun the socket buffer
            }
        }
    }
    thread::sleep(Duration::from_secs(1)); // let every session open and settle
    let ((), cpu) = measure_cpu(&server, || {
        thread::sleep(window);
        Ok(())
    })?;
    drop(sockets);
    drop(clients);
    Ok(cpu)
}
