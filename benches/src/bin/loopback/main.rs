//! Loopback benchmarks of `kcp-net` (raw and in its secure wire mode) and `kcp-tokio` beside
//! `tokio_kcp`, quinn (QUIC), plain TCP and raw UDP, all in the same run on 127.0.0.1,
//! reported as ratios.
//!
//! ```sh
//! cargo run -p benches --release --bin loopback            # the full run, ~2 minutes
//! cargo run -p benches --release --bin loopback -- --quick # a smoke run, seconds
//! ```
//!
//! Every server runs in a child process of this binary (`loopback serve IMPL`), so the
//! CPU time read from `/proc` is the server's alone. Clients run here, one thread each.
//! The KCP implementations use the same settings: `nodelay(1, 10, 2, 1)`, window 1024,
//! MTU 1400, flush on write and immediate ACKs.

mod child;
mod clients;
mod handshake;
mod pairs;
mod quinn_peer;
mod scenarios;
mod secure_peer;
mod servers;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use scenarios::{Latencies, Throughput};

/// An implementation under measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Impl {
    /// This workspace's `kcp-net`.
    KcpNet,
    /// `kcp-net` in its secure wire mode (Noise handshake, sealed datagrams).
    KcpNetSecure,
    /// This workspace's `kcp-tokio`.
    KcpTokio,
    /// The `tokio_kcp` crate.
    TokioKcp,
    /// Raw UDP echo (no reliability): the floor.
    Udp,
    /// TCP echo with `TCP_NODELAY`.
    Tcp,
    /// quinn: QUIC with TLS 1.3, messages on one stream.
    Quinn,
}

impl Impl {
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::KcpNet => "kcp-net",
            Self::KcpNetSecure => "kcp-net-secure",
            Self::KcpTokio => "kcp-tokio",
            Self::TokioKcp => "tokio-kcp",
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Quinn => "quinn",
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    about = "Loopback echo benchmarks: kcp-net and kcp-tokio vs tokio_kcp, quinn, TCP and raw UDP"
)]
struct Args {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Short runs and small counts: checks that everything works, measures little.
    #[arg(long)]
    quick: bool,
    /// Also write the markdown tables to this file (only for a full run, so a
    /// committed report always has every section).
    #[arg(long, conflicts_with = "only")]
    markdown: Option<std::path::PathBuf>,
    /// Bytes moved by the bulk section, in MiB (default 256, 4 with `--quick`).
    #[arg(long, conflicts_with = "markdown")]
    bulk_mib: Option<usize>,
    /// Messages of the bulk section awaiting their echo at once.
    #[arg(long, default_value_t = 64)]
    bulk_inflight: usize,
    /// Run only these sections (repeat the flag or separate with commas).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Section>,
    /// The transport cipher kcp-net-secure's clients ask for (default: the faster on
    /// this CPU, as a real client chooses).
    #[arg(long, value_enum)]
    cipher: Option<secure_peer::CipherArg>,
    /// kcp-net-secure's datagram size in bytes, seal included (default: raw kcp-net's
    /// 1400, so its KCP segments are 31 bytes smaller; 1431 gives it raw kcp-net's
    /// segments, still within quinn's 1452-byte datagrams on loopback).
    #[arg(long, value_parser = clap::value_parser!(u16).range(128..))]
    secure_mtu: Option<u16>,
    /// Instead of the report: the paced scenario for these CLIENT:SERVER pairs
    /// (e.g. `kcp-tokio:kcp-net`), to tell which end a latency difference comes from.
    /// kcp-net and kcp-tokio mix (raw KCP); others pair only with themselves.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["markdown", "only"])]
    pair: Vec<pairs::Pair>,
}

/// A section of the report: one scenario measured for every implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Section {
    /// One client, 100 B messages back to back.
    BackToBack,
    /// One client, 100 B messages at 1000/s.
    Paced,
    /// Many clients at 10 messages/s each.
    Many,
    /// One session moving 16 KiB messages.
    Bulk,
    /// Idle sessions.
    Idle,
    /// Connections accepted per second.
    Handshake,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run one echo server until standard input closes (used by the harness itself).
    Serve {
        /// Which server.
        which: Impl,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// KCP send and receive window, in segments (KCP servers only).
        #[arg(long, default_value_t = servers::KCP_WINDOW)]
        window: u16,
    },
}

