//! Handshake cost: how many connections per second a server accepts, each a connect,
//! one echoed message and a close, and how much server CPU each one costs.
//!
//! Client threads in this process repeat that loop through a [`Dialer`]; the server
//! runs in its own process, as in every other scenario. Any implementation that
//! [`clients::connect`] knows can be a row: by default each loop opens a fresh client
//! (its own socket) and drops it. quinn has its own dialer, one endpoint making
//! connection after connection, once with full handshakes and once with TLS
//! resumption.
//!
//! To add a row (kcp-net's secure wire mode, say): give it an [`Impl`] that
//! `clients::connect` and `servers::serve` know, then add one [`Row`] with
//! `Dial::Fresh` to [`ROWS`]. Its client's `Drop` should close the session at once
//! (so the server does not keep it until its idle timeout).

use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use std::fmt::Write as _;

use crate::child::ServerProcess;
use crate::clients;
use crate::quinn_peer::QuinnDialer;
use crate::scenarios::{measure_cpu, message, percentile};
use crate::servers::KCP_WINDOW;
use crate::{Impl, Plan, ms};

/// Client threads dialing at once: enough to keep one server thread busy while each
/// waits for its round trips.
const DIALERS: usize = 4;

/// The payload of the one round trip each connection makes.
const MESSAGE_SIZE: usize = 100;

/// Makes connections to one server, one after the other.
pub(crate) trait Dialer {
    /// Connects, sends `message`, checks its echo and closes.
    fn connect_echo_close(&mut self, message: &[u8]) -> anyhow::Result<()>;
}

/// A fresh client of `which` per connection, dropped to close it.
struct Fresh {
    which: Impl,
    server: SocketAddr,
}

impl Dialer for Fresh {
    fn connect_echo_close(&mut self, message: &[u8]) -> anyhow::Result<()> {
        clients::connect(self.which, self.server, KCP_WINDOW)?.round_trip(message)
    }
}

/// One row of the handshake table.
#[derive(Clone, Copy)]
struct Row {
    label: &'static str,
    which: Impl,
    dial: Dial,
}

/// How a row's client threads make their connections.
#[derive(Clone, Copy)]
enum Dial {
    /// A fresh `clients::connect` per connection ([`Fresh`]).
    Fresh,
    /// One quinn endpoint per thread ([`QuinnDialer`]); `resume` keeps TLS sessions.
    Quinn { resume: bool },
}

impl Row {
    fn dialer(self, server: SocketAddr) -> anyhow::Result<Box<dyn Dialer>> {
        Ok(match self.dial {
            Dial::Fresh => Box::new(Fresh {
                which: self.which,
                server,
            }),
            Dial::Quinn { resume } => Box::new(QuinnDialer::new(server, KCP_WINDOW, resume)?),
        })
    }
}

/// The rows measured, in order. Raw kcp-net has no handshake: its row is what a new
/// session costs the server, the floor the secure kcp-net row (a Noise NK handshake,
/// a cookie round trip only under load, a sealed echo and a sealed close) is compared
/// with. TCP's has no TLS, and its server starts a thread per connection.
const ROWS: [Row; 5] = [
    Row {
        label: "quinn, full handshake",
        which: Impl::Quinn,
        dial: Dial::Quinn { resume: false },
    },
    Row {
        label: "quinn, TLS resumption",
        which: Impl::Quinn,
        dial: Dial::Quinn { resume: true },
    },
    Row {
        label: "kcp-net secure (Noise NK)",
        which: Impl::KcpNetSecure,
        dial: Dial::Fresh,
    },
    Row {
        label: "kcp-net raw (no handshake)",
        which: Impl::KcpNet,
        dial: Dial::Fresh,
    },
    Row {
        label: "tcp (no TLS)",
        which: Impl::Tcp,
        dial: Dial::Fresh,
    },
];

/// Connections as the dialers saw them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Handshakes {
    /// Connections completed per second (connect, round trip, close), all dialers.
    per_sec: f64,
    /// Median time from connect to the echo.
    p50: Duration,
    /// 99th percentile of the same.
    p99: Duration,
    /// Server CPU over the run (closes included), as a fraction of one core.
    server_cpu: f64,
    /// Server CPU time per completed connection.
    cpu_per_connection: Duration,
    /// Connections completed.
    completed: usize,
    /// Dialers that stopped at a failed connection.
    failed: usize,
}

