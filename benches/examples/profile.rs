//! Runs one throughput cell repeatedly with one implementation, for a profiler:
//!
//! ```text
//! cargo build -p benches --release --example profile
//! valgrind --tool=callgrind target/release/examples/profile ours 1024 32 0 20
//! #                                                     engine size window loss% runs
//! ```
//!
//! `engine` is `ours`, `ours-copying`, `c` or `kcp`; `compare` times ours and C
//! interleaved and prints the ratio of their medians.

use std::time::{Duration, Instant};

use benches::engine::{CRef, Engine, KcpCrate, Ours, OursCopying};
use benches::report::timing::{self, Case};
use benches::transfer::Transfer;

fn run<E: Engine>(t: &Transfer, runs: usize) {
    for _ in 0..runs {
        let stats = t.run::<E>().expect("transfer completes");
        std::hint::black_box(stats);
    }
}

fn case<E: Engine>(t: &Transfer) -> Case<'_> {
    Box::new(move || {
        let start = Instant::now();
        std::hint::black_box(t.run::<E>().expect("transfer completes"));
        (start.elapsed(), 1)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_owned());
    let engine = arg(0, "ours");
    let size: usize = arg(1, "1024").parse().expect("size in bytes");
    let window: u16 = arg(2, "32").parse().expect("window in segments");
    let loss: f64 = arg(3, "0").parse::<f64>().expect("loss in percent") / 100.0;
    let runs: usize = arg(4, "10").parse().expect("number of runs");
    let t = Transfer::cell(size, window, loss);
    let start = Instant::now();
    match engine.as_str() {
        "ours" => run::<Ours>(&t, runs),
        "ours-copying" => run::<OursCopying>(&t, runs),
        "compare" => {
            let mut cases = vec![case::<Ours>(&t), case::<CRef>(&t)];
            let m = timing::interleaved(Duration::from_secs(runs as u64), 5, &mut cases);
            println!(
                "ours {:.3} ms, C {:.3} ms: ours/C {:.2}x ({} samples)",
                m[0].seconds_per_op * 1e3,
                m[1].seconds_per_op * 1e3,
                m[1].seconds_per_op / m[0].seconds_per_op,
                m[0].samples
            );
            return;
        }
        "c" => run::<CRef>(&t, runs),
        "kcp" => run::<KcpCrate>(&t, runs),
        other => panic!("unknown engine {other:?}: ours, c or kcp"),
    }
    let per_run = start.elapsed().as_secs_f64() / runs as f64;
    println!(
        "{engine}: {:.3} ms per run, {:.2} GB/s",
        per_run * 1e3,
        t.payload_bytes() as f64 / per_run / 1e9
    );
}