/// Sizes of the run.
struct Plan {
    duration: Duration,
    clients: usize,
    client_rate: f64,
    bulk_bytes: usize,
    bulk_inflight: usize,
    bulk_rounds: usize,
    latency_rounds: usize,
    idle_sessions: usize,
    idle_window: Duration,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                duration: Duration::from_millis(500),
                clients: 20,
                client_rate: 10.0,
                bulk_bytes: 4 << 20,
                bulk_inflight: 64,
                bulk_rounds: 1,
                latency_rounds: 1,
                idle_sessions: 500,
                idle_window: Duration::from_secs(1),
            }
        } else {
            Self {
                duration: Duration::from_secs(3),
                clients: 1_000,
                client_rate: 10.0,
                bulk_bytes: 256 << 20,
                bulk_inflight: 64,
                bulk_rounds: 5,
                latency_rounds: 7,
                idle_sessions: 10_000,
                idle_window: Duration::from_secs(10),
            }
        }
    }
}

const ALL: [Impl; 7] = [
    Impl::KcpNet,
    Impl::KcpNetSecure,
    Impl::KcpTokio,
    Impl::TokioKcp,
    Impl::Tcp,
    Impl::Udp,
    Impl::Quinn,
];

/// The result of `which` in `rows`.
fn of<T>(rows: &[(Impl, T)], which: Impl) -> &T {
    &rows
        .iter()
        .find(|(w, _)| *w == which)
        .expect("every implementation measured")
        .1
}

/// The median of `values` (the upper one of an even count); 0 if there are none.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn ratio(ours: f64, theirs: f64) -> String {
    if theirs > 0.0 {
        format!("{:.2}×", ours / theirs)
    } else {
        "–".into()
    }
}

/// A latency table: one row per implementation plus kcp-net's ratios against each.
fn latency_table(title: &str, rows: &[(Impl, Latencies)], out: &mut String) {
    let _ = writeln!(out, "\n### {title}\n");
    let _ = writeln!(
        out,
        "| impl | round trips/s | p50 ms | p99 ms | server CPU | failed clients | kcp-net p50 ratio | kcp-net p99 ratio |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    let ours = &rows[0].1;
    for (which, l) in rows {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {} | {:.1}% | {} | {} | {} |",
            which.name(),
            l.per_sec,
            ms(l.p50),
            ms(l.p99),
            l.server_cpu * 100.0,
            l.failed_clients,
            ratio(ours.p50.as_secs_f64(), l.p50.as_secs_f64()),
            ratio(ours.p99.as_secs_f64(), l.p99.as_secs_f64()),
        );
    }
}

/// The issue's loopback targets, one row each: what, measured, met.
#[derive(Default)]
struct Verdicts(Vec<(String, String, bool)>);

impl Verdicts {
    fn add(&mut self, target: &str, measured: String, met: bool) {
        self.0.push((target.to_owned(), measured, met));
    }

    fn table(&self, out: &mut String) {
        if self.0.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\n### Targets\n\n| target | measured | met |\n|---|---|---|"
        );
        for (target, measured, met) in &self.0 {
            let met = if *met { "yes" } else { "**no**" };
            let _ = writeln!(out, "| {target} | {measured} | {met} |");
        }
    }
}

