//! `KcpStream`: one conversation as an async byte stream and a message socket.

use std::future::poll_fn;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use kcp_net::{ClientConfig, CloseReason, Conversation, SessionStats};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::ToSocketAddrs;

use crate::driver::{CLIENT_LINGER, Driver};
use crate::handshake::handshake;
use crate::session::{DriverShared, Session, State};
use crate::socket::Socket;
use crate::{bind_udp, invalid, resolve};

/// Closes the conversation when the last half of a stream goes.
#[derive(Debug)]
struct Handle(Arc<Session>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// One KCP conversation, as a byte stream ([`AsyncRead`]/[`AsyncWrite`]) and as a
/// message socket ([`send`](Self::send)/[`recv`](Self::recv)).
///
/// - **Messages.** [`send`](Self::send) queues one message and [`recv`](Self::recv)
///   returns one whole message: boundaries are kept.
/// - **Stream.** Each write becomes one message (a prefix of the buffer: at most 64
///   segments and what the queue limit leaves room for); reads may split a message
///   across calls. A message half read is finished by the next read, or returned by
///   the next `recv` as the remainder.
/// - **Backpressure.** A write (or `send`) waits while the conversation holds its
///   queue limit (`max_queued_bytes` of [`ClientConfig`] or
///   `max_queued_bytes_per_session` of [`ServerConfig`](kcp_net::ServerConfig)) and
///   wakes when ACKs free room; nothing is buffered beyond it.
/// - **Flush and shutdown.** `poll_flush` sends what is queued at once;
///   `poll_shutdown` flushes, refuses further writes and waits until everything is
///   acknowledged. Raw KCP has no FIN: the peer is not told (frame an end marker in
///   your messages if it must know, as `examples/tunnel.rs` does). In the secure mode
///   shutdown closes the conversation (there is no half close): once the data is
///   acknowledged the close is sent, the peer reads EOF at once, and so do we.
/// - **End.** Reads return EOF (`Ok(0)`, `recv` → `None`) once the conversation
///   ended ([`close_reason`](Self::close_reason): idle timeout, dead link, the
///   listener dropped ...), after every message that arrived before.
/// - **Drop.** Dropping the stream (both halves, if split) closes the conversation:
///   what is queued is still delivered, for at most the linger (`close_linger`, 2 s
///   for clients), then the driver forgets it.
///
/// `send` and `recv` are cancellation-safe: a dropped `send` future queued nothing,
/// a dropped `recv` future took nothing.
#[derive(Debug)]
pub struct KcpStream {
    handle: Arc<Handle>,
    /// The rest of a message a read split.
    leftover: Bytes,
}

impl KcpStream {
    pub(crate) fn new(session: Arc<Session>) -> Self {
        Self {
            handle: Arc::new(Handle(session)),
            leftover: Bytes::new(),
        }
    }

    /// Starts a conversation with the server at `addr`, on a socket and a driver task
    /// of its own, with a random non-zero conv. KCP has no handshake: this returns once
    /// the socket is bound; the server learns of us with our first message.
    ///
    /// # Errors
    /// If `addr` does not resolve, the socket cannot be bound, or `config` is invalid
    /// ([`io::ErrorKind::InvalidInput`], with the [`kcp_net::NetError`] as source).
    pub async fn connect(addr: impl ToSocketAddrs, config: ClientConfig) -> io::Result<Self> {
        let peer = resolve(addr).await?;
        config.validate().map_err(invalid)?;
        let bind = config.bind.unwrap_or(match peer {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        });
        let socket = bind_udp(bind, config.recv_buffer, config.send_buffer)?;
        let local = socket.local_addr()?;
        let conv = loop {
            let conv: u32 = rand::random();
            if conv != 0 {
                break conv;
            }
        };
        // Secure mode: the handshake first, one datagram per read (before the batch
        // I/O asks the kernel for GRO).
        let conversation = match handshake(&socket, peer, &config, conv).await? {
            Some(sealed) => sealed,
            None => {
                Conversation::new(conv, config.conversation(), Instant::now()).map_err(invalid)?
            }
        };
        let socket = Socket::new(socket, config.io);
        let udp = socket.shared();
        let max_datagram = config.engine.mtu.max(1500);
        let reader = socket.reader(config.io, max_datagram);
        let mut state = State::new(conversation, peer);
        state.reader = Some(reader);
        let session = Arc::new(Session {
            id: 0,
            peer,
            local,
            conv,
            linger: CLIENT_LINGER,
            span: tracing::debug_span!("kcp_client", %peer, conv),
            state: Mutex::new(state),
            driver: Arc::new(DriverShared::default()),
            udp,
        });
        let driver = Driver::client(socket, Arc::clone(&session), max_datagram);
        tokio::spawn(driver.run());
        Ok(Self::new(session))
    }

    fn session(&self) -> &Session {
        &self.handle.0
    }

    /// Queues one message, waiting while the queue limit is reached.
    ///
    /// # Errors
    /// [`io::ErrorKind::BrokenPipe`] once the conversation is closing or closed (or
    /// the write half was shut down); [`io::ErrorKind::InvalidInput`] for a message
    /// larger than the queue limit or than the engine's windows allow.
    pub async fn send(&mut self, message: Bytes) -> io::Result<()> {
        let session = self.session();
        poll_fn(|cx| session.poll_send(cx, &message)).await
    }

    /// The next whole message (the rest of one a read split, first); `None` once the
    /// conversation ended.
    pub async fn recv(&mut self) -> Option<Bytes> {
        recv(&self.handle.0, &mut self.leftover).await
    }

    /// Sends an unreliable datagram (secure mode): sealed, never retransmitted, not
    /// ordered with messages or other datagrams, at most
    /// [`max_datagram_size`](Self::max_datagram_size) bytes. It leaves at once.
    ///
    /// # Errors
    /// [`io::ErrorKind::BrokenPipe`] once the conversation is closing or closed;
    /// [`io::ErrorKind::InvalidInput`] in raw mode, for a datagram too large, or
    /// while the queue of datagrams not yet sent is full (`kcp-net`'s
    /// [`DatagramError`](kcp_net::secure::DatagramError)).
    pub fn send_unreliable(&self, datagram: Bytes) -> io::Result<()> {
        self.session().send_datagram(datagram)
    }

    /// The next unreliable datagram from the peer (secure mode); `None` once the
    /// conversation ended. Cancellation-safe: a dropped future took nothing. In raw
    /// mode it waits until the end.
    pub async fn recv_datagram(&self) -> Option<Bytes> {
        let session = self.session();
        poll_fn(|cx| session.poll_recv_datagram(cx)).await
    }

    /// The largest datagram [`send_unreliable`](Self::send_unreliable) takes; `None`
    /// in raw mode.
    pub fn max_datagram_size(&self) -> Option<usize> {
        self.session().max_datagram_size()
    }

    /// Splits into halves that can move to different tasks. The conversation closes
    /// when both are dropped.
    pub fn split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let Self { handle, leftover } = self;
        (
            OwnedReadHalf {
                handle: Arc::clone(&handle),
                leftover,
            },
            OwnedWriteHalf { handle },
        )
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.session().peer_addr()
    }

    /// Our socket's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.session().local
    }

    /// The conversation id.
    pub fn conv(&self) -> u32 {
        self.session().conv
    }

    /// The conversation's counters and its engine's.
    pub fn stats(&self) -> SessionStats {
        self.session().stats()
    }

    /// Bytes queued or in flight, counted in whole segments (at most the queue
    /// limit).
    pub fn queued_bytes(&self) -> usize {
        self.session().queued_bytes()
    }

    /// Why the conversation ended or is closing, if it is.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.session().close_reason()
    }
}

