//! The throughput scenario: one endpoint sends a stream of messages to the other over
//! a lossy [`kcp_core::sim::Link`] on a virtual clock; every message is checked byte for
//! byte on arrival.
//!
//! # Timing and fairness
//!
//! The clock is virtual, so only CPU time is measured. It jumps from event to event:
//! the points of the engines' flush grid (every `interval` ms) and the link's
//! arrivals. At every such point both engines get `update`, so all three
//! implementations see exactly the calls `ikcp_update` every millisecond would give
//! them (the skipped calls do nothing in any of them). With identical calls the three
//! emit identical datagrams, the seeded link loses the same ones, and so they do
//! identical protocol work: the measured difference is the implementation's cost.
//! (`tests/transfer.rs` checks the datagram counts agree.)
//!
//! Each event, in order: the sender's queue is topped up to two windows of segments
//! (at most 8000),
//! both engines `update` (datagrams enter the links stamped with the current time),
//! due datagrams are delivered `a → b` then `b → a`, and `b`'s messages are received
//! and checked.

use bytes::Bytes;
use kcp_core::sim::{Delivery, Link, LinkConfig, LossModel, SimTime};

use crate::engine::{Engine, Preset, Settings};

/// The conversation id every scenario uses.
pub const CONV: u32 = 0x4B43_5042;

/// One-way delay of the scenario's links, in ms.
pub const DELAY_MS: u64 = 10;

/// Virtual time after which a transfer counts as stalled (an hour).
const BUDGET_MS: SimTime = 3_600_000;

/// Messages are slices of one pseudo-random pattern, starting at `index % PATTERN_SHIFTS`,
/// so a reordered, duplicated or corrupted message does not compare equal.
const PATTERN_SHIFTS: usize = 251;

/// One cell of the throughput matrix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transfer {
    /// Bytes per message, at most [`MAX_MESSAGE`].
    pub message_size: usize,
    /// Send window in segments (the receive window is at least 128).
    pub window: u16,
    /// Probability that the link loses a datagram, each direction.
    pub loss: f64,
    /// Engine preset.
    pub preset: Preset,
    /// Messages to move.
    pub messages: usize,
    /// Seed of the links' randomness.
    pub seed: u64,
}

/// What one transfer did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransferStats {
    /// Messages delivered (all of them, checked).
    pub messages: u64,
    /// Payload bytes delivered.
    pub bytes: u64,
    /// Virtual time the transfer took, in ms.
    pub virtual_ms: u64,
    /// Datagrams the sender put on the link, lost ones included.
    pub datagrams_sent: u64,
    /// Datagrams the receiver put on the link (ACKs), lost ones included.
    pub datagrams_acked: u64,
}

/// A transfer went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferError {
    /// Message `index` arrived with the wrong content (reordered, duplicated, corrupt).
    Corrupt {
        /// The message's position in the stream.
        index: u64,
    },
    /// The engine refused a message.
    SendRefused {
        /// The message's position in the stream.
        index: u64,
    },
    /// Not every message arrived within the virtual-time budget.
    Stalled {
        /// Messages delivered by then.
        delivered: u64,
    },
}

impl core::fmt::Display for TransferError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Corrupt { index } => write!(f, "message {index} arrived corrupt"),
            Self::SendRefused { index } => write!(f, "message {index} was refused"),
            Self::Stalled { delivered } => write!(f, "stalled after {delivered} messages"),
        }
    }
}

impl std::error::Error for TransferError {}

impl Transfer {
    /// The benchmark cell for `message_size`, `window` and `loss` with the fast preset,
    /// moving at least 8192 segments and 16 windows, so the steady state dominates.
    pub fn cell(message_size: usize, window: u16, loss: f64) -> Self {
        let mss = 1376;
        let segments_per_message = message_size.div_ceil(mss).max(1);
        let segments = 8192.max(16 * usize::from(window));
        Self {
            message_size,
            window,
            loss,
            preset: Preset::Fast,
            messages: segments.div_ceil(segments_per_message),
            seed: 1,
        }
    }

    /// The same cell moving `messages` messages instead.
    #[must_use]
    pub const fn with_messages(mut self, messages: usize) -> Self {
        self.messages = messages;
        self
    }

