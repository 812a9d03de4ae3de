//! Datagrams nobody should send: garbage, wrong conversations, floods of new sessions,
//! and senders who outrun their limits. Existing sessions must keep working and every
//! drop must be counted under its reason.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::*;
use kcp_core::Sn;
use kcp_core::segment::{Command, HEADER_LEN, Header};
use kcp_net::{EventHandler, IoBackend, KcpClient, KcpServer, NetError, SessionCtx};

/// One segment, header and payload, as a fresh peer sends it.
fn segment(conv: u32, cmd: Command, sn: u32, payload: &[u8]) -> Vec<u8> {
    Header::new(conv, cmd, Sn::new(sn)).encode(payload)
}

fn raw_socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

/// Sends `datagrams` from `socket` to `to`.
fn spray(socket: &UdpSocket, to: SocketAddr, datagrams: &[Vec<u8>]) {
    for d in datagrams {
        socket.send_to(d, to).unwrap();
    }
}

#[test]
fn garbage_and_foreign_datagrams_are_counted_and_change_nothing() {
    let server = KcpServer::bind(localhost(), server_config(), Echo).unwrap();
    let addr = server.local_addr();
    let mut client = KcpClient::connect(addr, client_config()).unwrap();
    echo_once(&mut client, b"before");

    let attacker = raw_socket();
    let mut unknown_cmd = segment(77, Command::Push, 0, b"x");
    unknown_cmd[4] = 99;
    let mut lying_length = segment(77, Command::Push, 0, b"abc");
    lying_length[20] = 200;
    let mut two_convs = segment(77, Command::Push, 0, b"x");
    two_convs.extend(segment(78, Command::Push, 0, b"y"));
    let malformed = vec![
        vec![],
        vec![0; 3],
        vec![0xFF; HEADER_LEN - 1],
        unknown_cmd,
        lying_length,
        two_convs,
    ];
    spray(&attacker, addr, &malformed);
    // Valid KCP that cannot open a conversation: acks, probes, later segments.
    // (A tail shorter than a header is ignored, as ikcp does, so it is no reason to
    // drop a datagram; it is not sprayed here.)
    let stragglers = vec![
        segment(88, Command::Ack, 0, b""),
        segment(88, Command::WindowAsk, 0, b""),
        segment(88, Command::Push, 5, b"late"),
        // The real client's conv from another address: another peer, not its session.
        segment(client.conv(), Command::Push, 3, b"spoof"),
    ];
    spray(&attacker, addr, &stragglers);

    let total = wait_for_stats(&server, &mut client, |t| {
        t.dropped_malformed + t.dropped_unknown_session >= 10
    });
    assert_eq!(total.dropped_malformed, 6, "{total:?}");
    assert_eq!(total.dropped_unknown_session, 4, "{total:?}");
    assert_eq!(total.sessions_opened, 1);
    echo_once(&mut client, b"after");
    let stats = server.shutdown(Duration::from_secs(1)).unwrap();
    assert_eq!(stats.total.messages_in, 2);
}

/// Datagrams longer than the largest accepted (the engine's MTU, at least 1,500
/// bytes) are dropped unread on every backend, GRO's 64 KiB receive slots included, so
/// a peer cannot make a session hold payloads larger than that.
#[test]
fn oversized_datagrams_are_dropped_unread_on_every_backend() {
    for io in [IoBackend::Offload, IoBackend::Batched, IoBackend::Portable] {
        let mut config = server_config();
        config.io = io;
        let server = KcpServer::bind(localhost(), config, Echo).unwrap();
        let addr = server.local_addr();
        let mut client_config = client_config();
        client_config.io = io;
        let mut client = KcpClient::connect(addr, client_config).unwrap();
        echo_once(&mut client, b"before");

        let attacker = raw_socket();
        spray(
            &attacker,
            addr,
            &[
                segment(66, Command::Push, 0, &[1; 1501 - HEADER_LEN]),
                segment(67, Command::Push, 0, &[2; 30_000]),
                segment(68, Command::Push, 0, &[3; 1500 - HEADER_LEN]), // the largest accepted
            ],
        );
        let total = wait_for_stats(&server, &mut client, |t| {
            t.dropped_truncated >= 2 && t.sessions_opened >= 2
        });
        assert_eq!(total.dropped_truncated, 2, "{io:?}: {total:?}");
        assert_eq!(
            total.sessions_opened, 2,
            "{io:?}: only the 1,500-byte one opens"
        );
        echo_once(&mut client, b"after");
        server.shutdown(Duration::ZERO).unwrap();
    }
}

