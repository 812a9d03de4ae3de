//! Two endpoints joined by two links, stepped on a virtual clock.

use alloc::collections::{BinaryHeap, VecDeque};
use alloc::vec::Vec;
use core::cmp::Reverse;

use bytes::Bytes;

use super::SimTime;
use super::endpoint::Endpoint;
use super::link::{Link, LinkConfig};
use crate::Timestamp;

/// One of the two ends of a [`Pair`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// Endpoint `a`, sending over `a_to_b`.
    A,
    /// Endpoint `b`, sending over `b_to_a`.
    B,
}

/// A message that arrived, with its virtual send and arrival times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// When it was handed to the sending endpoint, matched by order among the messages
    /// sent through [`Pair::send`]/[`Pair::schedule_send`] (exact in message mode).
    pub sent_at: Option<SimTime>,
    /// When the receiving endpoint delivered it.
    pub arrived_at: SimTime,
    /// The message.
    pub data: Bytes,
}

impl Received {
    /// `arrived_at - sent_at`, if the send time is known.
    pub fn latency(&self) -> Option<SimTime> {
        self.sent_at.map(|s| self.arrived_at - s)
    }
}

/// [`Pair::run_until`] gave up: the condition did not hold within the step budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not done after {steps} steps (virtual time {at} ms)")]
pub struct Stalled {
    /// Steps taken.
    pub steps: u64,
    /// Virtual time reached.
    pub at: SimTime,
}

/// Two endpoints and the two directions of the path between them, on a virtual clock
/// that advances 1 ms per [`Pair::step`].
///
/// Each step, in the reference test's order: both endpoints `update` (their datagrams
/// enter the links stamped with the current time), scheduled sends are handed over,
/// due datagrams are delivered `a → b` then `b → a`, and both endpoints are drained
/// of received messages.
///
/// The endpoints see the virtual time as a [`Timestamp`] offset so that it wraps past
/// `u32::MAX` after one second: every simulation also tests the wrap.
#[derive(Debug)]
pub struct Pair<A: Endpoint, B: Endpoint> {
    /// Endpoint `a`.
    pub a: A,
    /// Endpoint `b`.
    pub b: B,
    /// The path from `a` to `b`.
    pub a_to_b: Link,
    /// The path from `b` to `a`.
    pub b_to_a: Link,
    now: SimTime,
    steps: u64,
    clock_offset: u32,
    schedule: BinaryHeap<Reverse<(SimTime, u64, Side, Bytes)>>,
    scheduled: u64,
    sent: [VecDeque<SimTime>; 2],
    received: [Vec<Received>; 2],
    scratch: Vec<Bytes>,
}

impl<A: Endpoint, B: Endpoint> Pair<A, B> {
    /// Joins `a` and `b`; each direction gets its own link seeded from `seed`.
    pub fn new(a: A, b: B, a_to_b: LinkConfig, b_to_a: LinkConfig, seed: u64) -> Self {
        Self {
            a,
            b,
            a_to_b: Link::new(a_to_b, seed),
            b_to_a: Link::new(b_to_a, seed ^ 0x005E_ED0F_B70A),
            now: 0,
            steps: 0,
            clock_offset: u32::MAX - 999,
            schedule: BinaryHeap::new(),
            scheduled: 0,
            sent: [VecDeque::new(), VecDeque::new()],
            received: [Vec::new(), Vec::new()],
            scratch: Vec::new(),
        }
    }

    /// Sets what the endpoints' clock reads at virtual time 0 (default `u32::MAX - 999`).
    #[must_use]
    pub const fn with_clock_offset(mut self, offset: u32) -> Self {
        self.clock_offset = offset;
        self
    }

    /// Virtual time in ms since the start.
    pub const fn now(&self) -> SimTime {
        self.now
    }

    /// The endpoints' view of the current time.
    pub const fn timestamp(&self) -> Timestamp {
        Timestamp::from_millis(self.clock_offset.wrapping_add(self.now as u32))
    }

    /// Hands `message` to the endpoint on `from` now, recording the send time.
    pub fn send(&mut self, from: Side, message: &[u8]) -> bool {
        let ok = match from {
            Side::A => self.a.send(message),
            Side::B => self.b.send(message),
        };
        if ok {
            self.sent[from as usize].push_back(self.now);
        }
        ok
    }

    /// Arranges for `message` to be sent from `from` at virtual time `at` (during that
    /// step, after the updates).
    pub fn schedule_send(&mut self, at: SimTime, from: Side, message: impl Into<Bytes>) {
        self.scheduled += 1;
        self.schedule
            .push(Reverse((at, self.scheduled, from, message.into())));
    }

    /// Messages received so far by the endpoint on `side`.
    pub fn received(&self, side: Side) -> &[Received] {
        &self.received[side as usize]
    }

    /// Takes the messages received so far by the endpoint on `side`.
    pub fn take_received(&mut self, side: Side) -> Vec<Received> {
        core::mem::take(&mut self.received[side as usize])
    }

    /// Advances the clock by one millisecond (see the type's doc for the order).
    pub fn step(&mut self) {
        let (now, ts) = (self.now, self.timestamp());
        let a_to_b = &mut self.a_to_b;
        self.a.update(ts, &mut |d| a_to_b.push(now, d));
        let b_to_a = &mut self.b_to_a;
        self.b.update(ts, &mut |d| b_to_a.push(now, d));

        while self
            .schedule
            .peek()
            .is_some_and(|Reverse((at, ..))| *at <= now)
        {
            if let Some(Reverse((_, _, from, message))) = self.schedule.pop() {
                self.send(from, &message);
            }
        }

        self.scratch.clear();
        while let Some(d) = self.a_to_b.pop_ready(now) {
            self.scratch.push(d);
        }
        for d in &self.scratch {
            self.b.input(ts, d);
        }
        self.scratch.clear();
        while let Some(d) = self.b_to_a.pop_ready(now) {
            self.scratch.push(d);
        }
        for d in &self.scratch {
            self.a.input(ts, d);
        }

        Self::drain(&mut self.b, now, &mut self.sent[0], &mut self.received[1]);
        Self::drain(&mut self.a, now, &mut self.sent[1], &mut self.received[0]);
        self.now += 1;
        self.steps += 1;
    }

    /// Moves every message `endpoint` has received into `into`, pairing each with the
    /// oldest unmatched send time of the other side.
    fn drain(
        endpoint: &mut impl Endpoint,
        now: SimTime,
        sent: &mut VecDeque<SimTime>,
        into: &mut Vec<Received>,
    ) {
        while let Some(data) = endpoint.recv() {
            into.push(Received {
                sent_at: sent.pop_front(),
                arrived_at: now,
                data,
            });
        }
    }

    /// Steps until `done` holds, at most `max_steps` times. Returns the steps taken.
    ///
    /// # Errors
    /// [`Stalled`] if `done` still does not hold after `max_steps` steps.
    pub fn run_until(
        &mut self,
        max_steps: u64,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Result<u64, Stalled> {
        let mut taken = 0;
        while !done(self) {
            if taken == max_steps {
                return Err(Stalled {
                    steps: taken,
                    at: self.now,
                });
            }
            self.step();
            taken += 1;
        }
        Ok(taken)
    }
}
