//! Linux `recvmmsg(2)`/`sendmmsg(2)`: up to [`BATCH`] messages per syscall, each one
//! datagram, or with offload a run of datagrams (see `offload`).
//!
//! With `offload`, the only modules of `kcp-net` with `unsafe` code. The pattern of
//! every call:
//! build `mmsghdr`s on the stack whose pointers refer to buffers that outlive the
//! call and are not touched by Rust while the kernel uses them, make the syscall, read
//! back only the entries the kernel reports as filled.

use std::io;
use std::mem;
use std::os::fd::AsRawFd;

use socket2::{SockAddr, SockAddrStorage};

use super::offload::{self, ControlBuf, Offload};
use super::{BATCH, DatagramIo, DatagramSocket, RecvBatch, RecvMeta, SendBatch, sealed};

/// Turns a libc `-1` return into the thread's `errno` as an `io::Error` (mio's
/// `syscall!` idea).
fn check(ret: libc::c_int) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// An `iovec` with null base: a placeholder overwritten before use.
const EMPTY_IOVEC: libc::iovec = libc::iovec {
    iov_base: std::ptr::null_mut(),
    iov_len: 0,
};

/// A zeroed `mmsghdr`.
fn zeroed_mmsghdr() -> libc::mmsghdr {
    // SAFETY: `mmsghdr` is a C struct of integers and raw pointers, for which all-zero
    // bytes are a valid value (null pointers, zero lengths).
    unsafe { mem::zeroed() }
}

/// Batched datagram I/O. Holds the address storage the kernel writes into (receive)
/// and reads from (send), reused across calls; the `mmsghdr`/`iovec` arrays, which hold
/// raw pointers, live on the stack for one call only, so this type stays `Send`.
#[derive(Debug)]
pub(crate) struct Mmsg {
    recv_addrs: Vec<SockAddrStorage>,
    send_addrs: Vec<SockAddr>,
    /// The runs of the send in progress (one per message).
    runs: Vec<offload::Run>,
    offload: Offload,
}

impl Mmsg {
    /// Batched I/O using what `offload` grants.
    pub(crate) fn new(offload: Offload) -> Self {
        Self {
            recv_addrs: (0..BATCH).map(|_| SockAddrStorage::zeroed()).collect(),
            send_addrs: Vec::with_capacity(BATCH),
            runs: Vec::with_capacity(BATCH),
            offload,
        }
    }

    /// Plans up to [`BATCH`] messages from datagram `from` on: runs with GSO, single
    /// datagrams without.
    fn plan(&mut self, batch: &SendBatch, from: usize) {
        self.runs.clear();
        let mut at = from;
        while at < batch.len() && self.runs.len() < BATCH {
            let run = if self.offload.gso {
                offload::next_run(batch, at)
            } else {
                offload::Run {
                    first: at,
                    count: 1,
                    segment: batch.get(at).1.len(),
                }
            };
            at += run.count;
            self.runs.push(run);
        }
    }

    /// One `sendmmsg` of the planned runs. `Ok(n)`: the first `n` runs went out.
    fn send_runs(&mut self, socket: &dyn DatagramSocket, batch: &SendBatch) -> io::Result<usize> {
        let count = self.runs.len();
        self.send_addrs.clear();
        let mut iovecs = [EMPTY_IOVEC; BATCH];
        let mut controls = [ControlBuf::default(); BATCH];
        let mut control_lens = [0usize; BATCH];
        for (i, run) in self.runs.iter().enumerate() {
            let (addr, _) = batch.get(run.first);
            let bytes = batch.span(run.first, run.count);
            self.send_addrs.push(SockAddr::from(addr));
            iovecs[i] = libc::iovec {
                // The kernel only reads through this pointer (sendmmsg's iovecs are
                // inputs); the `*mut` is what the C struct's field type demands.
                iov_base: bytes.as_ptr().cast_mut().cast(),
                iov_len: bytes.len(),
            };
            if run.count > 1 {
                // A run's segment is at most one datagram, far below u16::MAX.
                let segment = u16::try_from(run.segment).unwrap_or(u16::MAX);
                control_lens[i] = offload::write_segment_size(&mut controls[i], segment);
            }
        }
        let mut hdrs: [libc::mmsghdr; BATCH] = std::array::from_fn(|_| zeroed_mmsghdr());
        for (i, hdr) in hdrs.iter_mut().enumerate().take(count) {
            let addr = &self.send_addrs[i];
            hdr.msg_hdr.msg_name = addr.as_ptr().cast_mut().cast();
            hdr.msg_hdr.msg_namelen = addr.len();
            hdr.msg_hdr.msg_iov = &mut iovecs[i];
            hdr.msg_hdr.msg_iovlen = 1;
            if control_lens[i] > 0 {
                hdr.msg_hdr.msg_control = controls[i].as_mut_ptr().cast();
                hdr.msg_hdr.msg_controllen = control_lens[i] as _;
            }
        }
        // SAFETY: `hdrs[..count]` each point to one `iovec` describing bytes inside
        // `batch` (borrowed immutably for the call; the kernel only reads it), to a
        // `SockAddr` in `self.send_addrs` with its own length and, for runs, to a
        // control buffer in `controls` holding one complete `UDP_SEGMENT` message of
        // the stated length. None of these buffers is moved or mutated until the call
        // returns. `count <= BATCH` fits `c_uint`.
        let sent = check(unsafe {
            libc::sendmmsg(socket.fd().as_raw_fd(), hdrs.as_mut_ptr(), count as _, 0)
        })?;
        Ok(sent.min(count))
    }
}

