//! A panicking `EventHandler` closes only the session it was handling
//! (`CloseReason::HandlerPanicked`, counted); the loop goes on serving the others.
//! Loopback only; every wait is bounded.

mod common;

use std::net::SocketAddr;
use std::sync::mpsc::{self, Sender};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use kcp_net::{CloseCtx, CloseReason, EventHandler, KcpClient, KcpServer, SessionCtx, SessionKey};

/// Echoes, but panics on the message `boom`, in `on_open` for conv `panic_on_open`
/// and in `accept` for conv 13; reports every close.
#[derive(Clone)]
struct Fragile {
    closed: Sender<(SessionKey, CloseReason)>,
    panic_on_open: u32,
}

impl EventHandler for Fragile {
    fn accept(&mut self, _peer: SocketAddr, conv: u32) -> bool {
        assert_ne!(conv, 13, "a bug in accept");
        true
    }

    fn on_open(&mut self, session: &mut SessionCtx<'_>) {
        assert_ne!(session.conv(), self.panic_on_open, "a bug in on_open");
    }

    fn on_message(&mut self, session: &mut SessionCtx<'_>, message: Bytes) {
        assert_ne!(&message[..], b"boom", "a bug in on_message");
        let _ = session.send_bytes(message);
    }

    fn on_close(&mut self, session: &CloseCtx<'_>, reason: CloseReason) {
        let _ = self.closed.send((session.key(), reason));
    }
}

fn wait_for(server: &KcpServer, what: &str, done: impl Fn(&kcp_net::LoopStats) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done(&server.handle().stats().total) {
        assert!(Instant::now() < deadline, "{what} within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_panic_in_on_message_closes_only_that_session() {
    let (tx, closed) = mpsc::channel();
    let handler = Fragile {
        closed: tx,
        panic_on_open: 0,
    };
    let server = KcpServer::bind(localhost(), server_config(), handler).unwrap();
    let mut steady = KcpClient::connect(server.local_addr(), client_config()).unwrap();
    let mut fragile = KcpClient::connect(server.local_addr(), client_config()).unwrap();
    echo_once(&mut steady, b"before");
    echo_once(&mut fragile, b"hello");
    assert_eq!(server.handle().session_count(), 2);

    fragile.send(b"boom").unwrap();
    let (_, reason) = closed
        .recv_timeout(WAIT)
        .expect("the panicking session closed");
    assert_eq!(reason, CloseReason::HandlerPanicked);

    // The loop lives: the other session still echoes, many times over.
    for i in 0..20 {
        echo_once(&mut steady, format!("after {i}").as_bytes());
    }
    let stats = server.handle().stats().total;
    assert_eq!(stats.handler_panics, 1);
    assert_eq!(stats.closed_handler_panicked, 1);
    assert_eq!(server.handle().session_count(), 1);
    let final_stats = server.shutdown(Duration::from_secs(1)).unwrap();
    assert_eq!(final_stats.total.sessions_opened, 2);
}

#[test]
fn a_panic_in_on_open_or_accept_does_not_take_the_loop_down() {
    let (tx, closed) = mpsc::channel();
    let handler = Fragile {
        closed: tx,
        panic_on_open: 99,
    };
    let server = KcpServer::bind(localhost(), server_config(), handler).unwrap();
    let mut opens_badly =
        KcpClient::connect_with_conv(server.local_addr(), 99, client_config()).unwrap();
    opens_badly.send(b"hi").unwrap();
    let (_, reason) = closed
        .recv_timeout(WAIT)
        .expect("closed after on_open panicked");
    assert_eq!(reason, CloseReason::HandlerPanicked);

    let mut refused =
        KcpClient::connect_with_conv(server.local_addr(), 13, client_config()).unwrap();
    refused.send(b"let me in").unwrap();
    wait_for(&server, "the accept panic counted", |s| {
        s.handler_panics >= 2
    });
    let stats = server.handle().stats().total;
    assert!(stats.dropped_refused >= 1, "a panicking accept refuses");
    assert_eq!(stats.sessions_opened, 1, "conv 13 never opened");

    let mut fine = KcpClient::connect(server.local_addr(), client_config()).unwrap();
    echo_once(&mut fine, b"still serving");
    drop(server);
}
