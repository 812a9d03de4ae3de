//! The syscall border: creating UDP sockets and moving batches of datagrams.
//!
//! [`DatagramIo`] is the small trait the loops use; two implementations:
//!
//! - `mmsg` (Linux): `recvmmsg`/`sendmmsg`, up to [`BATCH`] messages per syscall, and
//!   with `offload` each message may carry a run of datagrams (UDP GSO on send, GRO
//!   on receive). These two are the only modules of the crate with `unsafe` code.
//! - `portable` (everywhere): a `recv_from`/`send_to` loop over the socket.
//!
//! [`IoBackend`] picks one at construction ([`datagram_io`]), so tests run each on
//! Linux. The socket is anything that implements [`DatagramSocket`] (`mio`'s here,
//! tokio's in `kcp-tokio`), passed on each call.
//!
//! # Using it from another event loop
//!
//! Engines write their datagrams straight into a [`SendBatch`]
//! (`conversation.drive(now, &mut batch.to(peer))`); [`send_all`] sends it in as few
//! syscalls as the backend allows and drops what a full socket buffer refuses, while
//! [`SendProgress`] stops at a full buffer so that a caller with readiness
//! notifications can wait and resume. [`RecvBatch`] is the receive side: slots the
//! kernel fills in one call, read back with [`RecvBatch::get`].

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::SocketAddr;

use kcp_core::Transmit;
use mio::net::UdpSocket;
use socket2::{Domain, Protocol, Socket, Type};

use crate::error::NetError;

#[cfg(target_os = "linux")]
mod mmsg;
#[cfg(target_os = "linux")]
mod offload;
mod portable;
mod socket;

pub use socket::DatagramSocket;

/// Most datagrams moved by one batched syscall. 32 × a 1,500-byte slot is 48 KiB of
/// receive buffer per loop; larger batches stop paying off once a syscall's fixed
/// cost is amortised (quinn-udp settles on a similar figure).
pub const BATCH: usize = 32;

/// How a loop or client moves datagrams between its socket and memory.
///
/// # Portability
///
/// [`Batched`](Self::Batched) and [`Offload`](Self::Offload) need Linux; on other
/// systems they fall back to [`Portable`](Self::Portable) silently. `Offload` asks the
/// kernel for UDP GSO and GRO on the socket and uses whichever it grants (GSO since
/// Linux 4.18, GRO since 5.0); without either it is `Batched`. If a GSO send fails
/// (`EIO` from a device without checksum offload, `EINVAL` for a segment larger than
/// the path MTU), GSO is turned off for that socket and the datagrams go one by one.
/// [`Auto`](Self::Auto) picks the best available.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoBackend {
    /// `Offload` where available, else `Portable`.
    #[default]
    Auto,
    /// `recvmmsg`/`sendmmsg` with UDP GSO and GRO: up to 32 messages per syscall, each
    /// a run of up to 64 datagrams that the kernel carries as one until it must split
    /// them (on loopback, never). Best for bulk transfer.
    Offload,
    /// `recvmmsg`/`sendmmsg`: up to 32 datagrams per syscall.
    Batched,
    /// One `recv_from`/`send_to` per datagram: works on every platform `std` supports.
    Portable,
}

impl IoBackend {
    /// The backend actually used on this platform (before asking the kernel for
    /// offload).
    pub const fn resolve(self) -> Self {
        match self {
            Self::Portable => Self::Portable,
            _ if !cfg!(target_os = "linux") => Self::Portable,
            Self::Auto | Self::Offload => Self::Offload,
            Self::Batched => Self::Batched,
        }
    }
}

mod sealed {
    /// Only this module's backends implement [`DatagramIo`](super::DatagramIo): they
    /// fill a [`RecvBatch`](super::RecvBatch) through crate-private methods.
    pub trait Sealed {}
}

