//! `cargo +nightly fuzz run frames`: any bytes as a chat message, into the frame
//! decoders.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
