//! `cargo +nightly fuzz run dispatch`: datagrams from a few peers into a server driver, raw and secure
//! (the body is `kcp_net::fuzzing::dispatch`, whose saved crashes kcp-net's unit tests
//! replay on stable).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kcp_net::fuzzing::dispatch(data));
