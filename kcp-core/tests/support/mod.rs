//! Differential harness: our engine and the C reference (ikcp.c v1.7.1 through
//! `kcp-ref`) driven with the same calls at the same virtual times, compared datagram
//! by datagram and state by state.
//!
//! A [`Session`] has two sides, A and B. Each side is a [`Twin`]: our `Kcp` and a
//! `CKcp` configured alike. Every call goes to both twins of a side; their datagrams
//! must be byte-identical, and only then does the (single) copy travel through a
//! seeded lossy [`Lane`] to both twins of the other side. On a mismatch the panic
//! message shows the last events (time, direction, decoded headers) and the two
//! diverging datagram lists.
//!
//! Randomness, the delay line and the update/flush collectors come from `common`
//! (declare `mod common;` next to `mod support;`).
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::fmt::Write as _;

use kcp_core::sim::reference::ReferenceMode;
use kcp_core::{Config, Kcp, PollAt, SendError, Timestamp};
use kcp_ref::CKcp;

use crate::common::{self, InFlight, Rng};

mod describe;
pub(crate) use describe::{describe, describe_all};

/// The conversation id every session uses.
pub const CONV: u32 = 0x1122_3344;

/// The virtual clock starts this close below 2^32, so it wraps early in every run.
pub const CLOCK_START: u32 = u32::MAX - 3_000;

// ------------------------------------------------------------------ configuration

/// The engine settings under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// `ikcp_create` defaults.
    Default,
    /// README "normal": `nodelay(0, 40, 0, 0)`.
    Normal,
    /// README "fastest": `nodelay(1, 10, 2, 1)`.
    Fast,
    /// `test.cpp` fast mode: windows 128/128, `nodelay(2, 10, 2, 1)`, and on side A
    /// `rx_minrto = 10`, `fastresend = 1`.
    Linear,
}

impl Preset {
    pub const ALL: [Self; 4] = [Self::Default, Self::Normal, Self::Fast, Self::Linear];
}

/// A preset plus the knobs a scenario changes, applied identically to both engines.
#[derive(Clone, Debug)]
pub struct Setup {
    pub preset: Preset,
    pub stream: bool,
    pub initial_sn: u32,
    pub mtu: Option<u16>,
    /// `(snd_wnd, rcv_wnd)`, as `ikcp_wndsize`.
    pub windows: Option<(u32, u32)>,
    /// 0 = unlimited, as C's `fastlimit <= 0`.
    pub fast_limit: Option<u32>,
    pub dead_link: Option<u32>,
}

impl Setup {
    pub fn new(preset: Preset) -> Self {
        Self {
            preset,
            stream: false,
            initial_sn: 0,
            mtu: None,
            windows: None,
            fast_limit: None,
            dead_link: None,
        }
    }

    /// Our engine for side A (`side_a`) or B.
    pub fn ours(&self, side_a: bool) -> Kcp {
        let mut c = match self.preset {
            Preset::Default => Config::default(),
            Preset::Normal => Config::normal(),
            Preset::Fast => Config::fast(),
            Preset::Linear => ReferenceMode::Fast.config(side_a),
        };
        // Deliberate difference (spec pitfall 10): we cap a segment's RTO, the reference
        // does not. Lift the cap so long loss streaks stay byte-identical.
        c.max_rto = Config::MAX_RTO_LIMIT;
        // Deliberate difference (pitfall 7): our send queue is bounded, C's is not.
        c.send_queue_limit = 1 << 20;
        c.stream = self.stream;
        c.initial_sn = self.initial_sn;
        if let Some(mtu) = self.mtu {
            c.mtu = usize::from(mtu);
        }
        if let Some((snd, rcv)) = self.windows {
            c.snd_wnd = snd;
            c.rcv_wnd = rcv;
        }
        if let Some(limit) = self.fast_limit {
            c.fast_limit = limit;
        }
        if let Some(limit) = self.dead_link {
            c.dead_link = limit;
        }
        Kcp::new(CONV, c).expect("valid test configuration")
    }