/// Moves batches of datagrams. Implementations keep no socket of their own: the caller
/// passes the (non-blocking) socket on each call. Made by [`datagram_io`]; sealed.
pub trait DatagramIo: Send + fmt::Debug + sealed::Sealed {
    /// Receives up to one datagram per slot of `batch` into `batch` (replacing its
    /// contents). `Ok(n)` with `n >= 1`, or `Err(WouldBlock)` when the socket is
    /// drained.
    ///
    /// # Errors
    /// The socket's: `WouldBlock` when nothing is queued, or what the OS reports (an
    /// ICMP error from an earlier send, on a connected socket).
    fn recv(&mut self, socket: &dyn DatagramSocket, batch: &mut RecvBatch) -> io::Result<usize>;

    /// Sends datagrams `from..` of `batch`, as many as one syscall (or loop) takes.
    /// `Ok(n)`: the first `n >= 1` were sent. `Err`: the first one failed (`WouldBlock`
    /// means the socket buffer is full).
    ///
    /// # Errors
    /// The first datagram's: `WouldBlock` when the socket buffer is full, or what the
    /// OS reports for it (unreachable, too large).
    fn send(
        &mut self,
        socket: &dyn DatagramSocket,
        batch: &SendBatch,
        from: usize,
    ) -> io::Result<usize>;

    /// Whether one received message may hold many datagrams (GRO), so that receive
    /// slots must hold [`GRO_SLOT`] bytes.
    fn coalesces(&self) -> bool {
        false
    }
}

/// The implementation of `backend` on this platform, set up for `socket` (offload is
/// asked of the kernel here, so use the result with this socket only).
pub fn datagram_io(backend: IoBackend, socket: &dyn DatagramSocket) -> Box<dyn DatagramIo> {
    let _ = socket;
    match backend.resolve() {
        #[cfg(target_os = "linux")]
        IoBackend::Offload => Box::new(mmsg::Mmsg::new(offload::enable(socket.fd()))),
        #[cfg(target_os = "linux")]
        IoBackend::Batched => Box::new(mmsg::Mmsg::new(offload::Offload::NONE)),
        _ => Box::new(portable::Portable),
    }
}

/// A receive slot that holds any message GRO can build (at most 64 KiB of payload).
pub const GRO_SLOT: usize = 1 << 16;

/// Receive slots of a server loop with GRO: 16 × 64 KiB, up to 1,024 datagrams per
/// syscall. The memory is reserved, not touched, until the kernel writes into it.
pub const LOOP_GRO_SLOTS: usize = 16;

/// Receive slots of a client with GRO: 4 × 64 KiB (one peer sends to it; a
/// process may run thousands of clients).
pub const CLIENT_GRO_SLOTS: usize = 4;

/// Fixed slots the kernel writes received datagrams into; reused every turn.
#[derive(Debug)]
pub struct RecvBatch {
    buf: Vec<u8>,
    slot: usize,
    /// The longest datagram accepted; longer ones read as truncated.
    max_datagram: usize,
    meta: Vec<RecvMeta>,
    /// The last receive filled every slot (see [`RecvBatch::may_hold_more`]).
    full: bool,
}

/// Where one received datagram came from and where it lies in the batch.
#[derive(Clone, Copy, Debug)]
pub struct RecvMeta {
    /// The sender.
    pub addr: SocketAddr,
    /// Offset of the datagram in the batch's buffer.
    pub start: usize,
    /// Its length (of what was kept, if truncated).
    pub len: usize,
    /// The datagram was longer than the slot, or than the batch accepts, and must be
    /// dropped.
    pub truncated: bool,
}

impl RecvBatch {
    /// `slots` slots of `slot_size` bytes each, accepting datagrams of up to
    /// `slot_size - 1` bytes.
    pub(crate) fn new(slots: usize, slot_size: usize) -> Self {
        Self {
            buf: vec![0; slots * slot_size],
            slot: slot_size,
            max_datagram: slot_size.saturating_sub(1),
            meta: Vec::with_capacity(slots),
            full: false,
        }
    }

