//! Interop with the C reference: our engine talks to ikcp.c through the simulator, in
//! both directions, message and stream mode, at 0%, 10% and 30% loss with reordering
//! and duplication. Everything arrives once, in order, byte-exact, on both sides.

use kcp_core::sim::{Endpoint, LinkConfig, LossModel, Pair, Side};
use kcp_core::{Config, Kcp};
use kcp_ref::CKcp;

const CONV: u32 = 0xC0DE;

fn our_engine(stream: bool) -> Kcp {
    let mut c = Config::fast();
    c.stream = stream;
    Kcp::new(CONV, c).unwrap()
}

fn c_engine(stream: bool) -> CKcp {
    let mut k = CKcp::new(CONV);
    k.nodelay(1, 10, 2, 1);
    k.set_stream(stream);
    k
}

fn link(loss: f64) -> LinkConfig {
    LinkConfig {
        loss: LossModel::Random { rate: loss },
        delay_ms: 15,
        jitter_ms: 10,
        reorder: 0.05,
        reorder_ms: 25,
        duplicate: 0.03,
        ..LinkConfig::default()
    }
}

fn message(side: u8, i: usize) -> Vec<u8> {
    let len = (i * 397) % 4_000;
    (0..len)
        .map(|j| (j as u8).wrapping_mul(side).wrapping_add(i as u8))
        .collect()
}

/// Both ends send 60 messages; checks what each received.
fn exchange<A: Endpoint, B: Endpoint>(a: A, b: B, loss: f64, stream: bool, seed: u64) {
    const N: usize = 60;
    let mut pair = Pair::new(a, b, link(loss), link(loss), seed);
    for i in 0..N {
        pair.schedule_send(i as u64 * 7, Side::A, message(1, i));
        pair.schedule_send(i as u64 * 11, Side::B, message(2, i));
    }
    let total = |side: u8| (0..N).map(|i| message(side, i).len()).sum::<usize>();
    let bytes = |p: &Pair<A, B>, s: Side| p.received(s).iter().map(|m| m.data.len()).sum::<usize>();
    let done = |p: &Pair<A, B>| {
        if stream {
            bytes(p, Side::B) == total(1) && bytes(p, Side::A) == total(2)
        } else {
            p.received(Side::B).len() == N && p.received(Side::A).len() == N
        }
    };
    pair.run_until(300_000, done)
        .unwrap_or_else(|e| panic!("loss {loss} stream {stream}: {e}"));
    // Let retransmissions settle: nothing more may arrive.
    for _ in 0..3_000 {
        pair.step();
    }
    for (side, from) in [(Side::B, 1u8), (Side::A, 2u8)] {
        let got = pair.received(side);
        if stream {
            let all: Vec<u8> = got.iter().flat_map(|m| m.data.iter().copied()).collect();
            let want: Vec<u8> = (0..N).flat_map(|i| message(from, i)).collect();
            assert!(all == want, "stream bytes differ at {side:?}");
        } else {
            assert_eq!(got.len(), N, "exactly once at {side:?}");
            for (i, m) in got.iter().enumerate() {
                assert_eq!(m.data[..], message(from, i)[..], "message {i} at {side:?}");
            }
        }
    }
}

#[test]
fn ours_to_c_and_back_in_message_mode() {
    for loss in [0.0, 0.1, 0.3] {
        exchange(our_engine(false), c_engine(false), loss, false, 1);
        exchange(c_engine(false), our_engine(false), loss, false, 2);
    }
}

#[test]
fn ours_to_c_and_back_in_stream_mode() {
    for loss in [0.0, 0.1, 0.3] {
        exchange(our_engine(true), c_engine(true), loss, true, 3);
        exchange(c_engine(true), our_engine(true), loss, true, 4);
    }
}