    /// The C engine for side A (`side_a`) or B, set up with the same values.
    pub fn c(&self, side_a: bool) -> CKcp {
        let mut k = match self.preset {
            Preset::Linear => CKcp::for_reference_scenario(CONV, ReferenceMode::Fast, side_a),
            Preset::Default | Preset::Normal | Preset::Fast => CKcp::new(CONV),
        };
        match self.preset {
            Preset::Normal => k.nodelay(0, 40, 0, 0),
            Preset::Fast => k.nodelay(1, 10, 2, 1),
            Preset::Default | Preset::Linear => {}
        }
        k.set_stream(self.stream);
        k.set_initial_sn(self.initial_sn);
        if let Some(mtu) = self.mtu {
            assert_eq!(k.set_mtu(i32::from(mtu)), 0);
        }
        if let Some((snd, rcv)) = self.windows {
            k.wndsize(snd as i32, rcv as i32);
        }
        if let Some(limit) = self.fast_limit {
            k.set_fast_limit(limit as i32);
        }
        if let Some(limit) = self.dead_link {
            k.set_dead_link(limit);
        }
        k
    }
}

// ------------------------------------------------------------------ the link

/// One direction of the test link: seeded loss, delay with jitter (so datagrams
/// reorder), duplication, and optional blackout windows that lose everything.
#[derive(Debug)]
pub struct Lane {
    pub loss: f64,
    pub delay: u64,
    pub jitter: u32,
    pub duplicate: f64,
    /// `[from, to)` in virtual ms: everything offered in between is lost.
    pub blackouts: Vec<(u64, u64)>,
    rng: Rng,
    in_flight: InFlight,
    pub offered: u64,
    pub lost: u64,
}

impl Lane {
    pub fn new(loss: f64, seed: u64) -> Self {
        Self {
            loss,
            delay: 20,
            jitter: 25,
            duplicate: 0.02,
            blackouts: Vec::new(),
            rng: Rng::new(seed),
            in_flight: InFlight::default(),
            offered: 0,
            lost: 0,
        }
    }

    /// Offers a datagram at virtual time `t`; `false` if it was lost.
    pub fn push(&mut self, t: u64, datagram: &[u8]) -> bool {
        self.offered += 1;
        let dark = self
            .blackouts
            .iter()
            .any(|&(from, to)| (from..to).contains(&t));
        if dark || self.rng.chance(self.loss) {
            self.lost += 1;
            return false;
        }
        let copies = if self.rng.chance(self.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let due = t + self.delay + self.rng.below(u64::from(self.jitter) + 1);
            self.in_flight.push(due, datagram);
        }
        true
    }

    /// Everything due by `t`, in (due time, offer order) order.
    pub fn pop_due(&mut self, t: u64) -> Vec<Vec<u8>> {
        self.in_flight.pop_due(t)
    }

    pub fn in_transit(&self) -> usize {
        self.in_flight.len()
    }
}

// ------------------------------------------------------------------ traces

#[derive(Debug)]
enum Event {
    Emit(Side, Vec<u8>),
    Lost(Side, Vec<u8>),
    Arrive(Side, Vec<u8>),
    Send(Side, usize, i32),
    Recv(Side, usize),
    Flush(Side),
}

/// The last [`TRACE_LEN`] events, kept raw and formatted only on failure.
#[derive(Debug, Default)]
struct Trace(VecDeque<(u64, u32, Event)>);

const TRACE_LEN: usize = 60;

impl Trace {
    fn push(&mut self, t: u64, now: u32, e: Event) {
        if self.0.len() == TRACE_LEN {
            self.0.pop_front();
        }
        self.0.push_back((t, now, e));
    }

    fn render(&self) -> String {
        let mut out = format!(
            "last {} events (t = virtual ms, now = engine clock):",
            self.0.len()
        );
        for (t, now, e) in &self.0 {
            let line = match e {
                Event::Emit(s, d) => format!("{s:?} emits    {}", describe(d)),
                Event::Lost(s, d) => format!("{s:?}->{:?} LOST {}", s.other(), describe(d)),
                Event::Arrive(s, d) => format!("{:?}->{s:?} input {}", s.other(), describe(d)),
                Event::Send(s, n, r) => format!("{s:?} send {n} bytes -> {r}"),
                Event::Recv(s, n) => format!("{s:?} recv {n} message(s)"),
                Event::Flush(s) => format!("{s:?} flush()"),
            };
            let _ = write!(out, "\n  t={t:>6} now={now:>10}  {line}");
        }
        out
    }
}

