//! How sessions end and begin again: idle timeout, keepalive, dead link, server restart
//! with client reconnect, local close, graceful shutdown. Loopback only; every wait is
//! bounded.

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use kcp_net::{
    CloseCtx, CloseReason, EventHandler, KcpClient, KcpServer, NetError, ServerConfig, SessionCtx,
};

// ================================================================ idle timeout and keepalive

#[test]
fn a_silent_session_is_closed_after_the_idle_timeout_and_not_before() {
    let mut config = server_config();
    config.idle_timeout = Duration::from_millis(300);
    let (server, events) = reporting_server(config);
    let mut client_cfg = client_config();
    client_cfg.keepalive = None;
    let mut client = KcpClient::connect(server.local_addr(), client_cfg).unwrap();
    echo_once(&mut client, b"hello");
    let last_sent = Instant::now();
    // The client stays silent from here on (it is never ticked again).
    let (_, reason) = expect_closed(&events);
    assert_eq!(reason, CloseReason::IdleTimeout);
    assert!(
        last_sent.elapsed() >= Duration::from_millis(300),
        "closed before the idle timeout"
    );
    let stats = server.shutdown(Duration::from_secs(1)).unwrap();
    assert_eq!(stats.total.closed_idle, 1);
    assert_eq!(stats.total.sessions_active, 0);
    drop(client);
}

#[test]
fn keepalives_keep_an_idle_client_alive() {
    let mut config = server_config();
    config.idle_timeout = Duration::from_millis(400);
    let (server, events) = reporting_server(config);
    let mut client_cfg = client_config();
    client_cfg.keepalive = Some(Duration::from_millis(100));
    let mut client = KcpClient::connect(server.local_addr(), client_cfg).unwrap();
    echo_once(&mut client, b"hello");
    // Idle for more than three idle timeouts; only keepalives cross the wire.
    let until = Instant::now() + Duration::from_millis(1_300);
    while Instant::now() < until {
        assert_eq!(client.recv(Duration::from_millis(50)).unwrap(), None);
    }
    assert!(
        events.try_iter().all(|e| !matches!(e, Event::Closed(..))),
        "the session was closed although the client sent keepalives"
    );
    echo_once(&mut client, b"still here");
    let sent = client.stats().counters.keepalives_out;
    let stats = shutdown_while_ticking(server, &mut client);
    assert!(sent >= 5, "keepalives sent: {sent}");
    assert_eq!(
        stats.total.keepalives_in, sent,
        "every keepalive arrived, none as a message"
    );
    assert_eq!(stats.total.closed_idle, 0);
    assert_eq!(stats.total.messages_in, 2);
}

/// Shuts the server down gracefully while the client keeps running, so that it
/// acknowledges what the server sent last.
fn shutdown_while_ticking(server: KcpServer, client: &mut KcpClient) -> kcp_net::ServerStats {
    let waiter = thread::spawn(move || server.shutdown(Duration::from_secs(1)));
    let deadline = Instant::now() + WAIT;
    while !waiter.is_finished() {
        assert!(Instant::now() < deadline, "shutdown did not finish");
        assert_eq!(client.recv(Duration::from_millis(10)).unwrap(), None);
    }
    waiter.join().unwrap().unwrap()
}

// ================================================================ dead link

#[test]
fn server_closes_a_session_whose_peer_vanished_as_a_dead_link() {
    let mut config = server_config();
    config.engine.dead_link = 4;
    let (server, events) = reporting_server(config);
    let mut client = KcpClient::connect(server.local_addr(), client_config()).unwrap();
    echo_once(&mut client, b"hello");
    let (key, ..) = expect_opened(&events);
    drop(client); // the peer vanishes: its port is closed, nothing acknowledges
    server.handle().send(key, vec![1u8; 3_000]).unwrap();
    let (closed, reason) = expect_closed(&events);
    assert_eq!((closed, reason), (key, CloseReason::DeadLink));
    assert_eq!(
        server
            .handle()
            .send(key, vec![2u8; 10])
            .unwrap_err()
            .to_string(),
        NetError::SessionClosed.to_string()
    );
    let stats = server.shutdown(Duration::from_secs(1)).unwrap();
    assert_eq!(stats.total.closed_dead_link, 1);
    assert!(stats.total.retransmits >= 3, "{:?}", stats.total);
}

