//! Measuring for the report and writing it: `BENCHMARKS.md` at the workspace root and
//! its SVG plots (run `cargo run -p benches --release --bin report`).
//!
//! - [`timing`]: wall-time samples of several implementations, interleaved, on a budget;
//! - [`machine`]: what the numbers were measured on;
//! - [`plot`]: the SVG plots;
//! - [`markdown`]: the tables and the page.

pub mod machine;
pub mod markdown;
pub mod plot;
pub mod timing;

use crate::latency::Comparison;
use crate::transfer::Transfer;
use machine::Machine;
use timing::Measured;

/// The three implementations' measurements of one case, in the order ours, C, `kcp`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Trio {
    /// `kcp_core`.
    pub ours: Measured,
    /// `ikcp.c`.
    pub c: Measured,
    /// The `kcp` crate.
    pub kcp: Measured,
    /// Ours through its copying entry points, where measured.
    pub ours_copying: Option<Measured>,
}

impl Trio {
    /// How many times faster than C ours is (C's time / ours).
    pub fn ours_vs_c(&self) -> f64 {
        self.c.seconds_per_op / self.ours.seconds_per_op
    }

    /// How many times faster than C ours is through its copying API, if measured.
    pub fn ours_copying_vs_c(&self) -> Option<f64> {
        self.ours_copying
            .map(|m| self.c.seconds_per_op / m.seconds_per_op)
    }

    /// How many times faster than C the `kcp` crate is.
    pub fn kcp_vs_c(&self) -> f64 {
        self.c.seconds_per_op / self.kcp.seconds_per_op
    }
}

/// One cell of the throughput matrix; an operation is one whole transfer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThroughputCell {
    /// The scenario.
    pub transfer: Transfer,
    /// Time per transfer.
    pub time: Trio,
}

impl ThroughputCell {
    /// Payload bytes per second for a time per transfer.
    pub fn bytes_per_second(&self, m: Measured) -> f64 {
        self.transfer.payload_bytes() as f64 / m.seconds_per_op
    }

    /// Messages per second for a time per transfer.
    pub fn messages_per_second(&self, m: Measured) -> f64 {
        self.transfer.messages as f64 / m.seconds_per_op
    }
}

/// The cost of one operation.
#[derive(Clone, Debug, PartialEq)]
pub struct OpCost {
    /// What was timed.
    pub name: &'static str,
    /// Time per call.
    pub time: Trio,
}

/// Everything one report run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Results {
    /// Where.
    pub machine: Machine,
    /// Wall-time budget per throughput cell, in seconds.
    pub budget_per_cell: f64,
    /// Wall time the whole run took, in seconds.
    pub took: f64,
    /// The throughput matrix.
    pub throughput: Vec<ThroughputCell>,
    /// Per-operation costs.
    pub ops: Vec<OpCost>,
    /// `test.cpp`'s three modes, ours and C.
    pub reference: Vec<Comparison>,
    /// The loss sweep.
    pub sweep: Vec<Comparison>,
}
