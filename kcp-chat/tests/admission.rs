//! Admission control in the server library: while the event loop is behind, a new
//! user's hello gets `server-busy` with when to retry, and the session is closed;
//! users already in keep chatting.

mod common;

use std::time::Duration;

use common::*;
use kcp_chat::client::ChatClient;
use kcp_chat::protocol::{ErrorCode, ServerFrame};
use kcp_chat::server::{ChatServer, ChatServerConfig};
use kcp_net::Preset;

#[test]
fn a_server_behind_refuses_new_users_as_busy_and_serves_those_in() {
    let mut config = ChatServerConfig::new(Preset::Fast);
    // Any lateness at all counts as "behind": the first hello is served before any
    // timer fired (a lag of zero); once sessions run, timers fire a little late.
    config.busy_lag = Some(Duration::ZERO);
    config.busy_retry = Duration::from_secs(7);
    let server = ChatServer::bind("127.0.0.1:0".parse().unwrap(), config).unwrap();
    let addr = server.local_addr();
    let mut alice = ChatClient::connect(addr, "alice", client_config()).unwrap();
    join(&mut alice, "lobby");
    for i in 0..5 {
        alice.say("lobby", &format!("line {i}")).unwrap();
        expect_message(&mut alice, &format!("line {i}"));
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut bob = ChatClient::connect(addr, "bob", client_config()).unwrap();
    let refusal = expect_frame(&mut bob, |f| matches!(f, ServerFrame::Error { .. }));
    let ServerFrame::Error { code, text } = refusal else {
        unreachable!()
    };
    assert_eq!(code, ErrorCode::ServerBusy);
    assert!(text.contains("retry in 7 s"), "{text}");
    assert_eq!(server.stats().chat.refused_busy, 1);
    alice.say("lobby", "still here").unwrap();
    expect_message(&mut alice, "still here");
    server.shutdown("test over", Duration::ZERO).unwrap();
}
