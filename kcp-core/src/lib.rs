//! The KCP ARQ protocol engine, sans-IO.
//!
//! `kcp-core` turns an unreliable datagram link into a reliable, ordered stream of
//! messages, speaking the wire format of the C reference `ikcp.c` (v1.7.1): with the
//! same calls at the same times it emits the same datagrams, byte for byte.
//!
//! It is **not** a network library: it owns no socket, reads no clock, starts no
//! thread and never blocks. The host hands it datagrams and the time, and receives the
//! datagrams to send through a sink borrowed for one call. That makes it deterministic
//! and cheap to embed in a game loop, a server's event loop or a test.
//!
//! - [`Kcp`] is one conversation; its doc lists the calling contract.
//! - [`Config`] holds every knob, with the reference's presets.
//! - [`Transmit`] is a sink that lends the engine its memory, so
//!   [`Kcp::flush_into`] writes each datagram once, straight into a send batch.
//! - [`Timestamp`] and [`Sn`] are the wrapping 32-bit clock and sequence numbers.
//! - `sim` (feature `sim`) is a seeded lossy-link simulator on a virtual clock.
//!
//! The crate is `#![no_std]` (it needs `alloc`) and contains no `unsafe` code.
//!
//! # Example
//!
//! Two engines over an in-memory link that loses every third datagram:
//!
//! ```
//! use core::convert::Infallible;
//! use kcp_core::{Config, Kcp, PollAt, Timestamp};
//!
//! let mut alice = Kcp::new(0x1234, Config::fast()).unwrap();
//! let mut bob = Kcp::new(0x1234, Config::fast()).unwrap();
//! for i in 0..20u8 {
//!     alice.send(&[i; 100]).unwrap();
//! }
//!
//! let (mut to_bob, mut to_alice) = (Vec::new(), Vec::new());
//! let mut sent = 0u32;
//! let mut received = Vec::new();
//! let mut now = Timestamp::from_millis(u32::MAX - 500); // the clock may wrap
//! for _ in 0..500 {
//!     alice.update(now, |d| {
//!         to_bob.push(d.to_vec());
//!         Ok::<_, Infallible>(())
//!     }).unwrap();
//!     bob.update(now, |d| {
//!         to_alice.push(d.to_vec());
//!         Ok::<_, Infallible>(())
//!     }).unwrap();
//!     for d in to_bob.drain(..) {
//!         sent += 1;
//!         if sent % 3 != 0 {
//!             bob.input(now, &d).unwrap();
//!         }
//!     }
//!     for d in to_alice.drain(..) {
//!         alice.input(now, &d).unwrap();
//!     }
//!     while let Some(message) = bob.recv() {
//!         received.push(message);
//!     }
//!     now = now.add_millis(10);
//! }
//! assert_eq!(received.len(), 20);
//! assert!(received.iter().enumerate().all(|(i, m)| m.as_ref() == [i as u8; 100]));
//! assert_eq!(alice.check(now), PollAt::Idle); // everything acknowledged
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod ack;
mod config;
mod congestion;
mod engine;
mod error;
mod flight;
mod history;
mod probe;
mod recv;
mod ring;
mod rtt;
pub mod segment;
mod seq;
mod stats;
mod time;
mod transmit;

#[cfg(feature = "sim")]
pub mod sim;

pub use config::{Config, NoDelay};
pub use engine::{Kcp, PollAt};
pub use error::{ConfigError, InputError, RecvError, SendError};
pub use segment::conv_of;
pub use seq::Sn;
pub use stats::Stats;
pub use time::Timestamp;
pub use transmit::Transmit;
