//! The socket a [`DatagramIo`](super::DatagramIo) moves datagrams on, as a trait, so
//! that one batch implementation serves `mio`'s socket (our loops and client) and any
//! other non-blocking UDP socket (`kcp-tokio`'s, through tokio's readiness).

use std::io;
use std::net::SocketAddr;
#[cfg(target_os = "linux")]
use std::os::fd::{AsFd, BorrowedFd};

use super::PolledSocket;

/// A bound, non-blocking UDP socket, as the batch I/O of this module uses it.
///
/// The portable backend calls [`send_to`](Self::send_to) and
/// [`recv_from`](Self::recv_from) once per datagram; on Linux the batched backends
/// make `sendmmsg`/`recvmmsg` calls on [`fd`](Self::fd) instead. Both must fail with
/// [`io::ErrorKind::WouldBlock`] rather than wait, so an implementation for an async
/// runtime's socket uses the runtime's non-waiting calls (tokio's `try_send_to`) and
/// runs the batch calls inside the runtime's readiness guard (tokio's `try_io`).
pub trait DatagramSocket {
    /// Sends one datagram to `to`, as [`std::net::UdpSocket::send_to`], without
    /// waiting.
    ///
    /// # Errors
    /// As the OS reports them; `WouldBlock` when the socket buffer is full.
    fn send_to(&self, datagram: &[u8], to: SocketAddr) -> io::Result<usize>;

    /// Receives one datagram into `buf`, as [`std::net::UdpSocket::recv_from`],
    /// without waiting.
    ///
    /// # Errors
    /// As the OS reports them; `WouldBlock` when nothing is queued.
    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;

    /// The socket's descriptor, for the batched syscalls (Linux only).
    #[cfg(target_os = "linux")]
    fn fd(&self) -> BorrowedFd<'_>;
}

impl DatagramSocket for mio::net::UdpSocket {
    fn send_to(&self, datagram: &[u8], to: SocketAddr) -> io::Result<usize> {
        Self::send_to(self, datagram, to)
    }

    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        Self::recv_from(self, buf)
    }

    #[cfg(target_os = "linux")]
    fn fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }
}

impl DatagramSocket for PolledSocket {
    fn send_to(&self, datagram: &[u8], to: SocketAddr) -> io::Result<usize> {
        (**self).send_to(datagram, to)
    }

    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        (**self).recv_from(buf)
    }

    #[cfg(target_os = "linux")]
    fn fd(&self) -> BorrowedFd<'_> {
        (**self).as_fd()
    }
}
