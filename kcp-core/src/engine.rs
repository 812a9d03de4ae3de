//! The KCP engine: ties the send and receive windows, the ack list, the RTT
//! estimator, congestion control and window probing together.
//!
//! Read `shared/kcp-spec.md` (§4–§11) before editing: every step below follows the
//! reference's order, because the datagrams must match ikcp v1.7.1 byte for byte. The
//! deliberate differences are listed on [`Kcp`].

use alloc::vec::Vec;

use bytes::{Buf, Bytes, BytesMut};

use crate::ack::AckList;
use crate::config::Config;
use crate::congestion::Congestion;
use crate::error::{ConfigError, InputError, RecvError, SendError};
use crate::flight::{FastRule, Payload, SendWindow};
use crate::history::AckVerdict;
use crate::probe::WindowProbe;
use crate::recv::{Arrival, Fragment, RecvWindow};
use crate::rtt::RttEstimator;
use crate::segment::{Command, HEADER_LEN, Header, Segments, u32_at};
use crate::stats::Stats;
use crate::transmit::{ClosureSink, Emitter, Transmit};
use crate::{Sn, Timestamp};

mod retune;

/// `update` treats a clock jump of this many ms or more as a reset of its flush grid.
const CLOCK_JUMP: i32 = 10_000;

/// When the engine next needs [`Kcp::update`]. Returned by [`Kcp::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollAt {
    /// Call `update` now.
    Now,
    /// Call `update` at this time (calling earlier is harmless, and does nothing).
    At(Timestamp),
    /// Nothing to do until [`Kcp::input`] or [`Kcp::send`] is called: nothing in flight,
    /// nothing queued, no ACK owed, no window probe pending.
    Idle,
}

impl PollAt {
    /// The more urgent of two answers (an earlier time beats a later one).
    pub(crate) fn sooner(self, other: Self) -> Self {
        match (self, other) {
            (Self::Now, _) | (_, Self::Now) => Self::Now,
            (Self::Idle, x) | (x, Self::Idle) => x,
            (Self::At(a), Self::At(b)) => Self::At(if a.is_before(b) { a } else { b }),
        }
    }
}