    /// Whether the socket may still hold data after the last receive: it filled every
    /// slot. A receive that filled fewer emptied the socket's queue, so any datagram
    /// arriving later raises a new readiness edge and the loop need not spend a
    /// syscall to hear `WouldBlock`.
    pub const fn may_hold_more(&self) -> bool {
        self.full
    }

    /// For implementations: records how many of the slots the last receive filled.
    pub(crate) fn set_filled(&mut self, messages: usize) {
        self.full = messages * self.slot >= self.buf.len();
    }

    /// Slots for `io` accepting datagrams of up to `max_datagram` bytes: [`BATCH`]
    /// slots one byte larger, or, if `io` coalesces datagrams, `gro_slots` of
    /// [`GRO_SLOT`] bytes, in which a longer datagram reads as truncated.
    pub fn for_io(io: &dyn DatagramIo, max_datagram: usize, gro_slots: usize) -> Self {
        let mut batch = if io.coalesces() {
            Self::new(gro_slots.clamp(1, BATCH), GRO_SLOT.max(max_datagram + 1))
        } else {
            Self::new(BATCH, max_datagram + 1)
        };
        batch.max_datagram = max_datagram;
        batch
    }

    /// The `i`th received datagram of the last receive (`i` below what it returned);
    /// `truncated` if it was cut or is longer than accepted.
    ///
    /// # Panics
    /// If `i` is not below the count the last receive returned.
    pub fn get(&self, i: usize) -> (RecvMeta, &[u8]) {
        let mut meta = self.meta[i];
        meta.truncated |= meta.len > self.max_datagram;
        (meta, &self.buf[meta.start..meta.start + meta.len])
    }

    /// Puts `datagram` from `from` in the first slot as the only one received (cut,
    /// and marked truncated, if longer than a slot): a datagram another loop received,
    /// or the fuzz harness's.
    pub(crate) fn load(&mut self, from: SocketAddr, datagram: &[u8]) {
        let len = datagram.len().min(self.slot);
        self.buf[..len].copy_from_slice(&datagram[..len]);
        self.meta.clear();
        self.meta.push(RecvMeta {
            addr: from,
            start: 0,
            len,
            truncated: datagram.len() > len,
        });
        self.full = false;
    }

    /// For implementations: the slot size, the empty slots to fill, and the metadata
    /// list to push to (with offsets into the whole buffer: slot `i` starts at
    /// `i * slot size`).
    pub(crate) fn slots_mut(
        &mut self,
    ) -> (
        usize,
        std::slice::ChunksExactMut<'_, u8>,
        &mut Vec<RecvMeta>,
    ) {
        self.meta.clear();
        (
            self.slot,
            self.buf.chunks_exact_mut(self.slot),
            &mut self.meta,
        )
    }
}

/// Datagrams waiting to be sent, packed into one reused buffer.
///
/// Datagrams lie back to back in `data` in the order they were added, each recorded
/// as `(destination, offset, length)`.
#[derive(Debug, Default)]
pub struct SendBatch {
    data: Vec<u8>,
    entries: Vec<(SocketAddr, usize, usize)>,
}

impl SendBatch {
    /// Copies a datagram for `addr` into the batch (the impaired link's releases).
    pub fn push(&mut self, addr: SocketAddr, datagram: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(datagram);
        self.entries.push((addr, start, datagram.len()));
    }

