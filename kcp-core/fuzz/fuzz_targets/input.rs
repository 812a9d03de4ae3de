//! `cargo +nightly fuzz run input`: hostile datagrams into `Kcp::input`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
