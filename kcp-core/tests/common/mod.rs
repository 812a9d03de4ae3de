//! A small in-memory link for the engine's scenario tests: seeded loss, delay and
//! reordering, a virtual clock starting just below the 32-bit wrap. (The full simulator
//! lives in `kcp_core::sim`; this one is deliberately tiny and self-contained.)
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::convert::Infallible;

use kcp_core::{Kcp, Timestamp};

/// The clock every scenario starts at: 1,000 ms before `u32::MAX`, so it wraps.
pub const START: u32 = u32::MAX - 1_000;

/// xorshift64*: deterministic on every machine and dependency version.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// Datagrams on their way, each due at a virtual time; those due at the same time
/// leave in the order they were pushed. The delay line of [`Lane`] and of the
/// differential harness's lane.
#[derive(Debug, Default)]
pub struct InFlight {
    queue: Vec<(u64, u64, Vec<u8>)>, // (due, seq, datagram)
    seq: u64,
}

impl InFlight {
    pub fn push(&mut self, due: u64, datagram: &[u8]) {
        self.seq += 1;
        self.queue.push((due, self.seq, datagram.to_vec()));
    }

    /// Everything due by `now`, in (due time, push order) order.
    pub fn pop_due(&mut self, now: u64) -> Vec<Vec<u8>> {
        let mut due = Vec::new();
        let mut i = 0;
        while i < self.queue.len() {
            if self.queue[i].0 <= now {
                due.push(self.queue.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_unstable_by_key(|&(at, seq, _)| (at, seq));
        due.into_iter().map(|(_, _, d)| d).collect()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// One direction of the link.
#[derive(Debug)]
pub struct Lane {
    pub loss: f64,
    pub delay: u64,
    pub jitter: u64,
    in_flight: InFlight,
    pub sent: u64,
    pub dropped: u64,
}

impl Lane {
    pub fn new(loss: f64, delay: u64, jitter: u64) -> Self {
        Self {
            loss,
            delay,
            jitter,
            in_flight: InFlight::default(),
            sent: 0,
            dropped: 0,
        }
    }
    fn push(&mut self, now: u64, d: &[u8], rng: &mut Rng) {
        self.sent += 1;
        if rng.chance(self.loss) {
            self.dropped += 1;
            return;
        }
        let jitter = if self.jitter > 0 {
            rng.below(self.jitter + 1)
        } else {
            0
        };
        self.in_flight.push(now + self.delay + jitter, d);
    }
    fn pop_due(&mut self, now: u64) -> Vec<Vec<u8>> {
        self.in_flight.pop_due(now)
    }
    pub fn in_transit(&self) -> usize {
        self.in_flight.len()
    }
}

/// Two engines joined by two lanes, on a virtual millisecond clock.
#[derive(Debug)]
pub struct Pair {
    pub a: Kcp,
    pub b: Kcp,
    pub a_to_b: Lane,
    pub b_to_a: Lane,
    pub t: u64,
    pub rng: Rng,
    /// Messages `b` received, in order.
    pub at_b: VecDeque<bytes::Bytes>,
    /// Messages `a` received, in order.
    pub at_a: VecDeque<bytes::Bytes>,
    /// Whether each side's application reads (`recv`) every step.
    pub read_a: bool,
    pub read_b: bool,
}

impl Pair {
    pub fn new(a: Kcp, b: Kcp, a_to_b: Lane, b_to_a: Lane, seed: u64) -> Self {
        Self {
            a,
            b,
            a_to_b,
            b_to_a,
            t: 0,
            rng: Rng::new(seed),
            at_b: VecDeque::new(),
            at_a: VecDeque::new(),
            read_a: true,
            read_b: true,
        }
    }

    pub fn now(&self) -> Timestamp {
        Timestamp::from_millis(START.wrapping_add(self.t as u32))
    }

    /// One millisecond: update both, deliver what is due, drain both receivers.
    pub fn step(&mut self) {
        let now = self.now();
        let mut out = Vec::new();
        self.a
            .update(now, |d| {
                out.push(d.to_vec());
                Ok::<_, Infallible>(())
            })
            .unwrap();
        for d in out.drain(..) {
            self.a_to_b.push(self.t, &d, &mut self.rng);
        }
        self.b
            .update(now, |d| {
                out.push(d.to_vec());
                Ok::<_, Infallible>(())
            })
            .unwrap();
        for d in out.drain(..) {
            self.b_to_a.push(self.t, &d, &mut self.rng);
        }
        for d in self.a_to_b.pop_due(self.t) {
            self.b.input(now, &d).unwrap();
        }
        for d in self.b_to_a.pop_due(self.t) {
            self.a.input(now, &d).unwrap();
        }
        while self.read_b {
            let Some(m) = self.b.recv() else { break };
            self.at_b.push_back(m);
        }
        while self.read_a {
            let Some(m) = self.a.recv() else { break };
            self.at_a.push_back(m);
        }
        self.t += 1;
    }

    /// Steps until `done` holds; panics after `max_ms` virtual milliseconds.
    #[track_caller]
    pub fn run_until(&mut self, max_ms: u64, mut done: impl FnMut(&Self) -> bool) {
        let limit = self.t + max_ms;
        while !done(self) {
            assert!(
                self.t < limit,
                "not done after {max_ms} virtual ms; a: {:?}, b: {:?}",
                self.a.stats(),
                self.b.stats()
            );
            self.step();
        }
    }
}

/// The datagrams `kcp.update(now)` emits.
pub fn update(kcp: &mut Kcp, now: Timestamp) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    kcp.update(now, |d| {
        out.push(d.to_vec());
        Ok::<_, Infallible>(())
    })
    .unwrap();
    out
}

/// The datagrams `kcp.flush(now)` emits.
pub fn flush(kcp: &mut Kcp, now: Timestamp) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    kcp.flush(now, |d| {
        out.push(d.to_vec());
        Ok::<_, Infallible>(())
    })
    .unwrap();
    out
}

/// Splits a datagram into its segment headers (and payload lengths).
pub fn segments(datagram: &[u8]) -> Vec<kcp_core::segment::Header> {
    let mut rest = datagram;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (h, payload) = kcp_core::segment::Header::parse(rest).unwrap();
        rest = &rest[kcp_core::segment::HEADER_LEN + payload.len()..];
        out.push(h);
    }
    out
}
