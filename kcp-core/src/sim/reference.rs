//! The C reference's own latency test (`test.cpp`), reproduced on a virtual clock.
//!
//! `shared/reference-scenario.md` describes it exactly: two endpoints joined by FIFO
//! tunnels with 30–61 ms one-way delay and bag-sampled 5% loss per direction; every
//! 20 ms endpoint 1 sends an 8-byte `[index, time]` message, endpoint 2 echoes
//! everything back, endpoint 1 measures the round trip; the run ends after 1001
//! echoes.

use alloc::vec::Vec;

use super::SimTime;
use super::endpoint::Endpoint;
use super::link::{Link, LinkConfig};
use crate::{Config, NoDelay, Timestamp};

/// The three settings `test.cpp` runs, all with windows 128/128 and a 10 ms interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReferenceMode {
    /// `ikcp_nodelay(0, 10, 0, 0)`: RTO doubling, congestion window on.
    Default,
    /// `ikcp_nodelay(0, 10, 0, 1)`: as default, congestion window off.
    Normal,
    /// `ikcp_nodelay(2, 10, 2, 1)`, plus on endpoint 1 only `rx_minrto = 10` and
    /// `fastresend = 1`.
    Fast,
}

impl ReferenceMode {
    /// All three, in `test.cpp`'s order.
    pub const ALL: [Self; 3] = [Self::Default, Self::Normal, Self::Fast];

    /// Our engine's configuration for endpoint 1 (`first`) or 2 in this mode.
    pub fn config(self, first: bool) -> Config {
        let base = Config {
            snd_wnd: 128,
            rcv_wnd: 128,
            ..Config::default()
        };
        match self {
            Self::Default => base.with_nodelay(NoDelay::Off, 10, 0, false),
            Self::Normal => base.with_nodelay(NoDelay::Off, 10, 0, true),
            Self::Fast => {
                let mut c = base.with_nodelay(NoDelay::Linear, 10, 2, true);
                if first {
                    c.min_rto = 10;
                    c.fast_resend = 1;
                }
                c
            }
        }
    }

    /// The mode's name as `test.cpp` prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Normal => "normal",
            Self::Fast => "fast",
        }
    }
}

/// What one run of the scenario measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferenceResult {
    /// Virtual duration of the run in ms.
    pub elapsed_ms: SimTime,
    /// Integer mean round-trip time in ms (`sumrtt / count`).
    pub avg_rtt: u32,
    /// Largest round-trip time in ms.
    pub max_rtt: u32,
    /// Datagrams endpoint 1 handed to its tunnel, lost ones included.
    pub tx: u64,
    /// Every message's round-trip time, in order.
    pub rtts: Vec<u32>,
}

/// The scenario failed: an echo arrived out of order, or it did not finish.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// Echo `got` arrived when `expected` was next.
    #[error("echo {got} arrived when {expected} was expected")]
    OutOfOrder {
        /// The index expected next.
        expected: u32,
        /// The index that arrived.
        got: u32,
    },
    /// Not all 1001 echoes came back within the step budget.
    #[error("only {echoes} echoes after {elapsed_ms} virtual ms")]
    Stalled {
        /// Echoes received.
        echoes: u32,
        /// Virtual time reached.
        elapsed_ms: SimTime,
    },
}

/// Messages the scenario waits for: `test.cpp` stops once more than 1000 came back.
pub const MESSAGES: u32 = 1001;

/// Runs the scenario with endpoint 1 = `kcp1`, endpoint 2 = `kcp2`, each direction's
/// loss `lost_per_100` (5 in `test.cpp`), randomness from `seed`, and the endpoints'
/// clock starting at `clock_start`.
///
/// # Errors
/// [`ReferenceError`] if an echo arrives out of order or the run exceeds 10 minutes
/// of virtual time.
pub fn run<E1: Endpoint, E2: Endpoint>(
    kcp1: &mut E1,
    kcp2: &mut E2,
    lost_per_100: u8,
    seed: u64,
    clock_start: u32,
) -> Result<ReferenceResult, ReferenceError> {
    const BUDGET_MS: SimTime = 600_000;
    let mut to2 = Link::new(LinkConfig::reference(lost_per_100), seed);
    let mut to1 = Link::new(LinkConfig::reference(lost_per_100), seed.wrapping_add(1));
    let clock = |t: SimTime| Timestamp::from_millis(clock_start.wrapping_add(t as u32));

    let mut t: SimTime = 0;
    let mut next_send: SimTime = 20;
    let (mut index, mut next) = (0u32, 0u32);
    let (mut sum, mut max) = (0u64, 0u32);
    let mut rtts = Vec::with_capacity(MESSAGES as usize);
    let mut scratch = Vec::new();
    while next < MESSAGES {
        if t >= BUDGET_MS {
            return Err(ReferenceError::Stalled {
                echoes: next,
                elapsed_ms: t,
            });
        }
        // 1. sleep 1 ms, update both; datagrams enter the tunnels stamped now.
        t += 1;
        let now = clock(t);
        kcp1.update(now, &mut |d| to2.push(t, d));
        kcp2.update(now, &mut |d| to1.push(t, d));
        // 2. every 20 ms endpoint 1 sends [index, now] (catching up if late).
        while t >= next_send {
            let mut message = [0u8; 8];
            message[..4].copy_from_slice(&index.to_le_bytes());
            message[4..].copy_from_slice(&now.as_millis().to_le_bytes());
            kcp1.send(&message);
            index += 1;
            next_send += 20;
        }
        // 3. deliver 1 -> 2, then 2 -> 1.
        scratch.clear();
        while let Some(d) = to2.pop_ready(t) {
            scratch.push(d);
        }
        for d in &scratch {
            kcp2.input(now, d);
        }
        scratch.clear();
        while let Some(d) = to1.pop_ready(t) {
            scratch.push(d);
        }
        for d in &scratch {
            kcp1.input(now, d);
        }
        // 4. endpoint 2 echoes everything.
        while let Some(m) = kcp2.recv() {
            kcp2.send(&m);
        }
        // 5. endpoint 1 measures.
        while let Some(m) = kcp1.recv() {
            let field = |i: usize| {
                m.get(i..i + 4)
                    .map_or(u32::MAX, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            };
            let (sn, ts) = (field(0), field(4));
            if sn != next {
                return Err(ReferenceError::OutOfOrder {
                    expected: next,
                    got: sn,
                });
            }
            let rtt = now.as_millis().wrapping_sub(ts);
            next += 1;
            sum += u64::from(rtt);
            max = max.max(rtt);
            rtts.push(rtt);
        }
    }
    Ok(ReferenceResult {
        elapsed_ms: t,
        avg_rtt: (sum / u64::from(next)) as u32,
        max_rtt: max,
        tx: to2.stats().offered,
        rtts,
    })
}
