//! Typed errors of the socket layer.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use kcp_core::{ConfigError, SendError};

/// Why a message was not queued on a session or conversation: the narrow error of
/// [`SessionCtx::send`](crate::SessionCtx::send) and
/// [`Conversation::send`](crate::Conversation::send). It converts into [`NetError`]
/// (variants [`QueueFull`](NetError::QueueFull), [`Send`](NetError::Send) and
/// [`SessionClosed`](NetError::SessionClosed)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// Sending would exceed the queued-bytes limit. Nothing was queued; retry once the
    /// peer has acknowledged some data.
    #[error("{queued} bytes queued; {message} more would exceed the limit of {limit}")]
    Full {
        /// Bytes already queued or in flight (counted in whole segments).
        queued: usize,
        /// Size of the refused message.
        message: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The engine refused the message (too many fragments for the windows).
    #[error("engine refused the message")]
    Engine(#[from] SendError),
    /// The session is closing (or closed) and accepts no new messages.
    #[error("session is closed or closing")]
    Closed,
}

impl From<QueueError> for NetError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Full {
                queued,
                message,
                limit,
            } => Self::QueueFull {
                queued,
                message,
                limit,
            },
            QueueError::Engine(e) => Self::Send(e),
            QueueError::Closed => Self::SessionClosed,
        }
    }
}