    /// A [`Transmit`] that lets an engine write datagrams for `addr` straight into the
    /// batch (no copy, unlike [`push`](Self::push)).
    pub fn to(&mut self, addr: SocketAddr) -> BatchTransmit<'_> {
        BatchTransmit { batch: self, addr }
    }

    /// Datagrams in the batch.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the batch holds no datagram.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `i`th datagram and its destination.
    ///
    /// # Panics
    /// If `i` is not below [`len`](Self::len).
    pub fn get(&self, i: usize) -> (SocketAddr, &[u8]) {
        let (addr, start, len) = self.entries[i];
        (addr, &self.data[start..start + len])
    }

    /// Datagrams `first..first + count` as one slice: they lie back to back, since
    /// `push` appends. The caller keeps them to one destination.
    pub(crate) fn span(&self, first: usize, count: usize) -> &[u8] {
        let (_, start, _) = self.entries[first];
        let (_, last_start, last_len) = self.entries[first + count - 1];
        &self.data[start..last_start + last_len]
    }

    /// Forgets every datagram, keeping the memory.
    pub fn clear(&mut self) {
        self.data.clear();
        self.entries.clear();
    }
}

/// Datagrams for one destination written into a [`SendBatch`] by
/// [`Kcp::flush_into`](kcp_core::Kcp::flush_into): the engine appends a datagram's
/// bytes to the batch's buffer, and `commit` records them as one entry. Never fails.
#[derive(Debug)]
pub struct BatchTransmit<'a> {
    batch: &'a mut SendBatch,
    addr: SocketAddr,
}

impl Transmit for BatchTransmit<'_> {
    type Error = Infallible;
    type Buf = Vec<u8>;

    fn buffer(&mut self, room: usize) -> &mut Vec<u8> {
        self.batch.data.reserve(room);
        &mut self.batch.data
    }

    fn commit(&mut self, len: usize) -> Result<(), Infallible> {
        let end = self.batch.data.len();
        // `span` relies on datagrams lying back to back: the engine appends nothing
        // but the datagram it then commits (see `Transmit`).
        debug_assert_eq!(
            self.batch.entries.last().map_or(0, |&(_, s, l)| s + l),
            end - len,
            "bytes appended but not committed"
        );
        self.batch.entries.push((self.addr, end - len, len));
        Ok(())
    }
}

/// What happened to a batch handed to [`send_all`] (or sent through a
/// [`SendProgress`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendOutcome {
    /// Datagrams the socket took.
    pub datagrams: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Send syscalls made (one per message batch, or per datagram when portable).
    pub syscalls: u64,
    /// Dropped because the socket buffer was full (`WouldBlock`).
    pub dropped_full: u64,
    /// Dropped because the OS refused them (unreachable, too large, ...).
    pub errors: u64,
}

/// A [`SendBatch`] on its way out: how far it got and what happened so far. A full
/// socket buffer stops it ([`send`](Self::send) returns `WouldBlock`) without losing
/// its place, so a caller that can wait for the socket to become writable (tokio's
/// `writable().await`) resumes where it stopped instead of dropping the rest.
#[derive(Clone, Copy, Debug, Default)]
pub struct SendProgress {
    next: usize,
    /// What happened to the datagrams before the current position.
    pub outcome: SendOutcome,
}

impl SendProgress {
    /// Sends datagrams of `batch` from the current position on, in as few syscalls as
    /// `io` allows, until all are gone or the socket buffer is full. A datagram the OS
    /// refuses for another reason is counted in `errors` and skipped.
    ///
    /// # Errors
    /// `WouldBlock` when the socket buffer is full; call again (with the same batch)
    /// once it has room.
    pub fn send(
        &mut self,
        io: &mut dyn DatagramIo,
        socket: &dyn DatagramSocket,
        batch: &SendBatch,
    ) -> io::Result<()> {
        while self.next < batch.len() {
            self.outcome.syscalls += 1;
            match io.send(socket, batch, self.next) {
                Ok(n) => {
                    for i in self.next..self.next + n {
                        self.outcome.bytes += batch.get(i).1.len() as u64;
                    }
                    self.outcome.datagrams += n as u64;
                    self.next += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(e),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.outcome.errors += 1;
                    self.next += 1;
                }
            }
        }
        Ok(())
    }

