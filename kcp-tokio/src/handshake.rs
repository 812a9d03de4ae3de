//! A client stream's secure handshake (`ClientConfig::secure`): `kcp-net`'s sans-IO
//! [`ClientHandshake`] on the stream's tokio socket, before its driver starts.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use crate::udp::Udp;
use kcp_net::secure::ClientHandshake;
use kcp_net::{ClientConfig, Conversation};

/// The largest datagram read during the handshake: a server's response, cookie or
/// reject is far smaller; anything longer is cut and then fails to open.
const MAX_HANDSHAKE_DATAGRAM: usize = 2048;

/// Runs the handshake with `server` for conversation `conv`: sends the initiation
/// (and its retries) and answers a cookie, until the sealed conversation is
/// established or the handshake timeout passes. Datagrams from other addresses are
/// ignored. The socket must not have UDP GRO enabled yet (one datagram per read).
///
/// # Errors
/// The server's reject or the timeout, as `kcp-net` maps them to `io::Error`
/// (`ConnectionRefused`, `TimedOut`, with the [`kcp_net::NetError`] as source).
pub(crate) async fn handshake(
    udp: &Udp,
    server: SocketAddr,
    config: &ClientConfig,
    conv: u32,
) -> io::Result<Option<Conversation>> {
    let Some(security) = config.secure.clone() else {
        return Ok(None);
    };
    let mut handshake =
        ClientHandshake::new(security, conv, config.conversation(), Instant::now())?;
    let mut buf = vec![0; MAX_HANDSHAKE_DATAGRAM];
    loop {
        let now = Instant::now();
        handshake
            .check_timeout(now)
            .map_err(kcp_net::NetError::from)?;
        if let Some(initiation) = handshake.poll_transmit(now) {
            // A lost initiation is retried like any loss; a refused one too.
            let _ = udp.send_to(initiation, server).await;
        }
        let deadline = tokio::time::Instant::from_std(handshake.next_deadline());
        let Ok(received) = tokio::time::timeout_at(deadline, udp.recv_from(&mut buf)).await else {
            continue; // a retry or the timeout is due
        };
        // An error is an ICMP report (the port is closed for now): retry.
        let Ok((len, from)) = received else { continue };
        if from != server {
            continue;
        }
        if let Some(conversation) = handshake.handle(Instant::now(), &buf[..len])? {
            return Ok(Some(conversation));
        }
    }
}
