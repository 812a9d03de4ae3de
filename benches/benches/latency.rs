//! The latency group's CPU side: the wall time of one run of the C reference's latency
//! scenario (`shared/reference-scenario.md`: 1001 echoed messages over a lossy link,
//! about 20 virtual seconds) for ours and for C, per mode. The round-trip times
//! themselves are virtual-time results, exact on every machine: they are in
//! `BENCHMARKS.md` (`cargo run -p benches --release --bin report`), and printed here
//! once before the timings.
//!
//! ```text
//! cargo bench -p benches --bench latency
//! ```

use std::hint::black_box;
use std::time::Duration;

use benches::latency::{self, Setup};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn print_rtts() {
    println!(
        "reference scenario, {} seeds, 5% loss each way (ms):",
        latency::SEEDS
    );
    println!("mode      ours avg   C avg  ours max   C max  identical");
    for c in latency::reference_table() {
        let avg = |s: &Option<latency::Summary>| s.as_ref().map_or(f64::NAN, |s| s.avg_rtt);
        let max = |s: &Option<latency::Summary>| s.as_ref().map_or(f64::NAN, |s| s.max_rtt_mean);
        println!(
            "{:8} {:9.1} {:7.1} {:9.1} {:7.1}  {}",
            c.setup.name(),
            avg(&c.ours),
            avg(&c.c),
            max(&c.ours),
            max(&c.c),
            c.identical
        );
    }
}

fn scenario(c: &mut Criterion) {
    print_rtts();
    let mut group = c.benchmark_group("reference_scenario");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for setup in Setup::ALL {
        group.bench_function(BenchmarkId::new("ours", setup.name()), |b| {
            b.iter(|| black_box(latency::run_ours(setup, 5, 1)));
        });
        group.bench_function(BenchmarkId::new("C ikcp", setup.name()), |b| {
            b.iter(|| black_box(latency::run_c(setup, 5, 1)));
        });
    }
    group.finish();
}

criterion_group!(benches, scenario);
criterion_main!(benches);
