//! Runs one throughput cell repeatedly with one implementation, for a profiler:
//!
//! ```text
//! cargo build -p benches --release --example profile
//! valgrind --tool=callgrind target/release/examples/profile ours 1024 32 0 20
//! #                                                     engine size window loss% runs
//! ```
//!
//! `engine` is `ours`, `ours-copying`, `c`, `kcp` or `floor`; `compare` times ours,
//! C and the floor interleaved and prints the ratio of ours and C's medians.
//!
//! `floor` is the scenario with no protocol at all: every message goes out as one
//! datagram through the same link and is checked on arrival, with no header, no ACK
//! and no retransmission (it only completes without loss). Its time is the harness's
//! share of every implementation's time: a perfect engine would take at least that.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use benches::engine::{CRef, Engine, KcpCrate, Ours, OursCopying, Settings, Wake};
use benches::report::timing::{self, Case};
use benches::transfer::Transfer;
use bytes::Bytes;

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
        "floor" => run::<Floor>(&t, runs),
        "ours-copying" => run::<OursCopying>(&t, runs),
        "compare" => {
            let mut cases = vec![case::<Ours>(&t), case::<CRef>(&t)];
            if loss == 0.0 {
                cases.push(case::<Floor>(&t));
            }
            let m = timing::interleaved(Duration::from_secs(runs as u64), 5, &mut cases);
            let floor = m.get(2).map_or_else(String::new, |f| {
                format!(", floor {:.3} ms", f.seconds_per_op * 1e3)
            });
            println!(
                "ours {:.3} ms, C {:.3} ms{floor}: ours/C {:.2}x ({} samples)",
                m[0].seconds_per_op * 1e3,
                m[1].seconds_per_op * 1e3,
                m[1].seconds_per_op / m[0].seconds_per_op,
                m[0].samples
            );
            return;
        }
        "c" => run::<CRef>(&t, runs),
        "kcp" => run::<KcpCrate>(&t, runs),
        other => panic!("unknown engine {other:?}: ours, ours-copying, c, kcp, floor or compare"),
    }
    let per_run = start.elapsed().as_secs_f64() / runs as f64;
    println!(
        "{engine}: {:.3} ms per run, {:.2} GB/s",
        per_run * 1e3,
        t.payload_bytes() as f64 / per_run / 1e9
    );
}

/// The harness with no protocol: messages leave as they are queued, one datagram
/// each, and arrive as they are delivered.
#[derive(Debug, Default)]
struct Floor {
    queued: VecDeque<Bytes>,
    arrived: VecDeque<Bytes>,
}

impl Engine for Floor {
    const NAME: &'static str = "floor";

    fn new(_conv: u32, _settings: Settings) -> Self {
        Self::default()
    }

    fn send(&mut self, message: Bytes) -> bool {
        self.queued.push_back(message);
        true
    }

    fn input(&mut self, _now: u32, datagram: Bytes) {
        self.arrived.push_back(datagram);
    }

    fn update(&mut self, _now: u32, out: &mut dyn FnMut(&[u8])) {
        for message in self.queued.drain(..) {
            out(&message);
        }
    }

    fn flush(&mut self, now: u32, out: &mut dyn FnMut(&[u8])) {
        self.update(now, out);
    }

    fn check(&self, now: u32) -> Wake {
        Wake::At(now)
    }

    fn recv_with(&mut self, _scratch: &mut [u8], f: impl FnOnce(&[u8])) -> bool {
        self.arrived.pop_front().map(|m| f(&m)).is_some()
    }

    fn wait_send(&self) -> usize {
        self.queued.len()
    }
}
