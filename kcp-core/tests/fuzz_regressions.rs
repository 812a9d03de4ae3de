//! Replays every input saved in `fuzz/regressions/` (crashes the fuzzer once found)
//! through the fuzz target's harness, on stable, so a fixed bug stays fixed. Also runs
//! a few hand-made scripts so the harness itself is exercised.

#[path = "../fuzz/harness.rs"]
mod harness;

#[test]
fn saved_fuzz_cases_do_not_crash() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions exists") {
        let path = entry.expect("readable directory").path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        harness::run(&std::fs::read(&path).expect("readable case"));
        replayed += 1;
    }
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