/// `dialers` threads, each repeating connect + round trip + close against one server
/// of `row` for `duration`.
fn measure(row: Row, dialers: usize, duration: Duration) -> anyhow::Result<Handshakes> {
    let server = ServerProcess::start(row.which, KCP_WINDOW)?;
    let addr = server.addr;
    let ready = Arc::new(Barrier::new(dialers + 1));
    let workers: Vec<_> = (0..dialers)
        .map(|_| {
            let ready = Arc::clone(&ready);
            thread::Builder::new()
                .spawn(move || -> (Vec<Duration>, Duration, bool) {
                    let dialer = row.dialer(addr);
                    ready.wait();
                    let Ok(mut dialer) = dialer else {
                        return (Vec::new(), Duration::ZERO, true);
                    };
                    let (message, start) = (message(0, MESSAGE_SIZE), Instant::now());
                    let (mut times, mut failed) = (Vec::new(), false);
                    while start.elapsed() < duration {
                        let t0 = Instant::now();
                        if dialer.connect_echo_close(&message).is_err() {
                            failed = true;
                            break;
                        }
                        times.push(t0.elapsed());
                    }
                    // The dialer's drop (its last closes) is left out of the rate.
                    (times, start.elapsed(), failed)
                })
                .context("spawning a dialer thread")
        })
        .collect::<anyhow::Result<_>>()?;
    ready.wait();
    let start = Instant::now();
    let ((mut times, looped, failed), cpu) = measure_cpu(&server, || {
        let (mut all, mut looped, mut failed) = (Vec::new(), Duration::ZERO, 0);
        for w in workers {
            let (times, elapsed, fail) =
                w.join().map_err(|_| anyhow::anyhow!("dialer panicked"))?;
            all.extend(times);
            looped = looped.max(elapsed);
            failed += usize::from(fail);
        }
        Ok((all, looped, failed))
    })?;
    let cpu_time = cpu * start.elapsed().as_secs_f64();
    times.sort_unstable();
    Ok(Handshakes {
        per_sec: times.len() as f64 / looped.as_secs_f64().max(1e-9),
        p50: percentile(&times, 0.50),
        p99: percentile(&times, 0.99),
        server_cpu: cpu,
        cpu_per_connection: Duration::from_secs_f64(cpu_time / times.len().max(1) as f64),
        completed: times.len(),
        failed,
    })
}

/// The handshake section of the report: every row of [`ROWS`], `rounds` interleaved
/// rounds each, the round of median rate shown.
pub(crate) fn section(plan: &Plan, out: &mut String) -> anyhow::Result<()> {
    let mut rounds: Vec<(Row, Vec<Handshakes>)> = ROWS.iter().map(|&r| (r, Vec::new())).collect();
    for round in 0..plan.latency_rounds {
        for (row, results) in &mut rounds {
            eprintln!("handshakes: {} (round {})", row.label, round + 1);
            results.push(measure(*row, DIALERS, plan.duration)?);
        }
    }
    let _ = writeln!(
        out,
        "\n### Handshake cost: {DIALERS} client threads, each repeating connect + one {MESSAGE_SIZE} B \
         round trip + close for {} s (round of median rate of {})\n",
        plan.duration.as_secs_f64(),
        plan.latency_rounds
    );
    let _ = writeln!(
        out,
        "| client | connections/s | connect to echo p50 ms | p99 ms | server CPU | server CPU per connection | connections | failed dialers |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for (row, mut results) in rounds {
        results.sort_by(|a, b| a.per_sec.total_cmp(&b.per_sec));
        let h = &results[results.len() / 2];
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {} | {:.1}% | {:.0} µs | {} | {} |",
            row.label,
            h.per_sec,
            ms(h.p50),
            ms(h.p99),
            h.server_cpu * 100.0,
            h.cpu_per_connection.as_secs_f64() * 1e6,
            h.completed,
            h.failed
        );
    }
    Ok(())
}
