//! Replays every input saved in `fuzz/regressions/` (crashes the fuzzer once found)
//! through the `frames` fuzz target's harness, on stable, so a fixed bug stays fixed;
//! and a few hand-made messages, so the harness itself is exercised.

#[path = "../fuzz/harness.rs"]
mod harness;
#[path = "../../kcp-core/fuzz/replay.rs"]
mod replay;

use kcp_chat::protocol::{ClientFrame, ServerFrame, encode};

#[test]
fn saved_fuzz_cases_do_not_crash() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let replayed = replay::replay(&dir, harness::run);
    println!("replayed {replayed} saved fuzz cases");
}

#[test]
fn harness_runs_hand_made_messages() {
    harness::run(&[]);
    harness::run(&encode(&ClientFrame::hello("alice")).unwrap());
    harness::run(&encode(&ServerFrame::Pong { nonce: 300 }).unwrap());
    // A hello of a future version, a string length past the end, an overlong varint.
    harness::run(&[0, 9, 0xff, 0xff]);
    harness::run(&[3, 0xff, 0xff, 0xff, 0xff, 0x0f, b'a']);
    harness::run(&[8, 0xac, 0x82, 0x80, 0x00]);
}
