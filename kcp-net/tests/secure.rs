//! The secure wire mode end to end on loopback: handshake, sealed echo, unreliable
//! datagrams, close in both directions, the errors a client sees, cookies, and a
//! client that moves to a new port mid-transfer.

mod common;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use kcp_net::secure::{
    Cipher, ClientSecurity, CookiePolicy, HandshakeError, Psk, ServerIdentity, ServerSecurity,
};
use kcp_net::{
    CloseCtx, CloseReason, EventHandler, KcpClient, KcpServer, NetError, ServerConfig, SessionCtx,
};
use mio::{Interest, Poll, Token};

/// Echoes messages and datagrams; reports closes.
#[derive(Clone)]
struct SecureEcho(std::sync::mpsc::Sender<CloseReason>);

impl EventHandler for SecureEcho {
    fn on_message(&mut self, session: &mut SessionCtx<'_>, message: Bytes) {
        let _ = session.send_bytes(message);
    }
    fn on_datagram(&mut self, session: &mut SessionCtx<'_>, datagram: Bytes) {
        let _ = session.send_datagram(datagram);
    }
    fn on_close(&mut self, _session: &CloseCtx<'_>, reason: CloseReason) {
        let _ = self.0.send(reason);
    }
}

fn secure_server(
    configure: impl FnOnce(&mut ServerConfig, &mut ServerSecurity),
) -> (
    KcpServer,
    ServerIdentity,
    std::sync::mpsc::Receiver<CloseReason>,
) {
    let identity = ServerIdentity::generate().unwrap();
    let mut security = ServerSecurity::new(identity.clone());
    let mut config = server_config();
    configure(&mut config, &mut security);
    config.secure = Some(security);
    let (tx, rx) = std::sync::mpsc::channel();
    let server = KcpServer::bind(localhost(), config, SecureEcho(tx)).unwrap();
    (server, identity, rx)
}

fn secure_client(server: &KcpServer, security: ClientSecurity) -> Result<KcpClient, NetError> {
    let mut config = client_config();
    config.secure = Some(security);
    KcpClient::connect(server.local_addr(), config)
}

fn echo(client: &mut KcpClient, message: &[u8]) {
    client.send(message).unwrap();
    let got = client.recv(WAIT).unwrap().expect("an echo");
    assert_eq!(&got[..], message);
}

/// Reads (and drops) messages until the client fails; panics after [`WAIT`].
fn recv_until_error(client: &mut KcpClient) -> NetError {
    let started = Instant::now();
    loop {
        match client.recv(Duration::from_millis(50)) {
            Err(e) => return e,
            Ok(_) => assert!(started.elapsed() < WAIT, "the client never heard"),
        }
    }
}

