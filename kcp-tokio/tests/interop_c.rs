//! Against the C reference (`ikcp.c` through `kcp-ref`) in raw mode on loopback: our
//! tokio client with a C echo server, and a C client with our tokio listener, in the
//! C reference's default and fast presets and in stream mode.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kcp_ref::udp_peers::{CSetup, echo_client, echo_server};
use kcp_tokio::{ClientConfig, KcpListener, KcpStream, Preset, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

fn payload(seed: usize, i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (seed * 31 + i * 7 + j) as u8).collect()
}

/// The preset of ours that matches `setup`, and whether it is stream mode.
fn ours(setup: CSetup) -> (Preset, bool) {
    match setup {
        CSetup::Default => (Preset::Default, false),
        CSetup::Fast => (Preset::Fast, false),
        CSetup::Stream => (Preset::Fast, true),
    }
}

/// Messages of up to 5,000 bytes through a C echo server set up as `setup`, one at a
/// time, each echo checked: as messages, or in stream mode as bytes
/// (`write_all`/`read_exact`). 100 of them, or 20 in the default preset, whose
/// 100 ms interval makes each round trip last a few hundred ms.
async fn against_a_c_echo_server(setup: CSetup) {
    let count = if setup == CSetup::Default { 20 } else { 100 };
    let stop = Arc::new(AtomicBool::new(false));
    let (addr, server) = echo_server(setup, Arc::clone(&stop));
    let (preset, stream) = ours(setup);
    let mut config = ClientConfig::new(preset);
    config.flush_on_send = true;
    config.engine.stream = stream;
    // Echoed by C, dropped by us (message mode only: stream mode sends none).
    config.keepalive = Some(Duration::from_millis(50));
    let mut client = KcpStream::connect(addr, config).await.unwrap();
    for i in 0..count {
        let m = payload(3, i, 1 + (i * 613) % 5_000);
        if stream {
            client.write_all(&m).await.unwrap();
            let mut echo = vec![0; m.len()];
            timeout(WAIT, client.read_exact(&mut echo))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(echo, m, "{setup:?}: message {i}");
        } else {
            client.send(m.clone().into()).await.unwrap();
            let reply = timeout(WAIT, client.recv()).await.unwrap().unwrap();
            assert_eq!(reply[..], m[..], "{setup:?}: message {i}");
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = client.stats();
    assert_eq!(stats.counters.rejected_in, 0, "{setup:?}");
    if !stream {
        assert!(stats.counters.keepalives_out > 0, "{setup:?}");
        assert_eq!(stats.counters.messages_in, count as u64, "{setup:?}");
    }
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
}

#[tokio::test]
async fn our_tokio_client_uses_a_c_echo_server_in_the_default_preset() {
    against_a_c_echo_server(CSetup::Default).await;
}

#[tokio::test]
async fn our_tokio_client_uses_a_c_echo_server_in_the_fast_preset() {
    against_a_c_echo_server(CSetup::Fast).await;
}

#[tokio::test]
async fn our_tokio_client_uses_a_c_echo_server_in_stream_mode() {
    against_a_c_echo_server(CSetup::Stream).await;
}

/// Messages from a C client set up as `setup` through our listener, which echoes
/// what it reads (whole messages, or in stream mode the chunks it reads): 200, or
/// 60 in the slow default preset.
async fn a_c_client_uses_our_listener(setup: CSetup) {
    let count = if setup == CSetup::Default { 60 } else { 200 };
    let (preset, stream) = ours(setup);
    let mut config = ServerConfig::new(preset);
    config.flush_on_send = true;
    config.engine.stream = stream;
    let listener = Arc::new(KcpListener::bind("127.0.0.1:0", config).await.unwrap());
    let addr = listener.local_addr();
    let accepting = Arc::clone(&listener);
    let echo = tokio::spawn(async move {
        let (mut stream, _) = accepting.accept().await.unwrap();
        while let Some(m) = stream.recv().await {
            stream.send(m).await.unwrap();
        }
    });
    let verified = timeout(
        WAIT * 3,
        tokio::task::spawn_blocking(move || echo_client(addr, setup, count)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(verified, count, "{setup:?}");
    echo.abort();
    let stats = listener.stats();
    assert_eq!(stats.sessions_opened, 1, "{setup:?}");
    assert_eq!(
        stats.dropped_malformed + stats.dropped_rejected,
        0,
        "{setup:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_client_in_the_default_preset_uses_our_tokio_listener() {
    a_c_client_uses_our_listener(CSetup::Default).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_client_in_the_fast_preset_uses_our_tokio_listener() {
    a_c_client_uses_our_listener(CSetup::Fast).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_client_in_stream_mode_uses_our_tokio_listener() {
    a_c_client_uses_our_listener(CSetup::Stream).await;
}