/// One KCP conversation: a sans-IO ARQ engine.
///
/// The engine owns no socket, no clock and no thread. The host feeds it datagrams
/// ([`input`](Self::input)) and messages ([`send`](Self::send)), tells it the time, and
/// passes a sink that receives the datagrams to transmit
/// ([`update`](Self::update)/[`flush`](Self::flush)).
///
/// # Calling contract
///
/// The methods fall in five families:
///
/// - **getters**: [`stats`](Self::stats), [`peek_size`](Self::peek_size),
///   [`wait_send`](Self::wait_send), [`is_dead`](Self::is_dead), [`conv`](Self::conv),
///   [`last_heard`](Self::last_heard), [`silent_for`](Self::silent_for);
/// - **network input**: [`input`](Self::input); an `Err` changes no state;
/// - **application commands**: [`send`](Self::send), [`send_bytes`](Self::send_bytes),
///   [`recv`](Self::recv), [`recv_into`](Self::recv_into);
/// - **output and timer**: [`update`](Self::update), [`flush`](Self::flush),
///   [`check`](Self::check);
/// - **live retuning** (ikcp's setters, validated as [`Config`]):
///   [`set_mtu`](Self::set_mtu), [`set_windows`](Self::set_windows),
///   [`set_nodelay`](Self::set_nodelay), [`reconfigure`](Self::reconfigure).
///
/// After any input or command, call `update` (or `flush` for lowest latency), then ask
/// `check` when to come back. `now` must never go backwards (it may wrap past
/// `u32::MAX`). Calling `update` more often than `check` asks is allowed: it flushes
/// on its own `interval` grid, exactly as `ikcp_update` does.
///
/// # Differences from ikcp (the wire stays compatible)
///
/// - `check` answers [`PollAt::Idle`] when there is nothing to do, and never asks for
///   an `update` that would not flush.
/// - Every call that needs the time takes it (`input` uses its own `now` for RTT
///   samples instead of the time of the last `update`).
/// - A datagram is validated whole before any of it is applied.
/// - The send queue ([`Config::send_queue_limit`]), the ack list (4 × `rcv_wnd`), one
///   segment's RTO ([`Config::max_rto`]) and the fragments a message may claim
///   (< `rcv_wnd`) are bounded.
/// - `flush` works before the first `update` (ikcp's is a no-op then).
/// - A segment no transmission of ours can have caused is refused whole and counted
///   (ikcp applies it): one whose `una` is beyond `snd_nxt` (ikcp drops the flight),
///   an ACK of an `sn` never sent (ikcp takes its window and RTT sample), an ACK
///   whose `ts` is in the future or outside the first and latest transmission of its
///   `sn` (ikcp takes the sample, inflating the RTO). Other segments of the datagram
///   still apply. See the crate's `# Security` notes.
/// - An ACK of a segment numbered so long ago that its send times are forgotten (over
///   4 × the send ring's capacity back) is applied without its RTT sample.
/// - A zero window from a datagram that acknowledged none of our data while the
///   window was open is probed (WASK) at the next flush, not after ikcp's 7 s timer:
///   a forged one stalls the sender for a round trip. A zero window that arrives with
///   an acknowledgement, as a real one does, waits for the timer as in ikcp.
/// - The receive window does not slide within a datagram: its data segments must lie
///   in `[rcv_nxt, rcv_nxt + rcv_wnd)` as they stood before it (ikcp slides as
///   `rcv_nxt` moves, so one datagram may claim `2 × rcv_wnd` segments).
///
/// # Output errors
///
/// The sink may fail (say with `WouldBlock`). The flush then completes its bookkeeping
/// without calling the sink again, and returns the first error: segments already
/// stamped as sent count as lost and are retransmitted on timeout, ACKs are resent when
/// the peer retransmits.
///
/// # Example
///
/// ```
/// use core::convert::Infallible;
/// use kcp_core::{Config, Kcp, Timestamp};
///
/// let mut a = Kcp::new(7, Config::fast()).unwrap();
/// let mut b = Kcp::new(7, Config::fast()).unwrap();
/// a.send(b"hello").unwrap();
///
/// let mut wire = Vec::new();
/// let mut now = Timestamp::from_millis(0);
/// for _ in 0..10 {
///     a.update(now, |d| {
///         wire.push(d.to_vec());
///         Ok::<_, Infallible>(())
///     }).unwrap();
///     for d in wire.drain(..) {
///         b.input(now, &d).unwrap();
///     }
///     b.update(now, |d| {
///         wire.push(d.to_vec());
///         Ok::<_, Infallible>(())
///     }).unwrap();
///     for d in wire.drain(..) {
///         a.input(now, &d).unwrap();
///     }
///     now = now.add_millis(10);
/// }
/// assert_eq!(b.recv().unwrap().as_ref(), b"hello");
/// ```
#[derive(Clone, Debug)]
pub struct Kcp {
    conv: u32,
    config: Config,
    mss: usize,
    snd: SendWindow,
    rcv: RecvWindow,
    acks: AckList,
    rtt: RttEstimator,
    cc: Congestion,
    probe: WindowProbe,
    /// The peer's last advertised free window (`rmt_wnd`).
    remote_window: u32,
    /// Next time on the flush grid; `None` until the first `update`.
    next_flush: Option<Timestamp>,
    /// The `now` of the latest input that applied a segment (see [`Kcp::last_heard`]).
    last_heard: Option<Timestamp>,
    /// The first `update` or `flush`: silence is counted from here until the peer is
    /// first heard.
    started: Option<Timestamp>,
    /// Some segment reached `dead_link` transmissions (`state == -1`).
    dead: bool,
    stats: Stats,
    /// Assembles one outgoing datagram; `mtu` bytes, reused.
    out_buf: Vec<u8>,
}

impl Kcp {
    /// Most fragments one message may have (`IKCP_WND_RCV - 1`): the reference
    /// refuses 128 or more regardless of the windows, so we do too
    /// ([`SendError::TooLarge`]). At the default MTU that is 127 × 1,376 = 174,752 bytes.
    pub const MAX_FRAGMENTS: usize = 127;

    /// A new conversation `conv` with the given configuration.
    ///
    /// Both peers must use the same `conv` (and [`Config::initial_sn`], 0 unless you
    /// change it, as in the reference); there is no handshake.
    pub fn new(conv: u32, config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        let mss = config.mss();
        Ok(Self {
            conv,
            mss,
            snd: SendWindow::starting_at(Sn::new(config.initial_sn)),
            rcv: RecvWindow::new(config.rcv_wnd, Sn::new(config.initial_sn)),
            acks: AckList::new(config.rcv_wnd),
            rtt: RttEstimator::new(config.min_rto),
            cc: Congestion::new(mss as u32),
            probe: WindowProbe::default(),
            remote_window: 128,
            next_flush: None,
            last_heard: None,
            started: None,
            dead: false,
            stats: Stats::default(),
            out_buf: Vec::with_capacity(config.mtu),
            config,
        })
    }

    /// The conversation id.
    pub const fn conv(&self) -> u32 {
        self.conv
    }

    /// The configuration this engine runs with.
    pub const fn config(&self) -> &Config {
        &self.config
    }

    // ---------------------------------------------------------------- getters

    /// The next sequence number expected in order (`rcv_nxt`): a data segment beyond
    /// it that arrives now is held out of order.
    pub fn rcv_nxt(&self) -> Sn {
        self.rcv.nxt()
    }

    /// Received segments the engine holds: out of order, or in order but not yet taken
    /// by `recv` (each may keep its whole datagram's allocation alive). Bounded by the
    /// receive window.
    pub fn held_segments(&self) -> usize {
        self.rcv.buffered() + self.rcv.ready_len()
    }

    /// Size of the next complete message, or `None` if none is complete yet.
    pub fn peek_size(&self) -> Option<usize> {
        self.rcv.peek_size()
    }

