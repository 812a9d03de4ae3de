//! What KCP's presets buy on a bad link: for loss 0–30% and each preset, the mean and
//! worst message latency and the share of retransmitted segments, measured in the
//! simulator on a virtual clock (the same numbers on every machine).
//!
//! ```text
//! cargo run --release -p kcp-core --features sim --example lossy_link
//! ```

use kcp_core::sim::{LinkConfig, Pair, Side};
use kcp_core::{Config, Kcp};

const MESSAGES: u64 = 500;
const EVERY_MS: u64 = 20;

fn main() {
    let presets = [
        ("default", Config::default()),
        ("normal", Config::normal()),
        ("fast", Config::fast()),
    ];
    println!("{MESSAGES} messages of 200 B every {EVERY_MS} ms, one way 30-50 ms, seed 1");
    println!(
        "{:>6} | {:8} | {:>9} | {:>9} | {:>11}",
        "loss", "preset", "mean ms", "max ms", "retransmit"
    );
    for loss in [0.0, 0.05, 0.10, 0.20, 0.30] {
        for (name, config) in &presets {
            let link = LinkConfig::lossy(loss, 30, 20);
            let mut pair = Pair::new(
                Kcp::new(1, config.clone()).expect("valid preset"),
                Kcp::new(1, config.clone()).expect("valid preset"),
                link.clone(),
                link,
                1,
            );
            for i in 0..MESSAGES {
                pair.schedule_send(i * EVERY_MS, Side::A, vec![i as u8; 200]);
            }
            if let Err(stalled) =
                pair.run_until(3_600_000, |p| p.received(Side::B).len() as u64 == MESSAGES)
            {
                println!("{:>5.0}% | {name:8} | stalled: {stalled}", loss * 100.0);
                continue;
            }
            let latencies: Vec<u64> = pair
                .received(Side::B)
                .iter()
                .filter_map(|m| m.latency())
                .collect();
            let mean = latencies.iter().sum::<u64>() as f64 / latencies.len() as f64;
            let max = latencies.iter().max().copied().unwrap_or(0);
            let s = pair.a.stats();
            let ratio = (s.retransmits_timeout + s.retransmits_fast) as f64
                / s.data_segments_sent.max(1) as f64;
            println!(
                "{:>5.0}% | {name:8} | {mean:9.1} | {max:9} | {:>10.1}%",
                loss * 100.0,
                ratio * 100.0
            );
        }
    }
}
