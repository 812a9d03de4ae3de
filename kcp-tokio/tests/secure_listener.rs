//! kcp-tokio's secure listener (`ServerConfig::secure`) on loopback: sealed echo of
//! messages and datagrams with the tokio client, `tokio::io::copy` through a sealed
//! stream, the close both sides learn from the peer (not from a timeout), a wrong
//! pinned key refused with its typed error, kcp-net's blocking secure client (which
//! keeps its session when it rebinds its port), and forged datagrams that change
//! nothing but counters. Every wait is bounded by [`WAIT`].

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use kcp_net::secure::{
    ClientSecurity, CookiePolicy, HandshakeError, ServerIdentity, ServerSecurity,
};
use kcp_net::{KcpClient, NetError};
use kcp_tokio::{ClientConfig, CloseReason, KcpListener, KcpStream, Preset, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

/// The bound on every wait: far beyond what loopback needs, so that reaching it
/// means a bug, not a slow machine.
mod common;
use common::stats_until;

const WAIT: Duration = Duration::from_secs(10);

/// The message that turns the echo server's stream to echoing datagrams.
const DATAGRAMS: &[u8] = b"datagrams from now on";

/// Sessions end only by a close or the test: long idle timeouts, so that a close
/// seen within [`WAIT`] was announced by the peer.
fn server_config(identity: &ServerIdentity) -> ServerConfig {
    let mut config = ServerConfig::new(Preset::Fast);
    config.flush_on_send = true;
    config.flush_on_input = true;
    config.idle_timeout = Duration::from_secs(120);
    config.secure = Some(ServerSecurity::new(identity.clone()));
    config
}

fn client_config(identity: &ServerIdentity) -> ClientConfig {
    let mut config = ClientConfig::new(Preset::Fast);
    config.flush_on_send = true;
    config.flush_on_input = true;
    config.secure = Some(ClientSecurity::new(identity.public()));
    config
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {WAIT:?}"))
}

/// A secure listener with [`server_config`], its address and its identity.
async fn secure_listener() -> (KcpListener, SocketAddr, ServerIdentity) {
    let identity = ServerIdentity::generate().unwrap();
    let listener = KcpListener::bind("127.0.0.1:0", server_config(&identity))
        .await
        .unwrap();
    let addr = listener.local_addr();
    (listener, addr, identity)
}

/// A tokio client's session with `listener`, opened by `first`: (client, server).
async fn session(
    listener: &KcpListener,
    identity: &ServerIdentity,
    first: &'static [u8],
) -> (KcpStream, KcpStream) {
    let addr = listener.local_addr();
    let mut client = within(
        "the handshake",
        KcpStream::connect(addr, client_config(identity)),
    )
    .await
    .unwrap();
    client.send(Bytes::from_static(first)).await.unwrap();
    let (mut stream, _) = within("accept", listener.accept()).await.unwrap();
    assert_eq!(
        within("a message", stream.recv()).await.as_deref(),
        Some(first)
    );
    (client, stream)
}

/// A secure listener that echoes each stream's messages until it gets
/// [`DATAGRAMS`], then its datagrams; each stream's close reason is sent on `closes`.
async fn echo_listener() -> (
    SocketAddr,
    ServerIdentity,
    tokio::sync::mpsc::UnboundedReceiver<Option<CloseReason>>,
    tokio::task::JoinHandle<()>,
) {
    let (listener, addr, identity) = secure_listener().await;
    let (tx, closes) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(message) = stream.recv().await {
                    if &message[..] == DATAGRAMS {
                        assert!(stream.max_datagram_size().is_some());
                        while let Some(d) = stream.recv_datagram().await {
                            let _ = stream.send_unreliable(d);
                        }
                        break;
                    }
                    if stream.send(message).await.is_err() {
                        break;
                    }
                }
                let _ = tx.send(stream.close_reason());
            });
        }
    });
    (addr, identity, closes, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tokio_client_and_the_secure_listener_echo_messages_and_datagrams() {
    let (addr, identity, mut closes, task) = echo_listener().await;
    let mut client = within(
        "the handshake",
        KcpStream::connect(addr, client_config(&identity)),
    )
    .await
    .unwrap();
    for i in 0..20u32 {
        let message = Bytes::from(i.to_le_bytes().repeat(100 * i as usize + 1));
        client.send(message.clone()).await.unwrap();
        let echoed = within("an echo", client.recv()).await.unwrap();
        assert_eq!(echoed, message);
    }
    client.send(Bytes::from_static(DATAGRAMS)).await.unwrap();
    let max = client.max_datagram_size().expect("secure mode");
    // Unreliable: sent again until an echo comes back (none is lost on loopback,
    // but nothing promises it).
    let datagram = within("a datagram echoed", async {
        loop {
            client.send_unreliable(Bytes::from(vec![7; max])).unwrap();
            tokio::select! {
                d = client.recv_datagram() => break d.unwrap(),
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    })
    .await;
    assert_eq!(datagram, vec![7; max]);
    drop(client);
    let reason = within("the server's stream ends", closes.recv()).await;
    assert_eq!(reason, Some(Some(CloseReason::PeerClosed)));
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_io_copy_through_a_sealed_stream_and_shutdown_ends_both_sides() {
    let (listener, addr, identity) = secure_listener().await;
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (mut rd, mut wr) = stream.split();
        let copied = tokio::io::copy(&mut rd, &mut wr).await.unwrap();
        (copied, rd.stats().counters.datagrams_in > 0, listener)
    });
    let client = within(
        "the handshake",
        KcpStream::connect(addr, client_config(&identity)),
    )
    .await
    .unwrap();
    let data: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 251) as u8).collect();
    let (mut rd, mut wr) = client.split();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        tokio::io::copy(&mut &sent[..], &mut wr).await.unwrap();
        wr
    });
    let mut back = vec![0; data.len()];
    within("the echo", rd.read_exact(&mut back)).await.unwrap();
    assert!(back == data, "the echo differs");
    let mut wr = within("the writer", writer).await.unwrap();
    // Shutdown sends the close: the server's copy sees EOF at once, and so do we.
    within("shutdown", wr.shutdown()).await.unwrap();
    let (copied, heard, _listener) = within("the server's copy ends", server).await.unwrap();
    assert_eq!(copied, data.len() as u64);
    assert!(heard);
    let mut rest = Vec::new();
    within("EOF", rd.read_to_end(&mut rest)).await.unwrap();
    assert!(rest.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_learns_of_a_server_close_and_of_a_dropped_listener() {
    let (listener, _, identity) = secure_listener().await;
    let (mut first, mut stream) = session(&listener, &identity, b"one").await;
    // The server's stream shuts down: the client reads EOF, told by the server.
    stream.send(Bytes::from_static(b"bye")).await.unwrap();
    within("shutdown", stream.shutdown()).await.unwrap();
    assert_eq!(
        within("the last message", first.recv()).await.as_deref(),
        Some(&b"bye"[..])
    );
    assert_eq!(within("EOF", first.recv()).await, None);
    assert_eq!(first.close_reason(), Some(CloseReason::PeerClosed));
    assert_eq!(stream.close_reason(), Some(CloseReason::Local));

    // Dropping the listener closes its sessions with a close datagram.
    let (mut second, mut stream) = session(&listener, &identity, b"two").await;
    drop(listener);
    assert_eq!(within("EOF", second.recv()).await, None);
    assert_eq!(second.close_reason(), Some(CloseReason::PeerClosed));
    assert_eq!(within("EOF", stream.recv()).await, None);
    assert_eq!(stream.close_reason(), Some(CloseReason::Shutdown));
}

#[tokio::test]
async fn a_wrong_pinned_key_is_refused_with_the_typed_error() {
    let (addr, identity, _closes, task) = echo_listener().await;
    let other = ServerIdentity::generate().unwrap();
    let err = within(
        "the reject",
        KcpStream::connect(addr, client_config(&other)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    let typed = err.get_ref().and_then(|e| e.downcast_ref::<NetError>());
    match typed {
        Some(NetError::Handshake(HandshakeError::WrongServerKey { pinned, offered })) => {
            assert_eq!(*pinned, other.public());
            assert_eq!(*offered, Some(identity.public()));
        }
        other => panic!("not a wrong-key error: {other:?}"),
    }
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcp_nets_secure_client_keeps_its_session_when_it_rebinds() {
    let (listener, addr, identity) = secure_listener().await;
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        while let Some(message) = stream.recv().await {
            if stream.send(message).await.is_err() {
                break;
            }
        }
        listener
    });
    let mut config = ClientConfig::new(Preset::Fast);
    config.flush_on_send = true;
    config.secure = Some(ClientSecurity::new(identity.public()));
    let client = tokio::task::spawn_blocking(move || {
        let mut client = KcpClient::connect(addr, config).unwrap();
        let echo = |client: &mut KcpClient, message: &[u8]| {
            client.send(message).unwrap();
            let got = client.recv(WAIT).unwrap().expect("an echo");
            assert_eq!(&got[..], message);
        };
        echo(&mut client, b"before the move");
        let before = client.local_addr().unwrap();
        let after = client.rebind().unwrap();
        assert_ne!(before.port(), after.port());
        for i in 0..10u32 {
            echo(&mut client, &i.to_le_bytes().repeat(300));
        }
        // Its close ends the server's stream at once.
        assert!(client.close(WAIT).unwrap(), "everything acknowledged");
    });
    within("the blocking client", client).await.unwrap();
    let listener = within("the server's stream ends", server).await.unwrap();
    let stats = stats_until(&listener, WAIT, |s| s.migrations > 0).await;
    assert_eq!(stats.migrations, 1, "{stats:?}");
    assert_eq!(stats.handshakes, 1);
    assert_eq!(stats.sessions_opened, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_garbage_datagrams_change_nothing_but_counters() {
    let (listener, addr, identity) = secure_listener().await;
    let (mut client, mut stream) = session(&listener, &identity, b"hello").await;
    let before = stats_until(&listener, WAIT, |s| s.sessions_confirmed == 1).await;

    let attacker = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Not a secure datagram at all.
    attacker.send_to(&[0xFF; 40], addr).await.unwrap();
    // A transport datagram naming an index no session has.
    let mut transport = vec![0u8; 64];
    transport[0] = 5;
    transport[2..6].copy_from_slice(&0xDEAD_BE00u32.to_le_bytes()); // receiver index
    attacker.send_to(&transport, addr).await.unwrap();
    // An initiation made without the server's key (its mac1 is wrong).
    let mut initiation = vec![0u8; 1200];
    initiation[0] = 1;
    initiation[1] = kcp_net::secure::VERSION;
    attacker.send_to(&initiation, addr).await.unwrap();
    let after = stats_until(&listener, WAIT, |s| {
        s.dropped_malformed > before.dropped_malformed
            && s.dropped_unknown_index > before.dropped_unknown_index
            && s.rejected_wrong_key > before.rejected_wrong_key
    })
    .await;
    assert_eq!(after.sessions_active, 1);
    assert_eq!(after.sessions_opened, before.sessions_opened);
    assert_eq!(after.handshakes, before.handshakes);
    assert_eq!(after.migrations, 0);
    // The session goes on.
    stream
        .send(Bytes::from_static(b"still here"))
        .await
        .unwrap();
    assert_eq!(
        within("a message", client.recv()).await.as_deref(),
        Some(&b"still here"[..])
    );
    assert_eq!(stream.peer_addr().port(), client.local_addr().port());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_first_and_a_full_listener_refuses_with_server_full() {
    let identity = ServerIdentity::generate().unwrap();
    let mut config = server_config(&identity);
    config.max_sessions = 1;
    if let Some(security) = &mut config.secure {
        security.cookies = CookiePolicy::Always;
    }
    let listener = KcpListener::bind("127.0.0.1:0", config).await.unwrap();
    let addr = listener.local_addr();
    // Every handshake proves its address with a cookie first, and still succeeds.
    let (_first, _stream) = session(&listener, &identity, b"in").await;
    let stats = stats_until(&listener, WAIT, |s| s.sessions_confirmed == 1).await;
    assert!(stats.cookies_sent >= 1, "{stats:?}");
    // The one confirmed session is the limit: the next handshake is refused at once.
    let err = within(
        "the reject",
        KcpStream::connect(addr, client_config(&identity)),
    )
    .await
    .unwrap_err();
    let typed = err.get_ref().and_then(|e| e.downcast_ref::<NetError>());
    assert!(
        matches!(typed, Some(NetError::Handshake(HandshakeError::ServerFull))),
        "{err}"
    );
    let stats = stats_until(&listener, WAIT, |s| s.rejected_full == 1).await;
    assert_eq!(stats.sessions_opened, 1);
    assert_eq!(stats.sessions_active, 1);
}