// ------------------------------------------------------------------ the session

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub const fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }
    const fn index(self) -> usize {
        self as usize
    }
}

/// Our engine and the C engine of one side.
#[derive(Debug)]
pub struct Twin {
    pub ours: Kcp,
    pub c: CKcp,
    /// The clock of the last `update` (what C's `input` and `flush` use), or 0 as C's
    /// `current` starts.
    last_update: u32,
    updated: bool,
}

/// When a side's host calls `update`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdatePolicy {
    /// Every virtual millisecond, as `test.cpp` does.
    EveryMs,
    /// After random gaps of 1..=`max` ms, drawn per side.
    Gaps(u32),
    /// Whenever our engine's `check` says so (a sleeping host); both twins follow it.
    CheckDriven,
}

/// Two twins, two lanes, one virtual clock.
#[derive(Debug)]
pub struct Session {
    pub label: String,
    pub twins: [Twin; 2],
    /// `lanes[0]` carries A -> B, `lanes[1]` B -> A.
    pub lanes: [Lane; 2],
    /// Virtual ms since the start; the engines see `CLOCK_START + t` (wrapping).
    pub t: u64,
    /// Messages received so far by A (`[0]`) and B (`[1]`).
    pub received: [Vec<Vec<u8>>; 2],
    /// Whether each side's application reads every step.
    pub reading: [bool; 2],
    pub policy: UpdatePolicy,
    /// With [`UpdatePolicy::EveryMs`]: also assert that when our `check` answers a
    /// later time (or `Idle`), an update now emits nothing (a host that slept until
    /// that answer would have missed nothing).
    pub verify_check: bool,
    next_update: [u64; 2],
    gaps: Rng,
    trace: Trace,
}

impl Session {
    pub fn new(setup: &Setup, loss: f64, seed: u64, label: impl Into<String>) -> Self {
        let twin = |a: bool| Twin {
            ours: setup.ours(a),
            c: setup.c(a),
            last_update: 0,
            updated: false,
        };
        Self {
            label: format!("{} ({setup:?}, loss {loss}, seed {seed})", label.into()),
            twins: [twin(true), twin(false)],
            lanes: [
                Lane::new(loss, seed.wrapping_mul(31).wrapping_add(1)),
                Lane::new(loss, seed.wrapping_mul(31).wrapping_add(2)),
            ],
            t: 0,
            received: [Vec::new(), Vec::new()],
            reading: [true, true],
            policy: UpdatePolicy::EveryMs,
            verify_check: true,
            next_update: [0, 0],
            gaps: Rng::new(seed ^ 0x5EED),
            trace: Trace::default(),
        }
    }

    /// The engines' clock at virtual time `t`.
    pub fn now(&self) -> u32 {
        CLOCK_START.wrapping_add(self.t as u32)
    }

    pub fn twin(&mut self, side: Side) -> &mut Twin {
        &mut self.twins[side.index()]
    }

    #[track_caller]
    fn fail(&self, what: &str) -> ! {
        panic!(
            "{}\nat t={} now={}: {what}\n{}",
            self.label,
            self.t,
            self.now(),
            self.trace.render()
        );
    }

    #[track_caller]
    fn compare_output(&mut self, side: Side, call: &str, ours: Vec<Vec<u8>>, c: Vec<Vec<u8>>) {
        if ours != c {
            self.fail(&format!(
                "side {side:?} emitted different datagrams in {call}\n    ours:{}\n    C:   {}",
                describe_all(&ours),
                describe_all(&c)
            ));
        }
        let (t, now) = (self.t, self.now());
        let lane = &mut self.lanes[side.index()];
        for d in ours {
            let delivered = lane.push(t, &d);
            let event = if delivered {
                Event::Emit(side, d)
            } else {
                Event::Lost(side, d)
            };
            self.trace.push(t, now, event);
        }
        self.compare_state(side, call);
    }