async fn recv(session: &Session, leftover: &mut Bytes) -> Option<Bytes> {
    if !leftover.is_empty() {
        return Some(std::mem::take(leftover));
    }
    poll_fn(|cx| session.poll_recv(cx)).await
}

/// Fills `buf` from `leftover`, or from the next non-empty message.
fn poll_read(
    session: &Session,
    leftover: &mut Bytes,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    while leftover.is_empty() {
        match session.poll_recv(cx) {
            Poll::Ready(Some(message)) => *leftover = message,
            Poll::Ready(None) => return Poll::Ready(Ok(())), // EOF
            Poll::Pending => return Poll::Pending,
        }
    }
    let n = leftover.len().min(buf.remaining());
    buf.put_slice(&leftover.split_to(n));
    Poll::Ready(Ok(()))
}

impl AsyncRead for KcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        poll_read(&this.handle.0, &mut this.leftover, cx, buf)
    }
}

impl AsyncWrite for KcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.session().poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.session().poll_flush()
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.session().poll_shutdown(cx)
    }
}

/// The reading half of a [`KcpStream`] ([`KcpStream::split`]).
#[derive(Debug)]
pub struct OwnedReadHalf {
    handle: Arc<Handle>,
    leftover: Bytes,
}

impl OwnedReadHalf {
    /// As [`KcpStream::recv`].
    pub async fn recv(&mut self) -> Option<Bytes> {
        recv(&self.handle.0, &mut self.leftover).await
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.handle.0.peer_addr()
    }

    /// As [`KcpStream::stats`].
    pub fn stats(&self) -> SessionStats {
        self.handle.0.stats()
    }
}

impl AsyncRead for OwnedReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        poll_read(&this.handle.0, &mut this.leftover, cx, buf)
    }
}

/// The writing half of a [`KcpStream`] ([`KcpStream::split`]).
#[derive(Debug)]
pub struct OwnedWriteHalf {
    handle: Arc<Handle>,
}

impl OwnedWriteHalf {
    /// As [`KcpStream::send`].
    ///
    /// # Errors
    /// As [`KcpStream::send`].
    pub async fn send(&mut self, message: Bytes) -> io::Result<()> {
        let session = &self.handle.0;
        poll_fn(|cx| session.poll_send(cx, &message)).await
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.handle.0.peer_addr()
    }

    /// As [`KcpStream::queued_bytes`].
    pub fn queued_bytes(&self) -> usize {
        self.handle.0.queued_bytes()
    }
}

impl AsyncWrite for OwnedWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.handle.0.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.handle.0.poll_flush()
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.handle.0.poll_shutdown(cx)
    }
}
