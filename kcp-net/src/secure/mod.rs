//! The secure wire mode: a session protocol around the same KCP engine, for when both
//! ends are ours. `docs/secure-protocol.md` describes every datagram byte by byte and
//! the threat model.
//!
//! - **Address validation before state**: a client pads its first datagram to
//!   1,200 bytes; under load (or always, by [`CookiePolicy`]) the server answers it
//!   with a 64-byte cookie reply and keeps nothing until the client echoes the cookie.
//!   No reply to an unvalidated address is larger than what it answers, and a session
//!   sends at most three times what it received until its peer's address is proven.
//! - **Keys**: one Noise `NK` handshake (`NKpsk0` with a pre-shared key, [`Psk`]),
//!   run by the `snow` crate: the client pins the server's static key
//!   ([`PublicKey`]), the server keeps its pair in a 0600 file ([`ServerIdentity`]).
//! - **Sealed datagrams**: AES-256-GCM or ChaCha20-Poly1305 ([`Cipher`], the faster
//!   on the client's CPU unless it says otherwise) with an explicit 64-bit counter
//!   nonce and the header as associated data, a 2,048-counter replay window, and
//!   rekeying by volume or time ([`RekeyPolicy`]) without a pause.
//! - **Receiver index and migration**: sessions are found by a random index, not by
//!   address; an authentic, newest datagram from a new address moves the session, and
//!   the new path answers a challenge before it gets more than 3x what it sent.
//! - **Inside the seal**: KCP datagrams, unreliable datagrams
//!   ([`Conversation::send_datagram`](crate::Conversation::send_datagram)), ping/pong and
//!   close with a reason ([`PeerClose`]).
//! - **The server's front door**: [`SecureFront`], sans-IO, screens initiations,
//!   turns handshakes into sealed conversations and routes sealed datagrams by
//!   receiver index; `kcp-net`'s [`ServerDriver`](crate::ServerDriver) and
//!   `kcp-tokio`'s listener both run it.

mod channel;
mod client_handshake;
mod cookie;
mod front;
mod handshake;
mod keys;
mod replay;
mod seal;
mod session;
mod wire;

use std::sync::Arc;
use std::time::Duration;

pub use channel::{OpenError, RekeyPolicy, SecureCounters};
pub use client_handshake::ClientHandshake;
pub use cookie::ROTATE as COOKIE_LIFETIME;
pub use front::{Offer, Opened, Route, Screening, SecureFront, index_loop};
pub use handshake::CookiePolicy;
pub use keys::{KEY_LEN, KeyError, Psk, PublicKey, ServerIdentity};
pub use replay::{ReplayWindow, Stale, WINDOW as REPLAY_WINDOW};
pub use seal::Cipher;
pub use session::{DatagramError, MAX_CLOSE_TEXT, MAX_DATAGRAMS_IN, MAX_DATAGRAMS_OUT, PeerClose};
pub use wire::{INITIATION_LEN, TRANSPORT_OVERHEAD, VERSION, receiver_index};

pub(crate) use channel::SecureChannel;
#[cfg(test)]
pub(crate) use handshake::Accepted;
pub(crate) use session::{Delivered, SecureSession};
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use {
    cookie::{Macs, put_mac2},
    handshake::{Established, Responder, Screened},
    seal::Key,
    wire::{Inner, initiation, transport},
};

/// A server's secure mode: its identity and how it admits handshakes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerSecurity {
    /// The server's static key pair.
    pub identity: Arc<ServerIdentity>,
    /// A pre-shared key every client must also have (`None`: none).
    pub psk: Option<Psk>,
    /// When a handshake must first prove its address with a cookie.
    pub cookies: CookiePolicy,
    /// Unconfirmed handshakes in a loop above which it counts as under load (for
    /// [`CookiePolicy::UnderLoad`]). Default 64.
    pub load_threshold: usize,
    /// When sending keys are replaced.
    pub rekey: RekeyPolicy,
}

impl ServerSecurity {
    /// Secure mode with `identity`, no pre-shared key, cookies under load.
    pub fn new(identity: ServerIdentity) -> Self {
        Self {
            identity: Arc::new(identity),
            psk: None,
            cookies: CookiePolicy::default(),
            load_threshold: 64,
            rekey: RekeyPolicy::default(),
        }
    }
}

/// A client's secure mode: the server key it pins.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientSecurity {
    /// The server's public key; a server with another key is refused.
    pub server_key: PublicKey,
    /// The pre-shared key, if the server requires one.
    pub psk: Option<Psk>,
    /// How long the handshake may take before [`HandshakeError::Timeout`] (or
    /// [`HandshakeError::CookieTimeout`]). Default 5 s.
    pub handshake_timeout: Duration,
    /// When sending keys are replaced.
    pub rekey: RekeyPolicy,
    /// The cipher we ask the server for (it takes our preference). Default: the
    /// faster on this CPU ([`Cipher::fastest_here`]).
    pub cipher: Cipher,
}

impl ClientSecurity {
    /// Secure mode pinning `server_key`.
    pub fn new(server_key: PublicKey) -> Self {
        Self {
            server_key,
            psk: None,
            handshake_timeout: Duration::from_secs(5),
            rekey: RekeyPolicy::default(),
            cipher: Cipher::fastest_here(),
        }
    }
}

/// Why a secure handshake failed, as the client sees it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The server has another key than the one pinned.
    #[error(
        "the server's key is not the one pinned (pinned {}, the server offers {}): it has \
         another identity, or this is not the server you meant",
        pinned.fingerprint(),
        offered.map_or_else(|| "nothing".to_owned(), |k| k.fingerprint())
    )]
    WrongServerKey {
        /// The key we pinned.
        pinned: PublicKey,
        /// The key the server says it has (unauthenticated: shown so a person can
        /// compare, or trusted on first use).
        offered: Option<PublicKey>,
    },
    /// The server could not read our handshake although it has the key we pinned:
    /// the pre-shared keys differ, or only one side has one.
    #[error("the handshake failed: the pre-shared keys differ (or only one side has one)")]
    PskMismatch,
    /// The server speaks another protocol version.
    #[error("the server speaks secure protocol version {server}, we speak {ours}")]
    VersionMismatch {
        /// Ours.
        ours: u8,
        /// The server's.
        server: u8,
    },
    /// The server asked us to prove our address, and then never answered.
    #[error("the server sent a cookie and then never answered within {0:?} (is it overloaded?)")]
    CookieTimeout(Duration),
    /// The server is at its session limit.
    #[error("the server is full")]
    ServerFull,
    /// Nothing came back.
    #[error(
        "no answer to the handshake within {0:?} (wrong address, server down, or not in secure mode)"
    )]
    Timeout(Duration),
}

#[cfg(test)]
mod tests;
