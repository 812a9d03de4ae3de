//! Runs the benchmark report and writes `BENCHMARKS.md` at the workspace root, with its
//! SVG plots under `docs/bench/`.
//!
//! ```text
//! cargo run -p benches --release --bin report                 # full run, ~3 minutes
//! cargo run -p benches --release --bin report -- --quick      # rough pass, ~1 minute
//! cargo run -p benches --release --bin report -- --budget 2.5 # seconds per throughput cell
//! ```

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use benches::engine::{CRef, Engine, KcpCrate, Ours, OursCopying};
use benches::latency;
use benches::micro::{AckInput, SendFlush, idle};
use benches::report::machine::Machine;
use benches::report::markdown::{self, Plots};
use benches::report::timing::{self, Case};
use benches::report::{OpCost, Results, ThroughputCell, Trio, plot};
use benches::transfer::Transfer;

const SIZES: [usize; 3] = [64, 1024, 16 * 1024];
const WINDOWS: [u16; 4] = [32, 128, 1024, 4096];
const LOSSES: [f64; 3] = [0.0, 0.01, 0.10];

/// The report's options.
#[derive(clap::Parser, Debug)]
#[command(
    about = "Engine benchmarks against ikcp.c and the kcp crate: writes BENCHMARKS.md \
             (with the loopback tables copied from docs/bench/loopback.md) and the SVG \
             plots under docs/bench/"
)]
struct Args {
    /// A rough pass: 0.3 s per throughput cell (same as `--budget 0.3`).
    #[arg(long, conflicts_with = "budget")]
    quick: bool,
    /// Seconds of measurement per throughput cell.
    #[arg(long, default_value_t = 1.5, value_parser = positive_seconds)]
    budget: f64,
}

fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 => Ok(s),
        _ => Err(format!("{text:?} is not a positive number of seconds")),
    }
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let budget = if args.quick { 0.3 } else { args.budget };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches/ lives in the workspace")
        .to_path_buf();
    let started = Instant::now();
    let machine = Machine::detect();
    eprintln!("machine: {machine:?}");

    let throughput = throughput(Duration::from_secs_f64(budget));
    let ops = ops(Duration::from_secs_f64(budget.min(1.0)));
    eprintln!("latency: reference scenario, {} seeds", latency::SEEDS);
    let reference = latency::reference_table();
    eprintln!("latency: loss sweep");
    let sweep = latency::loss_sweep();

    let results = Results {
        machine,
        budget_per_cell: budget,
        took: started.elapsed().as_secs_f64(),
        throughput,
        ops,
        reference,
        sweep,
    };
    write(&root, &results);
}

fn transfer_case<'a, E: Engine>(t: &'a Transfer) -> Case<'a> {
    Box::new(move || {
        let start = Instant::now();
        let stats = t
            .run::<E>()
            .unwrap_or_else(|e| panic!("{}: {t:?}: {e}", E::NAME));
        let elapsed = start.elapsed();
        black_box(stats);
        (elapsed, 1)
    })
}

/// Measurements in the order ours, C, `kcp` crate, and optionally ours (copying API).
fn trio(m: &[timing::Measured]) -> Trio {
    Trio {
        ours: m[0],
        c: m[1],
        kcp: m[2],
        ours_copying: m.get(3).copied(),
    }
}

fn throughput(budget: Duration) -> Vec<ThroughputCell> {
    let mut cells = Vec::new();
    for size in SIZES {
        for window in WINDOWS {
            for loss in LOSSES {
                let transfer = Transfer::cell(size, window, loss);
                let mut cases = vec![
                    transfer_case::<Ours>(&transfer),
                    transfer_case::<CRef>(&transfer),
                    transfer_case::<KcpCrate>(&transfer),
                    transfer_case::<OursCopying>(&transfer),
                ];
                let time = trio(&timing::interleaved(budget, 7, &mut cases));
                drop(cases);
                let cell = ThroughputCell { transfer, time };
                eprintln!(
                    "throughput {size:>5} B  wnd {window:>4}  loss {:>4.1}%  ours/C {:5.2}  kcp/C {:5.2}  copying/C {:5.2}  ({} samples)",
                    loss * 100.0,
                    time.ours_vs_c(),
                    time.kcp_vs_c(),
                    time.ours_copying_vs_c().unwrap_or(f64::NAN),
                    time.ours.samples
                );
                cells.push(cell);
            }
        }
    }
    cells
}

fn ack_case<'a, E: Engine + 'a>() -> Case<'a> {
    Box::new(|| timing::batched(200, AckInput::<E>::new, AckInput::run))
}

fn send_flush_case<'a, E: Engine + 'a>() -> Case<'a> {
    Box::new(|| timing::batched(1000, SendFlush::<E>::new, SendFlush::run))
}

fn check_case<'a, E: Engine + 'a>() -> Case<'a> {
    let (engine, now) = idle::<E>();
    Box::new(move || {
        const CALLS: u64 = 10_000;
        let start = Instant::now();
        for _ in 0..CALLS {
            black_box(engine.check(black_box(now)));
        }
        (start.elapsed(), CALLS)
    })
}

fn ops(budget: Duration) -> Vec<OpCost> {
    let measure = |name: &'static str, mut cases: Vec<Case<'_>>| {
        let time = trio(&timing::interleaved(budget, 5, &mut cases));
        eprintln!(
            "op {name}: ours/C {:.2}  kcp/C {:.2}",
            time.ours_vs_c(),
            time.kcp_vs_c()
        );
        OpCost { name, time }
    };
    vec![
        measure(
            "`input` of an ACK-only datagram",
            vec![
                ack_case::<Ours>(),
                ack_case::<CRef>(),
                ack_case::<KcpCrate>(),
            ],
        ),
        measure(
            "`send` + `flush` of one segment",
            vec![
                send_flush_case::<Ours>(),
                send_flush_case::<CRef>(),
                send_flush_case::<KcpCrate>(),
            ],
        ),
        measure(
            "`check` on an idle engine",
            vec![
                check_case::<Ours>(),
                check_case::<CRef>(),
                check_case::<KcpCrate>(),
            ],
        ),
    ]
}

fn write(root: &Path, results: &Results) {
    let plot_rel = "docs/bench";
    let plot_dir: PathBuf = root.join(plot_rel);
    std::fs::create_dir_all(&plot_dir).expect("create docs/bench");
    let mut plots = Plots::default();
    for size in SIZES {
        for loss in LOSSES {
            let file = plot::throughput(&plot_dir, results, size, loss).expect("throughput plot");
            plots.throughput.push((size, loss, file));
        }
    }
    plots.latency.push(
        plot::latency(
            &plot_dir,
            &results.sweep,
            "mean",
            "Mean message RTT against loss (reference scenario, ours)",
            |s| s.avg_rtt,
        )
        .expect("latency plot"),
    );
    plots.latency.push(
        plot::latency(
            &plot_dir,
            &results.sweep,
            "p99",
            "99th-percentile message RTT against loss (reference scenario, ours)",
            |s| f64::from(s.p99),
        )
        .expect("latency plot"),
    );
    let loopback = std::fs::read_to_string(plot_dir.join("loopback.md")).ok();
    let page = markdown::page(results, plot_rel, &plots, loopback.as_deref());
    let out = root.join("BENCHMARKS.md");
    std::fs::write(&out, page).expect("write BENCHMARKS.md");
    eprintln!("wrote {} and {}", out.display(), plot_dir.display());
}