fn run(plan: &Plan, only: &[Section]) -> anyhow::Result<String> {
    let wanted = |section| only.is_empty() || only.contains(&section);
    let mut out = String::new();
    let mut sections = String::new();
    let mut verdicts = Verdicts::default();
    let _ = writeln!(
        out,
        "## Loopback: kcp-net (raw and secure), kcp-tokio, tokio_kcp, quinn, TCP and raw UDP\n"
    );
    let _ = writeln!(
        out,
        "Produced by `cargo run -p benches --release --bin loopback -- --markdown \
         docs/bench/loopback.md` on {}. Servers run in child processes (one event loop \
         or runtime thread each); clients run one thread each in the harness. KCP on both \
         sides: `nodelay(1, 10, 2, 1)`, window 1024 (bulk: 4096), flush on write and \
         on input (ACKs leave at once). Server CPU comes from `/proc/PID/stat` (10 ms \
         ticks).\n",
        machine()
    );
    let _ = writeln!(out, "{}\n", quinn_peer::SETTINGS);
    let _ = writeln!(out, "{}\n", secure_peer::settings());
    let _ = writeln!(
        out,
        "Ratios in the tables are kcp-net's figure divided by the row's (below 1× is \
         better for latency). kcp-tokio's targets compare it with kcp-net and tokio_kcp \
         as the median of the ratios of rounds run back to back (kcp-net, kcp-tokio, \
         kcp-net, ...), so that the load of this shared machine falls on both sides of \
         each ratio alike."
    );

    if wanted(Section::BackToBack) {
        back_to_back(plan, &mut sections)?;
    }
    if wanted(Section::Paced) {
        paced(plan, &mut sections, &mut verdicts)?;
    }
    if wanted(Section::Many) {
        many(plan, &mut sections, &mut verdicts)?;
    }
    if wanted(Section::Bulk) {
        bulk(plan, &mut sections, &mut verdicts)?;
    }
    if wanted(Section::Idle) {
        idle(plan, &mut sections, &mut verdicts)?;
    }
    if wanted(Section::Handshake) {
        handshake::section(plan, &mut sections)?;
    }
    verdicts.table(&mut out);
    out.push_str(&sections);
    Ok(out)
}

fn back_to_back(plan: &Plan, out: &mut String) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for which in ALL {
        eprintln!("one client, back to back: {}", which.name());
        rows.push((
            which,
            scenarios::one_client(which, 100, None, plan.duration)?,
        ));
    }
    latency_table("One client, 100 B messages back to back", &rows, out);
    Ok(())
}

fn paced(plan: &Plan, out: &mut String, verdicts: &mut Verdicts) -> anyhow::Result<()> {
    // A p99 over 3 s is a handful of samples, so every implementation runs
    // `latency_rounds` rounds, interleaved, and shows its round of median p99.
    let mut rounds: Vec<(Impl, Vec<Latencies>)> = ALL.iter().map(|&w| (w, Vec::new())).collect();
    for round in 0..plan.latency_rounds {
        for (which, results) in &mut rounds {
            eprintln!("one client, 1000/s: {} (round {})", which.name(), round + 1);
            results.push(scenarios::one_client(
                *which,
                100,
                Some(1_000.0),
                plan.duration,
            )?);
        }
    }
    let rows: Vec<(Impl, Latencies)> = rounds
        .iter()
        .map(|(which, results)| {
            let mut results = results.clone();
            results.sort_by_key(|l| l.p99);
            (*which, results[results.len() / 2].clone())
        })
        .collect();
    latency_table(
        &format!(
            "One client, 100 B messages at 1000/s (round of median p99 of {})",
            plan.latency_rounds
        ),
        &rows,
        out,
    );
    let (ours, tcp) = (of(&rows, Impl::KcpNet), of(&rows, Impl::Tcp));
    let p50 = ours.p50.as_secs_f64() / tcp.p50.as_secs_f64();
    let p99 = ours.p99.as_secs_f64() / tcp.p99.as_secs_f64();
    verdicts.add(
        "one client at 1000/s: p50 ≤ 1.2× TCP",
        format!("{p50:.2}× ({} vs {} ms)", ms(ours.p50), ms(tcp.p50)),
        p50 <= 1.2,
    );
    verdicts.add(
        "one client at 1000/s: p99 ≤ 1.5× TCP",
        format!("{p99:.2}× ({} vs {} ms)", ms(ours.p99), ms(tcp.p99)),
        p99 <= 1.5,
    );
    for (name, quantile) in [
        ("p50", (|l: &Latencies| l.p50) as fn(&Latencies) -> Duration),
        ("p99", |l: &Latencies| l.p99),
    ] {
        let ratios = round_ratios(&rounds, |l| quantile(l).as_secs_f64());
        let ratio = median(ratios.clone());
        verdicts.add(
            &format!("kcp-tokio, one client at 1000/s: {name} ≤ 1.2× kcp-net"),
            format!("{ratio:.2}× (median of rounds: {})", list(&ratios)),
            ratio <= 1.2,
        );
    }
    quinn_peer::paced_verdict(&rows, verdicts);
    secure_peer::paced_verdicts(&rounds, &rows, verdicts);
    Ok(())
}

