//! The chat protocol: one frame per KCP message, encoded with `postcard`.
//!
//! A client opens with [`ClientFrame::Hello`], which carries [`PROTOCOL_VERSION`]; the
//! server answers [`ServerFrame::Welcome`] or an [`ServerFrame::Error`] with
//! [`ErrorCode::WrongVersion`]. After that either side may send any frame of its kind.
//!
//! # Wire format
//!
//! Each frame is the `postcard` encoding of a [`ClientFrame`] or [`ServerFrame`]: a
//! varint variant index, then the fields in order (strings as a varint length and
//! UTF-8 bytes, integers as varints). `Hello` is variant 0 and its first field is the
//! version, so a server can read the version of a hello whose other fields it does not
//! understand ([`peek_hello_version`]); new variants are only ever appended.

mod client;
mod codec;
mod error_code;
mod server;

pub use client::ClientFrame;
pub use codec::{CodecError, decode_client, decode_server, encode, peek_hello_version};
pub use error_code::ErrorCode;
pub use server::{LeaveReason, MessageKind, RoomInfo, ServerFrame};

/// The protocol version this crate speaks. A hello with another version is refused.
pub const PROTOCOL_VERSION: u16 = 1;

/// The room every user is offered and that always exists.
pub const LOBBY: &str = "lobby";
