//! Where a flush writes its datagrams: [`Transmit`], and the closure sink of
//! [`Kcp::flush`](crate::Kcp::flush) built on it.

use alloc::vec::Vec;

use bytes::BufMut;

use crate::segment::{HEADER_LEN, Header};
use crate::stats::Stats;

/// A destination that lends [`Kcp::flush_into`](crate::Kcp::flush_into) the memory to
/// build datagrams in, so every datagram is written once, where it is sent from: a
/// send batch, a socket buffer, a simulated link. The closure sink of
/// [`Kcp::flush`](crate::Kcp::flush) instead receives each datagram from the engine's
/// own buffer, which costs one more copy when the closure keeps the bytes.
///
/// The engine appends each datagram's bytes to [`buffer`](Self::buffer) (never
/// touching what the buffer held before), then calls [`commit`](Self::commit) with the
/// datagram's length. Nothing else is appended between the two.
///
/// # Example
///
/// Datagrams laid back to back in one `Vec`, as a batched `sendmmsg` wants them:
///
/// ```
/// use core::convert::Infallible;
/// use kcp_core::{Config, Kcp, Timestamp, Transmit};
///
/// #[derive(Default)]
/// struct Batch {
///     bytes: Vec<u8>,
///     lengths: Vec<usize>,
/// }
///
/// impl Transmit for Batch {
///     type Error = Infallible;
///     type Buf = Vec<u8>;
///     fn buffer(&mut self, room: usize) -> &mut Vec<u8> {
///         self.bytes.reserve(room);
///         &mut self.bytes
///     }
///     fn commit(&mut self, len: usize) -> Result<(), Infallible> {
///         self.lengths.push(len);
///         Ok(())
///     }
/// }
///
/// let mut kcp = Kcp::new(7, Config::fast()).unwrap();
/// kcp.send(&[1; 3000]).unwrap();
/// let mut batch = Batch::default();
/// kcp.flush_into(Timestamp::from_millis(0), &mut batch).unwrap();
/// assert_eq!(batch.lengths, [1400, 1400, 3000 - 2 * 1376 + 24]);
/// assert_eq!(batch.bytes.len(), 3000 + 3 * 24);
/// ```
pub trait Transmit {
    /// What a failed [`commit`](Self::commit) returns. After the first error the flush
    /// completes its bookkeeping without writing or committing another datagram, and
    /// returns that error (see [`Kcp`](crate::Kcp)'s "Output errors").
    type Error;

    /// The buffer datagrams are written into.
    type Buf: BufMut;

    /// The buffer to append the next bytes of the current datagram to. `room` is how
    /// many bytes the datagram may still grow by (at most the MTU): reserving it up
    /// front keeps the datagram in one piece of memory.
    fn buffer(&mut self, room: usize) -> &mut Self::Buf;

    /// The last `len` bytes appended to the buffer are one complete datagram. On error
    /// the destination discards those bytes itself.
    ///
    /// # Errors
    /// Whatever the destination reports; the flush stops transmitting.
    fn commit(&mut self, len: usize) -> Result<(), Self::Error>;
}

/// The [`Transmit`] behind [`Kcp::flush`](crate::Kcp::flush): builds each datagram in
/// `buf` (the engine's, lent for the call and given back) and hands the closure a view
/// of it.
pub(crate) struct ClosureSink<F> {
    pub(crate) buf: Vec<u8>,
    pub(crate) out: F,
}

impl<F, E> Transmit for ClosureSink<F>
where
    F: FnMut(&[u8]) -> Result<(), E>,
{
    type Error = E;
    type Buf = Vec<u8>;

    fn buffer(&mut self, _room: usize) -> &mut Vec<u8> {
        &mut self.buf
    }

    fn commit(&mut self, _len: usize) -> Result<(), E> {
        let sent = (self.out)(&self.buf);
        self.buf.clear();
        sent
    }
}

/// Packs segments into datagrams of at most `mtu` bytes, written into the
/// destination's buffer.
pub(crate) struct Emitter<'a, T: Transmit> {
    /// Bytes of the datagram being built.
    pub(crate) len: usize,
    pub(crate) mtu: usize,
    pub(crate) out: &'a mut T,
    /// The destination's first error; after it, datagrams are dropped.
    pub(crate) error: Option<T::Error>,
    pub(crate) stats: &'a mut Stats,
}

impl<T: Transmit> Emitter<'_, T> {
    /// Appends one segment, first committing the datagram so far if it would overflow
    /// the MTU. Inlined, so the header is encoded from registers (see `Kcp::apply` in `engine.rs`).
    #[inline(always)]
    pub(crate) fn put(&mut self, header: &Header, payload: &[u8]) {
        let size = HEADER_LEN + payload.len();
        if self.len + size > self.mtu {
            self.emit();
        }
        self.stats.segments_out += 1;
        if self.error.is_some() {
            return;
        }
        let buf = self.out.buffer(self.mtu.saturating_sub(self.len).max(size));
        buf.put_slice(&header.to_bytes());
        buf.put_slice(payload);
        self.len += size;
    }

    fn emit(&mut self) {
        if self.len == 0 {
            return;
        }
        match self.out.commit(self.len) {
            Ok(()) => {
                self.stats.datagrams_out += 1;
                self.stats.bytes_out += self.len as u64;
            }
            Err(e) => self.error = Some(e),
        }
        self.len = 0;
    }

    pub(crate) fn finish(&mut self) {
        self.emit();
    }
}