/// kcp-tokio's figure over kcp-net's, round by round.
fn round_ratios<T>(rounds: &[(Impl, Vec<T>)], figure: impl Fn(&T) -> f64) -> Vec<f64> {
    ratios_between(rounds, Impl::KcpTokio, Impl::KcpNet, figure)
}

/// `over`'s figure divided by `under`'s, round by round.
fn ratios_between<T>(
    rounds: &[(Impl, Vec<T>)],
    over: Impl,
    under: Impl,
    figure: impl Fn(&T) -> f64,
) -> Vec<f64> {
    of(rounds, under)
        .iter()
        .zip(of(rounds, over))
        .map(|(u, o)| figure(o) / figure(u))
        .collect()
}

/// `1.02×, 0.97×, ...`
fn list(ratios: &[f64]) -> String {
    let items: Vec<String> = ratios.iter().map(|r| format!("{r:.2}×")).collect();
    items.join(", ")
}

fn many(plan: &Plan, out: &mut String, verdicts: &mut Verdicts) -> anyhow::Result<()> {
    // kcp-net, its secure mode and kcp-tokio run `latency_rounds` rounds, interleaved,
    // for the ratios of their server CPU; each shows its round of median CPU. The
    // others run once.
    let measure = |which: Impl| {
        eprintln!("{} clients: {}", plan.clients, which.name());
        scenarios::many_clients(
            which,
            plan.clients,
            100,
            plan.client_rate,
            plan.duration * 2,
        )
    };
    let mut rounds: Vec<(Impl, Vec<Latencies>)> = vec![
        (Impl::KcpNet, Vec::new()),
        (Impl::KcpNetSecure, Vec::new()),
        (Impl::KcpTokio, Vec::new()),
    ];
    for _ in 0..plan.latency_rounds {
        for (which, results) in &mut rounds {
            results.push(measure(*which)?);
        }
    }
    let mut rows: Vec<(Impl, Latencies)> = rounds
        .iter()
        .map(|(which, results)| {
            let mut results = results.clone();
            results.sort_by(|a, b| a.server_cpu.total_cmp(&b.server_cpu));
            (*which, results[results.len() / 2].clone())
        })
        .collect();
    for which in [Impl::TokioKcp, Impl::Tcp, Impl::Udp] {
        rows.push((which, measure(which)?));
    }
    latency_table(
        &format!(
            "{} clients, 100 B messages at {}/s each (kcp-net, kcp-net-secure, kcp-tokio: \
             round of median server CPU of {})",
            plan.clients, plan.client_rate, plan.latency_rounds
        ),
        &rows,
        out,
    );
    let cpu = round_ratios(&rounds, |l| l.server_cpu);
    let cpu_ratio = median(cpu.clone());
    let failed: usize = of(&rounds, Impl::KcpTokio)
        .iter()
        .map(|l| l.failed_clients)
        .sum();
    verdicts.add(
        &format!(
            "kcp-tokio, {} clients × {}/s: 0 failed, server CPU ≤ 1.2× kcp-net's",
            plan.clients, plan.client_rate
        ),
        format!(
            "{cpu_ratio:.2}× (median of rounds: {}), {failed} failed in {} rounds",
            list(&cpu),
            plan.latency_rounds
        ),
        cpu_ratio <= 1.2 && failed == 0,
    );
    secure_peer::many_verdict(&rounds, plan.clients, plan.client_rate, verdicts);
    let (ours, tcp) = (of(&rows, Impl::KcpNet), of(&rows, Impl::Tcp));
    let measured = format!(
        "{} ({:.1}% vs {:.1}%)",
        ratio(ours.server_cpu, tcp.server_cpu),
        ours.server_cpu * 100.0,
        tcp.server_cpu * 100.0
    );
    verdicts.add(
        &format!(
            "{} clients × {}/s: server CPU ≤ 1.5× TCP's",
            plan.clients, plan.client_rate
        ),
        measured,
        ours.server_cpu <= 1.5 * tcp.server_cpu,
    );
    verdicts.add(
        &format!(
            "{} clients × {}/s: p99 ≤ 5 ms",
            plan.clients, plan.client_rate
        ),
        format!("{} ms", ms(ours.p99)),
        ours.p99 <= Duration::from_millis(5) && ours.failed_clients == 0,
    );
    Ok(())
}

