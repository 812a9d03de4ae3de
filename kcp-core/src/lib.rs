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
//!   [`Kcp::silent_for`] tells how long the peer has said nothing (a game's timeout).
//! - [`Config`] holds every knob, with the reference's presets; [`ConfigBuilder`]
//!   writes one in a single expression. A live engine takes new settings too
//!   ([`Kcp::set_mtu`], [`Kcp::set_windows`], [`Kcp::set_nodelay`]).
//! - [`Transmit`] is a sink that lends the engine its memory, so
//!   [`Kcp::flush_into`] writes each datagram once, straight into a send batch.
//! - [`Timestamp`] and [`Sn`] are the wrapping 32-bit clock and sequence numbers.
//! - `sim` (feature `sim`) is a seeded lossy-link simulator on a virtual clock.
//! - [`large`] carries messages above the 127 fragments one KCP message may have
//!   ([`Kcp::MAX_FRAGMENTS`]), in chunks, when both ends use this crate (opt-in).
//!
//! The crate is `#![no_std]` (it needs `alloc`) and contains no `unsafe` code.
//!
//! # Security
//!
//! KCP has no authentication: any datagram with the right `conv` is processed, and
//! `conv`, `sn` and `una` are small, predictable numbers. `kcp-core` cannot tell a
//! forger from the peer; it refuses what **no peer of ours can have sent**, and
//! bounds what the rest can cost. What is enforced, per segment (a refused segment
//! changes nothing, the others of its datagram still apply; [`Stats`] counts each):
//!
//! - `una` beyond `snd_nxt` (it claims data we never sent was received):
//!   [`Stats::refused_una`]. ikcp would drop everything in flight, unacknowledged.
//! - An ACK of an `sn` never numbered: [`Stats::refused_ack`].
//! - An ACK whose echoed `ts` is after `now`, or outside the first and the latest
//!   transmission of its `sn` (kept, 8 bytes a number, for 4 × the send ring's
//!   capacity of numbers, so duplicate ACKs are checked too):
//!   [`Stats::refused_rtt_sample`]. So a forged `ts` cannot inflate the RTO, and an
//!   ACK of a segment in flight must echo the millisecond of one of its sends.
//!   An ACK of a number older than that history is applied without a sample
//!   ([`Stats::unverified_rtt_samples`]).
//! - A zero window that acknowledges none of our data (a real one always comes with
//!   the ACKs of the data that filled it) is probed at the next flush
//!   ([`Stats::unconfirmed_zero_windows`]): a forged `wnd = 0` costs one round trip.
//! - Data must lie in `[rcv_nxt, rcv_nxt + rcv_wnd)` as it stood before the
//!   datagram, so one datagram moves `rcv_nxt` by at most `rcv_wnd` and holds nothing
//!   beyond; the receive side never holds more than `2 × rcv_wnd` segments, the ack
//!   list is bounded, and [`InputError`] rejects malformed datagrams whole.
//!
//! What raw KCP cannot defend against (only an authenticated protocol can): anyone
//! who sees the traffic, or guesses `conv` and a current `sn`, can inject data in the
//! receive window (the peer's real segments with those numbers are then discarded as
//! duplicates), acknowledge data the peer never received (a `una` or `sn` within
//! `[snd_una, snd_nxt)` with a plausible `ts`, so that data is lost), advertise a
//! false window (a zero one is re-asked at once, a large one only lets the sender
//! send up to its own windows), and replay old datagrams. A valid `sn` within the
//! window is not hard to guess: numbers start at [`Config::initial_sn`] and count up.
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
pub mod large;
mod probe;
mod recv;
mod ring;
mod rtt;
pub mod segment;
mod seq;
mod setters;
mod stats;
mod time;
mod transmit;

#[cfg(feature = "sim")]
pub mod sim;

pub use config::{Config, ConfigBuilder, NoDelay};
pub use engine::{Kcp, PollAt};
pub use error::{ConfigError, InputError, RecvError, SendError};
pub use segment::conv_of;
pub use seq::Sn;
pub use stats::Stats;
pub use time::Timestamp;
pub use transmit::Transmit;
