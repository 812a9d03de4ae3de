//! How a conversation ends: its states and the reasons it closes.

use std::time::Instant;

/// Why a session or conversation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// Nothing was heard from the peer for the idle timeout.
    IdleTimeout,
    /// A segment was retransmitted `dead_link` times without an acknowledgement: the
    /// peer is gone or unreachable.
    DeadLink,
    /// We sent something and the peer stayed silent for the peer timeout (a client's
    /// `server_timeout`).
    PeerGone,
    /// The application closed it (handler, handle or driver).
    Local,
    /// The server shut down.
    Shutdown,
    /// The peer never proved that it receives at its address and stayed silent for
    /// the unconfirmed idle timeout (a spoofed source, most likely).
    Unconfirmed,
    /// The server needed the room for a newer unconfirmed session.
    Evicted,
    /// A method of the server's [`EventHandler`](crate::EventHandler) panicked while
    /// handling this session; the panic was caught, the session dropped at once and
    /// the loop went on.
    HandlerPanicked,
    /// The peer did not keep up: a send to it was refused because its queue was full
    /// (`max_queued_bytes`), and the queue was still over half full after the
    /// slow-consumer timeout
    /// ([`ConversationConfig::slow_consumer`](crate::ConversationConfig::slow_consumer)).
    SlowConsumer,
    /// The peer said it closed (secure wire mode only: raw KCP has no close). Its
    /// code and words are in [`Conversation::peer_close`](crate::Conversation::peer_close).
    PeerClosed,
}

impl CloseReason {
    /// The words a server's secure close carries for this reason
    /// ([`Conversation::announce_close`](crate::Conversation::announce_close)): what
    /// `kcp-net`'s server and `kcp-tokio`'s listener tell a client.
    pub const fn server_text(self) -> &'static str {
        match self {
            Self::Local => "closed by the server",
            Self::Shutdown => "the server is shutting down",
            Self::IdleTimeout => "idle for too long",
            Self::PeerGone | Self::DeadLink => "the client stopped answering",
            Self::HandlerPanicked => "the server failed handling this session",
            Self::Unconfirmed | Self::Evicted => "the handshake was not completed",
            Self::SlowConsumer => {
                "too slow: the data queued for this session stayed over its limit"
            }
            Self::PeerClosed => "",
        }
    }
}

/// Where a session is in its life.
///
/// ```text
///            close() / shutdown
///  Active ─────────────────────────▶ Closing(reason, deadline)
///    │                                  │  all data acknowledged,
///    │ idle timeout, dead link,         │  or deadline passed
///    │ peer gone                        ▼
///    ▼                                Closed(reason)
///  Closed(IdleTimeout | DeadLink | PeerGone)
/// ```
///
/// A closing session still receives (and delivers) data and retransmits what it has
/// queued, but accepts no new messages. Closed sessions are removed from the server; the
/// handler's `on_close` (or the driver's `Closed` event) sees them one last time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// Sending and receiving.
    Active,
    /// Delivering what is queued, then closing with `reason`.
    Closing {
        /// Why it closes.
        reason: CloseReason,
        /// When it closes even if data is still unacknowledged.
        deadline: Instant,
    },
}