fn bulk(plan: &Plan, out: &mut String, verdicts: &mut Verdicts) -> anyhow::Result<()> {
    let _ = writeln!(
        out,
        "\n### One session, bulk: 16 KiB messages, {} awaiting their echo, {} MiB, KCP window {}\n",
        plan.bulk_inflight,
        plan.bulk_bytes >> 20,
        servers::BULK_WINDOW
    );
    let _ = writeln!(
        out,
        "kcp-net, kcp-net-secure, kcp-tokio, TCP and quinn run {} rounds, interleaved \
         (kcp-net, kcp-net-secure, kcp-tokio, TCP, quinn, kcp-net, ...), and each row \
         shows the median round and the range; tokio_kcp, far slower, runs one round of \
         a quarter of the bytes.\n",
        plan.bulk_rounds
    );
    let _ = writeln!(
        out,
        "| impl | MB/s echoed (median) | range of rounds | server CPU | kcp-net throughput ratio |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    let (size, inflight) = (16 * 1024, plan.bulk_inflight);
    let mut rounds: Vec<(Impl, Vec<Throughput>)> = vec![
        (Impl::KcpNet, Vec::new()),
        (Impl::KcpNetSecure, Vec::new()),
        (Impl::KcpTokio, Vec::new()),
        (Impl::Tcp, Vec::new()),
        (Impl::Quinn, Vec::new()),
    ];
    for round in 0..plan.bulk_rounds {
        for (which, results) in &mut rounds {
            eprintln!("bulk: {} (round {})", which.name(), round + 1);
            results.push(scenarios::bulk(*which, plan.bulk_bytes, size, inflight)?);
        }
    }
    eprintln!("bulk: {}", Impl::TokioKcp.name());
    let tokio = scenarios::bulk(Impl::TokioKcp, plan.bulk_bytes / 4, size, inflight)?;
    rounds.push((Impl::TokioKcp, vec![tokio]));

    let medians: Vec<(Impl, Throughput, f64, f64)> = rounds
        .iter()
        .map(|(which, results)| {
            let mut results = results.clone();
            results.sort_by(|a, b| a.bytes_per_sec.total_cmp(&b.bytes_per_sec));
            let (low, high) = (
                results[0].bytes_per_sec,
                results[results.len() - 1].bytes_per_sec,
            );
            (*which, results[results.len() / 2].clone(), low, high)
        })
        .collect();
    let ours = medians[0].1.bytes_per_sec;
    for (which, t, low, high) in &medians {
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.0}–{:.0} | {:.1}% | {} |",
            which.name(),
            t.bytes_per_sec / 1e6,
            low / 1e6,
            high / 1e6,
            t.server_cpu * 100.0,
            ratio(ours, t.bytes_per_sec)
        );
    }
    let per_round = round_ratios(&rounds, |t| t.bytes_per_sec);
    let vs_net = median(per_round.clone());
    verdicts.add(
        "kcp-tokio, one session, bulk: throughput ≥ 0.8× kcp-net",
        format!("{vs_net:.2}× (median of rounds: {})", list(&per_round)),
        vs_net >= 0.8,
    );
    let (tokio, tokio_kcp) = (
        median(
            of(&rounds, Impl::KcpTokio)
                .iter()
                .map(|t| t.bytes_per_sec)
                .collect(),
        ),
        of(&rounds, Impl::TokioKcp)[0].bytes_per_sec,
    );
    verdicts.add(
        "kcp-tokio, one session, bulk: throughput ≥ 20× tokio_kcp",
        format!(
            "{:.1}× (medians {:.0} vs {:.1} MB/s)",
            tokio / tokio_kcp,
            tokio / 1e6,
            tokio_kcp / 1e6
        ),
        tokio >= 20.0 * tokio_kcp,
    );
    let tcp = of(&rounds, Impl::Tcp)
        .iter()
        .map(|t| t.bytes_per_sec)
        .collect();
    let tcp = median(tcp);
    verdicts.add(
        "one session, 16 KiB messages, window 4096: throughput ≥ 1.0× TCP",
        format!(
            "{:.2}× (medians {:.0} vs {:.0} MB/s)",
            ours / tcp,
            ours / 1e6,
            tcp / 1e6
        ),
        ours >= tcp,
    );
    // By name: the quinn row's place in `medians` moves as peers are added.
    let median_of = |which| {
        medians
            .iter()
            .find(|(w, ..)| *w == which)
            .map_or(0.0, |(_, t, ..)| t.bytes_per_sec)
    };
    let quinn = median_of(Impl::Quinn);
    quinn_peer::bulk_verdict(ours, quinn, verdicts);
    secure_peer::bulk_verdicts(&rounds, median_of(Impl::KcpNetSecure), quinn, verdicts);
    Ok(())
}

