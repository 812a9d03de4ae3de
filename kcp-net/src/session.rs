//! One server-side conversation: its key, its peer and its timer entry around a
//! [`Conversation`].

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::conversation::Conversation;
use crate::lifecycle::SessionState;
use crate::stats::SessionStats;
use crate::store::SessionKey;

/// One server-side KCP conversation: a [`Conversation`] with the key that names it
/// and the peer's address.
///
/// Handlers see it through [`SessionCtx`](crate::SessionCtx) and in `on_close`; the
/// single-threaded [`ServerDriver`](crate::ServerDriver) lends it out by key.
#[derive(Debug)]
pub struct KcpSession {
    key: SessionKey,
    peer: SocketAddr,
    pub(crate) conversation: Conversation,
    /// The live timer entry, if any (see `timer.rs`).
    pub(crate) next_wake: Option<Instant>,
    /// What the received segments it holds count against the loop's buffer budget.
    pub(crate) held_bytes: usize,
    /// The address the per-IP limits counted it under (its first peer's IP).
    pub(crate) admitted_ip: IpAddr,
}

impl KcpSession {
    pub(crate) const fn new(key: SessionKey, peer: SocketAddr, conversation: Conversation) -> Self {
        Self {
            key,
            peer,
            conversation,
            next_wake: None,
            held_bytes: 0,
            admitted_ip: peer.ip(),
        }
    }

    /// The peer moved (secure mode).
    pub(crate) const fn set_peer(&mut self, peer: SocketAddr) {
        self.peer = peer;
    }

    /// This session's key.
    pub const fn key(&self) -> SessionKey {
        self.key
    }

    /// The peer's address (in the secure mode, the latest: a session follows its peer
    /// to a new address).
    pub const fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The conversation itself (engine, liveness, counters).
    pub const fn conversation(&self) -> &Conversation {
        &self.conversation
    }

    /// The conversation id.
    pub fn conv(&self) -> u32 {
        self.conversation.conv()
    }

    /// When the session was opened.
    pub const fn opened_at(&self) -> Instant {
        self.conversation.opened_at()
    }

    /// When the last valid datagram from the peer arrived.
    pub const fn last_heard(&self) -> Instant {
        self.conversation.last_heard()
    }

    /// Active or closing.
    pub const fn state(&self) -> SessionState {
        self.conversation.state()
    }

    /// Bytes queued or in flight, counted in whole segments.
    pub fn queued_bytes(&self) -> usize {
        self.conversation.queued_bytes()
    }

    /// Counters so far.
    pub fn stats(&self) -> SessionStats {
        self.conversation.stats()
    }
}