    /// Segments not yet acknowledged: queued plus in flight (`ikcp_waitsnd`). Gate
    /// sending on it to bound latency and memory.
    pub fn wait_send(&self) -> usize {
        self.snd.queued() + self.snd.in_flight()
    }

    /// `true` once a segment has been transmitted [`Config::dead_link`] times without
    /// being acknowledged. The engine keeps retransmitting; the host decides what to do.
    pub const fn is_dead(&self) -> bool {
        self.dead
    }

    /// When the peer was last heard: the `now` of the latest [`input`](Self::input)
    /// that applied at least one segment. A datagram rejected whole, or whose every
    /// segment was refused as impossible (see the crate's `# Security` notes), does
    /// not count. `None` until the peer is first heard.
    ///
    /// Raw KCP cannot tell a forger who knows `conv` from the peer; behind an
    /// authenticated transport (kcp-net's secure mode) only the peer's datagrams
    /// reach the engine, and this is the time of its last one.
    pub const fn last_heard(&self) -> Option<Timestamp> {
        self.last_heard
    }

    /// How long the peer has been silent at `now`, in ms: since
    /// [`last_heard`](Self::last_heard), or, before the peer was first heard, since
    /// the first [`update`](Self::update) or [`flush`](Self::flush); 0 before either.
    ///
    /// The liveness check a game wants: [`is_dead`](Self::is_dead) waits for
    /// [`Config::dead_link`] retransmissions of one segment (minutes with the default
    /// RTO backoff, and never while nothing is sent), whereas
    /// `kcp.silent_for(now) >= 10_000` says "no word from the peer for 10 s". The peer
    /// must then send something now and then (a keepalive) while it has nothing to say.
    /// Correct for silences up to 2^31 ms (24.8 days).
    pub fn silent_for(&self, now: Timestamp) -> u32 {
        self.last_heard
            .or(self.started)
            .map_or(0, |since| now.since(since).max(0) as u32)
    }

    /// `retransmits_timeout + retransmits_fast` of [`stats`](Self::stats), cheaply.
    pub const fn retransmits(&self) -> u64 {
        self.stats.retransmits_timeout + self.stats.retransmits_fast
    }

    /// `rtt_samples` of [`stats`](Self::stats), cheaply.
    pub const fn rtt_samples(&self) -> u64 {
        self.rtt.samples()
    }

    /// Counters and current estimates.
    pub fn stats(&self) -> Stats {
        Stats {
            rtt_samples: self.rtt.samples(),
            srtt: self.rtt.srtt(),
            rttvar: self.rtt.rttvar(),
            rto: self.rtt.rto(),
            cwnd: self.cc.cwnd,
            ssthresh: self.cc.ssthresh,
            remote_window: self.remote_window,
            in_flight: self.snd.in_flight() as u32,
            send_queue: self.snd.queued() as u32,
            recv_queue: self.rcv.ready_len() as u32,
            recv_buffer: self.rcv.buffered() as u32,
            ..self.stats
        }
    }

    // ---------------------------------------------------------------- input

    /// Processes one datagram from the peer (spec §6).
    ///
    /// The datagram is validated whole first: if any segment is truncated, names
    /// another conversation, carries an unknown command or claims more fragments than
    /// the receive window can hold, the datagram is rejected and nothing changes.
    /// Fewer than 24 trailing bytes are ignored, as in the reference.
    ///
    /// The payloads kept are copied: a datagram with a single payload has just that
    /// payload copied (one allocation, nothing shared); one with several is copied
    /// once and its payloads slice the copy.
    pub fn input(&mut self, now: Timestamp, datagram: &[u8]) -> Result<(), InputError> {
        let shape = self.accept(datagram)?;
        let mut copy = match shape.last_payload {
            None => Bytes::new(),
            Some(range) if shape.payloads == 1 => Bytes::copy_from_slice(&datagram[range]),
            Some(_) => Bytes::copy_from_slice(&datagram[..shape.end]),
        };
        let mut walk = InputWalk::new(self);
        for (h, start) in Segments::new(&datagram[..shape.end]) {
            let payload = match h.cmd {
                Command::Push if h.len > 0 && shape.payloads == 1 => core::mem::take(&mut copy),
                Command::Push if h.len > 0 => copy.slice(start..start + h.len as usize),
                _ => Bytes::new(),
            };
            self.apply(now, &h, payload, &mut walk);
        }
        self.finish_input(now, walk);
        Ok(())
    }