impl sealed::Sealed for Mmsg {}

impl DatagramIo for Mmsg {
    fn recv(&mut self, socket: &dyn DatagramSocket, batch: &mut RecvBatch) -> io::Result<usize> {
        let mut iovecs = [EMPTY_IOVEC; BATCH];
        let mut controls = [ControlBuf::default(); BATCH];
        let mut hdrs: [libc::mmsghdr; BATCH] = std::array::from_fn(|_| zeroed_mmsghdr());
        let (slot_size, slots, meta) = batch.slots_mut();
        let mut count = 0;
        for (i, slot) in slots.take(BATCH).enumerate() {
            iovecs[i] = libc::iovec {
                iov_base: slot.as_mut_ptr().cast(),
                iov_len: slot.len(),
            };
            count = i + 1;
        }
        for (i, hdr) in hdrs.iter_mut().enumerate().take(count) {
            let name = &mut self.recv_addrs[i];
            hdr.msg_hdr.msg_namelen = name.size_of();
            hdr.msg_hdr.msg_name = (name as *mut SockAddrStorage).cast();
            hdr.msg_hdr.msg_iov = &mut iovecs[i];
            hdr.msg_hdr.msg_iovlen = 1;
            if self.offload.gro {
                hdr.msg_hdr.msg_control = controls[i].as_mut_ptr().cast();
                hdr.msg_hdr.msg_controllen = size_of::<ControlBuf>() as _;
            }
        }
        // SAFETY: `hdrs[..count]` each point to one `iovec` in `iovecs` whose base and
        // length describe a distinct slot of `batch.buf` (mutably borrowed through
        // `slots_mut` for this whole function), to a `SockAddrStorage` in
        // `self.recv_addrs` with its true size as `msg_namelen` and, with GRO, to a
        // control buffer in `controls` with its true size. All of them outlive the call
        // and nothing else accesses them during it. `count <= BATCH` fits `c_uint`.
        // No timeout pointer: the socket is non-blocking, so the call returns at once.
        let received = check(unsafe {
            libc::recvmmsg(
                socket.fd().as_raw_fd(),
                hdrs.as_mut_ptr(),
                count as _,
                0,
                std::ptr::null_mut(),
            )
        })?;
        for (i, hdr) in hdrs.iter().enumerate().take(received) {
            let storage = mem::replace(&mut self.recv_addrs[i], SockAddrStorage::zeroed());
            // SAFETY: the kernel filled entry `i` (it is below the returned count): it
            // wrote a socket address of the family in `ss_family` and set
            // `msg_namelen` to that address's length.
            let addr = unsafe { SockAddr::new(storage, hdr.msg_hdr.msg_namelen) };
            let Some(addr) = addr.as_socket() else {
                continue; // not an IP address: cannot happen on a UDP/IP socket
            };
            let len = hdr.msg_len as usize;
            let truncated = hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let segment = if self.offload.gro {
                // SAFETY: entry `i` was filled by the kernel, control data included
                // (its pointer and the length the kernel set still describe
                // `controls[i]`).
                unsafe { offload::gro_segment_size(&hdr.msg_hdr) }
            } else {
                None
            };
            split(meta, addr, i * slot_size, len, segment, truncated);
        }
        if meta.is_empty() && received > 0 {
            return Err(io::ErrorKind::InvalidData.into());
        }
        let datagrams = meta.len();
        batch.set_filled(received);
        Ok(datagrams)
    }

    fn send(
        &mut self,
        socket: &dyn DatagramSocket,
        batch: &SendBatch,
        from: usize,
    ) -> io::Result<usize> {
        self.plan(batch, from);
        // sendmmsg returns an error only if the *first* message failed; a later failure
        // shortens the count, and the caller retries from there and sees the error.
        let sent = match self.send_runs(socket, batch) {
            // A device without checksum offload (EIO) or a segment above the path MTU
            // (EINVAL) refuses GSO: turn it off for good and send one by one.
            Err(e)
                if self.runs[0].count > 1
                    && matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL)) =>
            {
                self.offload.gso = false;
                self.plan(batch, from);
                self.send_runs(socket, batch)?
            }
            other => other?,
        };
        if sent == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(self.runs[..sent].iter().map(|run| run.count).sum())
    }

    fn coalesces(&self) -> bool {
        self.offload.gro
    }
}

