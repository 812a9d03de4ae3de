//! The listener and streams on loopback, every wait bounded.

use std::time::Duration;

use bytes::Bytes;
use kcp_tokio::{ClientConfig, CloseReason, KcpListener, KcpStream, Preset, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

fn payload(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn client_config() -> ClientConfig {
    let mut config = ClientConfig::new(Preset::Fast);
    config.flush_on_send = true;
    config
}

async fn listener(config: ServerConfig) -> KcpListener {
    KcpListener::bind("127.0.0.1:0", config).await.unwrap()
}

async fn pair(config: ServerConfig, client: ClientConfig) -> (KcpListener, KcpStream, KcpStream) {
    let listener = listener(config).await;
    let mut client = KcpStream::connect(listener.local_addr(), client)
        .await
        .unwrap();
    // KCP has no handshake: the first message opens the session.
    client.send(Bytes::from_static(b"hi")).await.unwrap();
    let (mut server, peer) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    assert_eq!(
        peer,
        client
            .local_addr()
            .to_string()
            .replace("0.0.0.0", "127.0.0.1")
            .parse()
            .unwrap()
    );
    assert_eq!(server.conv(), client.conv());
    assert_eq!(
        timeout(WAIT, server.recv()).await.unwrap().as_deref(),
        Some(&b"hi"[..])
    );
    (listener, client, server)
}

#[tokio::test]
async fn connect_accept_and_messages_keep_their_boundaries() {
    let (listener, mut client, mut server) =
        pair(ServerConfig::new(Preset::Fast), client_config()).await;
    let sizes = [1, 1_000, 5_000, 40_000, 3];
    for (i, &len) in sizes.iter().enumerate() {
        client.send(payload(i as u8, len).into()).await.unwrap();
    }
    for (i, &len) in sizes.iter().enumerate() {
        let m = timeout(WAIT, server.recv()).await.unwrap().unwrap();
        assert_eq!(m[..], payload(i as u8, len)[..], "message {i}");
    }
    // And back.
    server.send(Bytes::from_static(b"reply")).await.unwrap();
    assert_eq!(
        timeout(WAIT, client.recv()).await.unwrap().as_deref(),
        Some(&b"reply"[..])
    );
    assert_eq!(listener.stats().sessions_opened, 1);
    assert!(client.stats().counters.messages_out >= 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_read_and_write_move_a_megabyte_with_io_copy() {
    let (_listener, client, server) = pair(ServerConfig::new(Preset::Fast), client_config()).await;
    let data = payload(7, 1 << 20);
    let (mut client_read, mut client_write) = client.split();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        let n = tokio::io::copy(&mut &sent[..], &mut client_write)
            .await
            .unwrap();
        client_write.shutdown().await.unwrap(); // waits until everything is acknowledged
        assert_eq!(client_write.queued_bytes(), 0);
        n
    });
    // The server echoes through AsyncRead/AsyncWrite.
    let echo = tokio::spawn(async move {
        let (mut read, mut write) = tokio::io::split(server);
        let mut limited = (&mut read).take(1 << 20);
        tokio::io::copy(&mut limited, &mut write).await.unwrap()
    });
    let mut back = vec![0u8; 1 << 20];
    timeout(WAIT, client_read.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, data);
    assert_eq!(timeout(WAIT, writer).await.unwrap().unwrap(), 1 << 20);
    assert_eq!(timeout(WAIT, echo).await.unwrap().unwrap(), 1 << 20);
}

#[tokio::test]
async fn a_writer_that_outpaces_a_silent_reader_waits_at_the_queue_limit() {
    let mut config = client_config();
    config.max_queued_bytes = 64 << 10;
    let (_listener, mut client, mut server) = pair(ServerConfig::new(Preset::Fast), config).await;
    let chunk = payload(1, 16 << 10);
    let mut written = 0usize;
    let mut expected = Vec::new();
    // The server does not read: its receive window fills, then our queue.
    loop {
        match timeout(Duration::from_millis(500), client.write(&chunk)).await {
            Ok(n) => {
                let n = n.unwrap();
                expected.extend_from_slice(&chunk[..n]);
                written += n;
            }
            Err(_) => break, // Pending, and nothing woke it
        }
        assert!(
            written < 16 << 20,
            "unbounded buffering: {written} bytes accepted"
        );
        assert!(client.queued_bytes() <= 64 << 10);
    }
    assert!(client.queued_bytes() > 0);
    let window = 2 * 1024 * 1400; // generous bound on what the peer's window holds
    assert!(written <= (64 << 10) + window, "{written}");
    // Now the server reads everything; the writer gets room again.
    let total = written + chunk.len();
    let reader = tokio::spawn(async move {
        let mut got = vec![0u8; total];
        server.read_exact(&mut got).await.unwrap();
        got
    });
    timeout(WAIT, client.write_all(&chunk))
        .await
        .unwrap()
        .unwrap();
    expected.extend_from_slice(&chunk);
    let got = timeout(WAIT, reader).await.unwrap().unwrap();
    assert!(got == expected, "the bytes arrived in order");
}

#[tokio::test]
async fn dropping_the_listener_delivers_what_is_queued_then_ends_the_streams() {
    let (listener, mut client, mut server) =
        pair(ServerConfig::new(Preset::Fast), client_config()).await;
    let big = payload(3, 200_000);
    server.write_all(&big).await.unwrap();
    drop(listener);
    let mut got = vec![0u8; big.len()];
    timeout(WAIT, client.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, big);
    // The server's stream ends once its data is acknowledged.
    assert_eq!(timeout(WAIT, server.recv()).await.unwrap(), None);
    assert_eq!(server.close_reason(), Some(CloseReason::Shutdown));
    assert!(server.write(b"late").await.is_err());
}

#[tokio::test]
async fn dropping_a_stream_closes_its_session() {
    let (listener, mut client, server) =
        pair(ServerConfig::new(Preset::Fast), client_config()).await;
    drop(server);
    timeout(WAIT, async {
        while listener.stats().closed_local == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("closed");
    assert_eq!(listener.stats().sessions_active, 0);
    // The same client may open a new session with a new stream.
    let mut again = KcpStream::connect(listener.local_addr(), client_config())
        .await
        .unwrap();
    again.send(Bytes::from_static(b"again")).await.unwrap();
    let (mut s, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    assert_eq!(
        timeout(WAIT, s.recv()).await.unwrap().as_deref(),
        Some(&b"again"[..])
    );
    drop(client.send(Bytes::from_static(b"x")).await);
}

#[tokio::test]
async fn dropped_recv_and_accept_futures_lose_nothing() {
    let listener = listener(ServerConfig::new(Preset::Fast)).await;
    assert!(
        timeout(Duration::from_millis(50), listener.accept())
            .await
            .is_err()
    );
    let mut client = KcpStream::connect(listener.local_addr(), client_config())
        .await
        .unwrap();
    client.send(Bytes::from_static(b"first")).await.unwrap();
    let (mut server, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    assert_eq!(
        timeout(WAIT, server.recv()).await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
    // A recv cancelled while waiting takes nothing with it.
    assert!(
        timeout(Duration::from_millis(50), server.recv())
            .await
            .is_err()
    );
    tokio::select! {
        _ = server.recv() => panic!("nothing was sent"),
        () = tokio::time::sleep(Duration::from_millis(20)) => {}
    }
    client.send(Bytes::from_static(b"second")).await.unwrap();
    assert_eq!(
        timeout(WAIT, server.recv()).await.unwrap().as_deref(),
        Some(&b"second"[..])
    );
}

#[tokio::test]
async fn a_silent_peer_times_out_and_the_stream_reads_eof() {
    let mut config = ServerConfig::new(Preset::Fast);
    config.idle_timeout = Duration::from_millis(300);
    let mut client = client_config();
    client.keepalive = None;
    let (listener, _client, mut server) = pair(config, client).await;
    assert_eq!(timeout(WAIT, server.recv()).await.unwrap(), None);
    assert_eq!(server.close_reason(), Some(CloseReason::IdleTimeout));
    let mut buf = [0u8; 8];
    assert_eq!(server.read(&mut buf).await.unwrap(), 0, "EOF");
    assert_eq!(listener.stats().closed_idle, 1);
}

#[test]
fn many_clients_on_a_current_thread_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = listener(ServerConfig::new(Preset::Fast)).await;
        let addr = listener.local_addr();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    while let Some(m) = s.recv().await {
                        if s.send(m).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let mut tasks = Vec::new();
        for c in 0..20u8 {
            tasks.push(tokio::spawn(async move {
                let mut stream = KcpStream::connect(addr, client_config()).await.unwrap();
                for i in 0..10 {
                    let m = payload(c ^ i, 100 + usize::from(i) * 300);
                    stream.send(m.clone().into()).await.unwrap();
                    assert_eq!(stream.recv().await.unwrap()[..], m[..]);
                }
            }));
        }
        for t in tasks {
            timeout(WAIT, t).await.unwrap().unwrap();
        }
    });
}

#[tokio::test]
async fn idle_sessions_cost_the_driver_no_wake_ups() {
    let mut client = client_config();
    client.keepalive = None;
    let (listener, _client, _server) = pair(ServerConfig::new(Preset::Fast), client).await;
    // Let the last ACKs settle, then watch the driver while nobody speaks.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = listener.stats();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = listener.stats();
    assert_eq!(after.wakeups, before.wakeups, "{before:?}\n{after:?}");
    assert_eq!(after.sessions_active, 1);
}
