//! A UDP socket registered with tokio for read readiness only.
//!
//! `tokio::net::UdpSocket` registers for reading and writing, edge-triggered. A UDP
//! socket turns writable again each time a datagram it sent is freed, and on loopback
//! that happens when the peer *reads* it: each datagram we send wakes our runtime once
//! more, from inside the peer's receive call, for an event nothing waits for. With a
//! tokio peer on both ends every round trip paid two such wake-ups on its critical
//! path. `kcp-net`'s loops register for reading alone; so does this socket.
//!
//! Waiting for room (a full send buffer, rare) registers a duplicate of the descriptor
//! for writability for just that wait: epoll reports the state at registration, so
//! room freed between the refused send and the wait is not missed.
//!
//! tokio 1.54 deprecates the safe `AsyncFd::with_interest` in favour of an `unsafe`
//! registration whose contract is that the wrapped value owns its descriptor and never
//! changes or closes it while registered. `std::net::UdpSocket` owns its descriptor
//! and closes it only on drop, so the contract holds and the safe (deprecated) call is
//! used: this crate has no `unsafe` ([`register`]).

use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};

#[cfg(unix)]
use tokio::io::{Interest, unix::AsyncFd};

/// A non-blocking UDP socket that tokio watches for readability.
#[derive(Debug)]
pub(crate) struct Udp {
    #[cfg(unix)]
    fd: AsyncFd<std::net::UdpSocket>,
    #[cfg(not(unix))]
    socket: tokio::net::UdpSocket,
}

#[cfg(unix)]
impl Udp {
    /// Registers `socket` (already non-blocking) with the current runtime.
    pub(crate) fn from_std(socket: std::net::UdpSocket) -> io::Result<Self> {
        let fd = register(socket, Interest::READABLE)?;
        Ok(Self { fd })
    }

    fn socket(&self) -> &std::net::UdpSocket {
        self.fd.get_ref()
    }

    /// Ready once the socket may hold datagrams; registers `cx` otherwise.
    pub(crate) fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.fd
            .poll_read_ready(cx)
            .map_ok(|mut guard| guard.retain_ready())
    }

    /// Waits until the socket may hold datagrams.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.fd
            .readable()
            .await
            .map(|mut guard| guard.retain_ready())
    }

    /// Runs the receive `f` if tokio has seen the socket readable; a `WouldBlock`
    /// from `f` tells tokio it is drained.
    pub(crate) fn try_read_io<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        self.fd.try_io(Interest::READABLE, |_| f())
    }

    /// Waits until the socket has room to send.
    pub(crate) async fn writable(&self) -> io::Result<()> {
        let duplicate = register(self.socket().try_clone()?, Interest::WRITABLE)?;
        duplicate
            .writable()
            .await
            .map(|mut guard| guard.retain_ready())
    }

    /// Receives one datagram, waiting for one.
    pub(crate) async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.fd
            .async_io(Interest::READABLE, |socket| socket.recv_from(buf))
            .await
    }
}

/// Registers `socket` with the current runtime for `interest` (see the module doc for
/// why the deprecated call is sound here).
#[cfg(unix)]
#[allow(deprecated)]
fn register(
    socket: std::net::UdpSocket,
    interest: Interest,
) -> io::Result<AsyncFd<std::net::UdpSocket>> {
    AsyncFd::with_interest(socket, interest)
}

#[cfg(not(unix))]
impl Udp {
    /// Registers `socket` (already non-blocking) with the current runtime. Off unix,
    /// tokio registers sockets for both directions; nothing else differs.
    pub(crate) fn from_std(socket: std::net::UdpSocket) -> io::Result<Self> {
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        Ok(Self { socket })
    }

    fn socket(&self) -> &tokio::net::UdpSocket {
        &self.socket
    }

    /// Ready once the socket may hold datagrams; registers `cx` otherwise.
    pub(crate) fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.socket.poll_recv_ready(cx)
    }

    /// Waits until the socket may hold datagrams.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.socket.readable().await
    }

    /// Runs the receive `f` if tokio has seen the socket readable; a `WouldBlock`
    /// from `f` tells tokio it is drained.
    pub(crate) fn try_read_io<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        self.socket.try_io(tokio::io::Interest::READABLE, f)
    }

    /// Waits until the socket has room to send.
    pub(crate) async fn writable(&self) -> io::Result<()> {
        self.socket.writable().await
    }

    /// Receives one datagram, waiting for one.
    pub(crate) async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.socket.recv_from(buf).await
    }
}

impl Udp {
    /// The address the socket is bound to.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket().local_addr()
    }

    /// Sends one datagram without waiting (`WouldBlock` on a full buffer).
    pub(crate) fn try_send_to(&self, datagram: &[u8], to: SocketAddr) -> io::Result<usize> {
        #[cfg(unix)]
        return self.socket().send_to(datagram, to);
        #[cfg(not(unix))]
        return self.socket.try_send_to(datagram, to);
    }

    /// Receives one datagram without waiting (`WouldBlock` when none is queued).
    /// Called inside [`try_read_io`](Self::try_read_io), which learns of a drained
    /// socket from it.
    pub(crate) fn recv_now(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        #[cfg(unix)]
        return self.socket().recv_from(buf);
        #[cfg(not(unix))]
        return self.socket.try_recv_from(buf);
    }

    /// Sends one datagram, waiting for room if the buffer is full.
    pub(crate) async fn send_to(&self, datagram: &[u8], to: SocketAddr) -> io::Result<usize> {
        loop {
            match self.try_send_to(datagram, to) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                sent => return sent,
            }
        }
    }
}

#[cfg(unix)]
impl std::os::fd::AsFd for Udp {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.socket().as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn bound() -> Udp {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        Udp::from_std(socket).unwrap()
    }

    #[tokio::test]
    async fn waiting_for_room_returns_at_once_when_the_buffer_has_room() {
        let udp = bound();
        tokio::time::timeout(Duration::from_secs(5), udp.writable())
            .await
            .expect("a socket with room is writable at registration")
            .unwrap();
        // The duplicate registration is gone: a second wait registers again.
        tokio::time::timeout(Duration::from_secs(5), udp.writable())
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_datagram_wakes_a_reader_and_a_drained_socket_waits_again() {
        let (a, b) = (bound(), bound());
        let to = b.local_addr().unwrap();
        a.send_to(b"ping", to).await.unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), b.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr().unwrap()));
        // Drained: a non-waiting receive inside `try_read_io` hears WouldBlock and
        // clears the readiness, so the next wait does not return until a datagram.
        let drained = b.try_read_io(|| b.recv_now(&mut buf));
        assert_eq!(drained.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        let waited = tokio::time::timeout(Duration::from_millis(50), b.readable()).await;
        assert!(waited.is_err(), "readable with nothing queued");
        a.send_to(b"pong", to).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), b.readable())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.try_read_io(|| b.recv_now(&mut buf)).unwrap().0, 4);
    }
}