/// What went wrong in `kcp-net`.
///
/// `Display` says what failed in our words; the cause (an OS error, the engine's
/// error) is its [`source`](std::error::Error::source), printed by error reporters
/// such as `anyhow`'s `{:#}` once, not repeated in the message. Each variant says who is at fault: the OS
/// ([`Bind`](Self::Bind), [`Io`](Self::Io)), the caller ([`Config`](Self::Config),
/// [`QueueFull`](Self::QueueFull), [`Send`](Self::Send)), the session's lifecycle
/// ([`SessionClosed`](Self::SessionClosed), [`Shutdown`](Self::Shutdown)) or the peer
/// ([`DeadLink`](Self::DeadLink), [`ServerGone`](Self::ServerGone)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// An unreliable datagram was refused.
    #[error("datagram refused")]
    Datagram(#[from] crate::secure::DatagramError),
    /// The secure handshake failed.
    #[error("secure handshake failed")]
    Handshake(#[from] crate::secure::HandshakeError),
    /// Creating or binding a UDP socket failed.
    #[error("cannot bind UDP socket to {addr}")]
    Bind {
        /// The address we tried to bind.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A socket, poll or thread operation failed.
    #[error("{context}")]
    Io {
        /// What we were doing.
        context: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The engine configuration is invalid.
    #[error("invalid engine configuration")]
    Config(#[from] ConfigError),
    /// A `kcp-net` setting is invalid.
    #[error("invalid setting: {0}")]
    Setting(&'static str),
    /// The engine refused the message (too many fragments, or its send queue is full).
    #[error("engine refused the message")]
    Send(#[from] SendError),
    /// Sending would exceed the session's queued-bytes limit. Nothing was queued; retry
    /// once the peer has acknowledged some data.
    #[error("session has {queued} bytes queued; {message} more would exceed the limit of {limit}")]
    QueueFull {
        /// Bytes already queued or in flight (counted in whole segments).
        queued: usize,
        /// Size of the refused message.
        message: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The session no longer exists (or the key is from a closed session whose slot was
    /// reused), or it is closing and accepts no more data.
    #[error("session is closed or closing")]
    SessionClosed,
    /// The server, or the loop owning the session, has shut down.
    #[error("server is shut down")]
    Shutdown,
    /// The call waits for an event loop's answer and was made on a loop thread (in a
    /// handler), where waiting could deadlock. Use the handler's
    /// [`SessionCtx`](crate::SessionCtx) instead.
    #[error("this call waits for an event loop and cannot be made from a loop thread")]
    OnLoopThread,
    /// A blocking call on a client registered with an external `mio::Registry`; drive
    /// such a client with `tick`/`try_recv` from your own poll loop.
    #[error("client is registered with an external poll; use tick/try_recv")]
    ExternallyPolled,
    /// The engine retransmitted a segment `dead_link` times without an acknowledgement.
    #[error("dead link: a segment of conversation {conv:#010x} was never acknowledged")]
    DeadLink {
        /// The conversation that died.
        conv: u32,
    },
    /// Nothing was heard from the server for the configured server timeout while we
    /// were waiting for it (data in flight or a keepalive sent).
    #[error("server silent for {silent_for:?} (conversation {conv:#010x})")]
    ServerGone {
        /// The conversation that was abandoned.
        conv: u32,
        /// How long the server has been silent.
        silent_for: Duration,
    },
    /// The server closed the conversation and said so (secure mode).
    #[error("the server closed the conversation: {}", if text.is_empty() { "no reason given" } else { text })]
    ClosedByServer {
        /// Its reason, if it is one this version knows.
        reason: Option<crate::lifecycle::CloseReason>,
        /// Its words.
        text: String,
    },
}

impl NetError {
    pub(crate) const fn io(context: &'static str, source: io::Error) -> Self {
        Self::Io { context, source }
    }

    /// `true` for the errors that end a client's conversation ([`DeadLink`](Self::DeadLink),
    /// [`ServerGone`](Self::ServerGone), [`ClosedByServer`](Self::ClosedByServer)): call
    /// `reconnect` to start a new one.
    pub const fn is_link_failure(&self) -> bool {
        matches!(
            self,
            Self::DeadLink { .. } | Self::ServerGone { .. } | Self::ClosedByServer { .. }
        )
    }
}

/// For callers that speak `std::io`: the kind says what a program may do about it
/// (`TimedOut` for a lost peer, `WouldBlock` for a full queue, `InvalidInput` for a
/// bad setting, the OS error's own kind for socket failures), and the `NetError` is
/// kept as the inner error.
impl From<NetError> for io::Error {
    fn from(e: NetError) -> Self {
        let kind = match &e {
            NetError::Bind { source, .. } | NetError::Io { source, .. } => source.kind(),
            NetError::Config(_) | NetError::Setting(_) | NetError::Send(_) => {
                io::ErrorKind::InvalidInput
            }
            NetError::QueueFull { .. } => io::ErrorKind::WouldBlock,
            NetError::SessionClosed | NetError::Shutdown => io::ErrorKind::NotConnected,
            NetError::DeadLink { .. } | NetError::ServerGone { .. } => io::ErrorKind::TimedOut,
            NetError::OnLoopThread | NetError::ExternallyPolled => io::ErrorKind::Unsupported,
            NetError::Handshake(_) => io::ErrorKind::ConnectionRefused,
            NetError::Datagram(_) => io::ErrorKind::InvalidInput,
            NetError::ClosedByServer { .. } => io::ErrorKind::ConnectionReset,
        };
        Self::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// `Display` of the error and of each source in its chain, joined as reporters do.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }

    #[test]
    fn a_source_is_printed_once_in_the_chain() {
        let e = NetError::Bind {
            addr: "127.0.0.1:4000".parse().unwrap(),
            source: io::Error::from(io::ErrorKind::AddrInUse),
        };
        let text = chain(&e);
        assert_eq!(text.matches("address in use").count(), 1, "{text}");
        assert!(text.starts_with("cannot bind UDP socket to 127.0.0.1:4000: "));
        let e = NetError::from(SendError::TooLarge {
            fragments: 300,
            max: 127,
        });
        let text = chain(&e);
        assert_eq!(text.matches("300").count(), 1, "{text}");
    }

    #[test]
    fn queue_errors_become_the_matching_net_errors() {
        let full = QueueError::Full {
            queued: 10,
            message: 5,
            limit: 12,
        };
        assert!(matches!(
            NetError::from(full),
            NetError::QueueFull {
                queued: 10,
                message: 5,
                limit: 12
            }
        ));
        assert!(matches!(
            NetError::from(QueueError::Closed),
            NetError::SessionClosed
        ));
    }

    #[test]
    fn net_errors_become_io_errors_of_a_fitting_kind() {
        let gone = io::Error::from(NetError::DeadLink { conv: 1 });
        assert_eq!(gone.kind(), io::ErrorKind::TimedOut);
        let inner = gone.get_ref().and_then(|e| e.downcast_ref::<NetError>());
        assert!(matches!(inner, Some(NetError::DeadLink { conv: 1 })));
        let bind = io::Error::from(NetError::Bind {
            addr: "127.0.0.1:1".parse().unwrap(),
            source: io::Error::from(io::ErrorKind::AddrInUse),
        });
        assert_eq!(bind.kind(), io::ErrorKind::AddrInUse);
        assert!(bind.source().is_some());
    }
}

/// Why [`Conversation::input`](crate::Conversation::input) refused a datagram. Nothing
/// changed but a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// The engine's verdict (not KCP, another conv, ...).
    #[error("not accepted by the engine: {0}")]
    Engine(kcp_core::InputError),
    /// The secure receive path's verdict (tampered, replayed, ...).
    #[error("not authentic and fresh: {0}")]
    Seal(crate::secure::OpenError),
    /// A datagram from a new address, in raw mode (where it is another conversation).
    #[error("raw KCP conversations do not move between addresses")]
    NotSecure,
}