    /// [`input`](Self::input) for a datagram the host already holds as [`Bytes`]: the
    /// payloads kept are slices of it, so nothing is copied. A payload that ends the
    /// datagram (the usual data datagram) takes the handle itself, so a one-segment
    /// datagram costs no reference-count traffic either.
    pub fn input_bytes(&mut self, now: Timestamp, datagram: Bytes) -> Result<(), InputError> {
        if let Some(h) = self.lone_push(&datagram) {
            // The usual data datagram, one segment: validated and parsed in one step.
            self.count_accepted(datagram.len(), 1);
            let mut walk = InputWalk::new(self);
            let mut payload = datagram;
            payload.advance(HEADER_LEN);
            self.apply(now, &h, payload, &mut walk);
            self.finish_input(now, walk);
            return Ok(());
        }
        let shape = self.accept(&datagram)?;
        let mut walk = InputWalk::new(self);
        let mut last = None;
        for (h, start) in Segments::new(&datagram[..shape.end]) {
            let end = start + h.len as usize;
            let payload = match h.cmd {
                Command::Push if h.len > 0 && end == shape.end => {
                    // The last segment: it takes the handle once the walk is done.
                    last = Some((h, start));
                    break;
                }
                Command::Push if h.len > 0 => datagram.slice(start..end),
                _ => Bytes::new(),
            };
            self.apply(now, &h, payload, &mut walk);
        }
        if let Some((h, start)) = last {
            let mut payload = datagram;
            payload.advance(start);
            payload.truncate(h.len as usize);
            self.apply(now, &h, payload, &mut walk);
        }
        self.finish_input(now, walk);
        Ok(())
    }

    /// The header of `datagram` if it is exactly one valid `Push` segment of ours with
    /// a payload, the shape nearly every data datagram has; `None` for anything else
    /// (which [`validate`](Self::validate) then judges). Accepts exactly what
    /// `validate` accepts of that shape.
    #[inline(always)]
    fn lone_push(&self, datagram: &[u8]) -> Option<Header> {
        let raw = datagram.first_chunk::<HEADER_LEN>()?;
        let len = u32_at(raw, 20);
        // `len` as `parse` bounds it, then the shape: all of the datagram, one segment.
        let lone = raw[4] == Command::Push.to_byte()
            && len > 0
            && len <= i32::MAX as u32
            && len as usize == datagram.len() - HEADER_LEN
            && u32_at(raw, 0) == self.conv
            && u32::from(raw[5]) < self.rcv.wnd();
        lone.then(|| Header::from_raw(raw, Command::Push))
    }

    /// Validates `datagram` and counts it: accepted, or rejected with nothing changed.
    fn accept(&mut self, datagram: &[u8]) -> Result<Shape, InputError> {
        match self.validate(datagram) {
            Ok(shape) => {
                self.count_accepted(datagram.len(), shape.segments);
                Ok(shape)
            }
            Err(e) => {
                self.stats.datagrams_rejected += 1;
                Err(e)
            }
        }
    }

    /// Counts an accepted datagram of `len` bytes holding `segments` segments.
    #[inline(always)]
    fn count_accepted(&mut self, len: usize, segments: u32) {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += len as u64;
        self.stats.segments_in += u64::from(segments);
    }

    /// Walks the datagram, checking every segment, and says what it holds.
    fn validate(&self, datagram: &[u8]) -> Result<Shape, InputError> {
        if datagram.len() < HEADER_LEN {
            return Err(InputError::Truncated {
                len: datagram.len(),
            });
        }
        let mut shape = Shape {
            end: 0,
            segments: 0,
            payloads: 0,
            last_payload: None,
        };
        while datagram.len() - shape.end >= HEADER_LEN {
            let (h, payload) = Header::parse(&datagram[shape.end..])?;
            if h.conv != self.conv {
                return Err(InputError::ConvMismatch {
                    expected: self.conv,
                    got: h.conv,
                });
            }
            let start = shape.end + HEADER_LEN;
            if h.cmd == Command::Push {
                if u32::from(h.frg) >= self.rcv.wnd() {
                    return Err(InputError::FragmentOverflow {
                        frg: h.frg,
                        rcv_wnd: self.rcv.wnd(),
                    });
                }
                if !payload.is_empty() {
                    shape.payloads += 1;
                    shape.last_payload = Some(start..start + payload.len());
                }
            }
            shape.segments += 1;
            shape.end = start + payload.len();
        }
        Ok(shape)
    }

    /// Applies one validated segment (spec §6), `payload` being its kept payload.
    ///
    /// Inlined: a `Bytes` moved through a call is written and read back through memory,
    /// which stalls on store forwarding and cost several ns per datagram.
    ///
    /// A segment no transmission of ours can have caused is refused whole, before any
    /// field of it is applied (see the crate's `# Security` notes): a `una` beyond
    /// `snd_nxt`, or an ACK of an `sn` never sent or echoing a `ts` no transmission of
    /// that `sn` carried.
    #[inline(always)]
    fn apply(&mut self, now: Timestamp, h: &Header, payload: Bytes, walk: &mut InputWalk) {
        let Some(sample) = self.screen(now, h) else {
            return;
        };
        walk.heard = true;
        self.remote_window = u32::from(h.wnd);
        self.snd.ack_before(h.una);
        match h.cmd {
            Command::Ack => {
                if sample {
                    // `judge_ack` proved `ts` is not after `now`.
                    self.rtt
                        .on_sample(now.since(h.ts) as u32, self.config.interval);
                }
                walk.acked |= self.snd.ack(h.sn);
                walk.ack(h.sn, h.ts, self.config.fastack_conserve);
            }
            Command::Push => self.on_push(h, payload, walk),
            Command::WindowAsk => self.probe.tell_window(),
            Command::WindowTell => {}
        }
    }

