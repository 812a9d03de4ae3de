//! Chat over KCP: the protocol, a server, a line-based client, a scripted demo and a
//! load generator, all behind the `kcp-chat` binary.
//!
//! This crate is the end-to-end proof of the workspace: chat frames are KCP messages
//! carried by [`kcp_net`] over UDP, optionally through the link simulator of
//! [`kcp_core::sim`](kcp_net::kcp_core) (`--impair`), and the demo and bench check
//! that every message arrives exactly once.
//!
//! - [`protocol`]: the frames ([`ClientFrame`](protocol::ClientFrame),
//!   [`ServerFrame`](protocol::ServerFrame)) and their `postcard` encoding.
//! - [`room`]: users, nicks, rooms and history as pure logic.
//! - [`server`]: [`ChatServer`](server::ChatServer), the `kcp-net` handler;
//!   [`cluster`]: nodes of one chat joined through Redis.
//! - [`client`]: [`ChatClient`](client::ChatClient) on a `KcpClient`;
//!   [`interactive`] the line-based client around it ([`command`] parses lines,
//!   [`render`] shows frames).
//! - [`demo`] and [`bench`](mod@bench): the scripted demo and the load generator.
//!
//! # Example: a frame on the wire
//!
//! ```
//! use kcp_chat::protocol::{ClientFrame, PROTOCOL_VERSION, decode_client, encode};
//!
//! let hello = ClientFrame::hello("alice");
//! let bytes = encode(&hello).unwrap(); // one KCP message
//! assert_eq!(&bytes[..], &[0, PROTOCOL_VERSION as u8, 5, b'a', b'l', b'i', b'c', b'e', 0]);
//! assert_eq!(decode_client(&bytes).unwrap(), hello);
//! assert!(decode_client(&bytes[..4]).is_err());
//! ```
//!
//! # Example: a server and a client on loopback
//!
//! ```
//! use std::time::Duration;
//! use kcp_chat::client::ChatClient;
//! use kcp_chat::protocol::ServerFrame;
//! use kcp_chat::server::{ChatServer, ChatServerConfig};
//! use kcp_net::{ClientConfig, Preset};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = ChatServer::bind("127.0.0.1:0".parse()?, ChatServerConfig::new(Preset::Fast))?;
//! let mut alice = ChatClient::connect(server.local_addr(), "alice", ClientConfig::new(Preset::Fast))?;
//! alice.join("lobby")?;
//! alice.say("lobby", "hello")?;
//! let mut seen = Vec::new();
//! while let Some(frame) = alice.recv(Duration::from_secs(5))? {
//!     let done = matches!(&frame, ServerFrame::Message { text, .. } if text == "hello");
//!     seen.push(frame);
//!     if done { break; }
//! }
//! assert!(matches!(seen[0], ServerFrame::Welcome { .. }));
//! assert!(matches!(&seen[1], ServerFrame::Joined { nick, .. } if nick == "alice"));
//! server.shutdown("bye", Duration::from_millis(100))?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]
#![doc(test(attr(deny(warnings))))]

pub mod bench;
pub mod client;
pub mod cluster;
pub mod command;
pub mod demo;
pub mod endpoint;
pub mod engine;
pub mod impair_spec;
pub mod interactive;
pub mod latency;
pub mod protocol;
pub mod rate;
pub mod render;
pub mod room;
mod serde_text;
pub mod server;
pub mod trust;
