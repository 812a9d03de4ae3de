//! The C reference's own latency test (`shared/reference-scenario.md`), run for our
//! engine and for ikcp.c on the same 20 seeds: average and maximum RTT must be equal
//! (and are printed side by side; `cargo test -- --nocapture` shows the table).

use kcp_core::Kcp;
use kcp_core::sim::reference::{self, ReferenceMode, ReferenceResult};
use kcp_ref::CKcp;

const SEEDS: u64 = 20;
const CONV: u32 = 0x1122_3344;
const CLOCK_START: u32 = u32::MAX - 5_000;

fn c_engine(mode: ReferenceMode, first: bool) -> CKcp {
    CKcp::for_reference_scenario(CONV, mode, first)
}

fn ours(mode: ReferenceMode, first: bool) -> Kcp {
    let mut config = mode.config(first);
    config.max_rto = kcp_core::Config::MAX_RTO_LIMIT; // the reference does not cap it
    Kcp::new(CONV, config).unwrap()
}

fn mean(v: &[u32]) -> f64 {
    v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64
}

fn median(v: &[u32]) -> u32 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

#[test]
fn our_rtts_equal_the_c_engine_on_every_seed() {
    println!(
        "\nreference scenario, {SEEDS} seeds, 5% bag loss each way, 30-61 ms FIFO delay\n\
         mode     | avg rtt mean/median (ours | C)  | max rtt mean/median (ours | C)  | tx mean (ours | C)"
    );
    for mode in ReferenceMode::ALL {
        let (mut ours_avg, mut ours_max, mut c_avg, mut c_max) = (vec![], vec![], vec![], vec![]);
        let (mut ours_tx, mut c_tx) = (0u64, 0u64);
        for seed in 0..SEEDS {
            let mine: ReferenceResult = reference::run(
                &mut ours(mode, true),
                &mut ours(mode, false),
                5,
                seed,
                CLOCK_START,
            )
            .unwrap();
            let theirs = reference::run(
                &mut c_engine(mode, true),
                &mut c_engine(mode, false),
                5,
                seed,
                CLOCK_START,
            )
            .unwrap();
            assert_eq!(
                (mine.avg_rtt, mine.max_rtt, mine.tx),
                (theirs.avg_rtt, theirs.max_rtt, theirs.tx),
                "{} seed {seed}",
                mode.name()
            );
            assert_eq!(
                mine.rtts,
                theirs.rtts,
                "{} seed {seed}: per-message RTTs",
                mode.name()
            );
            ours_avg.push(mine.avg_rtt);
            ours_max.push(mine.max_rtt);
            ours_tx += mine.tx;
            c_avg.push(theirs.avg_rtt);
            c_max.push(theirs.max_rtt);
            c_tx += theirs.tx;
        }
        println!(
            "{:8} | {:6.1}/{:4} | {:6.1}/{:4}   | {:6.1}/{:4} | {:6.1}/{:4}   | {:6} | {:6}",
            mode.name(),
            mean(&ours_avg),
            median(&ours_avg),
            mean(&c_avg),
            median(&c_avg),
            mean(&ours_max),
            median(&ours_max),
            mean(&c_max),
            median(&c_max),
            ours_tx / SEEDS,
            c_tx / SEEDS,
        );
    }
}
