//! `cargo +nightly fuzz run handshake_responder`: initiations (mac1 recomputed) into the server's screen and Noise responder
//! (the body is `kcp_net::fuzzing::handshake_responder`, whose saved crashes kcp-net's unit tests
//! replay on stable).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kcp_net::fuzzing::handshake_responder(data));