    /// Datagrams of the batch not sent (nor refused) yet.
    pub fn remaining(&self, batch: &SendBatch) -> usize {
        batch.len().saturating_sub(self.next)
    }
}

/// Sends the whole batch, then clears it.
///
/// # Draining
///
/// A full socket buffer (`WouldBlock`) drops the rest of the batch instead of holding
/// it: KCP retransmits what is lost, and holding would need memory a slow socket could
/// grow without bound. Any other error drops just the datagram it names.
pub fn send_all(
    io: &mut dyn DatagramIo,
    socket: &dyn DatagramSocket,
    batch: &mut SendBatch,
) -> SendOutcome {
    let mut progress = SendProgress::default();
    if progress.send(io, socket, batch).is_err() {
        progress.outcome.dropped_full += progress.remaining(batch) as u64;
    }
    batch.clear();
    progress.outcome
}

/// A bound UDP socket that remembers whether a poll of the user's registered it
/// (through the owner's [`mio::event::Source`] impl, see [`delegate_source`]).
#[derive(Debug)]
pub(crate) struct PolledSocket {
    inner: UdpSocket,
    registered: bool,
}

impl PolledSocket {
    pub(crate) const fn new(inner: UdpSocket) -> Self {
        Self {
            inner,
            registered: false,
        }
    }

    /// Registered with a poll of the user's (not one of ours).
    pub(crate) const fn is_registered(&self) -> bool {
        self.registered
    }

    /// The socket itself, to register with a poll of our own.
    pub(crate) fn inner_mut(&mut self) -> &mut UdpSocket {
        &mut self.inner
    }
}

impl std::ops::Deref for PolledSocket {
    type Target = UdpSocket;

    fn deref(&self) -> &UdpSocket {
        &self.inner
    }
}

impl mio::event::Source for PolledSocket {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        self.inner.register(registry, token, interests)?;
        self.registered = true;
        Ok(())
    }

    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        self.inner.reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        self.registered = false;
        self.inner.deregister(registry)
    }
}

/// The body of a `mio::event::Source` impl that hands every call to the [`PolledSocket`]
/// in field `$field` (the server driver registers as its socket).
macro_rules! delegate_source {
    ($field:ident) => {
        fn register(
            &mut self,
            registry: &mio::Registry,
            token: mio::Token,
            interests: mio::Interest,
        ) -> std::io::Result<()> {
            self.$field.register(registry, token, interests)
        }

        fn reregister(
            &mut self,
            registry: &mio::Registry,
            token: mio::Token,
            interests: mio::Interest,
        ) -> std::io::Result<()> {
            self.$field.reregister(registry, token, interests)
        }

        fn deregister(&mut self, registry: &mio::Registry) -> std::io::Result<()> {
            self.$field.deregister(registry)
        }
    };
}
pub(crate) use delegate_source;

/// Socket options a loop or client applies (and [`bind`] takes).
#[derive(Clone, Copy, Debug)]
pub struct SocketOptions {
    /// `SO_REUSEPORT`: other sockets may bind the same port (Unix).
    pub reuse_port: bool,
    /// Receive buffer to ask for, in bytes (0: the system's default).
    pub recv_buffer: usize,
    /// Send buffer to ask for, in bytes (0: the system's default).
    pub send_buffer: usize,
}