#[test]
fn client_reports_a_vanished_server_then_reconnects_to_its_restart() {
    let first = KcpServer::bind(localhost(), server_config(), Echo).unwrap();
    let addr = first.local_addr();
    let mut config = client_config();
    config.server_timeout = Duration::from_millis(500);
    let mut client = KcpClient::connect(addr, config).unwrap();
    echo_once(&mut client, b"before the restart");
    let old_conv = client.conv();
    first.shutdown(Duration::ZERO).unwrap();

    // The server restarts on the same port; it knows nothing of the old conversation,
    // so the client's next segments (not the first of a conversation) are dropped.
    let second = KcpServer::bind(addr, server_config(), Echo).unwrap();
    client.send(b"lost in the restart").unwrap();
    let deadline = Instant::now() + WAIT;
    let failure = loop {
        assert!(Instant::now() < deadline, "no link failure reported");
        match client.recv(Duration::from_millis(100)) {
            Ok(None) => {}
            Ok(Some(m)) => panic!("unexpected message {m:?}"),
            Err(e) => break e,
        }
    };
    assert!(failure.is_link_failure(), "{failure}");
    assert!(matches!(failure, NetError::ServerGone { conv, .. } if conv == old_conv));
    // Every call reports the failure until the client reconnects.
    assert!(client.send(b"x").unwrap_err().is_link_failure());

    let new_conv = client.reconnect().unwrap();
    assert_ne!(new_conv, old_conv);
    echo_once(&mut client, b"after the restart");
    let stats = second.shutdown(Duration::from_secs(1)).unwrap();
    assert_eq!(stats.total.sessions_opened, 1);
    assert!(
        stats.total.dropped_unknown_session > 0,
        "the old conversation's segments were dropped: {:?}",
        stats.total
    );
}

#[test]
fn client_reports_a_dead_link_when_the_engine_gives_up() {
    let server = KcpServer::bind(localhost(), server_config(), Echo).unwrap();
    let addr = server.local_addr();
    let mut config = client_config();
    config.engine.dead_link = 3;
    config.server_timeout = Duration::from_secs(60);
    let mut client = KcpClient::connect(addr, config).unwrap();
    echo_once(&mut client, b"hello");
    drop(server);
    client.send(b"nobody hears this").unwrap();
    let deadline = Instant::now() + WAIT;
    let failure = loop {
        assert!(Instant::now() < deadline, "no dead link reported");
        if let Err(e) = client.recv(Duration::from_millis(100)) {
            break e;
        }
    };
    assert!(matches!(failure, NetError::DeadLink { .. }), "{failure}");
}

#[test]
fn flush_acknowledges_what_arrived_last_so_the_server_never_retransmits_it() {
    let (server, events) = reporting_server(server_config());
    let mut client = KcpClient::connect(server.local_addr(), client_config()).unwrap();
    for i in 0..20 {
        echo_once(&mut client, &payload(0, i, 2_000));
    }
    assert!(client.wait_acknowledged(WAIT).unwrap());
    drop(client); // gone: nothing more will be acknowledged
    let (key, ..) = expect_opened(&events);
    // Several minimum RTOs (30 ms) pass: anything unacknowledged would be resent.
    thread::sleep(Duration::from_millis(200));
    let engine = server.handle().session_stats(key).unwrap().engine;
    assert_eq!(engine.retransmits_timeout + engine.retransmits_fast, 0);
    server.shutdown(Duration::ZERO).unwrap();
}

// ================================================================ closing