    /// Refuses (`None`, counted) a segment no transmission of ours can have caused;
    /// otherwise says whether it carries an RTT sample we can trust.
    #[inline(always)]
    fn screen(&mut self, now: Timestamp, h: &Header) -> Option<bool> {
        if self.snd.nxt().is_before(h.una) {
            self.stats.refused_una += 1;
            return None;
        }
        if h.cmd != Command::Ack {
            return Some(false);
        }
        match self.snd.judge_ack(h.sn, h.ts, now) {
            AckVerdict::Plausible => Some(true),
            AckVerdict::Unverifiable => {
                self.stats.unverified_rtt_samples += 1;
                Some(false)
            }
            AckVerdict::NeverSent => {
                self.stats.refused_ack += 1;
                None
            }
            AckVerdict::ImpossibleTs => {
                self.stats.refused_rtt_sample += 1;
                None
            }
        }
    }

    /// What follows the segments of a datagram: the fast-ACK count, congestion growth,
    /// and the check of a zero window that nothing confirmed.
    fn finish_input(&mut self, now: Timestamp, walk: InputWalk) {
        if walk.heard {
            self.last_heard = Some(now);
        }
        if let Some((max_ack, latest_ts)) = walk.max_ack {
            let (conserve, rule) = (self.config.fastack_conserve, self.fast_rule());
            self.snd.count_fast_ack(max_ack, latest_ts, conserve, rule);
        }
        let una_moved = walk.prev_una.is_before(self.snd.una());
        if una_moved {
            self.cc.on_una_advanced(self.remote_window);
        }
        // The peer's window can only close because our data reached it, so a genuine
        // report of a closing window acknowledges some of it. One that does not may be
        // forged: ask the peer at once instead of stalling until the probe timer.
        if self.remote_window == 0 && walk.prev_window != 0 && !walk.acked && !una_moved {
            self.stats.unconfirmed_zero_windows += 1;
            self.probe.ask_window();
        }
    }

    #[inline(always)]
    fn on_push(&mut self, h: &Header, data: Bytes, walk: &InputWalk) {
        // The window as it stood before the datagram: it does not slide within one.
        if !h.sn.is_before(walk.rcv_limit) {
            self.stats.out_of_window += 1;
            return;
        }
        if !self.acks.push(h.sn, h.ts) {
            self.stats.acks_dropped += 1;
        }
        match self.rcv.insert(
            h.sn,
            Fragment {
                frg: usize::from(h.frg),
                data,
            },
        ) {
            Arrival::Stored => {}
            Arrival::Duplicate => self.stats.duplicates += 1,
            Arrival::OutOfWindow => self.stats.out_of_window += 1,
        }
    }

    // ---------------------------------------------------------------- commands

    /// Queues a message (message mode) or bytes (stream mode), copying `data` once.
    /// Returns the number of bytes accepted. See [`Kcp::send_bytes`].
    pub fn send(&mut self, data: &[u8]) -> Result<usize, SendError> {
        self.send_bytes(Bytes::copy_from_slice(data))
    }

    /// Queues a message (message mode) or bytes (stream mode) without copying: the
    /// segments are slices of `data`. Nothing is transmitted until the next flush.
    ///
    /// Message mode: the whole message is accepted (one peer `recv` returns it) or
    /// refused; an empty message is delivered as an empty message. Stream mode: the
    /// bytes may top up the last queued segment, an empty send does nothing, and if the
    /// rest would need too many segments the call returns the partial count it topped
    /// up (or the error if that was 0).
    ///
    /// # Errors
    /// [`SendError::TooLarge`] if the message needs more than
    /// [`MAX_FRAGMENTS`](Self::MAX_FRAGMENTS) segments (127 × mss bytes, 174,752 at
    /// the default MTU, whatever the windows; see [`large`](crate::large) for more),
    /// [`SendError::QueueFull`] if the send queue
    /// is at [`Config::send_queue_limit`].
    #[inline]
    pub fn send_bytes(&mut self, data: Bytes) -> Result<usize, SendError> {
        // The usual call, a message that fits one segment, is inlined into the caller:
        // the handle then goes from its registers into the queue's slot. Passed to a
        // call, it would be written out with 8-byte stores and read back with 16-byte
        // loads, which wait for those stores to reach the cache.
        if !self.config.stream
            && data.len() <= self.mss
            && self.snd.queued() < self.config.send_queue_limit
        {
            let size = data.len();
            self.snd.enqueue(Payload { data, frg: 0 });
            return Ok(size);
        }
        self.send_segments(data)
    }

