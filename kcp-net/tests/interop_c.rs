//! Interoperability with the C reference (`ikcp.c` v1.7.1 through `kcp-ref`) over real
//! UDP sockets on loopback: a C client against our server, and our client against a
//! C echo server, in the C reference's own presets.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use kcp_net::{KcpClient, KcpServer, Preset, ServerConfig};
use kcp_ref::udp_peers::{CSetup, echo_client, echo_server};

#[test]
fn c_reference_clients_use_our_server() {
    for setup in [CSetup::Default, CSetup::Fast, CSetup::Stream] {
        let mut config = ServerConfig::new(Preset::Fast);
        config.engine.stream = matches!(setup, CSetup::Stream);
        config.flush_on_send = true;
        let server = KcpServer::bind(localhost(), config, Echo).unwrap();
        assert_eq!(echo_client(server.local_addr(), setup, 200), 200);
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
