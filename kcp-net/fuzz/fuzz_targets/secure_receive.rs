//! `cargo +nightly fuzz run secure_receive`: sealed datagrams (replayed, cut, altered, made up) into a session's open and replay window
//! (the body is `kcp_net::fuzzing::secure_receive`, whose saved crashes kcp-net's unit tests
//! replay on stable).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kcp_net::fuzzing::secure_receive(data));