    /// [`send_bytes`](Self::send_bytes) of anything but a one-segment message.
    fn send_segments(&mut self, mut data: Bytes) -> Result<usize, SendError> {
        let mss = self.mss;
        let mut sent = 0;
        if self.config.stream {
            if let Some(last) = self.snd.last_queued_mut() {
                if last.data.len() < mss {
                    let extend = data.len().min(mss - last.data.len());
                    append(&mut last.data, &data[..extend], mss);
                    data = data.slice(extend..);
                    sent = extend;
                }
            }
            if data.is_empty() {
                return Ok(sent);
            }
        }
        let count = data.len().div_ceil(mss).max(1);
        let refuse = |e| if sent > 0 { Ok(sent) } else { Err(e) };
        if count > Self::MAX_FRAGMENTS {
            return refuse(SendError::TooLarge {
                fragments: count,
                max: Self::MAX_FRAGMENTS,
            });
        }
        let queued = self.snd.queued();
        if queued + count > self.config.send_queue_limit {
            return refuse(SendError::QueueFull {
                queued,
                needed: count,
                limit: self.config.send_queue_limit,
            });
        }
        let stream = self.config.stream;
        if count == 1 && !(stream && data.len() < mss) {
            // One whole segment: the handle itself, not split.
            let size = data.len();
            self.snd.enqueue(Payload { data, frg: 0 });
            return Ok(sent + size);
        }
        for i in 0..count {
            let size = data.len().min(mss);
            let piece = data.split_to(size);
            let frg = if stream { 0 } else { (count - 1 - i) as u8 };
            // Stream-mode pieces get room to grow, so later small sends top them up
            // without reallocating.
            let piece = if stream && size < mss {
                let mut grow = BytesMut::with_capacity(mss);
                grow.extend_from_slice(&piece);
                grow.freeze()
            } else {
                piece
            };
            self.snd.enqueue(Payload { data: piece, frg });
            sent += size;
        }
        Ok(sent)
    }

    /// Removes and returns the next complete message, or `None` if there is none yet.
    /// In stream mode, one segment's bytes per call.
    pub fn recv(&mut self) -> Option<Bytes> {
        let (message, was_full) = self.rcv.pop_message()?;
        self.after_recv(was_full);
        Some(message)
    }

    /// Copies the next complete message into `buf` and removes it. `Ok(None)` if there
    /// is none yet.
    ///
    /// # Errors
    /// [`RecvError::BufferTooSmall`] if the message does not fit; it stays queued.
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<Option<usize>, RecvError> {
        let Some(needed) = self.rcv.peek_size() else {
            return Ok(None);
        };
        if needed > buf.len() {
            return Err(RecvError::BufferTooSmall {
                needed,
                capacity: buf.len(),
            });
        }
        let Some((len, was_full)) = self.rcv.pop_message_into(buf) else {
            return Ok(None);
        };
        self.after_recv(was_full);
        Ok(Some(len))
    }

    fn after_recv(&mut self, was_full: bool) {
        self.stats.messages_received += 1;
        // Fast recovery: the peer saw a zero window; tell it at once that it reopened.
        if was_full && self.rcv.ready_len() < self.rcv.wnd() as usize {
            self.probe.tell_window();
        }
    }

    // ---------------------------------------------------------------- timer & output

    /// The timer entry point (`ikcp_update`): flushes if `now` has reached the next
    /// point of the `interval` grid (the first call always flushes). Datagrams go to
    /// `out`; see the type's doc for what an `Err` from it means.
    pub fn update<E>(
        &mut self,
        now: Timestamp,
        out: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.through_closure(now, out, Self::update_into)
    }

    /// [`update`](Self::update), writing the datagrams straight into `out`'s memory
    /// (see [`Transmit`]).
    pub fn update_into<T: Transmit>(
        &mut self,
        now: Timestamp,
        out: &mut T,
    ) -> Result<(), T::Error> {
        self.started.get_or_insert(now);
        let mut next = *self.next_flush.get_or_insert(now);
        let mut slap = now.since(next);
        if !(-CLOCK_JUMP..CLOCK_JUMP).contains(&slap) {
            next = now;
            slap = 0;
        }
        if slap < 0 {
            self.next_flush = Some(next);
            return Ok(());
        }
        next = next.add_millis(self.config.interval);
        if now.has_reached(next) {
            next = now.add_millis(self.config.interval);
        }
        self.next_flush = Some(next);
        self.flush_into(now, out)
    }

    /// When `update` is next needed (see [`PollAt`]).
    ///
    /// Mirrors the decisions of [`flush`](Self::flush): ACKs and probe flags owed, data
    /// the windows let out, fast and timeout retransmissions, the zero-window probe
    /// timer. While the host follows `update`'s grid, the answer is a grid point; once
    /// the grid has lapsed (the host slept through it), it is the deadline itself, and
    /// `update` then re-bases its grid there. Either way `update` at the answer flushes.
    #[must_use]
    pub fn check(&self, now: Timestamp) -> PollAt {
        let due = match self.next_work() {
            PollAt::Idle => return PollAt::Idle,
            PollAt::Now => None,
            PollAt::At(due) => Some(due),
        };
        let Some(next) = self.next_flush else {
            return PollAt::Now;
        };
        let slap = now.since(next);
        // `update(now)` would flush right away (same test as `update`).
        let lapsed = !(-CLOCK_JUMP..0).contains(&slap);
        match due {
            None if lapsed => PollAt::Now,
            None => PollAt::At(next),
            Some(due) if lapsed => {
                if now.has_reached(due) {
                    PollAt::Now
                } else {
                    PollAt::At(due)
                }
            }
            Some(due) => {
                let late = due.since(next);
                if late <= 0 {
                    return PollAt::At(next);
                }
                let interval = self.config.interval;
                let steps = (late as u32).div_ceil(interval);
                PollAt::At(next.add_millis(steps.saturating_mul(interval)))
            }
        }
    }