fn idle(plan: &Plan, out: &mut String, verdicts: &mut Verdicts) -> anyhow::Result<()> {
    let _ = writeln!(
        out,
        "\n### {} idle sessions: server CPU over {} s (resolution: one 10 ms tick = {:.1}%)\n",
        plan.idle_sessions,
        plan.idle_window.as_secs(),
        1.0 / plan.idle_window.as_secs_f64()
    );
    let _ = writeln!(out, "| impl | server CPU (% of a core) | kcp-net ratio |");
    let _ = writeln!(out, "|---|---|---|");
    let mut idle = Vec::new();
    for which in [
        Impl::KcpNet,
        Impl::KcpNetSecure,
        Impl::KcpTokio,
        Impl::TokioKcp,
    ] {
        eprintln!("idle sessions: {}", which.name());
        idle.push((
            which,
            scenarios::idle_sessions(which, plan.idle_sessions, plan.idle_window)?,
        ));
    }
    for (which, cpu) in &idle {
        let _ = writeln!(
            out,
            "| {} | {:.2}% | {} |",
            which.name(),
            cpu * 100.0,
            ratio(idle[0].1, *cpu)
        );
    }
    verdicts.add(
        &format!(
            "{} idle sessions: server CPU ≤ 0.5% of a core",
            plan.idle_sessions
        ),
        format!(
            "{:.2}% (tokio_kcp {:.2}%)",
            idle[0].1 * 100.0,
            of(&idle, Impl::TokioKcp) * 100.0
        ),
        idle[0].1 <= 0.005,
    );
    let tokio = *of(&idle, Impl::KcpTokio);
    verdicts.add(
        &format!(
            "kcp-tokio, {} idle sessions: server CPU 0.0–0.5% of a core",
            plan.idle_sessions
        ),
        format!(
            "{:.2}% (kcp-net {:.2}%, tokio_kcp {:.2}%)",
            tokio * 100.0,
            idle[0].1 * 100.0,
            of(&idle, Impl::TokioKcp) * 100.0
        ),
        tokio <= 0.005,
    );
    Ok(())
}

/// Cores and CPU model of this machine, for the report header.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "an unknown CPU".into());
    format!("{cores} cores of {model}")
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Cmd::Serve {
        which,
        listen,
        window,
    }) = args.command
    {
        return servers::serve(which, listen, window);
    }
    if let Some(cipher) = args.cipher {
        secure_peer::choose_cipher(cipher);
    }
    if let Some(mtu) = args.secure_mtu {
        secure_peer::choose_mtu(usize::from(mtu));
    }
    let mut plan = Plan::new(args.quick);
    plan.bulk_inflight = args.bulk_inflight;
    if let Some(mib) = args.bulk_mib {
        plan.bulk_bytes = mib << 20;
    }
    let report = if args.pair.is_empty() {
        run(&plan, &args.only)?
    } else {
        pairs::paced(&plan, &args.pair)?
    };
    println!("{report}");
    if let Some(path) = args.markdown {
        std::fs::write(&path, &report)?;
    }
    Ok(())
}
