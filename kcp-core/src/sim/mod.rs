//! A seeded, deterministic lossy-link simulator on a virtual clock (feature `sim`).
//!
//! - [`Link`]: one direction of a path, with loss (independent, bursty
//!   Gilbert–Elliott, or the C reference test's bag sampler), delay and jitter,
//!   reordering, duplication, a rate limit with a bounded queue, and an MTU.
//! - [`Pair`]: two [`Endpoint`]s (our [`Kcp`](crate::Kcp), or an adapter around
//!   another implementation) joined by two links, stepped 1 ms at a time, recording
//!   every message with its virtual send and arrival time.
//! - [`reference`](mod@reference): the C reference's own latency test, reproduced exactly.
//!
//! Randomness comes from an in-crate xoshiro256++ seeded with a `u64`, so a seed gives
//! the same run on every machine, whatever the dependencies' versions. Nothing reads a
//! wall clock or sleeps.
//!
//! # Example
//!
//! ```
//! use kcp_core::sim::{LinkConfig, Pair, Side};
//! use kcp_core::{Config, Kcp};
//!
//! let link = LinkConfig::lossy(0.10, 20, 10); // 10% loss, 20-30 ms one way
//! let mut pair = Pair::new(
//!     Kcp::new(1, Config::fast()).unwrap(),
//!     Kcp::new(1, Config::fast()).unwrap(),
//!     link.clone(),
//!     link,
//!     42, // seed
//! );
//! for i in 0..100u32 {
//!     pair.schedule_send(u64::from(i) * 10, Side::A, i.to_le_bytes().to_vec());
//! }
//! pair.run_until(60_000, |p| p.received(Side::B).len() == 100).unwrap();
//! let got = pair.received(Side::B);
//! assert!(got.iter().enumerate().all(|(i, m)| m.data[..] == (i as u32).to_le_bytes()));
//! let worst = got.iter().filter_map(|m| m.latency()).max().unwrap();
//! assert!(worst >= 20);
//! ```

mod arena;
mod endpoint;
mod link;
mod loss;
mod pair;
pub mod reference;
mod rng;

pub use endpoint::Endpoint;
pub use link::{Delivery, Link, LinkConfig, LinkStats, LinkTransmit};
pub use loss::LossModel;
pub use pair::{Pair, Received, Side, Stalled};

/// Virtual time in milliseconds since a simulation started.
pub type SimTime = u64;
