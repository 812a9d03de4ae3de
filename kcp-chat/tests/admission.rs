//! Admission control in the server library: while the event loop works nearly all
//! the time, is behind, or too much of what it sends is retransmission, a new user's
//! hello gets `server-busy` with when to retry, and the session is closed; users
//! already in keep chatting.

mod common;

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use kcp_chat::client::ChatClient;
use kcp_chat::protocol::{ErrorCode, ServerFrame};
use kcp_chat::server::{ChatServer, ChatServerConfig};
use kcp_net::Preset;
use kcp_net::impair::{ImpairConfig, LinkConfig};

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

#[test]
fn a_server_retransmitting_much_refuses_new_users_as_busy() {
    let mut config = ChatServerConfig::new(Preset::Fast);
    config.busy_lag = None;
    // Any retransmission at all (once enough messages were sent to judge by).
    config.busy_retransmits = Some(0.0);
    config.rate = 100_000.0;
    config.burst = 100_000;
    config.ip_rate = 100_000.0;
    config.ip_burst = 100_000;
    // The server loses a third of what it sends: its sessions retransmit.
    config.net.impair = Some(ImpairConfig::new(LinkConfig::lossy(0.3, 0, 0), 17));
    let server = ChatServer::bind("127.0.0.1:0".parse().unwrap(), config).unwrap();
    let addr = server.local_addr();
    let mut alice = ChatClient::connect(addr, "alice", client_config()).unwrap();
    join(&mut alice, "lobby");
    // Rounds of 300 lines, each echoed to alice (a message the server sends), until a
    // newcomer finds the loop retransmitting: the share is read over the last one to
    // two seconds once 500 messages were sent, so it takes a round or two.
    let mut refusal = None;
    for round in 0..20 {
        for i in 0..300 {
            alice
                .say("lobby", &format!("round {round} line {i}"))
                .unwrap();
        }
        let mut bob = ChatClient::connect(addr, &format!("bob{round}"), client_config()).unwrap();
        let answer = expect_frame(&mut bob, |f| {
            matches!(f, ServerFrame::Error { .. } | ServerFrame::Welcome { .. })
        });
        expect_message(&mut alice, &format!("round {round} line 299"));
        if let ServerFrame::Error { code, text } = answer {
            refusal = Some((code, text));
            break;
        }
    }
    let (code, text) = refusal.expect("a newcomer refused within 20 rounds");
    assert_eq!(code, ErrorCode::ServerBusy);
    assert!(text.contains("is retransmission"), "{text}");
    let chat = server.stats().chat;
    assert_eq!(chat.refused_busy, 1);
    assert_eq!(chat.refused_busy_retransmits, 1);
    alice.say("lobby", "still here").unwrap();
    expect_message(&mut alice, "still here");
    server.shutdown("test over", Duration::ZERO).unwrap();
}

#[test]
fn a_server_working_all_the_time_refuses_new_users_as_busy() {
    let mut config = ChatServerConfig::new(Preset::Fast);
    config.busy_lag = None;
    config.busy_retransmits = None;
    // A fifth of the time: an idle loop (alice's hello) is far below it, a loop
    // reading a flood as fast as a thread can send it is above.
    config.busy_load = Some(0.2);
    let server = ChatServer::bind("127.0.0.1:0".parse().unwrap(), config).unwrap();
    let addr = server.local_addr();
    let mut alice = ChatClient::connect(addr, "alice", client_config()).unwrap();
    join(&mut alice, "lobby");
    // Junk as fast as one thread sends it: the loop reads and drops every datagram,
    // and its busy share climbs.
    let flooding = Arc::new(AtomicBool::new(true));
    let flood = {
        let flooding = Arc::clone(&flooding);
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let junk = [0xee; 100];
            while flooding.load(Ordering::Relaxed) {
                for _ in 0..1000 {
                    let _ = socket.send_to(&junk, addr);
                }
            }
        })
    };
    // Newcomers every 200 ms until one is refused: the share is read over the last
    // one to two seconds.
    let mut refusal = None;
    for round in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        let mut bob = ChatClient::connect(addr, &format!("bob{round}"), client_config()).unwrap();
        let answer = expect_frame(&mut bob, |f| {
            matches!(f, ServerFrame::Error { .. } | ServerFrame::Welcome { .. })
        });
        if let ServerFrame::Error { code, text } = answer {
            refusal = Some((code, text));
            break;
        }
    }
    flooding.store(false, Ordering::Relaxed);
    flood.join().unwrap();
    let (code, text) = refusal.expect("a newcomer refused within 10 s of flood");
    assert_eq!(code, ErrorCode::ServerBusy);
    assert!(
        text.contains("works") && text.contains("of the time"),
        "{text}"
    );
    let chat = server.stats().chat;
    assert_eq!(chat.refused_busy, 1);
    assert_eq!(chat.refused_busy_load, 1);
    alice.say("lobby", "still here").unwrap();
    expect_message(&mut alice, "still here");
    server.shutdown("test over", Duration::ZERO).unwrap();
}
