//! `kcp_core::large` end to end: messages far above 127 fragments cross a lossy,
//! reordering simulated link in chunks and come out whole, in order, within the
//! receiver's limit.

use bytes::Bytes;
use kcp_core::large::{LargeError, LargeSender, Limits, Reassembler};
use kcp_core::sim::{LinkConfig, Pair, Side};
use kcp_core::{Config, Kcp, SendError};

const CONV: u32 = 0x1a26_e000;

fn message(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// Runs `messages` from A to B through links with `loss`, pumping the sender and
/// reassembling every step; returns what B assembled and the errors it saw.
fn transfer(
    loss: f64,
    seed: u64,
    limits: (Limits, Limits),
    messages: &[Bytes],
) -> (Vec<Bytes>, Vec<LargeError>) {
    let link = LinkConfig {
        reorder: 0.05,
        reorder_ms: 15,
        duplicate: 0.01,
        ..LinkConfig::lossy(loss, 20, 10)
    };
    let mut pair = Pair::new(
        Kcp::new(CONV, Config::fast()).unwrap(),
        Kcp::new(CONV, Config::fast()).unwrap(),
        link.clone(),
        link,
        seed,
    );
    let mut sender = LargeSender::new(limits.0);
    let mut receiver = Reassembler::new(limits.1);
    for m in messages {
        sender.send(m.clone()).unwrap();
    }
    let (mut got, mut errors) = (Vec::new(), Vec::new());
    for _ in 0..120_000 {
        sender.pump(&mut pair.a).unwrap();
        pair.step();
        for chunk in pair.take_received(Side::B) {
            match receiver.push(&chunk.data) {
                Ok(Some(m)) => got.push(m),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        if sender.is_empty() && pair.a.wait_send() == 0 {
            break;
        }
    }
    assert!(
        sender.is_empty() && pair.a.wait_send() == 0,
        "transfer stalled"
    );
    (got, errors)
}

#[test]
fn large_messages_cross_a_lossy_link_whole_and_in_order() {
    let limits = Limits::new(2 << 20).unwrap();
    // 1 MiB is 763 segments, six times what one KCP message may have.
    let messages = [
        message(1 << 20, 1),
        message(0, 2),
        message(5, 3),
        message(300_000, 4),
        message(Limits::DEFAULT_CHUNK_SEGMENTS * 1376 - 5, 5), // exactly one chunk
    ];
    for (loss, seed) in [(0.0, 1), (0.1, 2), (0.3, 3)] {
        let (got, errors) = transfer(loss, seed, (limits, limits), &messages);
        assert_eq!(errors, []);
        assert_eq!(got.len(), messages.len(), "loss {loss}");
        assert!(
            got.iter().zip(&messages).all(|(a, b)| a == b),
            "loss {loss}"
        );
    }
}

#[test]
fn the_engine_alone_refuses_them_with_the_fragment_limit() {
    let mut kcp = Kcp::new(CONV, Config::fast()).unwrap();
    kcp.set_windows(1024, 1024).unwrap();
    let err = kcp.send(&message(1 << 20, 0)).unwrap_err();
    assert_eq!(
        err,
        SendError::TooLarge {
            fragments: 763,
            max: Kcp::MAX_FRAGMENTS
        }
    );
    let text = err.to_string();
    assert!(text.contains("at most 127, whatever the windows"), "{text}");
}

#[test]
fn a_receiver_with_a_smaller_limit_drops_oversize_messages_and_keeps_the_rest() {
    let sender = Limits::new(1 << 20).unwrap();
    let receiver = Limits::new(100_000).unwrap();
    let messages = [message(50_000, 1), message(600_000, 2), message(70_000, 3)];
    let (got, errors) = transfer(0.1, 9, (sender, receiver), &messages);
    assert_eq!(
        errors,
        [LargeError::TooLarge {
            len: 600_000,
            max: 100_000
        }]
    );
    assert_eq!(got, [messages[0].clone(), messages[2].clone()]);
}
