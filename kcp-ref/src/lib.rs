//! Test and bench support: the C reference engine `ikcp.c` v1.7.1, driven from Rust.
//!
//! The crates.io crate `kcp-sys` compiles the unmodified reference (with
//! `IKCP_FASTACK_CONSERVE`) into a static library; its own wrapper forces stream mode,
//! a fixed MTU and a wall clock, so this crate declares the few `ikcp_*` functions it
//! needs and wraps them in [`CKcp`]: the same engine, deterministic, on the caller's
//! clock, with its datagrams collected into a queue.
//!
//! [`counting`] is the other piece of support: a counting global allocator for the
//! tests that assert what allocates.
//!
//! This is the only place in the workspace besides the socket layer with `unsafe`
//! code; every block says why it is sound.
//!
//! # Threads
//!
//! The C control block has no locking (spec pitfall 22), so [`CKcp`] is neither `Send`
//! nor `Sync`: create and drive each engine on one thread.
//!
//! ```compile_fail
//! fn needs_sync<T: Sync>() {}
//! needs_sync::<kcp_ref::CKcp>();
//! ```
//!
//! ```compile_fail
//! fn needs_send<T: Send>() {}
//! needs_send::<kcp_ref::CKcp>();
//! ```
//!
//! # Example
//!
//! Two C engines in lock-step on a virtual clock: each millisecond both are updated
//! and their datagrams handed straight to the other side. `a` sends a message, `b`
//! echoes it, and `a`'s data is acknowledged.
//!
//! ```
//! use kcp_ref::CKcp;
//!
//! let (mut a, mut b) = (CKcp::new(7), CKcp::new(7));
//! for k in [&mut a, &mut b] {
//!     k.nodelay(1, 10, 2, 1);
//! }
//! assert_eq!(a.send(b"hello"), 5);
//! let mut buf = [0u8; 16];
//! let mut echoed = None;
//! for now in 0..100u32 {
//!     a.update(now);
//!     b.update(now);
//!     for d in a.drain_output() {
//!         assert_eq!(b.input(&d), 0);
//!     }
//!     for d in b.drain_output() {
//!         assert_eq!(a.input(&d), 0);
//!     }
//!     if let Ok(n) = usize::try_from(b.recv(&mut buf)) {
//!         assert_eq!(b.send(&buf[..n]), 5);
//!     }
//!     if let Ok(n) = usize::try_from(a.recv(&mut buf)) {
//!         echoed = Some((now, buf[..n].to_vec()));
//!     }
//! }
//! let (at, message) = echoed.expect("the echo came back");
//! assert_eq!(message, b"hello");
//! assert!(at <= 30, "a few 10 ms flushes, no loss: {at}");
//! assert_eq!(a.wait_send(), 0, "everything a sent was acknowledged");
//! ```

use core::ffi::{c_char, c_int, c_long, c_void};
use std::marker::PhantomData;

use bytes::Bytes;
use kcp_core::Timestamp;
use kcp_core::sim::reference::ReferenceMode;

// Forces the link of kcp-sys's static library, which holds the `ikcp_*` symbols.
use kcp_sys as _;

pub mod counting;
pub mod udp_peers;

#[repr(C)]
struct QueueHead {
    next: *mut Self,
    prev: *mut Self,
}

/// Mirror of `struct IKCPCB` from `ikcp.h` v1.7.1, field for field, so that the few
/// fields without a setter (`rx_minrto`, `fastresend`, `stream`) can be written.
#[repr(C)]
struct IkcpCb {
    conv: u32,
    mtu: u32,
    mss: u32,
    state: u32,
    snd_una: u32,
    snd_nxt: u32,
    rcv_nxt: u32,
    ts_recent: u32,
    ts_lastack: u32,
    ssthresh: u32,
    rx_rttval: i32,
    rx_srtt: i32,
    rx_rto: i32,
    rx_minrto: i32,
    snd_wnd: u32,
    rcv_wnd: u32,
    rmt_wnd: u32,
    cwnd: u32,
    probe: u32,
    current: u32,
    interval: u32,
    ts_flush: u32,
    xmit: u32,
    nrcv_buf: u32,
    nsnd_buf: u32,
    nrcv_que: u32,
    nsnd_que: u32,
    nodelay: u32,
    updated: u32,
    ts_probe: u32,
    probe_wait: u32,
    dead_link: u32,
    incr: u32,
    snd_queue: QueueHead,
    rcv_queue: QueueHead,
    snd_buf: QueueHead,
    rcv_buf: QueueHead,
    acklist: *mut u32,
    ackcount: u32,
    ackblock: u32,
    user: *mut c_void,
    buffer: *mut c_char,
    fastresend: c_int,
    fastlimit: c_int,
    nocwnd: c_int,
    stream: c_int,
    logmask: c_int,
    output: Option<OutputFn>,
    writelog: *mut c_void,
}

