//! A connected client holds one file descriptor, its socket, in both wire modes: the
//! poll a secure handshake waits on is let go once it ends (10,000 idle secure
//! clients once ran out of descriptors where raw ones did not). One test alone in
//! this binary, so that no other test opens descriptors while it counts.

mod common;

use common::*;
use kcp_net::secure::{ClientSecurity, ServerIdentity, ServerSecurity};
use kcp_net::{KcpClient, KcpServer};

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd lists this process's descriptors")
        .count()
}

#[test]
fn a_connected_client_holds_only_its_socket_in_either_mode() {
    const CLIENTS: usize = 20;
    let identity = ServerIdentity::generate().unwrap();
    let mut config = server_config();
    config.secure = Some(ServerSecurity::new(identity.clone()));
    let secure = KcpServer::bind(localhost(), config, Echo).unwrap();
    let raw = KcpServer::bind(localhost(), server_config(), Echo).unwrap();
    for server in [&secure, &raw] {
        let before = open_descriptors();
        let clients: Vec<KcpClient> = (0..CLIENTS)
            .map(|_| {
                let mut config = client_config();
                if std::ptr::eq(server, &secure) {
                    config.secure = Some(ClientSecurity::new(identity.public()));
                }
                KcpClient::connect(server.local_addr(), config).unwrap()
            })
            .collect();
        assert_eq!(open_descriptors() - before, CLIENTS, "one each");
        drop(clients);
        assert_eq!(open_descriptors(), before);
    }
    secure.shutdown(std::time::Duration::ZERO).unwrap();
    raw.shutdown(std::time::Duration::ZERO).unwrap();
}