#[test]
fn a_session_closed_through_the_handle_ends_locally_and_its_key_goes_stale() {
    let (server, events) = reporting_server(server_config());
    let handle = server.handle();
    let mut client = KcpClient::connect(server.local_addr(), client_config()).unwrap();
    echo_once(&mut client, b"one");
    let (key, peer, conv) = expect_opened(&events);
    assert_eq!(conv, client.conv());
    assert_eq!(peer.port(), client.local_addr().unwrap().port());
    assert_eq!(handle.sessions().unwrap().len(), 1);
    handle.close(key).unwrap();
    let (closed, reason) = expect_closed(&events);
    assert_eq!((closed, reason), (key, CloseReason::Local));
    assert!(matches!(handle.close(key), Err(NetError::SessionClosed)));
    assert!(matches!(
        handle.session_stats(key),
        Err(NetError::SessionClosed)
    ));

    // The peer starts a new conversation; it may reuse the slot, never the key.
    client.reconnect().unwrap();
    echo_once(&mut client, b"two");
    let (second, ..) = expect_opened(&events);
    assert_ne!(second, key);
    assert!(matches!(
        handle.send(key, &b"stale"[..]),
        Err(NetError::SessionClosed)
    ));
    assert!(handle.session_stats(second).is_ok());
    let stats = server.shutdown(Duration::from_secs(1)).unwrap();
    assert_eq!(stats.total.closed_local, 1);
    assert_eq!(stats.total.closed_shutdown, 1);
}

/// Reports like a non-echoing [`Reporter`], and closes each session in `on_message`
/// with nothing queued.
#[derive(Clone)]
struct CloseOnMessage(Reporter);

impl EventHandler for CloseOnMessage {
    fn on_open(&mut self, session: &mut SessionCtx<'_>) {
        self.0.on_open(session);
    }

    fn on_message(&mut self, session: &mut SessionCtx<'_>, message: Bytes) {
        self.0.on_message(session, message);
        session.close();
    }

    fn on_close(&mut self, session: &CloseCtx<'_>, reason: CloseReason) {
        self.0.on_close(session, reason);
    }
}

#[test]
fn a_session_closed_with_nothing_queued_acknowledges_what_it_received_before_it_goes() {
    let (tx, events) = mpsc::channel();
    let handler = CloseOnMessage(Reporter {
        events: tx,
        echo: false,
    });
    let server = KcpServer::bind(localhost(), server_config(), handler).unwrap();
    let mut client = KcpClient::connect(server.local_addr(), client_config()).unwrap();
    client.send(b"last words").unwrap();
    // The handler closes the session in the turn the message arrived, with nothing
    // queued, so it is removed in that turn: only an ACK sent on the way out can
    // acknowledge the message.
    let (_, reason) = expect_closed(&events);
    assert_eq!(reason, CloseReason::Local);
    let flushed = client.wait_acknowledged(Duration::from_secs(2));
    assert!(
        matches!(flushed, Ok(true)),
        "the message was never acknowledged: {flushed:?}"
    );
    let engine = client.stats().engine;
    assert_eq!(engine.retransmits_timeout + engine.retransmits_fast, 0);
    let stats = server.shutdown(Duration::from_secs(1)).unwrap();
    assert_eq!(
        stats.total.sessions_opened, 1,
        "a retransmission of the first segment opened the session again"
    );
    assert_eq!(stats.total.messages_in, 1);
}

/// Echoes, and when a session closes tells every other session through the handle.
#[derive(Clone)]
struct Farewell;

impl EventHandler for Farewell {
    fn on_message(&mut self, session: &mut SessionCtx<'_>, message: Bytes) {
        let _ = session.send_bytes(message);
    }

    fn on_close(&mut self, closed: &CloseCtx<'_>, reason: CloseReason) {
        let note = format!("{:#010x} left: {reason:?}", closed.session().conv());
        let _ = closed.handle().broadcast(note);
    }
}

#[test]
fn on_close_can_tell_the_other_sessions_through_the_handle() {
    let server = KcpServer::bind(localhost(), server_config(), Farewell).unwrap();
    let handle = server.handle();
    let mut leaving = KcpClient::connect(server.local_addr(), client_config()).unwrap();
    let mut staying = KcpClient::connect(server.local_addr(), client_config()).unwrap();
    echo_once(&mut leaving, b"hello");
    echo_once(&mut staying, b"hello");
    assert!(
        leaving.wait_acknowledged(WAIT).unwrap(),
        "nothing left for the close to wait for"
    );
    let key = handle
        .sessions()
        .unwrap()
        .into_iter()
        .find(|s| s.conv == leaving.conv())
        .expect("the leaving client's session")
        .key;
    handle.close(key).unwrap();
    let note = staying
        .recv(WAIT)
        .unwrap()
        .expect("a farewell within the bound");
    let expected = format!("{:#010x} left: Local", leaving.conv());
    assert_eq!(&note[..], expected.as_bytes());
    assert!(staying.wait_acknowledged(WAIT).unwrap());
    // At shutdown the remaining session's farewell has nobody to go to (every session
    // is closing), and posting it from the stopping loop must not hang.
    let stats = server.shutdown(Duration::from_secs(1)).unwrap();
    assert_eq!(
        (stats.total.closed_local, stats.total.closed_shutdown),
        (1, 1)
    );
}

