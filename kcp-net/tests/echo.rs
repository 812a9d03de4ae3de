//! Echo through a real server over loopback: 1, 100 and 1000 concurrent clients, and a
//! server with two threads, every message verified.

mod common;

use std::time::{Duration, Instant};

use common::*;
use kcp_net::{IoBackend, KcpClient, KcpServer};

#[test]
fn one_client_echoes_messages_of_every_size() {
    let server = KcpServer::bind(localhost(), server_config(), Echo).unwrap();
    let mut client = KcpClient::connect(server.local_addr(), client_config()).unwrap();
    assert_ne!(client.conv(), 0);
    for size in [0usize, 1, 100, 1376, 1377, 10_000, 100_000] {
        let message = payload(0, size, size);
        client.send(&message).unwrap();
        if size == 0 {
            continue; // an empty message is a keepalive: swallowed, not echoed
        }
        let reply = client.recv(WAIT).unwrap().expect("echo");
        assert_eq!(reply.len(), size, "message boundary kept");
        assert_eq!(reply[..], message[..]);
    }
    let stats = server.shutdown(Duration::from_secs(1)).unwrap();
    assert_eq!(stats.total.sessions_opened, 1);
    assert_eq!(stats.total.messages_in, 6);
    assert_eq!(stats.total.keepalives_in, 1);
    assert_eq!(stats.total.dropped_malformed, 0);
}

#[test]
fn hundred_concurrent_clients() {
    let server = KcpServer::bind(localhost(), server_config(), Echo).unwrap();
    let started = Instant::now();
    run_echo_clients(server.local_addr(), 100, 2, 5, 200, &client_config(), WAIT);
    eprintln!("100 clients x 5 echoes: {:?}", started.elapsed());
    let stats = server.shutdown(Duration::from_secs(1)).unwrap();
    assert_eq!(stats.total.sessions_opened, 100);
    assert_eq!(stats.total.messages_in, 500);
    assert_eq!(stats.total.messages_out, 500);
}

#[test]
fn thousand_concurrent_clients() {
    let server = KcpServer::bind(localhost(), server_config(), Echo).unwrap();
    let started = Instant::now();
    run_echo_clients(
        server.local_addr(),
        1000,
        4,
        2,
        100,
        &client_config(),
        Duration::from_secs(30),
    );
    eprintln!("1000 clients x 2 echoes: {:?}", started.elapsed());
    let handle = server.handle();
    assert_eq!(handle.session_count(), 1000);
    let stats = server.shutdown(Duration::from_secs(2)).unwrap();
    assert_eq!(stats.total.sessions_opened, 1000);
    assert_eq!(stats.total.messages_in, 2000);
    assert_eq!(stats.total.closed_shutdown, 1000);
}

#[test]
fn two_thread_server_spreads_peers_over_both_loops() {
    let mut config = server_config();
    config.threads = 2;
    let server = KcpServer::bind(localhost(), config, Echo).unwrap();
    run_echo_clients(server.local_addr(), 64, 2, 3, 500, &client_config(), WAIT);
    let stats = server.shutdown(Duration::from_secs(1)).unwrap();
    assert_eq!(stats.loops.len(), 2);
    assert_eq!(stats.total.sessions_opened, 64);
    assert_eq!(stats.total.messages_in, 192);
    // SO_REUSEPORT hashes each peer to one socket; 64 peers all on one loop would be
    // a 2^-63 chance.
    for (i, l) in stats.loops.iter().enumerate() {
        assert!(l.sessions_opened > 0, "loop {i} got no session: {stats:?}");
        assert_eq!(
            l.messages_in,
            3 * l.sessions_opened,
            "each peer stays on its loop"
        );
    }
}

/// Bulk echo through each backend, flushing on input: 4 MiB in 16 KiB messages with
/// 64 awaiting their echo, every byte checked. With `Offload`, runs of full datagrams
/// leave as one GSO message, so a kernel that grants it sends far fewer messages than
/// datagrams.
fn bulk_echo(io: IoBackend) -> kcp_net::ServerStats {
    let mut engine = server_config().engine;
    engine.snd_wnd = 4096;
    engine.rcv_wnd = 4096;
    let mut server_config = server_config();
    (server_config.engine, server_config.io) = (engine.clone(), io);
    server_config.flush_on_input = true;
    server_config.max_queued_bytes_per_session = 16 << 20;
    let server = KcpServer::bind(localhost(), server_config, Echo).unwrap();
    let mut config = client_config();
    (config.engine, config.io, config.flush_on_input) = (engine, io, true);
    config.max_queued_bytes = 16 << 20;
    let mut client = KcpClient::connect(server.local_addr(), config).unwrap();
    let (count, inflight, size) = (256, 64, 16 * 1024);
    let (mut sent, mut received) = (0, 0);
    while received < count {
        while sent < count && sent - received < inflight {
            client.send(&payload(1, sent, size)).unwrap();
            sent += 1;
        }
        let echo = client.recv(WAIT).unwrap().expect("an echo in time");
        assert_eq!(echo[..], payload(1, received, size)[..], "echo {received}");
        received += 1;
    }
    assert!(client.wait_acknowledged(WAIT).unwrap());
    server.shutdown(Duration::from_secs(1)).unwrap()
}

#[test]
fn bulk_echo_with_offload() {
    let stats = bulk_echo(IoBackend::Offload);
    assert_eq!(stats.total.messages_in, 256);
    assert!(
        stats.total.send_syscalls * 4 < stats.total.datagrams_out,
        "GSO barely used: {:?}",
        stats.total
    );
}

#[test]
fn bulk_echo_without_offload() {
    let stats = bulk_echo(IoBackend::Batched);
    assert_eq!(stats.total.messages_in, 256);
}