    /// When a flush next has something to do, `update`'s grid aside. Mirrors the
    /// opening of [`flush_into`](Self::flush_into) step by step, asking each part the
    /// question its flush step answers.
    fn next_work(&self) -> PollAt {
        // 1. ACKs owed.
        if !self.acks.is_empty() {
            return PollAt::Now;
        }
        // 2. Window probes: a WASK/WINS to send or the zero-window timer to start (now),
        //    or that timer while the peer's window stays zero.
        let probe = self.probe.poll_at(self.remote_window);
        // 3. Queued data to move into flight.
        if probe == PollAt::Now || self.can_promote() {
            return PollAt::Now;
        }
        // 4. Fast retransmissions (now) and timeouts. Queued data step 3 cannot move
        //    waits on data in flight or a zero window, whose timers stand for it.
        probe.sooner(self.snd.poll_at(self.fast_rule()))
    }

    /// Flush step 3 has work: queued segments the windows let into flight, or queued
    /// segments behind a congestion window of 0 that the flush's end opens to 1.
    fn can_promote(&self) -> bool {
        let reopens = self.config.congestion_control && self.cc.cwnd == 0;
        self.snd.promotable(self.send_window()) > 0 || (self.snd.queued() > 0 && reopens)
    }

    /// The effective send window: `min(snd_wnd, rmt_wnd)`, and `cwnd` unless congestion
    /// control is off (spec §9.3).
    fn send_window(&self) -> u32 {
        let window = self.config.snd_wnd.min(self.remote_window);
        if self.config.congestion_control {
            window.min(self.cc.cwnd)
        } else {
            window
        }
    }

    /// When a segment is due for a fast retransmission (`fastresend`, `fastlimit`).
    fn fast_rule(&self) -> FastRule {
        let threshold = if self.config.fast_resend > 0 {
            self.config.fast_resend
        } else {
            u32::MAX
        };
        FastRule {
            threshold,
            limit: self.config.fast_limit,
        }
    }

    /// Builds and emits datagrams now (`ikcp_flush`, spec §9): ACKs, window probes,
    /// new data the windows allow, timeout and fast retransmissions. Does not move the
    /// `update` grid.
    pub fn flush<E>(
        &mut self,
        now: Timestamp,
        out: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.through_closure(now, out, Self::flush_into)
    }

    /// Runs `emit` (`update_into` or `flush_into`) with a sink that builds each
    /// datagram in the engine's reused buffer and hands it to the closure `out`.
    fn through_closure<F, E>(
        &mut self,
        now: Timestamp,
        out: F,
        emit: impl FnOnce(&mut Self, Timestamp, &mut ClosureSink<F>) -> Result<(), E>,
    ) -> Result<(), E>
    where
        F: FnMut(&[u8]) -> Result<(), E>,
    {
        let mut buf = core::mem::take(&mut self.out_buf);
        buf.clear();
        let mut sink = ClosureSink { buf, out };
        let result = emit(self, now, &mut sink);
        self.out_buf = sink.buf;
        result
    }

