//! Interoperability with the C reference (`ikcp.c` v1.7.1 through `kcp-ref`) over real
//! UDP sockets on loopback: a C client against our server, and our client against a
//! C echo server, in the C reference's own presets.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use kcp_net::{KcpClient, KcpServer, Preset, ServerConfig};
use kcp_ref::CKcp;
use kcp_ref::udp_peers::{CSetup, echo_server, millis, recv_all, send_output};

/// A C client: sends `count` messages of varied size to `server`, at most 16 unanswered,
/// and checks every echo. Returns the number of echoes verified.
fn c_client(server: SocketAddr, setup: CSetup, count: usize) -> usize {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let mut kcp = CKcp::new(0x0C11_E417);
    setup.apply(&mut kcp);
    let stream = matches!(setup, CSetup::Stream);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(20);
    let sizes = |i: usize| 1 + (i * 397) % 3_000;
    let (mut sent, mut verified) = (0, 0);
    let mut expected: Vec<u8> = Vec::new(); // bytes sent and not yet echoed
    // Stream mode: where each message ends in the byte stream, and bytes echoed so far.
    let mut ends: Vec<usize> = Vec::new();
    let mut echoed = 0;
    let mut buf = [0u8; 2_048];
    while verified < count {
        assert!(
            Instant::now() < deadline,
            "{setup:?}: {verified} of {count} echoed"
        );
        while sent < count && sent - verified < 16 {
            let m = payload(9, sent, sizes(sent));
            assert!(kcp.send(&m) >= 0);
            expected.extend_from_slice(&m);
            ends.push(ends.last().copied().unwrap_or(0) + m.len());
            sent += 1;
        }
        kcp.update(millis(start));
        send_output(&mut kcp, &socket, server);
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            assert_eq!(from, server);
            assert_eq!(
                kcp.input(&buf[..n]),
                0,
                "{setup:?}: C rejected our datagram"
            );
            socket.set_nonblocking(true).unwrap();
        }
        socket.set_nonblocking(false).unwrap();
        for chunk in recv_all(&mut kcp) {
            if stream {
                assert!(chunk.len() <= expected.len());
                assert_eq!(
                    chunk[..],
                    expected[..chunk.len()],
                    "{setup:?}: stream bytes"
                );
                expected.drain(..chunk.len());
                echoed += chunk.len();
                verified = ends.partition_point(|&end| end <= echoed);
            } else {
                assert_eq!(chunk, payload(9, verified, sizes(verified)), "{setup:?}");
                expected.drain(..chunk.len());
                verified += 1;
            }
        }
    }
    verified
}

#[test]
fn c_reference_clients_use_our_server() {
    for setup in [CSetup::Default, CSetup::Fast, CSetup::Stream] {
        let mut config = ServerConfig::new(Preset::Fast);
        config.engine.stream = matches!(setup, CSetup::Stream);
        config.flush_on_send = true;
        let server = KcpServer::bind(localhost(), config, Echo).unwrap();
        assert_eq!(c_client(server.local_addr(), setup, 200), 200);
        let stats = server.shutdown(Duration::from_secs(1)).unwrap().total;
        assert_eq!(stats.sessions_opened, 1, "{setup:?}");
        assert_eq!(
            stats.dropped_malformed + stats.dropped_rejected,
            0,
            "{setup:?}"
        );
    }
}

#[test]
fn our_client_uses_a_c_reference_echo_server() {
    for (setup, preset) in [
        (CSetup::Default, Preset::Default),
        (CSetup::Fast, Preset::Fast),
        (CSetup::Fast, Preset::Normal),
    ] {
        let stop = Arc::new(AtomicBool::new(false));
        let (addr, server) = echo_server(setup, Arc::clone(&stop));
        let mut config = kcp_net::ClientConfig::new(preset);
        config.flush_on_send = true;
        config.keepalive = Some(Duration::from_millis(50)); // the C server echoes them
        let mut client = KcpClient::connect(addr, config).unwrap();
        for i in 0..100 {
            let m = payload(3, i, 1 + (i * 613) % 5_000);
            client.send(&m).unwrap();
            let reply = client.recv(WAIT).unwrap().expect("echo from the C server");
            assert_eq!(reply[..], m[..], "{setup:?}/{preset}: message {i}");
        }
        // Idle long enough for keepalives, whose echoes the client drops.
        let idle_since = Instant::now();
        while idle_since.elapsed() < Duration::from_millis(300) {
            assert_eq!(client.recv(Duration::from_millis(20)).unwrap(), None);
        }
        assert!(
            client.wait_acknowledged(WAIT).unwrap(),
            "{setup:?}: all acknowledged"
        );
        assert!(client.stats().counters.keepalives_out > 0);
        assert_eq!(client.stats().counters.messages_in, 100);
        stop.store(true, Ordering::Relaxed);
        server.join().unwrap();
    }
}
