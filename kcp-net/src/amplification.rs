//! Anti-amplification: what a conversation may send to a peer that has not yet proved
//! it receives at its address, and how our client earns that budget at once.
//!
//! A server conversation is *unconfirmed* until its peer acknowledges a segment we
//! sent, echoing the `ts` of our transmission (our engine clock starts at a random
//! point per server conversation, so a blind sender cannot guess it). Until then it
//! sends at most [`AMPLIFICATION_FACTOR`] times the bytes it accepted from that
//! address (QUIC's rule): a spoofed source cannot turn the server into an amplifier.
//!
//! A reply larger than that budget is held until the peer sends more or proves its
//! address (the engine counts it as sent, so nothing is retransmitted early). So that a
//! first reply does not wait for a keepalive, our client pads the first datagram it
//! sends to [`PADDED_OPENING`] bytes with window-tell segments (`WINS`, 24 bytes
//! each, a no-op for every KCP peer: they carry the same window and `una` as the data
//! segment they follow), as a QUIC client pads its Initial.

use std::collections::VecDeque;

use kcp_core::Transmit;
use kcp_core::segment::{Command, HEADER_LEN, Header};

/// A server sends at most this many times what an unconfirmed peer sent it.
pub(crate) const AMPLIFICATION_FACTOR: u64 = 3;

/// The size our client pads its first datagram to (QUIC's minimum Initial).
pub(crate) const PADDED_OPENING: usize = 1200;

/// Most bytes of datagrams held for an unconfirmed peer; beyond it they are dropped
/// (the engine retransmits them like any loss).
pub(crate) const MAX_HELD: usize = 64 << 10;

/// Datagrams an unconfirmed peer's budget could not cover yet, in order. The engine
/// counts them as sent; they leave as soon as the peer sends more or proves its
/// address, usually long before the engine would retransmit them.
#[derive(Debug, Default)]
pub(crate) struct Held {
    datagrams: VecDeque<Vec<u8>>,
    bytes: usize,
}

impl Held {
    pub(crate) fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }

    /// Sends held datagrams, oldest first, while `left` covers them (`None`: no
    /// budget, the peer is confirmed).
    pub(crate) fn release<T: Transmit<Buf = Vec<u8>>>(
        &mut self,
        out: &mut T,
        left: &mut Option<u64>,
    ) -> Result<(), T::Error> {
        while let Some(datagram) = self.datagrams.front() {
            let len = datagram.len();
            if let Some(left) = left {
                if len as u64 > *left {
                    break;
                }
                *left -= len as u64;
            }
            out.buffer(len).extend_from_slice(datagram);
            out.commit(len)?;
            self.bytes -= len;
            self.datagrams.pop_front();
        }
        Ok(())
    }
}

/// A sink that lets through at most `left` bytes: once a datagram does not fit, it and
/// every later one are moved to `held` (up to [`MAX_HELD`] bytes; beyond it they are
/// dropped), so that order is kept.
#[derive(Debug)]
pub(crate) struct Budgeted<'a, T> {
    inner: &'a mut T,
    left: u64,
    held: &'a mut Held,
    /// Datagrams held or dropped by this sink.
    pub(crate) withheld: u64,
    /// Where the datagram being built started in the inner buffer.
    start: Option<usize>,
}

impl<'a, T: Transmit<Buf = Vec<u8>>> Budgeted<'a, T> {
    pub(crate) const fn new(inner: &'a mut T, left: u64, held: &'a mut Held) -> Self {
        Self {
            inner,
            left,
            held,
            withheld: 0,
            start: None,
        }
    }
}

impl<T: Transmit<Buf = Vec<u8>>> Transmit for Budgeted<'_, T> {
    type Error = T::Error;
    type Buf = Vec<u8>;

    fn buffer(&mut self, room: usize) -> &mut Vec<u8> {
        lend(self.inner, &mut self.start, room)
    }

    fn commit(&mut self, len: usize) -> Result<(), T::Error> {
        let start = self.start.take();
        if self.held.is_empty() && len as u64 <= self.left {
            self.left -= len as u64;
            return self.inner.commit(len);
        }
        let buf = self.inner.buffer(0);
        let start = start.unwrap_or(buf.len() - len);
        if self.held.bytes + len <= MAX_HELD {
            self.held
                .datagrams
                .push_back(buf[start..start + len].to_vec());
            self.held.bytes += len;
        }
        buf.truncate(start);
        self.withheld += 1;
        Ok(())
    }
}

/// A sink that pads the first datagram it commits to `target` bytes (if the MTU
/// allows) with window-tell segments copying the first segment's `wnd` and `una`.
#[derive(Debug)]
pub(crate) struct PaddedOpening<'a, T> {
    inner: &'a mut T,
    target: usize,
    mtu: usize,
    start: Option<usize>,
    /// Set once the first datagram went out.
    done: bool,
}

impl<'a, T: Transmit<Buf = Vec<u8>>> PaddedOpening<'a, T> {
    pub(crate) const fn new(inner: &'a mut T, target: usize, mtu: usize) -> Self {
        Self {
            inner,
            target,
            mtu,
            start: None,
            done: false,
        }
    }

