//! `KcpListener`: one UDP socket, one driver task, its sessions as streams.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kcp_net::{LoopStats, ServerConfig};
use tokio::net::ToSocketAddrs;
use tokio::sync::mpsc;

use crate::driver::Driver;
use crate::session::{DriverShared, lock};
use crate::socket::Socket;
use crate::stream::KcpStream;
use crate::{bind_udp, invalid, resolve};

/// A KCP server on one UDP socket: [`accept`](Self::accept) yields a [`KcpStream`]
/// per new (peer, conv), or per handshake in the secure mode.
///
/// Sessions open by `kcp-net`'s rules with the same [`ServerConfig`]: only a datagram
/// that is valid KCP and carries the first data segment of a conversation opens one,
/// within `max_sessions` (confirmed sessions), `max_unconfirmed_sessions` (the oldest
/// unconfirmed one is evicted), the per-IP and per-listener rates and
/// `max_sessions_per_ip`; sessions end after `idle_timeout` of silence. `io` picks
/// the batch I/O backend (see the crate's *Portability*); `threads` and `impair` are
/// ignored: the listener is one tokio task.
///
/// With `config.secure` set the listener speaks the secure session protocol
/// (`docs/secure-protocol.md`) by `kcp-net`'s own front door
/// ([`kcp_net::secure::SecureFront`]): a session opens on a valid Noise handshake
/// (after a cookie round trip under load, or always, by the
/// [`CookiePolicy`](kcp_net::secure::CookiePolicy)), within the same limits; until
/// its client's first sealed datagram proves its address it sends at most three times
/// what that address sent; datagrams find their session by receiver index, and an
/// authentic, newest one from a new address moves the session there. Its streams
/// carry unreliable datagrams ([`KcpStream::send_unreliable`]) and tell the client
/// at once when they close.
///
/// Sessions not yet accepted wait in a queue bounded by the session limits.
/// Dropping the listener closes every session (accepted or not): each delivers what it
/// has queued, for at most `close_linger`, and then its stream reads EOF (a secure
/// session's client is sent the close, and learns at once).
#[derive(Debug)]
pub struct KcpListener {
    local: SocketAddr,
    incoming: tokio::sync::Mutex<mpsc::UnboundedReceiver<KcpStream>>,
    shared: Arc<DriverShared>,
    stats: Arc<Mutex<LoopStats>>,
}

impl KcpListener {
    /// Binds a UDP socket to `addr` (port 0 picks one) and starts its driver task on
    /// the current runtime.
    ///
    /// # Errors
    /// If `addr` does not resolve or cannot be bound, or `config` is invalid
    /// ([`io::ErrorKind::InvalidInput`], with the [`kcp_net::NetError`] as source).
    pub async fn bind(addr: impl ToSocketAddrs, config: ServerConfig) -> io::Result<Self> {
        config.validate().map_err(invalid)?;
        let addr = resolve(addr).await?;
        let socket = bind_udp(addr, config.recv_buffer, config.send_buffer)?;
        let local = socket.local_addr()?;
        let socket = Socket::new(socket, config.io);
        let (tx, rx) = mpsc::unbounded_channel();
        let (driver, shared, stats) = Driver::server(socket, local, config, tx, Instant::now());
        tokio::spawn(driver.run());
        Ok(Self {
            local,
            incoming: tokio::sync::Mutex::new(rx),
            shared,
            stats,
        })
    }

    /// The next new session and its peer's address. Cancellation-safe: a dropped
    /// `accept` future takes no session.
    ///
    /// # Errors
    /// If the driver task stopped (its runtime is shutting down).
    pub async fn accept(&self) -> io::Result<(KcpStream, SocketAddr)> {
        let mut incoming = self.incoming.lock().await;
        let stream = incoming
            .recv()
            .await
            .ok_or_else(|| io::Error::other("the listener's driver task stopped"))?;
        let peer = stream.peer_addr();
        Ok((stream, peer))
    }

    /// The address the socket is bound to.
    pub const fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The driver's counters (`kcp-net`'s [`LoopStats`]), as of its last turn.
    pub fn stats(&self) -> LoopStats {
        *lock(&self.stats)
    }
}

impl Drop for KcpListener {
    fn drop(&mut self) {
        self.shared.shut_down();
    }
}
