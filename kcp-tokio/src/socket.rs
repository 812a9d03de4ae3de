//! A driver's UDP socket: tokio's read readiness ([`Udp`]), `kcp-net`'s batch I/O for
//! the datagrams (`recvmmsg`/`sendmmsg` with UDP GSO/GRO on Linux, one call per
//! datagram elsewhere or with [`IoBackend::Portable`]). The batched receives run
//! inside tokio's `try_io`, so tokio learns when the socket is drained.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use kcp_net::IoBackend;
use kcp_net::udp::{
    self, DatagramIo, DatagramSocket, RecvBatch, SendBatch, SendOutcome, SendProgress,
};

use crate::udp::Udp;

/// The socket as `kcp-net`'s batch I/O sees it: the non-waiting calls, and the
/// descriptor for the batched syscalls. Shared with the driver's sessions, which send
/// what their streams' tasks emit straight from those tasks ([`Socket::shared`]).
#[derive(Debug)]
struct Tokio(Arc<Udp>);

impl DatagramSocket for Tokio {
    fn send_to(&self, datagram: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.0.try_send_to(datagram, to)
    }

    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.recv_now(buf)
    }

    #[cfg(target_os = "linux")]
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.0)
    }
}

/// A bound socket and the batch I/O set up for it.
#[derive(Debug)]
pub(crate) struct Socket {
    udp: Tokio,
    io: Box<dyn DatagramIo>,
}

impl Socket {
    /// Uses `backend` on `udp` (offload is asked of the kernel here).
    pub(crate) fn new(udp: Udp, backend: IoBackend) -> Self {
        let udp = Tokio(Arc::new(udp));
        let io = udp::datagram_io(backend, &udp);
        Self { udp, io }
    }

    /// The socket itself, for the sessions' direct sends (`try_send_to` from the
    /// stream's task; the socket is `Sync`, the batch I/O is not).
    pub(crate) fn shared(&self) -> Arc<Udp> {
        Arc::clone(&self.udp.0)
    }

    /// A second reader of this socket, for a client stream's own task (see
    /// `Session::read_socket`): its own batch I/O on the same descriptor (`backend`
    /// as for [`new`](Self::new)) and receive slots.
    pub(crate) fn reader(&self, backend: IoBackend, max_datagram: usize) -> Reader {
        let udp = Tokio(Arc::clone(&self.udp.0));
        let io = udp::datagram_io(backend, &udp);
        let batch = RecvBatch::for_io(io.as_ref(), max_datagram, udp::CLIENT_GRO_SLOTS);
        Reader { udp, io, batch }
    }

    /// Receive slots for this socket's backend: datagrams of up to `max_datagram`
    /// bytes, `gro_slots` slots of 64 KiB if the kernel coalesces datagrams.
    pub(crate) fn recv_batch(&self, max_datagram: usize, gro_slots: usize) -> RecvBatch {
        RecvBatch::for_io(self.io.as_ref(), max_datagram, gro_slots)
    }

    /// Waits until the socket may have datagrams. (The future borrows the socket
    /// alone: the batch I/O is `Send` but not `Sync`.)
    pub(crate) fn readable(&self) -> impl Future<Output = io::Result<()>> + '_ {
        self.udp.0.readable()
    }

    /// One receive into `batch` without waiting: the count of datagrams, or
    /// `WouldBlock`. When it leaves the kernel's queue empty
    /// ([`RecvBatch::may_hold_more`] is false) tokio is told so, as if the socket had
    /// said `WouldBlock`: with edge-triggered readiness the next datagram raises a new
    /// event, and no syscall is spent to hear `WouldBlock` (as `kcp-net`'s loops do).
    pub(crate) fn try_recv(&mut self, batch: &mut RecvBatch) -> io::Result<usize> {
        recv_clearing_readiness(&self.udp, self.io.as_mut(), batch)
    }

    /// Sends the whole batch in as few syscalls as the backend allows, then clears
    /// it. A full socket buffer is waited out (no datagram is dropped for it); a
    /// datagram the OS refuses is counted in `errors` and skipped (KCP retransmits it
    /// like any loss).
    pub(crate) async fn send(&mut self, batch: &mut SendBatch) -> SendOutcome {
        let mut progress = SendProgress::default();
        while progress.remaining(batch) > 0 {
            // `SendProgress::send` fails only with WouldBlock (a full buffer).
            let sent = progress.send(self.io.as_mut(), &self.udp, batch);
            if sent.is_err() && self.udp.0.writable().await.is_err() {
                // The socket cannot say when it has room (its runtime is gone).
                progress.outcome.errors += progress.remaining(batch) as u64;
                break;
            }
        }
        batch.clear();
        progress.outcome
    }
}

/// A client stream's own reader of its socket ([`Socket::reader`]).
#[derive(Debug)]
pub(crate) struct Reader {
    udp: Tokio,
    io: Box<dyn DatagramIo>,
    batch: RecvBatch,
}

impl Reader {
    /// Receives a batch, or registers `cx` for the socket's readiness: the count of
    /// datagrams now in [`batch`](Self::batch). As [`Socket::try_recv`], a receive
    /// that left the kernel's queue empty clears tokio's readiness itself: the next
    /// poll does not spend a syscall to hear `WouldBlock`, and neither does the
    /// driver, woken by the same datagram, which finds the readiness gone.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.udp.0.poll_recv_ready(cx))?;
            match recv_clearing_readiness(&self.udp, self.io.as_mut(), &mut self.batch) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {} // readiness cleared
                result => return Poll::Ready(result),
            }
        }
    }

    /// The datagrams of the last receive.
    pub(crate) const fn batch(&self) -> &RecvBatch {
        &self.batch
    }
}

/// One receive into `batch` on `udp`, the count of datagrams or `WouldBlock`. When it
/// leaves the kernel's queue empty ([`RecvBatch::may_hold_more`] is false) tokio is
/// told so, as if the socket had said `WouldBlock`: with edge-triggered readiness the
/// next datagram raises a new event, and no syscall is spent to hear `WouldBlock`.
fn recv_clearing_readiness(
    udp: &Tokio,
    io: &mut dyn DatagramIo,
    batch: &mut RecvBatch,
) -> io::Result<usize> {
    let mut received = 0;
    let result = udp.0.try_read_io(|| {
        received = io.recv(udp, batch)?;
        if batch.may_hold_more() {
            Ok(())
        } else {
            Err(io::ErrorKind::WouldBlock.into())
        }
    });
    match result {
        Err(e) if received == 0 => Err(e),
        _ => Ok(received),
    }
}