    /// [`flush`](Self::flush), writing the datagrams straight into `out`'s memory (see
    /// [`Transmit`]): no copy out of an engine buffer.
    pub fn flush_into<T: Transmit>(&mut self, now: Timestamp, out: &mut T) -> Result<(), T::Error> {
        self.started.get_or_insert(now);
        let rule = self.fast_rule();
        let window = self.send_window();
        let mut emitter = Emitter {
            len: 0,
            mtu: self.config.mtu,
            out,
            error: None,
            stats: &mut self.stats,
        };

        let wnd = self.rcv.unused();
        let una = self.rcv.nxt();
        let mut template = Header {
            conv: self.conv,
            cmd: Command::Ack,
            frg: 0,
            wnd,
            ts: Timestamp::from_millis(0),
            sn: Sn::new(0),
            una,
            len: 0,
        };

        // Steps 1 to 4 are mirrored by `next_work`, which `check` asks.
        // 1. ACKs, in arrival order. WASK/WINS below reuse the last ACK's sn/ts, as the
        //    reference does.
        for (sn, ts) in self.acks.iter() {
            template.sn = sn;
            template.ts = ts;
            emitter.put(&template, &[]);
            emitter.stats.acks_sent += 1;
        }
        self.acks.clear();

        // 2. Window probes.
        self.probe.on_flush(now, self.remote_window);
        let (ask, tell) = self.probe.take();
        if ask {
            template.cmd = Command::WindowAsk;
            emitter.put(&template, &[]);
            emitter.stats.probes_sent += 1;
        }
        if tell {
            template.cmd = Command::WindowTell;
            emitter.put(&template, &[]);
            emitter.stats.window_tells_sent += 1;
        }

        // 3. Move queued data into flight, bounded by the windows.
        self.snd
            .promote(self.snd.promotable(window), now, self.rtt.rto());
        if self.snd.queued() > 0 {
            emitter.stats.window_full_stalls += 1;
        }

        // 4. Per-segment decisions, oldest first.
        let backoff = self.rtt.backoff(self.config.nodelay, self.config.max_rto);
        let (conv, dead_link) = (self.conv, self.config.dead_link);
        let mut fast_retransmits = 0u32;
        let mut timed_out = false;
        let mut dead = false;
        self.snd.flush_walk(now, rule, |sn, seg, payload| {
            if seg.xmit == 0 {
                seg.xmit = 1;
                seg.rto = backoff.initial_rto();
                seg.resend_at = now.add_millis(backoff.first_wait());
                emitter.stats.data_segments_sent += 1;
            } else if now.has_reached(seg.resend_at) {
                seg.xmit += 1;
                seg.rto = backoff.after_timeout(seg.rto);
                seg.resend_at = now.add_millis(seg.rto);
                timed_out = true;
                emitter.stats.retransmits_timeout += 1;
            } else if rule.fires(seg.fastack, seg.xmit) {
                seg.xmit += 1;
                seg.fastack = 0;
                seg.resend_at = now.add_millis(seg.rto);
                fast_retransmits += 1;
                emitter.stats.retransmits_fast += 1;
            } else {
                return;
            }
            seg.ts = now;
            let header = Header {
                conv,
                cmd: Command::Push,
                frg: payload.frg,
                wnd,
                ts: now,
                sn,
                una,
                len: payload.data.len() as u32,
            };
            emitter.put(&header, &payload.data);
            dead |= seg.xmit >= dead_link;
        });
        emitter.finish();
        let error = emitter.error;
        self.dead |= dead;

        // 5. Congestion updates, in the reference's order.
        if fast_retransmits > 0 {
            let in_flight = self.snd.nxt().since(self.snd.una()) as u32;
            self.cc.on_fast_retransmit(in_flight, rule.threshold);
        }
        if timed_out {
            self.cc.on_timeout(window);
        }
        self.cc.at_least_one();

        error.map_or(Ok(()), Err)
    }
}

/// What [`Kcp::validate`] found in a datagram.
struct Shape {
    /// Where the last whole segment ends (shorter trailing bytes are ignored).
    end: usize,
    /// Segments up to `end`.
    segments: u32,
    /// `Push` segments with a payload.
    payloads: u32,
    /// Where the last of those payloads lies.
    last_payload: Option<core::ops::Range<usize>>,
}

/// What one datagram's walk carries from segment to segment.
struct InputWalk {
    /// `snd_una` before the datagram.
    prev_una: Sn,
    /// The peer's window before the datagram.
    prev_window: u32,
    /// `rcv_nxt + rcv_wnd` before the datagram: data segments at or after it are out
    /// of the window.
    rcv_limit: Sn,
    /// An ACK of the datagram removed a segment in flight.
    acked: bool,
    /// A segment of the datagram was applied (not refused).
    heard: bool,
    /// `(max_ack, latest_ts)` of the datagram's ACKs, for fast retransmit.
    max_ack: Option<(Sn, Timestamp)>,
}

impl InputWalk {
    fn new(kcp: &Kcp) -> Self {
        Self {
            prev_una: kcp.snd.una(),
            prev_window: kcp.remote_window,
            rcv_limit: kcp.rcv.limit(),
            acked: false,
            heard: false,
            max_ack: None,
        }
    }

    /// Notes an ACK of `sn` echoing `ts` (spec §6: the highest ACK, with `conserve`
    /// only if its `ts` is also newer).
    fn ack(&mut self, sn: Sn, ts: Timestamp, conserve: bool) {
        self.max_ack = Some(match self.max_ack {
            None => (sn, ts),
            Some((max_ack, latest_ts)) => {
                let newer = !conserve || latest_ts.is_before(ts);
                if max_ack.is_before(sn) && newer {
                    (sn, ts)
                } else {
                    (max_ack, latest_ts)
                }
            }
        });
    }
}

/// Appends `extra` to a queued stream segment, in place when the buffer is not shared
/// and has room (segments are allocated with `mss` capacity).
fn append(data: &mut Bytes, extra: &[u8], mss: usize) {
    let current = core::mem::take(data);
    let mut grown = match current.try_into_mut() {
        Ok(unique) => unique,
        Err(shared) => {
            let mut copy = BytesMut::with_capacity(mss);
            copy.extend_from_slice(&shared);
            copy
        }
    };
    grown.extend_from_slice(extra);
    *data = grown.freeze();
}
