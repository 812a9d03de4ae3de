//! The engine group: throughput of a whole transfer through `kcp_core::sim` for ours,
//! the C reference and the `kcp` crate, over message size × window × loss (fast
//! preset), and the per-operation micro benches.
//!
//! ```text
//! cargo bench -p benches --bench engine                      # everything, ~10 min on 2 cores
//! cargo bench -p benches --bench engine -- 'throughput/1024'  # a regex filter
//! cargo bench -p benches --bench engine -- 'ops/'             # only the per-operation costs
//! ```
//!
//! Criterion reports each implementation's time per transfer and its throughput; the
//! ratios between them in one run are the result (see `BENCHMARKS.md`, produced by
//! `cargo run -p benches --release --bin report`, for them as tables).

use std::hint::black_box;
use std::time::Duration;

use benches::engine::{CRef, Engine, KcpCrate, Ours, OursCopying};
use benches::micro::{AckInput, SendFlush, idle};
use benches::transfer::Transfer;
use criterion::{
    BatchSize, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group,
    criterion_main, measurement::WallTime,
};

const SIZES: [usize; 3] = [64, 1024, 16 * 1024];
const WINDOWS: [u16; 4] = [32, 128, 1024, 4096];
const LOSSES: [f64; 3] = [0.0, 0.01, 0.10];

fn transfer<E: Engine>(group: &mut BenchmarkGroup<'_, WallTime>, t: &Transfer, cell: &str) {
    group.bench_with_input(BenchmarkId::new(E::NAME, cell), t, |b, t| {
        b.iter(|| black_box(t.run::<E>().expect("transfer completes")));
    });
}

fn throughput(c: &mut Criterion) {
    for size in SIZES {
        let mut group = c.benchmark_group(format!("throughput/{size}"));
        // One iteration is a whole transfer (milliseconds to a few hundred): few
        // samples of one iteration each keep the full run within minutes.
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1));
        for window in WINDOWS {
            for loss in LOSSES {
                let t = Transfer::cell(size, window, loss);
                group.throughput(Throughput::Bytes(t.payload_bytes()));
                let cell = format!("wnd{window}/loss{}", loss * 100.0);
                transfer::<Ours>(&mut group, &t, &cell);
                transfer::<CRef>(&mut group, &t, &cell);
                transfer::<KcpCrate>(&mut group, &t, &cell);
                if size == 1024 {
                    transfer::<OursCopying>(&mut group, &t, &cell);
                }
            }
        }
        group.finish();
    }
}

fn ack_input<E: Engine>(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.bench_function(BenchmarkId::new("input_ack", E::NAME), |b| {
        b.iter_batched_ref(AckInput::<E>::new, AckInput::run, BatchSize::SmallInput);
    });
}

fn send_flush<E: Engine>(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.bench_function(BenchmarkId::new("send_flush", E::NAME), |b| {
        b.iter_batched_ref(SendFlush::<E>::new, SendFlush::run, BatchSize::SmallInput);
    });
}

fn check_idle<E: Engine>(group: &mut BenchmarkGroup<'_, WallTime>) {
    let (engine, now) = idle::<E>();
    group.bench_function(BenchmarkId::new("check_idle", E::NAME), |b| {
        b.iter(|| black_box(engine.check(black_box(now))));
    });
}

fn ops(c: &mut Criterion) {
    let mut group = c.benchmark_group("ops");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    ack_input::<Ours>(&mut group);
    ack_input::<CRef>(&mut group);
    ack_input::<KcpCrate>(&mut group);
    send_flush::<Ours>(&mut group);
    send_flush::<CRef>(&mut group);
    send_flush::<KcpCrate>(&mut group);
    check_idle::<Ours>(&mut group);
    check_idle::<CRef>(&mut group);
    check_idle::<KcpCrate>(&mut group);
    group.finish();
}

criterion_group!(engine, ops, throughput);
criterion_main!(engine);