#[test]
fn a_bad_datagram_inside_an_open_session_is_rejected_without_harm() {
    let (server, events) = reporting_server(server_config());
    let addr = server.local_addr();
    // A hand-made peer opens a session with conv 5 ...
    let peer = raw_socket();
    spray(&peer, addr, &[segment(5, Command::Push, 0, b"open")]);
    expect_event(
        &events,
        WAIT,
        |e| matches!(e, Event::Message(_, m) if &m[..] == b"open"),
    );
    // ... then sends its session a datagram whose second segment is cut short.
    let mut bad = segment(5, Command::Push, 1, b"first");
    bad.extend_from_slice(&segment(5, Command::Push, 2, b"second")[..HEADER_LEN + 2]);
    spray(&peer, addr, &[bad, segment(5, Command::Push, 1, b"fine")]);
    expect_event(
        &events,
        WAIT,
        |e| matches!(e, Event::Message(_, m) if &m[..] == b"fine"),
    );
    let stats = server.shutdown(Duration::from_secs(1)).unwrap();
    assert_eq!(stats.total.dropped_rejected, 1, "{:?}", stats.total);
    assert_eq!(
        stats.total.messages_in, 2,
        "no part of the rejected datagram was applied"
    );
}

#[test]
fn a_flood_of_forged_first_segments_fills_only_the_unconfirmed_pool_and_ages_out() {
    let mut config = server_config();
    config.max_sessions = 50;
    config.max_unconfirmed_sessions = 50;
    let server = KcpServer::bind(localhost(), config, Echo).unwrap();
    let addr = server.local_addr();
    let mut client = KcpClient::connect(addr, client_config()).unwrap();
    echo_once(&mut client, b"first in");
    // Its acknowledgement of the echo confirms it (a client's next tick sends it).
    wait_for_stats(&server, &mut client, |t| t.sessions_confirmed == 1);

    // The attacker's socket stands for forged sources: it never acknowledges anything.
    let attacker = raw_socket();
    attacker.set_nonblocking(true).unwrap();
    let flood: Vec<_> = (1..=300)
        .map(|conv| segment(conv, Command::Push, 0, b"let me in"))
        .collect();
    spray(&attacker, addr, &flood);
    let total = wait_for_stats(&server, &mut client, |t| {
        t.sessions_opened + t.dropped_unconfirmed_full >= 301
    });
    assert_eq!(
        total.dropped_session_limit, 0,
        "no forged session counts as confirmed"
    );
    assert_eq!(total.sessions_opened, 51, "the real client and a full pool");
    assert_eq!(
        total.dropped_unconfirmed_full, 250,
        "no session younger than min_age is evicted"
    );
    assert_eq!(total.sessions_confirmed, 1, "only the real client");
    assert_eq!(server.handle().session_count(), 51);
    echo_once(&mut client, b"still served");

    // A real new client gets in once the oldest forgeries age out (its first segment
    // is retransmitted until then), and is served.
    let mut newcomer = KcpClient::connect(addr, client_config()).unwrap();
    echo_once(&mut newcomer, b"me too");
    let total = wait_for_stats(&server, &mut newcomer, |t| t.sessions_confirmed == 2);
    assert!(total.evicted_unconfirmed >= 1, "{total:?}");

    // What reached the forged source is at most three times what it sent.
    let sent: usize = flood.iter().map(Vec::len).sum();
    let deadline = Instant::now() + Duration::from_millis(300);
    let mut received = 0;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        match attacker.recv_from(&mut buf) {
            Ok((n, _)) => received += n,
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    assert!(received > 0, "the echoes within budget did arrive");
    assert!(
        received <= 3 * sent,
        "{received} bytes sent for {sent} received"
    );
    server.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn new_sessions_beyond_the_rate_cap_are_dropped_and_counted() {
    let mut config = server_config();
    config.new_sessions_per_sec = 20;
    let server = KcpServer::bind(localhost(), config, Echo).unwrap();
    let addr = server.local_addr();
    let mut client = KcpClient::connect(addr, client_config()).unwrap();
    echo_once(&mut client, b"first in");
    let attacker = raw_socket();
    let flood: Vec<_> = (1..=200)
        .map(|conv| segment(conv, Command::Push, 0, b"x"))
        .collect();
    spray(&attacker, addr, &flood);
    let total = wait_for_stats(&server, &mut client, |t| {
        t.sessions_opened + t.dropped_rate_limited >= 201
    });
    // The bucket holds one second's worth (20); the flood takes well under a second,
    // so only a few tokens refill meanwhile.
    assert!(
        (20..=30).contains(&total.sessions_opened),
        "opened {}",
        total.sessions_opened
    );
    assert_eq!(total.sessions_opened + total.dropped_rate_limited, 201);
    echo_once(&mut client, b"still served");
    server.shutdown(Duration::ZERO).unwrap();
}

/// Accepts only even conversation ids.
#[derive(Clone)]
struct EvenOnly;

impl EventHandler for EvenOnly {
    fn accept(&mut self, _peer: SocketAddr, conv: u32) -> bool {
        conv % 2 == 0
    }

    fn on_message(&mut self, session: &mut SessionCtx<'_>, message: bytes::Bytes) {
        let _ = session.send_bytes(message);
    }
}

#[test]
fn the_handler_decides_which_new_sessions_open() {
    let server = KcpServer::bind(localhost(), server_config(), EvenOnly).unwrap();
    let addr = server.local_addr();
    let attacker = raw_socket();
    let opens: Vec<_> = (1..=10)
        .map(|conv| segment(conv, Command::Push, 0, b"x"))
        .collect();
    spray(&attacker, addr, &opens);
    let mut client = KcpClient::connect_with_conv(addr, 1_000, client_config()).unwrap();
    echo_once(&mut client, b"even");
    let total = wait_for_stats(&server, &mut client, |t| t.sessions_opened >= 6);
    assert_eq!(total.dropped_refused, 5);
    assert_eq!(total.sessions_opened, 6);
    server.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn sending_beyond_the_queue_limit_is_an_error_not_growth() {
    let mut config = server_config();
    config.max_queued_bytes_per_session = 64 * 1024;
    let (server, events) = reporting_server(config);
    let mut client = KcpClient::connect(server.local_addr(), client_config()).unwrap();
    echo_once(&mut client, b"hello");
    let (key, ..) = expect_opened(&events);
    // The client stops reading, so nothing the server sends is acknowledged.
    let handle = server.handle();
    let mut accepted = 0;
    let refused = loop {
        match handle.send(key, vec![7u8; 10_000]) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 100, "the limit never applied");
    };
    assert!(
        matches!(refused, NetError::QueueFull { limit, .. } if limit == 64 * 1024),
        "{refused}"
    );
    assert!((5..=7).contains(&accepted), "accepted {accepted} × 10 kB");
    // The client side has its own limit.
    let mut config = client_config();
    config.max_queued_bytes = 32 * 1024;
    config.flush_on_send = false;
    let mut greedy = KcpClient::connect(server.local_addr(), config).unwrap();
    let err = (0..20)
        .map(|_| greedy.send(&[1u8; 4_000]))
        .find_map(Result::err)
        .expect("the client refuses to queue more than its limit");
    assert!(matches!(err, NetError::QueueFull { .. }), "{err}");
    let stats = server.shutdown(Duration::ZERO).unwrap();
    assert!(stats.total.sends_refused >= 1);
}

#[test]
fn one_address_gets_at_most_its_share_of_sessions_and_another_is_not_affected() {
    let mut config = server_config();
    config.max_sessions_per_ip = 20;
    let server = KcpServer::bind(localhost(), config, Echo).unwrap();
    let addr = server.local_addr();
    // A client on another loopback address (another host, as far as limits go).
    let mut elsewhere = client_config();
    elsewhere.bind = Some("127.0.0.2:0".parse().unwrap());
    let mut client = KcpClient::connect(addr, elsewhere).unwrap();
    echo_once(&mut client, b"first in");

    let attacker = raw_socket(); // 127.0.0.1
    let flood: Vec<_> = (1..=100)
        .map(|conv| segment(conv, Command::Push, 0, b"let me in"))
        .collect();
    spray(&attacker, addr, &flood);
    let total = wait_for_stats(&server, &mut client, |t| {
        t.sessions_opened + t.dropped_ip_limit >= 101
    });
    assert_eq!(
        total.sessions_opened, 21,
        "20 from 127.0.0.1, one from 127.0.0.2"
    );
    assert_eq!(total.dropped_ip_limit, 80);
    echo_once(&mut client, b"still served");

    // A second client from 127.0.0.2 still opens: the limit is per address.
    let mut neighbour_config = client_config();
    neighbour_config.bind = Some("127.0.0.2:0".parse().unwrap());
    let mut neighbour = KcpClient::connect(addr, neighbour_config).unwrap();
    echo_once(&mut neighbour, b"me too");
    server.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn one_address_opens_at_most_its_rate_of_new_sessions() {
    let mut config = server_config();
    config.new_sessions_per_ip_per_sec = 10;
    let server = KcpServer::bind(localhost(), config, Echo).unwrap();
    let addr = server.local_addr();
    let mut elsewhere = client_config();
    elsewhere.bind = Some("127.0.0.3:0".parse().unwrap());
    let mut client = KcpClient::connect(addr, elsewhere).unwrap();
    echo_once(&mut client, b"first in");
    let attacker = raw_socket();
    let flood: Vec<_> = (1..=60)
        .map(|conv| segment(conv, Command::Push, 0, b"let me in"))
        .collect();
    spray(&attacker, addr, &flood);
    let total = wait_for_stats(&server, &mut client, |t| {
        t.sessions_opened + t.dropped_ip_rate >= 61
    });
    // The bucket holds one second's worth; the flood takes far less than a second
    // to arrive, so at most one more token can have refilled.
    assert!((11..=12).contains(&total.sessions_opened), "{total:?}");
    assert_eq!(total.sessions_opened + total.dropped_ip_rate, 61);
    server.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn out_of_order_data_past_the_buffer_budget_is_dropped_not_allocated() {
    let mut config = server_config();
    // Room for 20 held datagrams (each counted as a whole 1,500-byte datagram).
    config.max_buffered_bytes = 20 * 1500;
    let server = KcpServer::bind(localhost(), config, Echo).unwrap();
    let addr = server.local_addr();
    let mut client = KcpClient::connect(addr, client_config()).unwrap();
    echo_once(&mut client, b"first in");

    // One session whose sn 1 never comes: everything after it is held, up to the budget.
    let attacker = raw_socket();
    let mut datagrams = vec![segment(77, Command::Push, 0, b"open")];
    datagrams.extend((2..=100).map(|sn| segment(77, Command::Push, sn, &[0xa5; 1000])));
    spray(&attacker, addr, &datagrams);
    let total = wait_for_stats(&server, &mut client, |t| {
        t.dropped_memory_budget + t.messages_in >= 1 + 99 - 25
    });
    assert!(
        total.dropped_memory_budget >= 99 - 21,
        "at most ~20 held: {total:?}"
    );
    // In-order data still flows, for this client and for a new one.
    echo_once(&mut client, b"still served");
    let mut newcomer = KcpClient::connect(addr, client_config()).unwrap();
    echo_once(&mut newcomer, b"me too");
    server.shutdown(Duration::ZERO).unwrap();
}