    /// Compares the estimator, window and queue state of the two twins.
    #[track_caller]
    fn compare_state(&self, side: Side, after: &str) {
        let twin = &self.twins[side.index()];
        let s = twin.ours.stats();
        let c = twin.c.snapshot();
        let ours = [
            ("srtt", s.srtt),
            ("rttvar", s.rttvar),
            ("rto", s.rto),
            ("cwnd", s.cwnd),
            ("ssthresh", s.ssthresh),
            ("remote_window", s.remote_window),
            ("in_flight", s.in_flight),
            ("send_queue", s.send_queue),
            ("recv_queue", s.recv_queue),
            ("recv_buffer", s.recv_buffer),
            ("timeout retransmits", s.retransmits_timeout as u32),
            ("dead", u32::from(twin.ours.is_dead())),
            ("wait_send", twin.ours.wait_send() as u32),
        ];
        let theirs = [
            c.rx_srtt as u32,
            c.rx_rttval as u32,
            c.rx_rto as u32,
            c.cwnd,
            c.ssthresh,
            c.rmt_wnd,
            c.nsnd_buf,
            c.nsnd_que,
            c.nrcv_que,
            c.nrcv_buf,
            c.xmit,
            u32::from(c.state != 0),
            twin.c.wait_send() as u32,
        ];
        let diffs: Vec<String> = ours
            .iter()
            .zip(theirs)
            .filter(|((_, a), b)| a != b)
            .map(|((name, a), b)| format!("{name}: ours {a}, C {b}"))
            .collect();
        if !diffs.is_empty() {
            self.fail(&format!(
                "side {side:?} state differs after {after}: {}",
                diffs.join("; ")
            ));
        }
    }

    /// `update` on both twins of `side` at the current time.
    #[track_caller]
    pub fn update(&mut self, side: Side) {
        let now = self.now();
        if self.verify_check && self.policy == UpdatePolicy::EveryMs {
            self.check_before_update(side, now);
        }
        let twin = &mut self.twins[side.index()];
        twin.last_update = now;
        twin.updated = true;
        let ours = common::update(&mut twin.ours, Timestamp::from_millis(now));
        twin.c.update(now);
        let c = twin.c.take_output();
        self.compare_output(side, "update", ours, c);
    }

    /// The check property: if our engine says "not before t" (or idle), updating now
    /// must emit nothing. Runs on a clone so that the real update is unaffected.
    #[track_caller]
    fn check_before_update(&self, side: Side, now: u32) {
        let twin = &self.twins[side.index()];
        let ts = Timestamp::from_millis(now);
        let answer = twin.ours.check(ts);
        let later = match answer {
            PollAt::Now => false,
            PollAt::Idle => true,
            PollAt::At(at) => !ts.has_reached(at),
        };
        if !later || !twin.updated {
            return;
        }
        // Off the flush grid `update` only moves the clock; skip the clone (the grid is
        // the same in both engines, which the wire comparison keeps proving).
        let slap = now.wrapping_sub(twin.c.snapshot().ts_flush) as i32;
        if (-10_000..0).contains(&slap) {
            return;
        }
        let emitted = common::update(&mut twin.ours.clone(), ts);
        if !emitted.is_empty() {
            self.fail(&format!(
                "side {side:?}: check({now}) answered {answer:?}, but update({now}) emits:{}",
                describe_all(&emitted)
            ));
        }
    }

    /// `flush` on both twins of `side` (C flushes at the time of its last update, so
    /// ours gets that time too). Skipped before the first update, where C's flush is
    /// a no-op by design and ours is not.
    #[track_caller]
    pub fn flush(&mut self, side: Side) {
        let (t, now) = (self.t, self.now());
        let twin = &mut self.twins[side.index()];
        if !twin.updated {
            return;
        }
        let ours = common::flush(&mut twin.ours, Timestamp::from_millis(twin.last_update));
        twin.c.flush();
        let c = twin.c.take_output();
        self.trace.push(t, now, Event::Flush(side));
        self.compare_output(side, "flush", ours, c);
    }