type OutputFn = unsafe extern "C" fn(*const c_char, c_int, *mut IkcpCb, *mut c_void) -> c_int;

unsafe extern "C" {
    fn ikcp_create(conv: u32, user: *mut c_void) -> *mut IkcpCb;
    fn ikcp_release(kcp: *mut IkcpCb);
    fn ikcp_setoutput(kcp: *mut IkcpCb, output: Option<OutputFn>);
    fn ikcp_recv(kcp: *mut IkcpCb, buffer: *mut c_char, len: c_int) -> c_int;
    fn ikcp_send(kcp: *mut IkcpCb, buffer: *const c_char, len: c_int) -> c_int;
    fn ikcp_update(kcp: *mut IkcpCb, current: u32);
    fn ikcp_check(kcp: *const IkcpCb, current: u32) -> u32;
    fn ikcp_input(kcp: *mut IkcpCb, data: *const c_char, size: c_long) -> c_int;
    fn ikcp_flush(kcp: *mut IkcpCb);
    fn ikcp_peeksize(kcp: *const IkcpCb) -> c_int;
    fn ikcp_setmtu(kcp: *mut IkcpCb, mtu: c_int) -> c_int;
    fn ikcp_wndsize(kcp: *mut IkcpCb, sndwnd: c_int, rcvwnd: c_int) -> c_int;
    fn ikcp_waitsnd(kcp: *const IkcpCb) -> c_int;
    fn ikcp_nodelay(
        kcp: *mut IkcpCb,
        nodelay: c_int,
        interval: c_int,
        resend: c_int,
        nc: c_int,
    ) -> c_int;
}

/// Where the output callback puts a datagram: the engine's queue ([`CKcp::new`]), or
/// a caller's sink while [`CKcp::update_with`] or [`CKcp::flush_with`] runs.
trait Destination {
    fn put(&mut self, datagram: &[u8]);
}

/// The queue keeps a copy.
impl Destination for Vec<Vec<u8>> {
    fn put(&mut self, datagram: &[u8]) {
        self.push(datagram.to_vec());
    }
}

/// The sink gets the datagram straight from ikcp's buffer, without a copy.
impl Destination for &mut dyn FnMut(&[u8]) {
    fn put(&mut self, datagram: &[u8]) {
        self(datagram);
    }
}

/// The output callback: hands the datagram to the `D` behind `user`.
///
/// # Safety
/// `user` must point to a live `D` that nothing else uses while ikcp runs: the queue a
/// [`CKcp`] registered (`Vec<Vec<u8>>`), or the sink `CKcp::with_sink` set for the
/// duration of one C call (`&mut dyn FnMut(&[u8])`). `buf` must point to `len`
/// readable bytes (ikcp passes its own work buffer).
unsafe extern "C" fn on_output<D: Destination>(
    buf: *const c_char,
    len: c_int,
    _kcp: *mut IkcpCb,
    user: *mut c_void,
) -> c_int {
    let Ok(len) = usize::try_from(len) else {
        return -1;
    };
    // SAFETY: ikcp hands us its work buffer holding `len` initialised bytes, valid for
    // the duration of this call.
    let datagram = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
    // SAFETY: `user` was set together with this callback, to the `D` it names: either
    // the queue `CKcp::new` created with `Box::into_raw`, which lives until `CKcp` drops
    // and which no Rust reference aliases while ikcp runs (every `CKcp` method calls
    // into ikcp without holding one); or the sink `with_sink` keeps on its own stack
    // frame, which outlives the C call that runs this callback.
    let destination = unsafe { &mut *user.cast::<D>() };
    destination.put(datagram);
    0
}

