//! Why the server refused a frame.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What an [`Error`](super::ServerFrame::Error) frame is about.
///
/// Codes marked *abuse* count as strikes against the client: a few of them within a
/// short window and the server disconnects it (after a [`Kicked`](Self::Kicked) error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame did not decode (*abuse*).
    BadFrame,
    /// The hello's protocol version is not ours; the session is closed.
    WrongVersion,
    /// A frame other than hello before the hello, or a second hello (*abuse*).
    NotWelcomed,
    /// The nick is held by someone else.
    NickTaken,
    /// The nick is empty, too long or has spaces or control characters.
    BadNick,
    /// The room name is empty, too long or has characters other than letters, digits,
    /// `-`, `_` and `.`.
    BadRoom,
    /// The message is longer than the server's limit (*abuse*).
    TooLong,
    /// Frames sent faster than the server's rate limit; this one was dropped (*abuse*).
    RateLimited,
    /// The room named is not one we are in.
    NotInRoom,
    /// Already in that room.
    AlreadyInRoom,
    /// The server has as many rooms (or we have as many rooms) as it allows.
    TooManyRooms,
    /// The server has as many users as it allows; the session is closed.
    ServerFull,
    /// Too many abuse strikes: the session is closed.
    Kicked,
    /// A cluster node cannot reach Redis (or its buffer for the outage is full): the
    /// frame was not carried out; try again later. Only a cluster sends it.
    Unavailable,
    /// The server is at capacity (its event loop is behind): the hello was refused and
    /// the session is closed; the text says when to try again.
    ServerBusy,
}

impl ErrorCode {
    /// Whether this error counts as a strike against the client.
    pub const fn is_abuse(self) -> bool {
        matches!(
            self,
            Self::BadFrame | Self::NotWelcomed | Self::TooLong | Self::RateLimited
        )
    }

    /// A short stable name (`nick-taken`), for logs and the client display.
    pub const fn name(self) -> &'static str {
        match self {
            Self::BadFrame => "bad-frame",
            Self::WrongVersion => "wrong-version",
            Self::NotWelcomed => "not-welcomed",
            Self::NickTaken => "nick-taken",
            Self::BadNick => "bad-nick",
            Self::BadRoom => "bad-room",
            Self::TooLong => "too-long",
            Self::RateLimited => "rate-limited",
            Self::NotInRoom => "not-in-room",
            Self::AlreadyInRoom => "already-in-room",
            Self::TooManyRooms => "too-many-rooms",
            Self::ServerFull => "server-full",
            Self::Kicked => "kicked",
            Self::Unavailable => "unavailable",
            Self::ServerBusy => "server-busy",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
