//! The body of the `frames` fuzz target, shared with the regression test that replays
//! saved crashes on stable (`kcp-chat/tests/fuzz_regressions.rs`).
//!
//! The fuzzer's bytes are one KCP message as a peer could send it, read as a client's
//! frame (what the server decodes) and as the server's (what a client decodes).
//! Invariants: decoding never panics (nor allocates past libFuzzer's limit); a frame
//! that decodes encodes again in at most as many bytes (we write varints and lengths
//! minimally, so a decoder's leniency can only make the input longer), to bytes that
//! decode to the same frame; the version a server peeks from a hello is the version
//! the hello decodes with.

use std::fmt::Debug;

use kcp_chat::protocol::{
    ClientFrame, CodecError, decode_client, decode_server, encode, peek_hello_version,
};
use serde::Serialize;

/// Runs one fuzz case. Panics (the fuzzer's "crash") if an invariant breaks.
pub(crate) fn run(data: &[u8]) {
    let peeked = peek_hello_version(data);
    if let Some(ClientFrame::Hello { version, .. }) = decoded(data, decode_client) {
        assert_eq!(peeked, Some(version), "peek disagrees with the hello");
    }
    decoded(data, decode_server);
}

/// The frame `data` decodes to, if any, once its encoding is checked.
fn decoded<T: Serialize + PartialEq + Debug>(
    data: &[u8],
    decode: fn(&[u8]) -> Result<T, CodecError>,
) -> Option<T> {
    let frame = decode(data).ok()?;
    let bytes = encode(&frame).expect("a decoded frame encodes");
    assert!(
        bytes.len() <= data.len(),
        "{frame:?} grew when encoded again"
    );
    assert_eq!(decode(&bytes).expect("its encoding decodes"), frame);
    Some(frame)
}