/// One C reference engine (`ikcpcb`), with its output collected into a queue.
///
/// Single-threaded (`!Send`, `!Sync`): the C control block has no locking.
#[derive(Debug)]
pub struct CKcp {
    kcp: *mut IkcpCb,
    output: *mut Vec<Vec<u8>>,
    _not_send: PhantomData<*mut ()>,
}

impl CKcp {
    /// `ikcp_create(conv)` with the output routed to this wrapper's queue.
    ///
    /// # Panics
    /// If the C allocator fails.
    pub fn new(conv: u32) -> Self {
        let output = Box::into_raw(Box::<Vec<Vec<u8>>>::default());
        // SAFETY: `ikcp_create` only stores `user`; it returns a fresh control block or
        // null on allocation failure (checked below).
        let kcp = unsafe { ikcp_create(conv, output.cast()) };
        assert!(!kcp.is_null(), "ikcp_create failed");
        // SAFETY: `kcp` is a valid control block and `on_output` matches the
        // callback's C signature.
        unsafe { ikcp_setoutput(kcp, Some(on_output::<Vec<Vec<u8>>>)) };
        Self {
            kcp,
            output,
            _not_send: PhantomData,
        }
    }

    /// An engine set up as `test.cpp` sets up endpoint 1 (`first`) or 2 for `mode`
    /// (`shared/reference-scenario.md`): windows 128/128, then the mode's `nodelay`,
    /// and in fast mode on endpoint 1 `rx_minrto = 10`, `fastresend = 1`.
    pub fn for_reference_scenario(conv: u32, mode: ReferenceMode, first: bool) -> Self {
        let mut k = Self::new(conv);
        k.wndsize(128, 128);
        match mode {
            ReferenceMode::Default => k.nodelay(0, 10, 0, 0),
            ReferenceMode::Normal => k.nodelay(0, 10, 0, 1),
            ReferenceMode::Fast => {
                k.nodelay(2, 10, 2, 1);
                if first {
                    k.set_min_rto(10);
                    k.set_fast_resend(1);
                }
            }
        }
        k
    }

    /// `ikcp_nodelay(nodelay, interval, resend, nc)`; a negative argument leaves that
    /// setting unchanged.
    pub fn nodelay(&mut self, nodelay: i32, interval: i32, resend: i32, nc: i32) {
        // SAFETY: `self.kcp` is valid for the life of `self`.
        unsafe { ikcp_nodelay(self.kcp, nodelay, interval, resend, nc) };
    }

    /// `ikcp_wndsize(snd, rcv)`.
    pub fn wndsize(&mut self, snd: i32, rcv: i32) {
        // SAFETY: `self.kcp` is valid for the life of `self`.
        unsafe { ikcp_wndsize(self.kcp, snd, rcv) };
    }

    /// `ikcp_setmtu(mtu)`; returns its status (0 on success).
    pub fn set_mtu(&mut self, mtu: i32) -> i32 {
        // SAFETY: `self.kcp` is valid for the life of `self`.
        unsafe { ikcp_setmtu(self.kcp, mtu) }
    }

    /// Sets `rx_minrto` (set it after [`CKcp::nodelay`], which resets it).
    pub fn set_min_rto(&mut self, ms: i32) {
        // SAFETY: `self.kcp` is a valid, exclusively owned control block whose layout
        // `IkcpCb` mirrors; writing a plain integer field is sound.
        unsafe { (*self.kcp).rx_minrto = ms };
    }

    /// Sets `fastresend`.
    pub fn set_fast_resend(&mut self, resend: i32) {
        // SAFETY: as in `set_min_rto`.
        unsafe { (*self.kcp).fastresend = resend };
    }

    /// Sets `fastlimit`.
    pub fn set_fast_limit(&mut self, limit: i32) {
        // SAFETY: as in `set_min_rto`.
        unsafe { (*self.kcp).fastlimit = limit };
    }

    /// Sets `dead_link`.
    pub fn set_dead_link(&mut self, limit: u32) {
        // SAFETY: as in `set_min_rto`.
        unsafe { (*self.kcp).dead_link = limit };
    }

