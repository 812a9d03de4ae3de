//! The latency group: the C reference's own test (`shared/reference-scenario.md`, run
//! by [`kcp_core::sim::reference::run`]) for ours and for `ikcp.c` on the same seeds,
//! and the same scenario swept over loss rates with a TCP-like configuration beside
//! KCP's presets.
//!
//! Time is virtual, so every number here is exact and the same on every machine: this
//! group measures protocol behaviour, not speed. Ours and C are expected to give
//! identical round-trip times on every seed; [`Comparison::identical`] records whether
//! they did.

use kcp_core::sim::reference::{self, ReferenceError, ReferenceMode, ReferenceResult};
use kcp_core::{Config, Kcp, NoDelay};
use kcp_ref::CKcp;

/// Seeds each configuration runs on.
pub const SEEDS: u64 = 20;

/// `test.cpp`'s conversation id.
const CONV: u32 = 0x1122_3344;

/// The endpoints' clock at the start: just below the wrap, so every run crosses it.
const CLOCK_START: u32 = u32::MAX - 5_000;

/// Loss rates (per direction, per 100 datagrams) of the sweep.
pub const SWEEP_LOSS: [u8; 7] = [0, 5, 10, 15, 20, 25, 30];

/// A configuration of both endpoints in the scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Setup {
    /// One of `test.cpp`'s three modes.
    Reference(ReferenceMode),
    /// What TCP would do, roughly: the reference's default preset (100 ms interval,
    /// congestion window on), RTO doubling on every timeout, no fast retransmit;
    /// windows 128/128 as in the scenario.
    TcpLike,
}

impl Setup {
    /// Every setup, KCP's modes first.
    pub const ALL: [Self; 4] = [
        Self::Reference(ReferenceMode::Default),
        Self::Reference(ReferenceMode::Normal),
        Self::Reference(ReferenceMode::Fast),
        Self::TcpLike,
    ];

    /// Name for tables and plots.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Reference(mode) => mode.name(),
            Self::TcpLike => "TCP-like",
        }
    }

    /// Our engine for endpoint 1 (`first`) or 2.
    pub fn ours(self, first: bool) -> Kcp {
        let mut config = match self {
            Self::Reference(mode) => mode.config(first),
            Self::TcpLike => {
                let mut c = Config::default();
                c.snd_wnd = 128;
                c.rcv_wnd = 128;
                debug_assert_eq!((c.nodelay, c.fast_resend), (NoDelay::Off, 0));
                c
            }
        };
        // ikcp does not cap a segment's RTO; to compare like with like, neither do we.
        config.max_rto = Config::MAX_RTO_LIMIT;
        Kcp::new(CONV, config).expect("the scenario's settings are valid")
    }

    /// The C engine for endpoint 1 (`first`) or 2.
    pub fn c(self, first: bool) -> CKcp {
        match self {
            Self::Reference(mode) => CKcp::for_reference_scenario(CONV, mode, first),
            Self::TcpLike => {
                let mut k = CKcp::new(CONV);
                k.wndsize(128, 128);
                k
            }
        }
    }
}

/// One run of the scenario.
pub type Outcome = Result<ReferenceResult, ReferenceError>;

/// Runs the scenario once with our engine on both ends.
pub fn run_ours(setup: Setup, lost_per_100: u8, seed: u64) -> Outcome {
    reference::run(
        &mut setup.ours(true),
        &mut setup.ours(false),
        lost_per_100,
        seed,
        CLOCK_START,
    )
}

/// Runs the scenario once with the C engine on both ends.
pub fn run_c(setup: Setup, lost_per_100: u8, seed: u64) -> Outcome {
    reference::run(
        &mut setup.c(true),
        &mut setup.c(false),
        lost_per_100,
        seed,
        CLOCK_START,
    )
}

/// Round-trip times of one setup at one loss rate over [`SEEDS`] seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Runs that finished.
    pub finished: u32,
    /// Runs that did not finish within the scenario's 10 virtual minutes.
    pub stalled: u32,
    /// Mean over seeds of each run's average RTT (ms).
    pub avg_rtt: f64,
    /// Mean over seeds of each run's maximum RTT (ms).
    pub max_rtt_mean: f64,
    /// The largest RTT of any run (ms).
    pub max_rtt: u32,
    /// 99th percentile of all messages' RTTs, all seeds pooled (ms).
    pub p99: u32,
    /// Mean datagrams endpoint 1 sent per run.
    pub tx: f64,
}

impl Summary {
    /// Summarises runs; `None` if none finished.
    pub fn of(outcomes: &[Outcome]) -> Option<Self> {
        let done: Vec<&ReferenceResult> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
        if done.is_empty() {
            return None;
        }
        let n = done.len() as f64;
        let mut pooled: Vec<u32> = done.iter().flat_map(|r| r.rtts.iter().copied()).collect();
        pooled.sort_unstable();
        let p99 = pooled[(pooled.len() * 99 / 100).min(pooled.len() - 1)];
        Some(Self {
            finished: done.len() as u32,
            stalled: (outcomes.len() - done.len()) as u32,
            avg_rtt: done.iter().map(|r| f64::from(r.avg_rtt)).sum::<f64>() / n,
            max_rtt_mean: done.iter().map(|r| f64::from(r.max_rtt)).sum::<f64>() / n,
            max_rtt: done.iter().map(|r| r.max_rtt).max().unwrap_or(0),
            p99,
            tx: done.iter().map(|r| r.tx as f64).sum::<f64>() / n,
        })
    }
}

/// Ours and C on the same seeds, for one setup and loss rate.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// The setup.
    pub setup: Setup,
    /// Loss per direction, per 100 datagrams.
    pub lost_per_100: u8,
    /// Our engine; `None` if no seed finished.
    pub ours: Option<Summary>,
    /// The C engine; `None` if no seed finished.
    pub c: Option<Summary>,
    /// Every seed gave both engines the same outcome, message by message.
    pub identical: bool,
}

/// Runs `setup` at `lost_per_100` on [`SEEDS`] seeds for both engines.
pub fn compare(setup: Setup, lost_per_100: u8) -> Comparison {
    let ours: Vec<Outcome> = (0..SEEDS)
        .map(|s| run_ours(setup, lost_per_100, s))
        .collect();
    let c: Vec<Outcome> = (0..SEEDS).map(|s| run_c(setup, lost_per_100, s)).collect();
    Comparison {
        setup,
        lost_per_100,
        identical: ours == c,
        ours: Summary::of(&ours),
        c: Summary::of(&c),
    }
}

/// `test.cpp` itself: each of its three modes at 5% loss per direction.
pub fn reference_table() -> Vec<Comparison> {
    ReferenceMode::ALL
        .into_iter()
        .map(|mode| compare(Setup::Reference(mode), 5))
        .collect()
}

/// Every setup at every loss rate of [`SWEEP_LOSS`].
pub fn loss_sweep() -> Vec<Comparison> {
    SWEEP_LOSS
        .into_iter()
        .flat_map(|loss| Setup::ALL.into_iter().map(move |s| compare(s, loss)))
        .collect()
}
