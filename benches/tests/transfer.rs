//! The throughput scenario moves every message intact with each implementation, and
//! the three do the same protocol work: same calls, same datagrams, same losses.

use benches::engine::{CRef, Engine, KcpCrate, Ours};
use benches::transfer::{Transfer, TransferStats};

fn small(size: usize, window: u16, loss: f64) -> Transfer {
    Transfer::cell(size, window, loss).with_messages(300)
}

fn run_all(t: &Transfer) -> [TransferStats; 3] {
    let run =
        |r: Result<TransferStats, _>, name| r.unwrap_or_else(|e| panic!("{name}: {t:?}: {e}"));
    [
        run(t.run::<Ours>(), Ours::NAME),
        run(t.run::<CRef>(), CRef::NAME),
        run(t.run::<KcpCrate>(), KcpCrate::NAME),
    ]
}

#[test]
fn all_three_deliver_and_emit_the_same_datagrams() {
    for size in [64, 1024, 16 * 1024] {
        for window in [32, 1024] {
            for loss in [0.0, 0.10] {
                let t = small(size, window, loss);
                let [ours, c, kcp] = run_all(&t);
                assert_eq!(ours.messages, 300);
                assert_eq!(ours.bytes, t.payload_bytes());
                assert_eq!(ours, c, "ours vs C: {t:?}");
                assert_eq!(kcp, c, "kcp crate vs C: {t:?}");
                if loss > 0.0 {
                    assert!(ours.datagrams_sent > t.payload_bytes() / 1400, "{t:?}");
                }
            }
        }
    }
}

#[test]
fn benchmark_cells_are_sized_for_the_steady_state() {
    let t = Transfer::cell(1024, 4096, 0.1);
    assert_eq!(t.messages, 16 * 4096);
    let t = Transfer::cell(16 * 1024, 32, 0.0);
    assert_eq!(t.messages, 8192_usize.div_ceil(12));
    assert_eq!(Transfer::cell(64, 128, 0.0).messages, 8192);
}