    /// Turns stream mode on or off (`kcp->stream`).
    pub fn set_stream(&mut self, stream: bool) {
        // SAFETY: as in `set_min_rto`.
        unsafe { (*self.kcp).stream = c_int::from(stream) };
    }

    /// Starts the conversation at sequence number `sn` instead of 0: sets `snd_una`,
    /// `snd_nxt` and `rcv_nxt`, as our `Config::initial_sn` does. Both peers must use
    /// the same value. Lets tests cross the 2^32 sequence wrap quickly.
    ///
    /// # Panics
    /// If anything was sent or received already (the queues must be empty and no
    /// sequence number used).
    pub fn set_initial_sn(&mut self, sn: u32) {
        let fresh = self.snapshot();
        assert!(
            fresh.snd_una == fresh.snd_nxt
                && fresh.nsnd_que + fresh.nsnd_buf + fresh.nrcv_que + fresh.nrcv_buf == 0,
            "set_initial_sn on an engine that already sent or received: {fresh:?}"
        );
        // SAFETY: as in `set_min_rto`; with every queue empty, no segment refers to the
        // old values, so the three counters stay consistent with each other.
        unsafe {
            (*self.kcp).snd_una = sn;
            (*self.kcp).snd_nxt = sn;
            (*self.kcp).rcv_nxt = sn;
        }
    }

    /// A copy of the control block's scalar state, for comparing estimator, window and
    /// queue state with another implementation.
    pub fn snapshot(&self) -> Snapshot {
        // SAFETY: `self.kcp` is valid and no C call is running (we hold `&self` and the
        // type is `!Sync`), so reading plain integer fields through the mirror is sound.
        let cb = unsafe { &*self.kcp };
        Snapshot {
            state: cb.state,
            snd_una: cb.snd_una,
            snd_nxt: cb.snd_nxt,
            rcv_nxt: cb.rcv_nxt,
            ssthresh: cb.ssthresh,
            rx_rttval: cb.rx_rttval,
            rx_srtt: cb.rx_srtt,
            rx_rto: cb.rx_rto,
            rx_minrto: cb.rx_minrto,
            snd_wnd: cb.snd_wnd,
            rcv_wnd: cb.rcv_wnd,
            rmt_wnd: cb.rmt_wnd,
            cwnd: cb.cwnd,
            incr: cb.incr,
            probe: cb.probe,
            current: cb.current,
            interval: cb.interval,
            ts_flush: cb.ts_flush,
            xmit: cb.xmit,
            nrcv_buf: cb.nrcv_buf,
            nsnd_buf: cb.nsnd_buf,
            nrcv_que: cb.nrcv_que,
            nsnd_que: cb.nsnd_que,
            ts_probe: cb.ts_probe,
            probe_wait: cb.probe_wait,
            ackcount: cb.ackcount,
            mtu: cb.mtu,
            mss: cb.mss,
            nodelay: cb.nodelay,
            fastresend: cb.fastresend,
            fastlimit: cb.fastlimit,
            nocwnd: cb.nocwnd,
            stream: cb.stream,
            dead_link: cb.dead_link,
        }
    }

    /// `state`: 0, or `u32::MAX` once a segment reached `dead_link` transmissions.
    pub fn state(&self) -> u32 {
        // SAFETY: reading a plain field of the valid control block.
        unsafe { (*self.kcp).state }
    }

    /// `ikcp_input`: 0, or -1/-2/-3 as the spec's §6 describes.
    pub fn input(&mut self, datagram: &[u8]) -> i32 {
        let Ok(len) = c_long::try_from(datagram.len()) else {
            return -2;
        };
        // SAFETY: `datagram` is readable for `len` bytes; ikcp copies what it keeps.
        unsafe { ikcp_input(self.kcp, datagram.as_ptr().cast(), len) }
    }

    /// `ikcp_send`: bytes accepted, or a negative error.
    pub fn send(&mut self, data: &[u8]) -> i32 {
        let Ok(len) = c_int::try_from(data.len()) else {
            return -2;
        };
        // SAFETY: `data` is readable for `len` bytes; ikcp copies it.
        unsafe { ikcp_send(self.kcp, data.as_ptr().cast(), len) }
    }

