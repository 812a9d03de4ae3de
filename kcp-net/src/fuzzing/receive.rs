//! The `secure_receive` target: a session's receive path (a sealed datagram's open
//! and the replay window), fed what an attacker on the path can send.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use kcp_core::Transmit;

use super::Script;
use crate::secure::{Cipher, Established, Inner, Key, RekeyPolicy, SecureChannel, transport};

/// Authentic datagrams kept for later delivery, oldest dropped first.
const KEPT: usize = 32;

/// Ops run per case; the rest of a longer input is ignored. Longer scripts add
/// little (the window and the epochs are reached in a few dozen ops) and cost the
/// fuzzer its speed (4 KiB inputs took it from ~8,000 to ~4,000 cases a CPU second).
const MAX_OPS: usize = 96;

/// A sink that keeps one sealed datagram.
struct One<'a>(&'a mut Vec<u8>);

impl Transmit for One<'_> {
    type Error = std::convert::Infallible;
    type Buf = Vec<u8>;
    fn buffer(&mut self, _room: usize) -> &mut Vec<u8> {
        self.0.clear();
        self.0
    }
    fn commit(&mut self, _len: usize) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Runs one case: up to 96 ops of a script. An op (the low 3 bits of its
/// byte) seals a new datagram (body from the script) and keeps it; delivers a kept
/// one as is; delivers one with a byte changed; delivers one cut short; delivers
/// bytes of the script under the receiver's header; or lets time pass (the sender
/// rekeys by time, and by volume every 600 bytes).
///
/// # Panics
/// If an invariant breaks: only an authentic datagram not delivered before opens, to
/// the body it was sealed with; a second delivery of one that opened, any change to
/// one and anything made up are refused; a refused datagram leaves the receive
/// state (key epoch, replay window, counts) as it was.
pub fn secure_receive(data: &[u8]) {
    let mut script = Script(data);
    let start = Instant::now();
    let mut now = start;
    let rekey = RekeyPolicy {
        after_bytes: 600,
        after: Duration::from_secs(60),
    };
    // The script's first byte picks the cipher: both are fuzzed.
    let cipher = if script.byte() & 1 == 0 {
        Cipher::Aes256Gcm
    } else {
        Cipher::ChaCha20Poly1305
    };
    let established = |local_index, peer_index, send, recv| Established {
        local_index,
        peer_index,
        send: Key::new(cipher, [send; 32]),
        recv: Key::new(cipher, [recv; 32]),
        conv: 1,
    };
    let mut sender = SecureChannel::new(established(1, 2, 0xa1, 0xb2), rekey, now);
    let mut receiver = SecureChannel::new(established(2, 1, 0xb2, 0xa1), rekey, now);
    // (datagram, body, opened already)
    let mut kept: VecDeque<(Vec<u8>, Vec<u8>, bool)> = VecDeque::new();
    let mut scratch = Vec::new();
    let mut sealed = 0u64;
    for _ in 0..MAX_OPS {
        if script.is_done() {
            break;
        }
        let op = script.byte();
        let pick = usize::from(script.byte());
        match op & 7 {
            0 | 1 => {
                let body = script.bytes(usize::from(op >> 3)).to_vec();
                let mut out = Vec::new();
                let inner = if op & 1 == 0 {
                    Inner::Kcp
                } else {
                    Inner::Datagram
                };
                let Ok(()) = sender.seal_into(now, inner, &body, &mut One(&mut out));
                sealed += 1;
                if kept.len() == KEPT {
                    kept.pop_front();
                }
                kept.push_back((out, body, false));
            }
            2 => {
                let Some(k) = pick_index(&kept, pick) else {
                    continue;
                };
                let (datagram, body, opened) = &mut kept[k];
                let before = receiver.receive_state();
                match receiver.open(datagram) {
                    Ok(got) => {
                        assert!(!*opened, "a datagram opened twice");
                        assert_eq!(got.body, &body[..], "opened to another body");
                        *opened = true;
                    }
                    Err(_) => {
                        assert_eq!(receiver.receive_state(), before, "a refusal changed state")
                    }
                }
            }
            3 | 4 => {
                let Some(k) = pick_index(&kept, pick) else {
                    continue;
                };
                scratch.clear();
                scratch.extend_from_slice(&kept[k].0);
                if op & 7 == 3 {
                    let at = usize::from(script.byte()) % scratch.len();
                    let flip = script.byte().max(1);
                    scratch[at] ^= flip;
                } else {
                    let keep = usize::from(script.byte()) % scratch.len();
                    scratch.truncate(keep);
                }
                refused(&mut receiver, &scratch, "an altered or cut datagram opened");
            }
            5 => {
                // Made up, under a header that names the receiver.
                scratch.clear();
                scratch.extend_from_slice(script.bytes(usize::from(op >> 3) * 8));
                if scratch.len() >= transport::HEADER_LEN && pick & 1 == 0 {
                    scratch[0] = 5;
                    scratch[transport::RECEIVER..transport::RECEIVER + 4]
                        .copy_from_slice(&2u32.to_le_bytes());
                }
                refused(&mut receiver, &scratch, "made-up bytes opened");
            }
            _ => now += Duration::from_secs(u64::from(op >> 3)),
        }
    }
    assert!(
        receiver.counters().opened <= sealed,
        "more opened than sealed"
    );
}

fn pick_index<T>(kept: &VecDeque<T>, pick: usize) -> Option<usize> {
    (!kept.is_empty()).then(|| pick % kept.len())
}

#[track_caller]
fn refused(receiver: &mut SecureChannel, datagram: &[u8], what: &str) {
    let before = receiver.receive_state();
    assert!(receiver.open(datagram).is_err(), "{what}");
    assert_eq!(receiver.receive_state(), before, "a refusal changed state");
}
