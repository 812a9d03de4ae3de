//! Benchmarks of `kcp-core` against the implementations users would pick instead: the
//! C reference `ikcp.c` (through `kcp-ref`/`kcp-sys`) and the `kcp` crate, in the same
//! run. This machine is shared and noisy, so the results are **ratios**; absolute
//! numbers are not.
//!
//! The library holds what the criterion benches (`benches/`), the report binary
//! (`src/bin/report.rs`, which writes `BENCHMARKS.md`) and the tests share:
//!
//! - [`engine`]: the [`Engine`](engine::Engine) trait and one adapter per
//!   implementation;
//! - [`transfer`]: the throughput scenario (a lossy simulated link, virtual clock,
//!   byte-checked delivery);
//! - [`micro`]: fixtures for the per-operation benches;
//! - [`latency`]: the C reference's own latency scenario on many seeds, and a loss
//!   sweep against a TCP-like configuration (virtual time, so exact);
//! - [`report`]: measuring ratios on a wall-time budget and writing the report.
//!
//! Nothing here reads a wall clock except [`report::timing`].

pub mod engine;
pub mod latency;
pub mod micro;
pub mod report;
pub mod transfer;
