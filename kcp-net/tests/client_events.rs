//! `KcpClient::poll_event` / `drain_events` on loopback, raw and secure: the events
//! come in their documented order (Connected, messages and datagrams, Closed once),
//! in a bounded tick loop like a game's.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use kcp_net::secure::{ClientSecurity, ServerIdentity, ServerSecurity};
use kcp_net::{ClientEvent, EventHandler, KcpClient, KcpServer, NetError, SessionCtx};

/// Echoes messages and datagrams.
#[derive(Clone)]
struct EchoBoth;

impl EventHandler for EchoBoth {
    fn on_message(&mut self, session: &mut SessionCtx<'_>, message: Bytes) {
        let _ = session.send_bytes(message);
    }
    fn on_datagram(&mut self, session: &mut SessionCtx<'_>, datagram: Bytes) {
        let _ = session.send_datagram(datagram);
    }
}

/// Ticks like a 1 kHz game loop until `want` has seen what it needs (returns true),
/// collecting every event; panics after [`WAIT`].
#[track_caller]
fn run_until(
    client: &mut KcpClient,
    log: &mut Vec<ClientEvent>,
    mut want: impl FnMut(&[ClientEvent]) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    while !want(log) {
        assert!(Instant::now() < deadline, "events so far: {log:?}");
        log.extend(client.drain_events());
        thread::sleep(Duration::from_millis(1));
    }
}

/// Ticks until the `Closed` event, which must be the last; returns its error.
#[track_caller]
fn run_until_closed(client: &mut KcpClient) -> NetError {
    let mut log = Vec::new();
    run_until(client, &mut log, |log| {
        log.iter().any(|e| matches!(e, ClientEvent::Closed(_)))
    });
    match log.pop() {
        Some(ClientEvent::Closed(e)) => e,
        last => panic!("events after the close: {last:?}"),
    }
}

fn messages(log: &[ClientEvent]) -> Vec<&[u8]> {
    log.iter()
        .filter_map(|e| match e {
            ClientEvent::Message(m) => Some(&m[..]),
            _ => None,
        })
        .collect()
}

#[test]
fn raw_mode_connects_on_the_first_ack_and_closes_when_the_server_goes_silent() {
    let server = KcpServer::bind(localhost(), server_config(), EchoBoth).unwrap();
    let mut config = client_config();
    config.keepalive = Some(Duration::from_millis(50));
    config.server_timeout = Duration::from_millis(400);
    let mut client = KcpClient::connect(server.local_addr(), config).unwrap();
    // No handshake: nothing to report until the server answers something.
    assert!(client.poll_event().is_none());
    assert!(!client.is_connected());

    let mut log = Vec::new();
    for i in 0..3u8 {
        client.send(&[i; 10]).unwrap();
    }
    run_until(&mut client, &mut log, |log| messages(log).len() == 3);
    assert!(matches!(log[0], ClientEvent::Connected), "{log:?}");
    assert_eq!(messages(&log), [&[0; 10][..], &[1; 10], &[2; 10]]);
    assert!(client.is_connected());
    assert_eq!(
        log.iter()
            .filter(|e| matches!(e, ClientEvent::Connected))
            .count(),
        1
    );

    // The server goes away without a word (raw KCP cannot say it): the keepalive
    // goes unanswered and the server timeout closes the conversation, once.
    server.shutdown(Duration::ZERO).unwrap();
    let closed = run_until_closed(&mut client);
    assert!(matches!(closed, NetError::ServerGone { .. }), "{closed}");
    assert!(!client.is_connected());
    for _ in 0..5 {
        assert!(client.poll_event().is_none(), "Closed is reported once");
    }
    assert!(matches!(
        client.send(b"late"),
        Err(NetError::ServerGone { .. })
    ));
}

#[test]
fn secure_mode_connects_at_the_handshake_and_closes_when_the_server_says_so() {
    let identity = ServerIdentity::generate().unwrap();
    let mut config = server_config();
    config.secure = Some(ServerSecurity::new(identity.clone()));
    let server = KcpServer::bind(localhost(), config, EchoBoth).unwrap();
    let mut config = client_config();
    config.secure = Some(ClientSecurity::new(identity.public()));
    let mut client = KcpClient::connect(server.local_addr(), config).unwrap();

    assert!(matches!(client.poll_event(), Some(ClientEvent::Connected)));
    client.send(b"reliable").unwrap();
    client
        .send_datagram(Bytes::from_static(b"unreliable"))
        .unwrap();
    let mut log = Vec::new();
    run_until(&mut client, &mut log, |log| {
        let datagram = log
            .iter()
            .any(|e| matches!(e, ClientEvent::Datagram(d) if &d[..] == b"unreliable"));
        datagram && messages(log) == [b"reliable"]
    });

    // A shutdown is told to the client, which reports it as the close.
    server.shutdown(Duration::from_secs(1)).unwrap();
    let closed = run_until_closed(&mut client);
    assert!(
        matches!(closed, NetError::ClosedByServer { .. }),
        "{closed}"
    );
    assert!(client.poll_event().is_none());
}
