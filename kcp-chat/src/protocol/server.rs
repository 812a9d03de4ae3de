//! Frames the server sends.

use serde::{Deserialize, Serialize};

use super::ErrorCode;

/// A room as listed by the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    /// Room name.
    pub name: String,
    /// Users in it now.
    pub users: u32,
}

/// Whether a chat message was said or acted (`/me`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MessageKind {
    /// Said: shown as `<nick> text`.
    Say,
    /// Acted: shown as `* nick text`.
    Me,
}

/// Why someone left a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LeaveReason {
    /// They left the room (`/leave`).
    Left,
    /// They quit (`/quit`, or their client closed).
    Quit,
    /// Their session ended without a quit: timeout or dead link.
    Lost,
    /// The server disconnected them for abuse.
    Kicked,
    /// They reconnected; the old session was dropped (they rejoin right after).
    Reconnected,
    /// The cluster node they were on stopped answering (its presence expired in
    /// Redis); another node announced it. Only a cluster sends it.
    NodeLost,
}

/// One message from the server to a client.
///
/// Variant order is part of the wire format: append, never reorder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The answer to a good hello.
    Welcome {
        /// The server's protocol version.
        version: u16,
        /// Our user id (unique for the server's lifetime).
        id: u64,
        /// Our nick.
        nick: String,
        /// A secret for [`Hello::resume`](super::ClientFrame::Hello) after a reconnect.
        token: u64,
        /// The rooms that exist now.
        rooms: Vec<RoomInfo>,
    },
    /// Someone (maybe us) joined a room we are in.
    Joined {
        /// Room name.
        room: String,
        /// Their nick.
        nick: String,
    },
    /// Someone (maybe us) left a room we are in.
    Left {
        /// Room name.
        room: String,
        /// Their nick.
        nick: String,
        /// Why.
        reason: LeaveReason,
    },
    /// A chat message in a room we are in.
    Message {
        /// Room name.
        room: String,
        /// The sender's nick at the time.
        from: String,
        /// What was said.
        text: String,
        /// Said or acted.
        kind: MessageKind,
        /// Server time, milliseconds since the Unix epoch.
        ts_ms: u64,
        /// The room's message counter: consecutive, starting at 1.
        seq: u64,
        /// Replayed from the room's history on join, not said just now.
        history: bool,
    },
    /// Someone in one of our rooms (maybe us) changed nick.
    NickChanged {
        /// The old nick.
        old: String,
        /// The new nick.
        new: String,
    },
    /// A frame of ours was refused.
    Error {
        /// What kind of refusal.
        code: ErrorCode,
        /// A human-readable explanation.
        text: String,
    },
    /// The answer to [`ListRooms`](super::ClientFrame::ListRooms).
    Rooms {
        /// Every room, by name.
        rooms: Vec<RoomInfo>,
    },
    /// The answer to [`ListUsers`](super::ClientFrame::ListUsers).
    Users {
        /// Room name.
        room: String,
        /// Nicks in it, sorted.
        nicks: Vec<String>,
    },
    /// The answer to a [`Ping`](super::ClientFrame::Ping).
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// The server is shutting down; the session will close.
    Shutdown {
        /// Why, for humans.
        text: String,
    },
}