/// Answers the message `go` with `count` messages of `size` bytes.
#[derive(Clone)]
struct Burst {
    count: usize,
    size: usize,
    started: mpsc::Sender<()>,
}

impl EventHandler for Burst {
    fn on_message(&mut self, session: &mut SessionCtx<'_>, message: Bytes) {
        if &message[..] == b"go" {
            for i in 0..self.count {
                session.send(&payload(0, i, self.size)).unwrap();
            }
            let _ = self.started.send(());
        }
    }
}

#[test]
fn graceful_shutdown_delivers_what_is_queued() {
    let (started_tx, started) = mpsc::channel();
    let handler = Burst {
        count: 40,
        size: 10_000,
        started: started_tx,
    };
    let mut config = server_config();
    config.max_queued_bytes_per_session = 4 << 20;
    let server = KcpServer::bind(localhost(), config, handler).unwrap();
    let handle = server.handle();
    let mut client = KcpClient::connect(server.local_addr(), client_config()).unwrap();
    client.send(b"go").unwrap();
    // 400 kB is about 300 segments: far more than one send window, so most of it is
    // still queued when the shutdown starts.
    let deadline = Instant::now() + WAIT;
    while started.try_recv().is_err() {
        assert!(Instant::now() < deadline, "the burst never started");
        client.tick().unwrap();
        thread::sleep(Duration::from_millis(1));
    }
    handle.shutdown(Duration::from_secs(10));
    assert!(
        matches!(
            handle.broadcast(&b"late"[..]),
            Ok(0) | Err(NetError::Shutdown)
        ),
        "a closing session accepts nothing new"
    );
    let waiter = thread::spawn(move || server.join());
    for i in 0..40 {
        let message = client.recv(WAIT).unwrap().expect("queued data delivered");
        assert_eq!(message[..], payload(0, i, 10_000)[..], "message {i}");
    }
    // Keep acknowledging until the server is done.
    let deadline = Instant::now() + WAIT;
    while !waiter.is_finished() {
        assert!(Instant::now() < deadline, "shutdown did not finish");
        assert_eq!(client.recv(Duration::from_millis(10)).unwrap(), None);
    }
    let stats = waiter.join().unwrap().unwrap();
    assert_eq!(stats.total.closed_shutdown, 1);
    assert_eq!(stats.total.messages_out, 40);
}

#[test]
fn shutdown_gives_up_on_an_unreachable_peer_at_its_deadline() {
    let (server, events) = reporting_server(server_config());
    let handle = server.handle();
    let mut client = KcpClient::connect(server.local_addr(), client_config()).unwrap();
    echo_once(&mut client, b"hello");
    let (key, ..) = expect_opened(&events);
    drop(client);
    handle.send(key, vec![9u8; 50_000]).unwrap();
    let started = Instant::now();
    let stats = server.shutdown(Duration::from_millis(300)).unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited for the deadline"
    );
    assert_eq!(stats.total.closed_shutdown, 1);
    let (_, reason) = expect_closed(&events);
    assert_eq!(reason, CloseReason::Shutdown);
}

#[test]
fn invalid_settings_are_refused_at_bind() {
    let mut config = ServerConfig::default();
    config.max_sessions = 0;
    assert!(matches!(
        KcpServer::bind(localhost(), config, Echo),
        Err(NetError::Setting(_))
    ));
    let mut config = ServerConfig::default();
    config.engine.mtu = 10;
    assert!(matches!(
        KcpServer::bind(localhost(), config, Echo),
        Err(NetError::Config(_))
    ));
}