/// Records the datagrams of one received message that starts at `start` in the
/// batch's buffer: one datagram, or with a GRO `segment` size, `len / segment` of
/// them (the last may be shorter). A truncated message marks only its last datagram
/// truncated: the kernel cut the tail.
fn split(
    meta: &mut Vec<RecvMeta>,
    addr: std::net::SocketAddr,
    start: usize,
    len: usize,
    segment: Option<usize>,
    truncated: bool,
) {
    // An empty datagram is one datagram too.
    let segment = segment.filter(|&s| s < len).unwrap_or(len).max(1);
    let mut offset = 0;
    loop {
        let piece = segment.min(len - offset);
        meta.push(RecvMeta {
            addr,
            start: start + offset,
            len: piece,
            truncated: truncated && offset + piece == len,
        });
        offset += piece;
        if offset >= len {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::udp::{self, IoBackend, send_all};

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9))
    }

    #[test]
    fn a_gro_message_splits_into_its_datagrams() {
        let mut meta = Vec::new();
        split(&mut meta, addr(), 100, 1400 * 2 + 24, Some(1400), false);
        let pieces: Vec<_> = meta.iter().map(|m| (m.start, m.len)).collect();
        assert_eq!(pieces, [(100, 1400), (1500, 1400), (2900, 24)]);

        meta.clear();
        split(&mut meta, addr(), 0, 0, None, false);
        assert_eq!(meta.len(), 1, "an empty datagram is still one");

        meta.clear();
        split(&mut meta, addr(), 0, 1000, Some(1400), true);
        assert_eq!((meta.len(), meta[0].truncated), (1, true));
    }

    /// Sends `datagrams` from one socket to another through `backend` and returns what
    /// arrived, in order.
    fn round_trip(backend: IoBackend, datagrams: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let options = udp::SocketOptions {
            reuse_port: false,
            recv_buffer: 4 << 20,
            send_buffer: 4 << 20,
        };
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let tx = udp::bind(any, options).unwrap();
        let rx = udp::bind(any, options).unwrap();
        let to = rx.local_addr().unwrap();
        let mut tx_io = udp::datagram_io(backend, &tx);
        let mut rx_io = udp::datagram_io(backend, &rx);
        let mut batch = SendBatch::default();
        for d in datagrams {
            batch.push(to, d);
        }
        let outcome = send_all(tx_io.as_mut(), &tx, &mut batch);
        assert_eq!(outcome.datagrams as usize, datagrams.len(), "{outcome:?}");
        if rx_io.coalesces() {
            // GRO granted means a kernel with GSO too: runs went out whole.
            assert!(
                outcome.syscalls * 10 < datagrams.len() as u64,
                "{outcome:?}"
            );
        }

        let mut recv = RecvBatch::for_io(rx_io.as_ref(), 1500, udp::CLIENT_GRO_SLOTS);
        let mut got = Vec::new();
        let mut calls = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < datagrams.len() && Instant::now() < deadline {
            match rx_io.recv(&rx, &mut recv) {
                Ok(n) => {
                    calls += 1;
                    for i in 0..n {
                        let (meta, bytes) = recv.get(i);
                        assert!(!meta.truncated);
                        assert_eq!(meta.addr, tx.local_addr().unwrap());
                        got.push(bytes.to_vec());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("receiving: {e}"),
            }
        }
        if rx_io.coalesces() {
            assert!(
                calls * 10 < datagrams.len(),
                "GRO coalesced little: {calls} calls"
            );
        }
        got
    }

    /// The shapes a KCP flush produces: runs of full datagrams, a short last fragment,
    /// a lone ACK datagram.
    fn kcp_like_datagrams() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for message in 0..12u8 {
            for fragment in 0..11u8 {
                out.push(vec![message ^ fragment; 1400]);
            }
            out.push(vec![message; 1272]);
            if message % 3 == 0 {
                out.push(vec![0xAC; 24 * (usize::from(message) + 1)]);
            }
        }
        out
    }

    #[test]
    fn offload_delivers_every_datagram_whole_and_in_order() {
        let sent = kcp_like_datagrams();
        assert_eq!(round_trip(IoBackend::Offload, &sent), sent);
    }

    #[test]
    fn batched_without_offload_delivers_the_same() {
        let sent = kcp_like_datagrams();
        assert_eq!(round_trip(IoBackend::Batched, &sent), sent);
    }
}