    /// Whether the first datagram went out (padded).
    pub(crate) const fn padded(&self) -> bool {
        self.done
    }
}

impl<T: Transmit<Buf = Vec<u8>>> Transmit for PaddedOpening<'_, T> {
    type Error = T::Error;
    type Buf = Vec<u8>;

    fn buffer(&mut self, room: usize) -> &mut Vec<u8> {
        lend(self.inner, &mut self.start, room)
    }

    fn commit(&mut self, len: usize) -> Result<(), T::Error> {
        let start = self.start.take();
        if self.done {
            return self.inner.commit(len);
        }
        self.done = true;
        let target = self.target.min(self.mtu);
        let Some(start) = start.filter(|_| len >= HEADER_LEN && len < target) else {
            return self.inner.commit(len);
        };
        let buf = self.inner.buffer(target - len);
        let Ok((first, _)) = Header::parse(&buf[start..start + len]) else {
            return self.inner.commit(len);
        };
        let pad = Header {
            cmd: Command::WindowTell,
            frg: 0,
            len: 0,
            ..first
        }
        .to_bytes();
        let mut total = len;
        while total + HEADER_LEN <= target {
            buf.extend_from_slice(&pad);
            total += HEADER_LEN;
        }
        self.inner.commit(total)
    }
}

/// The inner sink's buffer for a datagram being built, noting in `start` where the
/// datagram began (at the first call after a commit), so a wrapper can take it back
/// or read it at `commit`.
fn lend<'a, T: Transmit<Buf = Vec<u8>>>(
    inner: &'a mut T,
    start: &mut Option<usize>,
    room: usize,
) -> &'a mut Vec<u8> {
    let buf = inner.buffer(room);
    start.get_or_insert(buf.len());
    buf
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use kcp_core::{Config, Kcp, Sn, Timestamp};

    use super::*;

    #[derive(Default)]
    struct Datagrams {
        buf: Vec<u8>,
        lens: Vec<usize>,
    }

    impl Transmit for Datagrams {
        type Error = Infallible;
        type Buf = Vec<u8>;
        fn buffer(&mut self, room: usize) -> &mut Vec<u8> {
            self.buf.reserve(room);
            &mut self.buf
        }
        fn commit(&mut self, len: usize) -> Result<(), Infallible> {
            self.lens.push(len);
            Ok(())
        }
    }

    #[test]
    fn a_budget_holds_what_it_cannot_cover_in_order_and_releases_it_later() {
        let mut kcp = Kcp::new(1, Config::fast()).unwrap();
        for _ in 0..3 {
            kcp.send(&[7; 1300]).unwrap();
        }
        let mut out = Datagrams::default();
        let mut held = Held::default();
        let mut budget = Budgeted::new(&mut out, 1400, &mut held);
        kcp.flush_into(Timestamp::from_millis(0), &mut budget)
            .unwrap();
        assert_eq!(budget.withheld, 2);
        assert_eq!(out.lens, [1324], "one datagram fits the budget");
        assert_eq!(out.buf.len(), 1324, "the held bytes were taken back out");
        // 1,400 more bytes of budget: one more leaves, in order.
        held.release(&mut out, &mut Some(1400)).unwrap();
        assert_eq!(out.lens, [1324, 1324]);
        // Confirmed: the rest.
        held.release(&mut out, &mut None).unwrap();
        assert_eq!(out.lens, [1324, 1324, 1324]);
        assert!(held.is_empty());
        let mut server = Kcp::new(1, Config::fast()).unwrap();
        let mut at = 0;
        for len in out.lens {
            server
                .input(Timestamp::from_millis(1), &out.buf[at..at + len])
                .unwrap();
            at += len;
        }
        assert_eq!((0..3).filter_map(|_| server.recv()).count(), 3);
    }

    #[test]
    fn the_first_datagram_is_padded_with_window_tells_that_every_peer_accepts() {
        let mut client = Kcp::new(9, Config::fast()).unwrap();
        client.send(b"hello").unwrap();
        let mut out = Datagrams::default();
        let mut padded = PaddedOpening::new(&mut out, PADDED_OPENING, 1400);
        client
            .flush_into(Timestamp::from_millis(0), &mut padded)
            .unwrap();
        assert!(padded.padded());
        assert_eq!(out.lens.len(), 1);
        let len = out.lens[0];
        assert!(
            len > PADDED_OPENING - HEADER_LEN && len <= PADDED_OPENING,
            "{len}"
        );
        // Our engine and the C reference both take it: the message, nothing else.
        let mut server = Kcp::new(9, Config::fast()).unwrap();
        server
            .input(Timestamp::from_millis(1), &out.buf[..len])
            .unwrap();
        assert_eq!(server.recv().as_deref(), Some(&b"hello"[..]));
        let (tell, _) = Header::parse(&out.buf[len - HEADER_LEN..len]).unwrap();
        assert_eq!(tell.cmd, Command::WindowTell);
        assert_eq!(tell.sn, Sn::new(0));
    }
}