#[test]
fn a_sealed_echo_with_datagrams_and_a_close_the_server_learns_at_once() {
    let (server, identity, closes) = secure_server(|_, _| {});
    let mut client = secure_client(&server, ClientSecurity::new(identity.public())).unwrap();
    for i in 0..20u32 {
        echo(&mut client, &i.to_le_bytes().repeat(100 * i as usize + 1));
    }
    let max = client.conversation().max_datagram_size().unwrap();
    client.send_datagram(Bytes::from(vec![7; max])).unwrap();
    let deadline = Instant::now() + WAIT;
    let datagram = loop {
        if let Some(d) = client.try_recv_datagram().unwrap() {
            break d;
        }
        assert!(Instant::now() < deadline, "no datagram echoed");
        thread::sleep(Duration::from_millis(2));
    };
    assert_eq!(datagram.len(), max);
    assert!(matches!(
        client.send_datagram(Bytes::from(vec![7; max + 1])),
        Err(NetError::Datagram(_))
    ));
    let stats = wait_for_stats(&server, &mut client, |s| s.sessions_confirmed > 0);
    assert_eq!(stats.handshakes, 1);
    assert_eq!(stats.sessions_confirmed, 1);
    client.close(WAIT).unwrap();
    // The server hears of it at once, not after its idle timeout (30 s).
    let reason = closes
        .recv_timeout(Duration::from_secs(2))
        .expect("a close");
    assert_eq!(reason, CloseReason::PeerClosed);
    server.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn the_server_seals_with_the_cipher_each_client_prefers() {
    let (server, identity, _closes) = secure_server(|_, _| {});
    let default = ClientSecurity::new(identity.public());
    assert_eq!(default.cipher, Cipher::fastest_here());
    for cipher in [Cipher::ChaCha20Poly1305, Cipher::Aes256Gcm] {
        let mut security = ClientSecurity::new(identity.public());
        security.cipher = cipher;
        let mut client = secure_client(&server, security).unwrap();
        assert_eq!(client.conversation().cipher(), Some(cipher));
        for i in 0..5u32 {
            echo(&mut client, &i.to_le_bytes().repeat(300 * i as usize + 1));
        }
        let counters = client.conversation().secure_counters().unwrap();
        assert_eq!(counters.tampered, 0, "{cipher}");
        assert!(counters.opened >= 5, "{cipher}: {counters:?}");
    }
    server.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn a_server_shutdown_reaches_the_client_at_once() {
    let (server, identity, _closes) = secure_server(|_, _| {});
    let mut client = secure_client(&server, ClientSecurity::new(identity.public())).unwrap();
    echo(&mut client, b"hello");
    let started = Instant::now();
    server.shutdown(Duration::from_secs(1)).unwrap();
    let err = recv_until_error(&mut client);
    assert!(
        matches!(
            err,
            NetError::ClosedByServer {
                reason: Some(CloseReason::Shutdown),
                ..
            }
        ),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_wrong_key_a_psk_mismatch_and_a_full_server_are_told_apart() {
    let (server, identity, _closes) = secure_server(|config, security| {
        config.max_sessions = 1;
        security.psk = Some(Psk::from_passphrase("the title's secret"));
    });
    let other = ServerIdentity::generate().unwrap().public();
    let err = secure_client(&server, ClientSecurity::new(other)).unwrap_err();
    assert!(
        matches!(&err, NetError::Handshake(HandshakeError::WrongServerKey { pinned, offered })
            if *pinned == other && *offered == Some(identity.public())),
        "{err:?}"
    );
    let err = secure_client(&server, ClientSecurity::new(identity.public())).unwrap_err();
    assert!(
        matches!(err, NetError::Handshake(HandshakeError::PskMismatch)),
        "{err:?}"
    );

    let mut with_psk = ClientSecurity::new(identity.public());
    with_psk.psk = Some(Psk::from_passphrase("the title's secret"));
    let mut first = secure_client(&server, with_psk.clone()).unwrap();
    echo(&mut first, b"confirmed");
    let err = secure_client(&server, with_psk).unwrap_err();
    assert!(
        matches!(err, NetError::Handshake(HandshakeError::ServerFull)),
        "{err:?}"
    );
    // The counters are published with the loop's next stats snapshot.
    let stats = wait_for_stats(&server, &mut first, |s| s.rejected_full > 0);
    assert_eq!(
        (
            stats.rejected_wrong_key,
            stats.rejected_handshake,
            stats.rejected_full
        ),
        (1, 1, 1)
    );
    server.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn no_answer_is_a_timeout_that_says_so() {
    // A raw server does not speak the secure mode: the client hears nothing it knows.
    let server = KcpServer::bind(localhost(), server_config(), Echo).unwrap();
    let mut security = ClientSecurity::new(ServerIdentity::generate().unwrap().public());
    security.handshake_timeout = Duration::from_millis(600);
    let err = secure_client(&server, security).unwrap_err();
    assert!(
        matches!(err, NetError::Handshake(HandshakeError::Timeout(_))),
        "{err:?}"
    );
    server.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn with_cookies_always_a_handshake_takes_one_more_round_trip_and_works() {
    let (server, identity, _closes) = secure_server(|_, security| {
        security.cookies = CookiePolicy::Always;
    });
    let mut client = secure_client(&server, ClientSecurity::new(identity.public())).unwrap();
    echo(&mut client, b"after the cookie");
    let stats = wait_for_stats(&server, &mut client, |s| s.handshakes > 0);
    assert_eq!((stats.cookies_sent, stats.handshakes), (1, 1));
    server.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn a_client_that_moves_to_a_new_port_mid_transfer_loses_nothing() {
    let (server, identity, _closes) = secure_server(|_, _| {});
    let mut client = secure_client(&server, ClientSecurity::new(identity.public())).unwrap();
    let before = client.local_addr().unwrap();
    let mut expected = Vec::new();
    let mut got = Vec::new();
    for i in 0..400u32 {
        let message = i.to_le_bytes().repeat(64);
        client.send(&message).unwrap();
        expected.extend_from_slice(&message);
        if i == 200 {
            let after = client.rebind().unwrap();
            assert_ne!(before.port(), after.port());
        }
        while let Some(m) = client.try_recv().unwrap() {
            got.extend_from_slice(&m);
        }
    }
    let deadline = Instant::now() + WAIT;
    while got.len() < expected.len() {
        assert!(
            Instant::now() < deadline,
            "{} of {} bytes back",
            got.len(),
            expected.len()
        );
        if let Some(m) = client.recv(Duration::from_millis(50)).unwrap() {
            got.extend_from_slice(&m);
        }
    }
    assert_eq!(got, expected);
    let stats = wait_for_stats(&server, &mut client, |s| s.migrations > 0);
    assert_eq!(stats.migrations, 1);
    assert_eq!(stats.sessions_opened, 1);
    server.shutdown(Duration::ZERO).unwrap();
}

/// With two loops, the kernel hashes a client's new port to either loop's socket: a
/// datagram that lands on the loop without the session is handed to the one with it,
/// so the conversation goes on whichever socket the new address reaches.
#[test]
fn a_client_that_moves_keeps_its_session_whichever_loop_its_new_port_reaches() {
    let (server, identity, _closes) = secure_server(|config, _| config.threads = 2);
    let mut client = secure_client(&server, ClientSecurity::new(identity.public())).unwrap();
    echo(&mut client, b"before moving");
    let mut moves = 0;
    // Each move lands on the other loop with probability 1/2: 40 moves miss it with
    // probability 2^-40.
    while server.handle().stats().total.forwarded_out == 0 {
        assert!(
            moves < 40,
            "40 moves and no datagram reached the other loop"
        );
        client.rebind().unwrap();
        moves += 1;
        echo(&mut client, format!("after move {moves}").as_bytes());
    }
    echo(&mut client, b"still the same session");
    let stats = server.handle().stats().total;
    assert_eq!(stats.sessions_opened, 1);
    assert_eq!(stats.handshakes, 1);
    assert!(
        stats.forwarded_in > 0 && stats.dropped_forward_full == 0,
        "{stats:?}"
    );
    server.shutdown(Duration::ZERO).unwrap();
}

/// Answers any message with as many 1 KiB messages as the session's queue takes.
#[derive(Clone)]
struct Flood(std::sync::mpsc::Sender<CloseReason>);

impl EventHandler for Flood {
    fn on_message(&mut self, session: &mut SessionCtx<'_>, _message: Bytes) {
        while session.send_bytes(Bytes::from(vec![9; 1024])).is_ok() {}
    }
    fn on_close(&mut self, _session: &CloseCtx<'_>, reason: CloseReason) {
        let _ = self.0.send(reason);
    }
}

#[test]
fn a_client_that_does_not_keep_up_is_closed_as_a_slow_consumer_and_told_why() {
    let identity = ServerIdentity::generate().unwrap();
    let mut config = server_config();
    config.secure = Some(ServerSecurity::new(identity.clone()));
    config.max_queued_bytes_per_session = 64 << 10;
    config.slow_consumer_timeout = Some(Duration::from_millis(300));
    let (tx, closes) = std::sync::mpsc::channel();
    let server = KcpServer::bind(localhost(), config, Flood(tx)).unwrap();
    let mut client = secure_client(&server, ClientSecurity::new(identity.public())).unwrap();
    client.send(b"flood me").unwrap();
    // Neither reading nor acknowledging: the server's queue for us stays full.
    let reason = closes
        .recv_timeout(Duration::from_secs(5))
        .expect("the server closes the session");
    assert_eq!(reason, CloseReason::SlowConsumer);
    // The loop publishes its counters at the end of the turn that closed it.
    let deadline = Instant::now() + WAIT;
    while server.handle().stats().total.closed_slow_consumer == 0 {
        assert!(
            Instant::now() < deadline,
            "closed_slow_consumer never counted"
        );
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(server.handle().stats().total.closed_slow_consumer, 1);
    // The client learns why as soon as it reads again.
    let err = recv_until_error(&mut client);
    assert!(
        matches!(
            err,
            NetError::ClosedByServer {
                reason: Some(CloseReason::SlowConsumer),
                ..
            }
        ),
        "{err}"
    );
    server.shutdown(Duration::ZERO).unwrap();
}

/// The chat bench's start (issue 15, item 6): many clients handshake with one server
/// at the same moment (more than `load_threshold`, so some may be asked for a
/// cookie), then each is registered with one `mio` poll of the caller's, as a load
/// generator does, and echoes. Every one connects and is served.
#[test]
fn a_hundred_clients_handshaking_at_once_all_connect_and_echo_on_one_poll() {
    const CLIENTS: usize = 100;
    let (server, identity, _closes) = secure_server(|_, _| {});
    let mut config = client_config();
    config.secure = Some(ClientSecurity::new(identity.public()));
    let start = Arc::new(Barrier::new(CLIENTS));
    let connecting: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (config, start, addr) = (config.clone(), Arc::clone(&start), server.local_addr());
            thread::spawn(move || {
                start.wait();
                KcpClient::connect(addr, config)
            })
        })
        .collect();
    let clients: Vec<KcpClient> = connecting
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            t.join()
                .expect("a connecting thread")
                .unwrap_or_else(|e| panic!("client {i} did not connect: {e}"))
        })
        .collect();
    echo_on_one_poll(clients, 0, 3, 200, Instant::now() + WAIT);
    let stats = server.handle().stats().total;
    assert_eq!(stats.handshakes, CLIENTS as u64, "{stats:?}");
    assert_eq!(stats.sessions_opened, CLIENTS as u64, "{stats:?}");
    server.shutdown(Duration::ZERO).unwrap();
}

/// A secure client registered with a poll of its caller's can still reconnect: the
/// new handshake reads the socket itself (the caller's poll gets the events).
#[test]
fn a_client_registered_with_its_callers_poll_reconnects() {
    let (server, identity, _closes) = secure_server(|_, _| {});
    let mut client = secure_client(&server, ClientSecurity::new(identity.public())).unwrap();
    let poll = Poll::new().unwrap();
    poll.registry()
        .register(&mut client, Token(0), Interest::READABLE)
        .unwrap();
    let old = client.conv();
    let new = client
        .reconnect()
        .expect("a reconnect under the caller's poll");
    assert_ne!(old, new);
    poll.registry().deregister(&mut client).unwrap();
    echo(&mut client, b"on the new conversation");
    let stats = wait_for_stats(&server, &mut client, |s| s.handshakes >= 2);
    assert_eq!(stats.handshakes, 2, "{stats:?}");
    server.shutdown(Duration::ZERO).unwrap();
}

/// The memory budget is judged on what a sealed datagram carries: over it, data that
/// would be held out of order is dropped after the seal is opened (the client sends
/// it again), and nothing is lost. Before, the budget read the sealed bytes as KCP and
/// almost never dropped.
#[test]
fn over_its_memory_budget_a_secure_server_drops_what_it_would_hold_and_loses_nothing() {
    let (server, identity, _closes) = secure_server(|config, _| {
        // Room for five held datagrams.
        config.max_buffered_bytes = 5 * 1500;
    });
    let mut config = client_config();
    config.secure = Some(ClientSecurity::new(identity.public()));
    // The client's own sends lose 10%: the server gets data out of order.
    config.impair = Some(kcp_net::impair::ImpairConfig::new(
        kcp_net::impair::LinkConfig::lossy(0.1, 0, 0),
        5,
    ));
    // 6 messages of 6 kB (five segments each), all sent at once.
    run_echo_clients(
        server.local_addr(),
        1,
        1,
        6,
        6_000,
        &config,
        Duration::from_secs(30),
    );
    let stats = server.shutdown(Duration::from_secs(1)).unwrap().total;
    assert_eq!(stats.messages_in, 6);
    assert!(
        stats.dropped_memory_budget > 0,
        "nothing dropped for the budget: {stats:?}"
    );
    assert_eq!(
        stats.dropped_tampered + stats.dropped_rejected,
        0,
        "{stats:?}"
    );
}
