//! UDP segmentation offload on Linux: GSO sends a run of equal-size datagrams to one
//! peer as one message, GRO hands us a run of datagrams from one peer as one message.
//! Both cut the per-datagram cost of the kernel's UDP/IP path, which dominates bulk
//! transfer (a profile of a 1,400-byte-datagram transfer on loopback showed 93% of
//! the server's time in the kernel).
//!
//! This module plans the runs (safe, tested here) and holds the socket options and
//! control-message code (`unsafe`, at the syscall border).

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::SendBatch;

/// `UDP_SEGMENT` from `<linux/udp.h>`: the GSO segment size, as a socket option or a
/// `SOL_UDP` control message (`u16`).
const UDP_SEGMENT: libc::c_int = 103;
/// `UDP_GRO` from `<linux/udp.h>`: the socket option enabling GRO, and the control
/// message carrying the segment size of a coalesced message (`c_int`).
const UDP_GRO: libc::c_int = 104;

/// Most datagrams in one GSO message (`UDP_MAX_SEGMENTS` on every kernel that has GSO).
pub(crate) const MAX_SEGMENTS: usize = 64;
/// Most payload bytes in one GSO message: under the largest UDP payload over IPv4
/// (65,507) and IPv6 (65,527), with room to spare.
pub(crate) const MAX_BYTES: usize = 65_000;

/// Room for one control message of up to 8 bytes of data, aligned for `cmsghdr`.
pub(crate) type ControlBuf = [u64; 4];

/// What the kernel granted for one socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Offload {
    /// Runs may be sent as one GSO message.
    pub(crate) gso: bool,
    /// Received messages may hold runs (GRO is on).
    pub(crate) gro: bool,
}

impl Offload {
    /// Neither.
    pub(crate) const NONE: Self = Self {
        gso: false,
        gro: false,
    };
}

/// Asks the kernel for GSO and GRO on `socket`. GSO is probed by setting the socket's
/// default segment size to 0 (which means "none", so sends without a control message
/// stay single datagrams); GRO by turning it on.
pub(crate) fn enable(socket: BorrowedFd<'_>) -> Offload {
    let fd = socket.as_raw_fd();
    Offload {
        gso: set_int_option(fd, UDP_SEGMENT, 0).is_ok(),
        gro: set_int_option(fd, UDP_GRO, 1).is_ok(),
    }
}

fn set_int_option(fd: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `value` is a live `c_int` for the duration of the call and its size is
    // passed alongside; `fd` is an open socket borrowed from the caller.
    let ret = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_UDP,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Datagrams `first..first + count` of a batch, sent as one message: all to one
/// peer, all `segment` bytes long except possibly the last, which is not longer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) first: usize,
    pub(crate) count: usize,
    pub(crate) segment: usize,
}

/// The longest run starting at datagram `first` of `batch` that one GSO message may
/// carry.
pub(crate) fn next_run(batch: &SendBatch, first: usize) -> Run {
    let (addr, head) = batch.get(first);
    let segment = head.len();
    let mut count = 1;
    let mut bytes = segment;
    while first + count < batch.len() && count < MAX_SEGMENTS {
        let (next_addr, next) = batch.get(first + count);
        if next_addr != addr || next.len() > segment || bytes + next.len() > MAX_BYTES {
            break;
        }
        count += 1;
        bytes += next.len();
        if next.len() < segment {
            break; // only the last may be short
        }
    }
    Run {
        first,
        count,
        segment,
    }
}

/// Writes a `UDP_SEGMENT` control message for `segment` into `buf`; returns the
/// length to put in `msg_controllen`.
pub(crate) fn write_segment_size(buf: &mut ControlBuf, segment: u16) -> usize {
    // SAFETY: CMSG_SPACE is arithmetic on a constant; it touches no memory.
    let space = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
    debug_assert!(space <= size_of::<ControlBuf>());
    // SAFETY: `hdr` is a zeroed `msghdr` whose control pointer and length describe
    // `buf` (aligned for `cmsghdr` by its `u64` elements, and at least `space` bytes),
    // so CMSG_FIRSTHDR returns a pointer to the start of `buf`, valid for one
    // `cmsghdr` plus a `u16` of data, which is all we write.
    unsafe {
        let mut hdr: libc::msghdr = mem::zeroed();
        hdr.msg_control = buf.as_mut_ptr().cast();
        hdr.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&hdr);
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
        libc::CMSG_DATA(cmsg).cast::<u16>().write_unaligned(segment);
    }
    space
}

/// The GRO segment size a received message's control data reports, if any.
///
/// # Safety
/// `hdr` must be a `msghdr` the kernel filled on return from `recvmsg`/`recvmmsg`:
/// its `msg_control`/`msg_controllen` describe initialised control messages.
pub(crate) unsafe fn gro_segment_size(hdr: &libc::msghdr) -> Option<usize> {
    // SAFETY: per the contract, the CMSG_* walk stays inside the control buffer the
    // kernel filled; each message's data is read unaligned, as its type demands.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_UDP && (*cmsg).cmsg_type == UDP_GRO {
                let size = libc::CMSG_DATA(cmsg).cast::<libc::c_int>().read_unaligned();
                return usize::try_from(size).ok().filter(|&s| s > 0);
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn batch(datagrams: &[(u16, usize)]) -> SendBatch {
        let mut batch = SendBatch::default();
        for &(port, len) in datagrams {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            batch.push(addr, &vec![port as u8; len]);
        }
        batch
    }

    #[test]
    fn a_run_is_equal_sizes_to_one_peer_ending_at_the_first_short_one() {
        let b = batch(&[
            (1, 1400),
            (1, 1400),
            (1, 1272),
            (1, 1400),
            (2, 1400),
            (2, 24),
        ]);
        assert_eq!(
            next_run(&b, 0),
            Run {
                first: 0,
                count: 3,
                segment: 1400
            }
        );
        assert_eq!(
            next_run(&b, 3),
            Run {
                first: 3,
                count: 1,
                segment: 1400
            }
        );
        assert_eq!(
            next_run(&b, 4),
            Run {
                first: 4,
                count: 2,
                segment: 1400
            }
        );
        assert_eq!(
            next_run(&b, 5),
            Run {
                first: 5,
                count: 1,
                segment: 24
            }
        );
        assert_eq!(b.span(0, 3).len(), 1400 + 1400 + 1272);
    }

    #[test]
    fn a_longer_datagram_starts_a_new_run() {
        let b = batch(&[(1, 24), (1, 1400)]);
        assert_eq!(next_run(&b, 0).count, 1);
    }

    #[test]
    fn runs_respect_the_segment_and_byte_limits() {
        let b = batch(&[(1, 100); 100]);
        assert_eq!(next_run(&b, 0).count, MAX_SEGMENTS);
        let b = batch(&[(1, 1400); 100]);
        assert_eq!(next_run(&b, 0).count, MAX_BYTES / 1400);
    }
}