/// A non-blocking UDP socket bound to `addr`, ready for `mio`: the one way kcp-net's
/// loops and clients, and other drivers of its batch types, make their sockets.
///
/// Buffer sizes are requests: the kernel caps them (`net.core.rmem_max` /
/// `wmem_max` on Linux) and failures to set them are ignored.
///
/// # Errors
/// [`NetError::Bind`] if the socket cannot be made, configured or bound.
pub fn bind(addr: SocketAddr, options: SocketOptions) -> Result<UdpSocket, NetError> {
    let bind_err = |source| NetError::Bind { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(bind_err)?;
    if options.reuse_port {
        #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
        socket.set_reuse_port(true).map_err(bind_err)?;
    }
    if options.recv_buffer > 0 {
        let _ = socket.set_recv_buffer_size(options.recv_buffer);
    }
    if options.send_buffer > 0 {
        let _ = socket.set_send_buffer_size(options.send_buffer);
    }
    socket.set_nonblocking(true).map_err(bind_err)?;
    socket.bind(&addr.into()).map_err(bind_err)?;
    Ok(UdpSocket::from_std(socket.into()))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::BufMut;
    use kcp_core::{Config, Kcp, Timestamp, Transmit};

    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Writes `datagram` through `out` in two pieces, as the engine writes a header
    /// and then a payload.
    fn write(out: &mut impl Transmit<Error = Infallible>, datagram: &[u8]) {
        let (head, tail) = datagram.split_at(datagram.len().min(24));
        out.buffer(datagram.len()).put_slice(head);
        out.buffer(tail.len()).put_slice(tail);
        let Ok(()) = out.commit(datagram.len());
    }

    #[test]
    fn batch_transmit_records_each_datagram_where_it_was_written() {
        let (a, b) = (addr(1), addr(2));
        let first = [1u8; 30];
        let second: Vec<u8> = (0..=255).collect();
        let third = [3u8; 24];
        let fourth = [4u8; 1400];
        let mut batch = SendBatch::default();
        batch.push(a, &first);
        {
            let mut to_b = batch.to(b);
            write(&mut to_b, &second);
            write(&mut to_b, &third);
        }
        write(&mut batch.to(a), &fourth);

        assert_eq!(batch.len(), 4);
        assert_eq!(
            batch.entries,
            [(a, 0, 30), (b, 30, 256), (b, 286, 24), (a, 310, 1400)]
        );
        assert_eq!(batch.get(0), (a, &first[..]));
        assert_eq!(batch.get(1), (b, &second[..]));
        assert_eq!(batch.get(2), (b, &third[..]));
        assert_eq!(batch.get(3), (a, &fourth[..]));
        assert_eq!(batch.span(1, 2), [&second[..], &third[..]].concat());
        assert_eq!(batch.span(3, 1), fourth);
        assert_eq!(batch.span(0, 4).len(), 30 + 256 + 24 + 1400);

        batch.clear();
        assert!(batch.is_empty());
        write(&mut batch.to(b), &third);
        assert_eq!(batch.get(0), (b, &third[..]));
    }

    /// An engine with a 3,000-byte message (three datagrams) and one with a 100-byte
    /// one (a single datagram).
    fn engines() -> [(SocketAddr, Kcp); 2] {
        [(addr(1), 3000), (addr(2), 100)].map(|(to, size)| {
            let mut kcp = Kcp::new(7, Config::fast()).unwrap();
            kcp.send(&vec![size as u8; size]).unwrap();
            (to, kcp)
        })
    }

    #[test]
    fn flush_into_the_batch_writes_what_flush_would_copy() {
        let now = Timestamp::from_millis(0);
        let mut copied = SendBatch::default();
        for (to, kcp) in &mut engines() {
            let Ok(()) = kcp.flush(now, |d| {
                copied.push(*to, d);
                Ok::<(), Infallible>(())
            });
        }
        let mut written = SendBatch::default();
        for (to, kcp) in &mut engines() {
            let Ok(()) = kcp.flush_into(now, &mut written.to(*to));
        }

        assert_eq!(written.len(), 4);
        assert_eq!(written.entries, copied.entries);
        assert_eq!(written.data, copied.data);
        let lengths: Vec<_> = (0..4).map(|i| written.get(i).1.len()).collect();
        assert_eq!(lengths, [1400, 1400, 3000 - 2 * 1376 + 24, 124]);
        assert_eq!(written.span(0, 3).len(), 3000 + 3 * 24);
        assert_eq!(written.get(3), (addr(2), &written.data[3000 + 3 * 24..]));
    }
}
