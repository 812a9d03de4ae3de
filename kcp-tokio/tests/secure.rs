//! A secure kcp-tokio client (`ClientConfig::secure`) against kcp-net's secure
//! `KcpServer` on loopback: handshake, sealed echo, unreliable datagrams, the close
//! the server hears at once, and the error a wrong pinned key gets. The tokio
//! listener's secure mode is tested in `secure_listener.rs`.

use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use kcp_net::secure::{ClientSecurity, ServerIdentity, ServerSecurity};
use kcp_net::{CloseCtx, EventHandler, KcpServer, SessionCtx};
use kcp_tokio::{ClientConfig, CloseReason, KcpStream, Preset, ServerConfig};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

/// Echoes messages and datagrams; reports closes.
#[derive(Clone)]
struct SecureEcho(mpsc::Sender<CloseReason>);

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

fn secure_server() -> (KcpServer, ServerIdentity, mpsc::Receiver<CloseReason>) {
    let identity = ServerIdentity::generate().unwrap();
    let mut config = ServerConfig::new(Preset::Fast);
    config.flush_on_send = true;
    config.flush_on_input = true;
    config.secure = Some(ServerSecurity::new(identity.clone()));
    let (tx, rx) = mpsc::channel();
    let server = KcpServer::bind("127.0.0.1:0".parse().unwrap(), config, SecureEcho(tx)).unwrap();
    (server, identity, rx)
}

fn client_config(security: ClientSecurity) -> ClientConfig {
    let mut config = ClientConfig::new(Preset::Fast);
    config.flush_on_send = true;
    config.flush_on_input = true;
    config.secure = Some(security);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_echo_with_datagrams_and_a_close_the_server_hears_at_once() {
    let (server, identity, closes) = secure_server();
    let config = client_config(ClientSecurity::new(identity.public()));
    let mut client = timeout(WAIT, KcpStream::connect(server.local_addr(), config))
        .await
        .unwrap()
        .unwrap();
    for i in 0..20u32 {
        let message = Bytes::from(i.to_le_bytes().repeat(100 * i as usize + 1));
        client.send(message.clone()).await.unwrap();
        let echoed = timeout(WAIT, client.recv()).await.unwrap().unwrap();
        assert_eq!(echoed, message);
    }
    let max = client
        .max_datagram_size()
        .expect("secure mode has datagrams");
    // Unreliable: send again until one echo comes back (none is lost on loopback,
    // but nothing promises it).
    let datagram = timeout(WAIT, async {
        loop {
            client.send_unreliable(Bytes::from(vec![7; max])).unwrap();
            let wait = tokio::time::sleep(Duration::from_millis(100));
            tokio::select! {
                d = client.recv_datagram() => break d.unwrap(),
                () = wait => {}
            }
        }
    })
    .await
    .expect("a datagram echoed");
    assert_eq!(datagram.len(), max);
    let too_large = client.send_unreliable(Bytes::from(vec![7; max + 1]));
    assert_eq!(
        too_large.unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
    drop(client);
    // The server hears of it at once, not after its idle timeout.
    let reason = tokio::task::spawn_blocking(move || closes.recv_timeout(Duration::from_secs(3)))
        .await
        .unwrap()
        .expect("a close");
    assert_eq!(reason, CloseReason::PeerClosed);
    server.shutdown(Duration::ZERO).unwrap();
}

#[tokio::test]
async fn a_wrong_pinned_key_is_refused() {
    let (server, _identity, _closes) = secure_server();
    let other = ServerIdentity::generate().unwrap().public();
    let err = timeout(
        WAIT,
        KcpStream::connect(
            server.local_addr(),
            client_config(ClientSecurity::new(other)),
        ),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    server.shutdown(Duration::ZERO).unwrap();
}

#[tokio::test]
async fn raw_mode_has_no_datagrams() {
    let (server, _identity, _closes) = secure_server();
    let mut config = ClientConfig::new(Preset::Fast);
    config.flush_on_send = true;
    let client = KcpStream::connect(server.local_addr(), config)
        .await
        .unwrap();
    assert_eq!(client.max_datagram_size(), None);
    let err = client
        .send_unreliable(Bytes::from_static(b"x"))
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    server.shutdown(Duration::ZERO).unwrap();
}
