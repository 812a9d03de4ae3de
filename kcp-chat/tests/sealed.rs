//! What an on-path observer sees of a chat client on the secure wire (issue 15,
//! item 6): the resume token and the nick travel only inside the seal. In raw mode
//! the same capture finds them, so the capture is shown to work.
//!
//! The capture is a raw socket (kcp-net's attack-test sniffer, shared by path), so
//! this needs root or `CAP_NET_RAW`; without it the test fails and says so.

mod common;
#[path = "../../kcp-net/tests/common/forge.rs"]
mod forge;

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use common::*;
use forge::{Sniffer, serial, v4};
use kcp_chat::protocol::{ServerFrame, encode};

/// A nick no frame header or key could contain by chance.
const NICK: &str = "alice_unread";

/// Connects a chat client to `server`, takes its welcome (the resume token) and
/// reconnects (a hello carrying the token), with every datagram between the two
/// captured; returns the token's bytes as encoded in the frames and the captured
/// payloads.
fn capture_a_resume(server: &Server) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut sniffer = Sniffer::new();
    let mut alice = server.chat(NICK);
    let welcome = expect_frame(&mut alice, |f| matches!(f, ServerFrame::Welcome { .. }));
    let ServerFrame::Welcome { token, .. } = welcome else {
        unreachable!("filtered to Welcome")
    };
    alice.reconnect().unwrap();
    expect_frame(
        &mut alice,
        |f| matches!(f, ServerFrame::Welcome { nick, .. } if nick == NICK),
    );
    let port = alice.kcp().local_addr().unwrap().port();
    let server_addr = v4(server.addr);
    let ours = |a: SocketAddrV4, b: SocketAddrV4| a.port() == port && b == server_addr;
    let mut captured = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(300);
    while let Some(payload) = sniffer.next_matching(deadline, |s, d| ours(s, d) || ours(d, s)) {
        captured.push(payload);
    }
    (encode(&token).unwrap().to_vec(), captured)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_resume_token_and_the_nick_travel_only_inside_the_seal() {
    let _serial = serial();
    let secure = Server::start(&[]);
    let (token, captured) = capture_a_resume(&secure);
    assert!(
        captured.len() >= 6,
        "the capture saw the handshakes and frames"
    );
    assert!(token.len() >= 4, "a token of some length: {token:?}");
    for payload in &captured {
        assert!(
            !contains(payload, &token),
            "the token in clear: {payload:?}"
        );
        assert!(!contains(payload, NICK.as_bytes()), "the nick in clear");
    }

    // The same capture of a raw-mode client finds both (the attack of issue 15).
    let raw = Server::start(&["--raw"]);
    let (token, captured) = capture_a_resume(&raw);
    let with_token = captured.iter().filter(|p| contains(p, &token)).count();
    assert!(
        with_token >= 2,
        "raw: the welcome and the resuming hello carry the token in clear"
    );
    assert!(captured.iter().any(|p| contains(p, NICK.as_bytes())));
}