    /// `send` on both twins; the results must agree. Returns C's result.
    #[track_caller]
    pub fn send(&mut self, side: Side, message: &[u8]) -> i32 {
        let twin = &mut self.twins[side.index()];
        let ours = twin.ours.send(message);
        let c = twin.c.send(message);
        let same = match ours {
            Ok(n) => i32::try_from(n) == Ok(c),
            Err(SendError::TooLarge { .. }) => c == -2,
            Err(_) => false,
        };
        let (t, now) = (self.t, self.now());
        self.trace.push(t, now, Event::Send(side, message.len(), c));
        if !same {
            self.fail(&format!(
                "side {side:?} send of {} bytes: ours {ours:?}, C {c}",
                message.len()
            ));
        }
        self.compare_state(side, "send");
        c
    }

    /// Delivers everything due on the lane towards `to`, into both twins, at the time
    /// of their last update.
    #[track_caller]
    pub fn deliver(&mut self, to: Side) {
        let (t, now) = (self.t, self.now());
        let due = self.lanes[to.other().index()].pop_due(t);
        for d in due {
            let twin = &mut self.twins[to.index()];
            let ours = twin
                .ours
                .input(Timestamp::from_millis(twin.last_update), &d);
            let c = twin.c.input(&d);
            let verdicts = format!("ours {ours:?}, C {c}");
            self.trace.push(t, now, Event::Arrive(to, d));
            if ours.is_ok() != (c == 0) {
                self.fail(&format!("side {to:?} input verdicts differ: {verdicts}"));
            }
            self.compare_state(to, "input");
        }
    }

    /// Receives every complete message from both twins; they must agree.
    #[track_caller]
    pub fn recv_all(&mut self, side: Side) -> usize {
        let twin = &mut self.twins[side.index()];
        let mut ours = Vec::new();
        while let Some(m) = twin.ours.recv() {
            ours.push(m.to_vec());
        }
        let mut c = Vec::new();
        while let Ok(size) = usize::try_from(twin.c.peek_size()) {
            let mut buf = vec![0u8; size];
            let n = twin.c.recv(&mut buf);
            assert_eq!(usize::try_from(n), Ok(size), "C recv after peeksize");
            c.push(buf);
        }
        if ours != c {
            let sizes = |v: &[Vec<u8>]| v.iter().map(Vec::len).collect::<Vec<_>>();
            self.fail(&format!(
                "side {side:?} received different messages: ours {:?}, C {:?}",
                sizes(&ours),
                sizes(&c)
            ));
        }
        let n = ours.len();
        if n > 0 {
            let (t, now) = (self.t, self.now());
            self.trace.push(t, now, Event::Recv(side, n));
            self.compare_state(side, "recv");
        }
        self.received[side.index()].extend(ours);
        n
    }

    fn wants_update(&mut self, side: Side) -> bool {
        match self.policy {
            UpdatePolicy::EveryMs => true,
            UpdatePolicy::Gaps(max) => {
                let due = self.t >= self.next_update[side.index()];
                if due {
                    self.next_update[side.index()] = self.t + 1 + self.gaps.below(u64::from(max));
                }
                due
            }
            UpdatePolicy::CheckDriven => {
                let now = Timestamp::from_millis(self.now());
                let twin = &self.twins[side.index()];
                !twin.updated
                    || match twin.ours.check(now) {
                        PollAt::Now => true,
                        PollAt::At(at) => now.has_reached(at),
                        PollAt::Idle => false,
                    }
            }
        }
    }

    /// One virtual millisecond, in `test.cpp`'s order: update A and B (as the policy
    /// says), deliver to B then to A, let the applications read; then the clock moves.
    #[track_caller]
    pub fn step(&mut self) {
        for side in [Side::A, Side::B] {
            if self.wants_update(side) {
                self.update(side);
            }
        }
        self.deliver(Side::B);
        self.deliver(Side::A);
        for side in [Side::A, Side::B] {
            if self.reading[side.index()] {
                self.recv_all(side);
            }
        }
        self.t += 1;
    }

    /// Moves the clock by `ms` with no call at all (a host that stalled): the engines
    /// see a jump. Datagrams due meanwhile arrive at the next step.
    pub fn stall(&mut self, ms: u64) {
        self.t += ms;
    }

    pub fn in_transit(&self) -> usize {
        self.lanes[0].in_transit() + self.lanes[1].in_transit()
    }
}
