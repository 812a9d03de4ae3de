//! Against the C reference (`ikcp.c` through `kcp-ref`) in raw mode on loopback: our
//! tokio client with a C echo server, and a C client with our tokio listener.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use kcp_ref::CKcp;
use kcp_ref::udp_peers::{CSetup, echo_server, millis, recv_all};
use kcp_tokio::{ClientConfig, KcpListener, KcpStream, Preset, ServerConfig};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

fn payload(seed: usize, i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (seed * 31 + i * 7 + j) as u8).collect()
}

#[tokio::test]
async fn our_tokio_client_uses_a_c_reference_echo_server() {
    let stop = Arc::new(AtomicBool::new(false));
    let (addr, server) = echo_server(CSetup::Fast, Arc::clone(&stop));
    let mut config = ClientConfig::new(Preset::Fast);
    config.flush_on_send = true;
    config.keepalive = Some(Duration::from_millis(50)); // echoed by C, dropped by us
    let mut client = KcpStream::connect(addr, config).await.unwrap();
    for i in 0..100 {
        let m = payload(3, i, 1 + (i * 613) % 5_000);
        client.send(m.clone().into()).await.unwrap();
        let reply = timeout(WAIT, client.recv()).await.unwrap().unwrap();
        assert_eq!(reply[..], m[..], "message {i}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = client.stats();
    assert!(stats.counters.keepalives_out > 0);
    assert_eq!(stats.counters.messages_in, 100);
    assert_eq!(stats.counters.rejected_in, 0);
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
}

/// A C client: `count` messages of varied size, at most 16 unanswered, each echo
/// checked. Returns the echoes verified.
fn c_client(server: SocketAddr, count: usize) -> usize {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut kcp = CKcp::new(0x0C11_E417);
    CSetup::Fast.apply(&mut kcp);
    let start = Instant::now();
    let size = |i: usize| 1 + (i * 397) % 3_000;
    let (mut sent, mut verified) = (0, 0);
    let mut buf = [0u8; 2_048];
    while verified < count {
        assert!(start.elapsed() < WAIT, "{verified} of {count} echoed");
        while sent < count && sent - verified < 16 {
            assert!(kcp.send(&payload(9, sent, size(sent))) >= 0);
            sent += 1;
        }
        kcp.update(millis(start));
        for d in kcp.drain_output() {
            socket.send_to(&d, server).unwrap();
        }
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            assert_eq!(from, server);
            assert_eq!(kcp.input(&buf[..n]), 0, "C rejected our datagram");
        }
        for m in recv_all(&mut kcp) {
            assert_eq!(m, payload(9, verified, size(verified)));
            verified += 1;
        }
        thread::sleep(Duration::from_millis(1));
    }
    verified
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_reference_client_uses_our_tokio_listener() {
    let mut config = ServerConfig::new(Preset::Fast);
    config.flush_on_send = true;
    let listener = KcpListener::bind("127.0.0.1:0", config).await.unwrap();
    let addr = listener.local_addr();
    let echo = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        while let Some(m) = stream.recv().await {
            stream.send(m).await.unwrap();
        }
    });
    let verified = timeout(
        WAIT * 2,
        tokio::task::spawn_blocking(move || c_client(addr, 200)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(verified, 200);
    echo.abort();
}
