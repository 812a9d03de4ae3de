//! The secure mode's datagrams, byte by byte (`docs/secure-protocol.md` is the
//! prose): their kinds, lengths and field offsets, and the inner kinds of a
//! transport datagram. Every integer is little-endian.

/// The protocol version this build speaks.
pub const VERSION: u8 = 2;

/// The first byte of every secure datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Initiation = 1,
    Response = 2,
    CookieReply = 3,
    Reject = 4,
    Transport = 5,
}

impl Kind {
    pub(crate) fn of(datagram: &[u8]) -> Option<Self> {
        Some(match *datagram.first()? {
            1 => Self::Initiation,
            2 => Self::Response,
            3 => Self::CookieReply,
            4 => Self::Reject,
            5 => Self::Transport,
            _ => return None,
        })
    }
}

/// The client's first datagram, padded to this length so that the server may answer
/// it (and a retry) within three times what it received, as QUIC pads its Initial.
pub const INITIATION_LEN: usize = 1200;

/// Initiation: `kind, version, 0, 0, sender index (4), Noise message 1, zero padding,
/// mac1 (16), mac2 (16)`.
pub(crate) mod initiation {
    use super::INITIATION_LEN;
    pub(crate) const VERSION: usize = 1;
    pub(crate) const SENDER: usize = 4;
    pub(crate) const NOISE: usize = 8;
    /// The sealed payload of Noise message 1: the conv (4), then the ciphers the
    /// client offers (2 bytes, its preference first).
    pub(crate) const PAYLOAD_LEN: usize = 4 + 2;
    /// Noise message 1 of NK: `e` (32), then the sealed payload and its tag (16).
    pub(crate) const NOISE_LEN: usize = 32 + PAYLOAD_LEN + 16;
    pub(crate) const MAC1: usize = INITIATION_LEN - 32;
    pub(crate) const MAC2: usize = INITIATION_LEN - 16;
}

/// Response: `kind, version, 0, 0, sender index (4), receiver index (4), Noise
/// message 2 (49)`.
pub(crate) mod response {
    pub(crate) const SENDER: usize = 4;
    pub(crate) const RECEIVER: usize = 8;
    pub(crate) const NOISE: usize = 12;
    /// `e` (32), the sealed payload (the cipher the server chose, 1) and its tag
    /// (16).
    pub(crate) const NOISE_LEN: usize = 32 + 1 + 16;
    pub(crate) const LEN: usize = NOISE + NOISE_LEN;
}

/// Cookie reply: `kind, 0, 0, 0, receiver index (4), nonce (24), sealed cookie (32)`.
pub(crate) mod cookie_reply {
    pub(crate) const RECEIVER: usize = 4;
    pub(crate) const NONCE: usize = 8;
    pub(crate) const COOKIE: usize = 32;
    pub(crate) const LEN: usize = COOKIE + 16 + 16;
}

/// Reject: `kind, the server's version, reason, 0, receiver index (4)`, and for a
/// wrong key the server's public key (32), so that a client can show it or trust it
/// on first use. Not authenticated: a client only believes one that names its own
/// sender index.
pub(crate) mod reject {
    pub(crate) const VERSION: usize = 1;
    pub(crate) const REASON: usize = 2;
    pub(crate) const RECEIVER: usize = 4;
    pub(crate) const LEN: usize = 8;
    pub(crate) const WITH_KEY_LEN: usize = LEN + 32;
}

/// Why a server refused a handshake (the reason byte of a reject).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum RejectReason {
    /// The server speaks another version (in the reject's version byte).
    Version = 1,
    /// mac1 did not verify: the client has another public key for this server.
    WrongKey = 2,
    /// The Noise message did not decrypt although mac1 verified: the pre-shared keys
    /// differ (or one side has none).
    HandshakeFailed = 3,
    /// The server is at its session limit.
    Full = 4,
}

impl RejectReason {
    pub(crate) const fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Version,
            2 => Self::WrongKey,
            3 => Self::HandshakeFailed,
            4 => Self::Full,
            _ => return None,
        })
    }
}

/// Transport header: `kind, key epoch, receiver index (4), counter (8)`; the sealed
/// inner kind and payload follow, then the tag. The header is the AEAD's
/// associated data.
pub(crate) mod transport {
    pub(crate) const EPOCH: usize = 1;
    pub(crate) const RECEIVER: usize = 2;
    pub(crate) const COUNTER: usize = 6;
    pub(crate) const HEADER_LEN: usize = 14;
}

/// What a sealed transport datagram carries, its first plaintext byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Inner {
    /// One KCP datagram, for the engine.
    Kcp = 0,
    /// An unreliable application datagram.
    Datagram = 1,
    /// A ping: 8 bytes the peer echoes in a pong.
    Ping = 2,
    /// A pong: the 8 bytes of the ping it answers.
    Pong = 3,
    /// A close: a reason code (2 bytes), then a UTF-8 text.
    Close = 4,
}

impl Inner {
    pub(crate) const fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Kcp,
            1 => Self::Datagram,
            2 => Self::Ping,
            3 => Self::Pong,
            4 => Self::Close,
            _ => return None,
        })
    }
}

/// Bytes a transport datagram adds to what it carries: the header, the inner kind
/// and the tag.
pub const TRANSPORT_OVERHEAD: usize = transport::HEADER_LEN + 1 + super::seal::TAG_LEN;

pub(crate) fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

pub(crate) fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// The receiver index a datagram from the other side names: a transport datagram's,
/// or a response's, cookie reply's or reject's (there, the client's sender index).
/// `None` for an initiation, an unknown kind or a datagram too short for the field.
///
/// A process that runs many clients over one socket routes what the socket receives
/// by it: a client's index is [`ClientHandshake::sender_index`](super::ClientHandshake::sender_index)
/// during the handshake, then [`Conversation::local_index`](crate::Conversation::local_index).
/// Nothing else is checked: the datagram may still be forged, and its receiver
/// verifies it.
pub fn receiver_index(datagram: &[u8]) -> Option<u32> {
    match Kind::of(datagram)? {
        Kind::Transport => transport_receiver(datagram),
        Kind::Response => u32_at(datagram, response::RECEIVER),
        Kind::CookieReply => u32_at(datagram, cookie_reply::RECEIVER),
        Kind::Reject => u32_at(datagram, reject::RECEIVER),
        Kind::Initiation => None,
    }
}

/// The receiver index a transport datagram names, if it is one.
pub(crate) fn transport_receiver(datagram: &[u8]) -> Option<u32> {
    if datagram.len() < TRANSPORT_OVERHEAD || Kind::of(datagram) != Some(Kind::Transport) {
        return None;
    }
    u32_at(datagram, transport::RECEIVER)
}