    /// `ikcp_recv` into `buf`: the message length, or -1 (empty), -2 (incomplete),
    /// -3 (buffer too small).
    pub fn recv(&mut self, buf: &mut [u8]) -> i32 {
        let len = c_int::try_from(buf.len()).unwrap_or(c_int::MAX);
        // SAFETY: `buf` is writable for `len` bytes and ikcp writes at most `len`
        // (it checks the message size against `len` first).
        unsafe { ikcp_recv(self.kcp, buf.as_mut_ptr().cast(), len) }
    }

    /// `ikcp_peeksize`: the next message's size, or -1.
    pub fn peek_size(&self) -> i32 {
        // SAFETY: `self.kcp` is valid; peeksize only reads.
        unsafe { ikcp_peeksize(self.kcp) }
    }

    /// `ikcp_update(now)`; datagrams go to the output queue.
    pub fn update(&mut self, now: u32) {
        // SAFETY: `self.kcp` is valid; the output callback only touches the queue,
        // which no Rust reference aliases during the call.
        unsafe { ikcp_update(self.kcp, now) };
    }

    /// `ikcp_check(now)`: the **absolute** time of the next useful update.
    pub fn check(&self, now: u32) -> u32 {
        // SAFETY: `self.kcp` is valid; check only reads.
        unsafe { ikcp_check(self.kcp, now) }
    }

    /// `ikcp_flush` (a no-op before the first update, as in C).
    pub fn flush(&mut self) {
        // SAFETY: as in `update`.
        unsafe { ikcp_flush(self.kcp) };
    }

    /// `ikcp_update(now)` with the datagrams handed to `sink` as ikcp emits them, from
    /// its own buffer (no copy, no allocation), instead of to the output queue.
    pub fn update_with(&mut self, now: u32, sink: &mut dyn FnMut(&[u8])) {
        // SAFETY: `kcp` is this engine's valid control block; see `with_sink`.
        self.with_sink(sink, |kcp| unsafe { ikcp_update(kcp, now) });
    }

    /// `ikcp_flush` with the datagrams handed to `sink`, as in [`CKcp::update_with`].
    pub fn flush_with(&mut self, sink: &mut dyn FnMut(&[u8])) {
        // SAFETY: `kcp` is this engine's valid control block; see `with_sink`.
        self.with_sink(sink, |kcp| unsafe { ikcp_flush(kcp) });
    }

    /// Points the output callback at `sink` for the duration of `call`, then restores
    /// the queue.
    fn with_sink(&mut self, sink: &mut dyn FnMut(&[u8]), call: impl FnOnce(*mut IkcpCb)) {
        let mut sink = sink;
        let user: *mut &mut dyn FnMut(&[u8]) = &mut sink;
        // SAFETY: `self.kcp` is valid and exclusively ours (`&mut self`); `user` points to
        // `sink` on this frame, which lives until after `call` returns, and the callback
        // is switched back before it goes out of scope. `on_output` matches the
        // callback's C signature.
        unsafe {
            (*self.kcp).user = user.cast();
            (*self.kcp).output = Some(on_output::<&mut dyn FnMut(&[u8])>);
        }
        call(self.kcp);
        // SAFETY: as above; restores what `new` set up.
        unsafe {
            (*self.kcp).user = self.output.cast();
            (*self.kcp).output = Some(on_output::<Vec<Vec<u8>>>);
        }
    }

    /// `ikcp_waitsnd`: segments queued plus in flight.
    pub fn wait_send(&self) -> i32 {
        // SAFETY: `self.kcp` is valid; waitsnd only reads.
        unsafe { ikcp_waitsnd(self.kcp) }
    }

    /// Takes the datagrams emitted so far, oldest first.
    pub fn take_output(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(self.queue())
    }

    /// Appends the datagrams emitted so far to `out`, oldest first, keeping `out`'s
    /// allocation.
    pub fn take_output_into(&mut self, out: &mut Vec<Vec<u8>>) {
        out.append(self.queue());
    }

