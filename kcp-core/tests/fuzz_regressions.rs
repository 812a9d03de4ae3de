//! Replays every input saved in `fuzz/regressions/` (crashes the fuzzer once found)
//! through the fuzz target's harness, on stable, so a fixed bug stays fixed. Also runs
//! a few hand-made scripts so the harness itself is exercised.

#[path = "../fuzz/harness.rs"]
mod harness;
#[path = "../fuzz/replay.rs"]
mod replay;

#[test]
fn saved_fuzz_cases_do_not_crash() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let replayed = replay::replay(&dir, harness::run);
    println!("replayed {replayed} saved fuzz cases");
}

#[test]
fn harness_runs_hand_made_scripts() {
    harness::run(&[]);
    harness::run(&[2]);
    // mode 2 (fast), one 24-byte datagram of zeros (gets our conv), one truncated.
    let mut script = vec![2u8, 24];
    script.extend([0u8; 24]);
    script.extend([10, 1, 2, 3]);
    harness::run(&script);
    // A stream-mode engine fed a valid-looking PUSH with frg 255.
    let mut push = vec![0x82u8, 30];
    let mut seg = [0u8; 30];
    seg[4] = 81;
    seg[5] = 255;
    seg[20] = 6;
    push.extend(seg);
    harness::run(&push);
}
