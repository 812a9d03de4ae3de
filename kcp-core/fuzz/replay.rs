//! Replays the inputs saved in a fuzz crate's `regressions/` (crashes the fuzzer once
//! found) through its harness, on stable: shared by the regression tests of every
//! fuzzed crate (`kcp-core/tests/fuzz_regressions.rs`, `kcp-chat/tests/...`).

use std::path::Path;

/// Runs `run` on every file in `dir` whose name does not start with a dot; returns
/// how many it ran.
///
/// # Panics
/// If `dir` or a file in it cannot be read, or `run` panics (the saved crash is back).
pub(crate) fn replay(dir: &Path, run: fn(&[u8])) -> usize {
    let mut replayed = 0;
    for entry in std::fs::read_dir(dir).expect("the regressions directory exists") {
        let path = entry.expect("readable directory").path();
        if !path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            run(&std::fs::read(&path).expect("readable case"));
            replayed += 1;
        }
    }
    replayed
}
