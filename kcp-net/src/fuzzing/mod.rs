//! Entry points for the fuzz targets in `kcp-net/fuzz` (built with the `fuzzing`
//! feature; not public API otherwise, and not covered by semver).
//!
//! Each function runs one fuzz case and panics (the fuzzer's "crash") if an invariant
//! breaks. The unit tests below replay the cases saved in `kcp-net/fuzz/regressions/`
//! on stable, so a fixed crash stays fixed.
//!
//! | target | function | what it feeds |
//! |---|---|---|
//! | `secure_receive` | `secure_receive` | sealed datagrams, replayed, cut, altered or made up, into a session's open and replay window |
//! | `handshake_responder` | `handshake_responder` | initiations (mac1 recomputed so they get past it) into the server's screen and Noise responder |
//! | `dispatch` | `dispatch` | datagrams from a few peers into a server driver, raw and secure |

mod dispatch;
mod receive;
mod responder;

pub use dispatch::dispatch;
pub use receive::secure_receive;
pub use responder::handshake_responder;

/// Reads a fuzz input as a script, a byte or a run of bytes at a time; past the end
/// every read is zero or empty, so every input is a valid script.
#[derive(Debug)]
struct Script<'a>(&'a [u8]);

impl<'a> Script<'a> {
    fn is_done(&self) -> bool {
        self.0.is_empty()
    }

    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    /// The next `n` bytes (fewer at the end).
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}

/// Replays saved cases (kcp-core's helper, shared by every fuzzed crate).
#[cfg(test)]
#[path = "../../../kcp-core/fuzz/replay.rs"]
mod replay;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use replay::replay;

    #[test]
    fn saved_fuzz_cases_do_not_crash() {
        let saved = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
        for (target, run) in [
            ("secure_receive", secure_receive as fn(&[u8])),
            ("handshake_responder", handshake_responder),
            ("dispatch", dispatch),
        ] {
            let n = replay(&saved.join(target), run);
            println!("{target}: replayed {n} saved cases");
        }
    }

    #[test]
    fn the_harnesses_run_hand_made_scripts() {
        for run in [secure_receive as fn(&[u8]), handshake_responder, dispatch] {
            run(&[]);
            run(&[0; 64]);
            run(&[0xff; 1300]);
            run(&(0..=255).collect::<Vec<u8>>());
        }
    }
}
