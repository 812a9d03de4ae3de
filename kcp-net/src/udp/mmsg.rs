//! Linux `recvmmsg(2)`/`sendmmsg(2)`: up to [`BATCH`] datagrams per syscall.
//!
//! The only module of `kcp-net` with `unsafe` code. The pattern of every call:
//! build `mmsghdr`s on the stack whose pointers refer to buffers that outlive the
//! call and are not touched by Rust while the kernel uses them, make the syscall, read
//! back only the entries the kernel reports as filled.

use std::io;
use std::mem;
use std::os::fd::AsRawFd;

use mio::net::UdpSocket;
use socket2::{SockAddr, SockAddrStorage};

use super::{BATCH, DatagramIo, RecvBatch, RecvMeta, SendBatch};

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
}

impl Mmsg {
    pub(crate) fn new() -> Self {
        Self {
            recv_addrs: (0..BATCH).map(|_| SockAddrStorage::zeroed()).collect(),
            send_addrs: Vec::with_capacity(BATCH),
        }
    }
}

impl DatagramIo for Mmsg {
    fn recv(&mut self, socket: &UdpSocket, batch: &mut RecvBatch) -> io::Result<usize> {
        let mut iovecs = [EMPTY_IOVEC; BATCH];
        let mut hdrs: [libc::mmsghdr; BATCH] = std::array::from_fn(|_| zeroed_mmsghdr());
        let (slots, meta) = batch.slots_mut();
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
        }
        // SAFETY: `hdrs[..count]` each point to one `iovec` in `iovecs` whose base and
        // length describe a distinct slot of `batch.buf` (mutably borrowed through
        // `slots_mut` for this whole function), and to a `SockAddrStorage` in
        // `self.recv_addrs` with its true size as `msg_namelen`. All of them outlive the
        // call and nothing else accesses them during it. `count <= BATCH` fits `c_uint`.
        // No timeout pointer: the socket is non-blocking, so the call returns at once.
        let received = check(unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
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
            meta.push(RecvMeta {
                addr,
                len: hdr.msg_len as usize,
                truncated: hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
            });
        }
        if meta.is_empty() && received > 0 {
            return Err(io::ErrorKind::InvalidData.into());
        }
        Ok(meta.len())
    }

    fn send(&mut self, socket: &UdpSocket, batch: &SendBatch, from: usize) -> io::Result<usize> {
        let end = batch.len().min(from + BATCH);
        let count = end - from;
        self.send_addrs.clear();
        let mut iovecs = [EMPTY_IOVEC; BATCH];
        for (i, iovec) in iovecs.iter_mut().enumerate().take(count) {
            let (addr, datagram) = batch.get(from + i);
            self.send_addrs.push(SockAddr::from(addr));
            *iovec = libc::iovec {
                // The kernel only reads through this pointer (sendmmsg's iovecs are
                // inputs); the `*mut` is what the C struct's field type demands.
                iov_base: datagram.as_ptr().cast_mut().cast(),
                iov_len: datagram.len(),
            };
        }
        let mut hdrs: [libc::mmsghdr; BATCH] = std::array::from_fn(|_| zeroed_mmsghdr());
        for (i, hdr) in hdrs.iter_mut().enumerate().take(count) {
            let addr = &self.send_addrs[i];
            hdr.msg_hdr.msg_name = addr.as_ptr().cast_mut().cast();
            hdr.msg_hdr.msg_namelen = addr.len();
            hdr.msg_hdr.msg_iov = &mut iovecs[i];
            hdr.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `hdrs[..count]` each point to one `iovec` describing a datagram inside
        // `batch` (borrowed immutably for the call; the kernel only reads it) and to a
        // `SockAddr` in `self.send_addrs` with its own length. None of these buffers is
        // moved or mutated until the call returns. `count <= BATCH` fits `c_uint`.
        let sent =
            check(unsafe { libc::sendmmsg(socket.as_raw_fd(), hdrs.as_mut_ptr(), count as _, 0) })?;
        // sendmmsg returns an error only if the *first* datagram failed; a later failure
        // shortens the count, and the caller retries from there and sees the error.
        if sent == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(sent.min(count))
    }
}