    /// Drains the datagrams emitted so far, oldest first. The engine stays borrowed
    /// while the iterator lives, so no C call can add to the queue meanwhile.
    pub fn drain_output(&mut self) -> std::vec::Drain<'_, Vec<u8>> {
        self.queue().drain(..)
    }

    /// The output queue. Borrowing `self` mutably guarantees no C call is running.
    fn queue(&mut self) -> &mut Vec<Vec<u8>> {
        // SAFETY: `self.output` came from `Box::into_raw` and lives until drop. Every C
        // call that may run the output callback takes `&mut self`, so while the returned
        // reference (tied to that borrow) lives, nothing else touches the queue.
        unsafe { &mut *self.output }
    }
}

/// The scalar fields of the C control block (`IKCPCB`), copied by [`CKcp::snapshot`].
/// Field names and types are the C ones; spec §2 explains each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub state: u32,
    pub snd_una: u32,
    pub snd_nxt: u32,
    pub rcv_nxt: u32,
    pub ssthresh: u32,
    pub rx_rttval: i32,
    pub rx_srtt: i32,
    pub rx_rto: i32,
    pub rx_minrto: i32,
    pub snd_wnd: u32,
    pub rcv_wnd: u32,
    pub rmt_wnd: u32,
    pub cwnd: u32,
    pub incr: u32,
    pub probe: u32,
    pub current: u32,
    pub interval: u32,
    pub ts_flush: u32,
    /// Timeout retransmissions so far, all segments together.
    pub xmit: u32,
    pub nrcv_buf: u32,
    pub nsnd_buf: u32,
    pub nrcv_que: u32,
    pub nsnd_que: u32,
    pub ts_probe: u32,
    pub probe_wait: u32,
    /// ACKs owed (entries in `acklist`).
    pub ackcount: u32,
    pub mtu: u32,
    pub mss: u32,
    pub nodelay: u32,
    pub fastresend: i32,
    pub fastlimit: i32,
    pub nocwnd: i32,
    pub stream: i32,
    pub dead_link: u32,
}

impl Drop for CKcp {
    fn drop(&mut self) {
        // SAFETY: `self.kcp` came from `ikcp_create` and is released exactly once;
        // `self.output` came from `Box::into_raw` and is reclaimed exactly once, after
        // the control block that referenced it is gone.
        unsafe {
            ikcp_release(self.kcp);
            drop(Box::from_raw(self.output));
        }
    }
}

impl kcp_core::sim::Endpoint for CKcp {
    fn input(&mut self, _now: Timestamp, datagram: &[u8]) {
        // C uses the time of the last update; callers drive both engines alike.
        Self::input(self, datagram);
    }

    fn update(&mut self, now: Timestamp, out: &mut dyn FnMut(&[u8])) {
        Self::update(self, now.as_millis());
        for d in self.take_output() {
            out(&d);
        }
    }

    fn send(&mut self, message: &[u8]) -> bool {
        Self::send(self, message) >= 0
    }

