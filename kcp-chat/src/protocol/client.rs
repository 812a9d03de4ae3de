//! Frames a client sends.

use serde::{Deserialize, Serialize};

/// One message from a client to the server.
///
/// Variant order is part of the wire format: append, never reorder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// The first frame of a conversation: who we are and which protocol we speak.
    Hello {
        /// Must equal the server's [`PROTOCOL_VERSION`](super::PROTOCOL_VERSION).
        version: u16,
        /// The nick we want; it must be free.
        nick: String,
        /// The token of an earlier [`Welcome`](super::ServerFrame::Welcome) (after a
        /// reconnect): the server drops that old session and gives us its nick.
        resume: Option<u64>,
    },
    /// Join a room, creating it if needed.
    Join {
        /// Room name.
        room: String,
    },
    /// Leave a room.
    Leave {
        /// Room name.
        room: String,
    },
    /// Say something in a room we are in.
    Say {
        /// Room name.
        room: String,
        /// What we say.
        text: String,
    },
    /// An action (`/me waves`) in a room we are in.
    Me {
        /// Room name.
        room: String,
        /// The action, without our nick.
        text: String,
    },
    /// Change our nick.
    Nick {
        /// The new nick; it must be free.
        nick: String,
    },
    /// Ask for the list of rooms.
    ListRooms,
    /// Ask for the nicks in a room.
    ListUsers {
        /// Room name.
        room: String,
    },
    /// Ask for a [`Pong`](super::ServerFrame::Pong) with the same nonce.
    Ping {
        /// Echoed back.
        nonce: u64,
    },
    /// We are leaving; the server tells our rooms and closes the session.
    Quit {
        /// Shown to the others (may be empty).
        reason: String,
    },
}

impl ClientFrame {
    /// A hello for `nick` with this crate's protocol version.
    pub fn hello(nick: impl Into<String>) -> Self {
        Self::Hello {
            version: super::PROTOCOL_VERSION,
            nick: nick.into(),
            resume: None,
        }
    }
}
