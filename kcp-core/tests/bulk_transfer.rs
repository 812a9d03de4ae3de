//! The engine issue's acceptance test: 100 MB through a link that loses 10% of the
//! datagrams each way (and reorders them), every byte in order.

mod common;

use std::time::Instant;

use common::{Lane, Pair};
use kcp_core::{Config, Kcp};

const TOTAL: usize = 100 * 1_000_000;
const MESSAGE: usize = 64 * 1024;

/// The byte at stream offset `i`: not periodic within a message, so a misplaced or
/// repeated fragment is caught.
fn pattern(i: usize) -> u8 {
    (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8 ^ (i >> 16) as u8
}

#[test]
fn hundred_megabytes_through_ten_percent_loss() {
    let mut config = Config::fast();
    config.snd_wnd = 1024;
    config.rcv_wnd = 1024;
    let mut pair = Pair::new(
        Kcp::new(42, config.clone()).unwrap(),
        Kcp::new(42, config).unwrap(),
        Lane::new(0.10, 10, 4),
        Lane::new(0.10, 10, 4),
        2024,
    );
    let cpu = Instant::now();
    let (mut offered, mut checked) = (0usize, 0usize);
    let mut message = vec![0u8; MESSAGE];
    let limit_ms = 600_000;
    while checked < TOTAL {
        assert!(
            pair.t < limit_ms,
            "stalled at {checked} bytes: {:?}",
            pair.a.stats()
        );
        // Keep about two windows queued: the application-level backpressure.
        while offered < TOTAL && pair.a.wait_send() < 2048 {
            let n = MESSAGE.min(TOTAL - offered);
            for (k, b) in message[..n].iter_mut().enumerate() {
                *b = pattern(offered + k);
            }
            pair.a.send(&message[..n]).unwrap();
            offered += n;
        }
        pair.step();
        for m in pair.at_b.drain(..) {
            for (k, &b) in m.iter().enumerate() {
                assert_eq!(b, pattern(checked + k), "byte {}", checked + k);
            }
            checked += m.len();
        }
    }
    let (a, b) = (pair.a.stats(), pair.b.stats());
    println!(
        "100 MB at 10% loss: {} ms virtual, {:.2} s CPU; A sent {} data segments, \
         {} timeout + {} fast retransmits; link dropped {}/{} and {}/{} datagrams",
        pair.t,
        cpu.elapsed().as_secs_f64(),
        a.data_segments_sent,
        a.retransmits_timeout,
        a.retransmits_fast,
        pair.a_to_b.dropped,
        pair.a_to_b.sent,
        pair.b_to_a.dropped,
        pair.b_to_a.sent,
    );
    assert_eq!(checked, TOTAL);
    assert!(
        a.retransmits_timeout + a.retransmits_fast > 0,
        "the link did lose data"
    );
    assert_eq!(b.messages_received, TOTAL.div_ceil(MESSAGE) as u64);
}