    fn recv(&mut self) -> Option<Bytes> {
        let size = usize::try_from(self.peek_size()).ok()?;
        let mut buf = vec![0u8; size];
        let n = usize::try_from(Self::recv(self, &mut buf)).ok()?;
        buf.truncate(n);
        Some(Bytes::from(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kcp_core::Sn;
    use kcp_core::segment::{Command, Header};

    #[test]
    fn mirror_layout_matches_the_reference() {
        let mut k = CKcp::new(0x1122_3344);
        // SAFETY: reading plain fields of a valid control block through the mirror.
        let (conv, mtu, mss, rto, wnd, interval, fastlimit) = unsafe {
            let cb = &*k.kcp;
            (
                cb.conv,
                cb.mtu,
                cb.mss,
                cb.rx_rto,
                cb.rcv_wnd,
                cb.interval,
                cb.fastlimit,
            )
        };
        assert_eq!(
            (conv, mtu, mss, rto, wnd, interval, fastlimit),
            (0x1122_3344, 1400, 1376, 200, 128, 100, 5)
        );
        k.nodelay(1, 10, 2, 1);
        // SAFETY: as above.
        let (nodelay, minrto, resend, nocwnd) = unsafe {
            let cb = &*k.kcp;
            (cb.nodelay, cb.rx_minrto, cb.fastresend, cb.nocwnd)
        };
        assert_eq!((nodelay, minrto, resend, nocwnd), (1, 30, 2, 1));
    }

    #[test]
    fn first_flush_with_congestion_window_sends_nothing() {
        let mut k = CKcp::new(1);
        assert_eq!(k.send(b"x"), 1);
        k.update(0);
        assert!(k.take_output().is_empty());
        k.update(100);
        assert_eq!(k.take_output().len(), 1);
        assert_eq!(k.check(100), 200, "check returns an absolute time");
    }

    /// Updates both engines at `now` and hands each one's datagrams to the other.
    fn exchange(a: &mut CKcp, b: &mut CKcp, now: u32) {
        a.update(now);
        b.update(now);
        for d in a.drain_output() {
            assert_eq!(b.input(&d), 0);
        }
        for d in b.drain_output() {
            assert_eq!(a.input(&d), 0);
        }
    }

    #[test]
    fn lock_step_pair_delivers_a_fragmented_message_across_the_clock_wrap() {
        let (mut a, mut b) = (CKcp::new(9), CKcp::new(9));
        let message: Vec<u8> = (0..5_000u32).map(|i| (i * 7) as u8).collect();
        assert_eq!(a.send(&message), 5_000);
        assert_eq!(a.wait_send(), 4, "ceil(5000 / 1376) fragments");
        assert_eq!(b.peek_size(), -1);
        // Default mode: the congestion window opens one segment per acknowledged flush,
        // and every flush is 100 ms apart.
        let start = u32::MAX - 250;
        for t in 0..1_000u32 {
            exchange(&mut a, &mut b, start.wrapping_add(t));
        }
        assert_eq!(b.peek_size(), 5_000);
        let mut small = [0u8; 100];
        assert_eq!(b.recv(&mut small), -3, "buffer too small");
        let mut buf = vec![0u8; 6_000];
        assert_eq!(b.recv(&mut buf), 5_000);
        assert_eq!(buf[..5_000], message[..]);
        assert_eq!(b.recv(&mut buf), -1, "empty");
        assert_eq!(a.wait_send(), 0);
        assert_eq!(a.state(), 0);
        let s = a.snapshot();
        assert_eq!((s.snd_una, s.snd_nxt, s.nsnd_buf), (4, 4, 0));
        assert!(s.rx_srtt > 0, "RTT samples were taken");
    }

    #[test]
    fn stream_mode_packs_sends_into_one_segment() {
        let (mut a, mut b) = (CKcp::new(3), CKcp::new(3));
        a.set_stream(true);
        b.set_stream(true);
        for _ in 0..10 {
            assert_eq!(a.send(b"abc"), 3);
        }
        assert_eq!(a.wait_send(), 1, "stream mode tops up the queued segment");
        assert_eq!(a.send(b""), 0, "an empty stream send is a no-op");
        for t in 0..300 {
            exchange(&mut a, &mut b, t);
        }
        let mut buf = [0u8; 64];
        assert_eq!(b.recv(&mut buf), 30);
        assert_eq!(&buf[..6], b"abcabc");
    }

    #[test]
    fn output_can_be_taken_three_ways() {
        let mut k = CKcp::new(1);
        k.nodelay(1, 10, 0, 1);
        for i in 0..3u8 {
            assert_eq!(k.send(&[i; 2_000]), 2_000);
        }
        k.update(0);
        let mut all = Vec::new();
        k.take_output_into(&mut all);
        // Segments of 1376 and 624 bytes alternate; no two fit one 1400-byte datagram.
        assert_eq!(all.len(), 6);
        assert!(all.iter().all(|d| d.len() <= 1_400));
        assert_eq!(k.drain_output().count(), 0);
        k.flush();
        assert!(k.take_output().is_empty(), "nothing is due again yet");
    }

    #[test]
    fn update_with_hands_datagrams_to_the_sink_and_restores_the_queue() {
        let mut k = CKcp::new(1);
        k.nodelay(1, 10, 0, 1);
        for i in 0..3u8 {
            assert_eq!(k.send(&[i; 2_000]), 2_000);
        }
        let mut seen = Vec::new();
        k.update_with(0, &mut |d| seen.push(d.to_vec()));
        assert_eq!(seen.len(), 6);
        assert!(k.take_output().is_empty(), "nothing went to the queue");
        k.send(b"x");
        k.flush_with(&mut |d| seen.push(d.to_vec()));
        assert_eq!(seen.len(), 7);
        k.send(b"y");
        k.flush();
        assert_eq!(k.take_output().len(), 1, "the queue is back afterwards");
    }

    #[test]
    fn setters_reach_the_control_block() {
        let mut k = CKcp::new(1);
        assert_eq!(k.set_mtu(40), -1, "below the C minimum of 50");
        assert_eq!(k.set_mtu(500), 0);
        k.wndsize(64, 16);
        k.nodelay(2, 20, 3, 1);
        k.set_min_rto(10);
        k.set_fast_resend(1);
        k.set_fast_limit(0);
        k.set_dead_link(7);
        k.set_stream(true);
        k.set_initial_sn(u32::MAX - 3);
        let s = k.snapshot();
        assert_eq!((s.mtu, s.mss), (500, 476));
        assert_eq!((s.snd_wnd, s.rcv_wnd), (64, 128), "rcv_wnd is at least 128");
        assert_eq!((s.nodelay, s.interval, s.nocwnd), (2, 20, 1));
        assert_eq!((s.rx_minrto, s.fastresend, s.fastlimit), (10, 1, 0));
        assert_eq!((s.dead_link, s.stream), (7, 1));
        assert_eq!(
            (s.snd_una, s.snd_nxt, s.rcv_nxt),
            (u32::MAX - 3, u32::MAX - 3, u32::MAX - 3)
        );
    }

    #[test]
    fn sequence_numbers_wrap() {
        let (mut a, mut b) = (CKcp::new(5), CKcp::new(5));
        for k in [&mut a, &mut b] {
            k.nodelay(1, 10, 2, 1);
            k.set_initial_sn(u32::MAX - 2);
        }
        for i in 0..8u8 {
            assert_eq!(a.send(&[i]), 1);
        }
        for t in 0..200 {
            exchange(&mut a, &mut b, t);
        }
        let mut buf = [0u8; 4];
        for i in 0..8u8 {
            assert_eq!(b.recv(&mut buf), 1);
            assert_eq!(buf[0], i);
        }
        assert_eq!(a.snapshot().snd_una, 5, "u32::MAX - 2 + 8, wrapped");
        assert_eq!(b.snapshot().rcv_nxt, 5);
    }

    #[test]
    #[should_panic(expected = "already sent")]
    fn initial_sn_after_sending_is_refused() {
        let mut k = CKcp::new(1);
        k.send(b"x");
        k.set_initial_sn(10);
    }

    #[test]
    fn input_reports_the_c_error_codes() {
        let conv = 0x0102_0304;
        let mut k = CKcp::new(conv);
        assert_eq!(k.input(&[0; 10]), -1, "shorter than a header");
        let ack = Header::new(conv, Command::Ack, Sn::new(0)).to_bytes();
        assert_eq!(k.input(&ack), 0);
        let mut unknown = ack;
        unknown[4] = 99;
        assert_eq!(k.input(&unknown), -3, "unknown command");
        let cut_short = Header {
            len: 5,
            ..Header::new(conv, Command::Push, Sn::new(0))
        };
        assert_eq!(k.input(&cut_short.to_bytes()), -2, "payload missing");
        let foreign = Header {
            conv: 0x0102_0300,
            ..cut_short
        };
        assert_eq!(k.input(&foreign.to_bytes()), -1, "another conversation");
    }

    #[test]
    fn dead_link_sets_state_and_retransmission_continues() {
        let mut k = CKcp::new(1);
        k.nodelay(1, 10, 0, 1);
        k.set_dead_link(3);
        k.send(b"lost");
        let mut sent = 0;
        for t in 0..2_000 {
            k.update(t);
            sent += k.drain_output().count();
        }
        assert_eq!(k.state(), u32::MAX);
        assert!(sent > 3, "still retransmitting after dead_link: {sent}");
        assert_eq!(k.snapshot().xmit as usize, sent - 1);
    }
}