    /// Payload bytes the transfer moves.
    pub const fn payload_bytes(&self) -> u64 {
        (self.message_size * self.messages) as u64
    }

    /// The link each direction uses.
    pub fn link(&self) -> LinkConfig {
        LinkConfig {
            loss: if self.loss > 0.0 {
                LossModel::Random { rate: self.loss }
            } else {
                LossModel::None
            },
            delay_ms: DELAY_MS,
            delivery: Delivery::Fifo,
            ..LinkConfig::default()
        }
    }

    /// The flush interval of the preset, in ms.
    const fn interval(&self) -> u64 {
        match self.preset {
            Preset::Default => 100,
            Preset::Normal => 40,
            Preset::Fast => 10,
        }
    }

    /// Runs the transfer with implementation `E` on both ends.
    ///
    /// # Errors
    /// [`TransferError`] if a message arrives wrong, is refused, or the transfer stalls.
    pub fn run<E: Engine>(&self) -> Result<TransferStats, TransferError> {
        let settings = Settings::new(self.preset, self.window);
        let mut a = E::new(CONV, settings);
        let mut b = E::new(CONV, settings);
        let mut a_to_b = Link::new(self.link(), self.seed);
        let mut b_to_a = Link::new(self.link(), self.seed ^ 0xB0B);
        if self.message_size > MAX_MESSAGE {
            return Err(TransferError::SendRefused { index: 0 });
        }
        let pattern: &'static [u8] = &PATTERN[..self.message_size + PATTERN_SHIFTS];
        let message = |i: usize| {
            let start = i % PATTERN_SHIFTS;
            Bytes::from_static(&pattern[start..start + self.message_size])
        };
        let mut scratch = vec![0u8; self.message_size.max(1)];
        // Two windows, within what every implementation accepts (ours refuses more
        // than 8192 queued segments by default).
        let queue_limit = (2 * usize::from(self.window)).min(8000);
        let interval = self.interval();
        let total = self.messages;

        let (mut sent, mut received) = (0usize, 0usize);
        let mut corrupt = false;
        let mut now: SimTime = 0;
        loop {
            let clock = now as u32;
            while sent < total && a.wait_send() < queue_limit {
                if !a.send(message(sent)) {
                    return Err(TransferError::SendRefused { index: sent as u64 });
                }
                sent += 1;
            }
            a.update_link(clock, &mut a_to_b, now);
            b.update_link(clock, &mut b_to_a, now);
            while let Some(d) = a_to_b.pop_ready(now) {
                b.input(clock, d);
            }
            while let Some(d) = b_to_a.pop_ready(now) {
                a.input(clock, d);
            }
            while b.recv_with(&mut scratch, |m| {
                let start = received % PATTERN_SHIFTS;
                corrupt |= m != &pattern[start..start + self.message_size];
            }) {
                if corrupt {
                    return Err(TransferError::Corrupt {
                        index: received as u64,
                    });
                }
                received += 1;
            }
            if received == total {
                break;
            }
            let grid = (now / interval + 1) * interval;
            now = [a_to_b.next_arrival(), b_to_a.next_arrival()]
                .into_iter()
                .flatten()
                .filter(|&t| t > now)
                .fold(grid, SimTime::min);
            if now > BUDGET_MS {
                return Err(TransferError::Stalled {
                    delivered: received as u64,
                });
            }
        }
        Ok(TransferStats {
            messages: received as u64,
            bytes: (received * self.message_size) as u64,
            virtual_ms: now,
            datagrams_sent: a_to_b.stats().offered,
            datagrams_acked: b_to_a.stats().offered,
        })
    }
}

/// The largest message a transfer moves: the largest every engine accepts at the
/// scenario's MTU of 1400 (127 fragments of 1376 bytes). Larger ones are refused, as
/// the engines would refuse them.
pub const MAX_MESSAGE: usize = 127 * 1376;

/// Pseudo-random bytes (a fixed xorshift sequence) that every message is a slice of.
static PATTERN: [u8; MAX_MESSAGE + PATTERN_SHIFTS] = pattern();

const fn pattern<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut i = 0;
    while i < N {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out[i] = (x >> 32) as u8;
        i += 1;
    }
    out
}
