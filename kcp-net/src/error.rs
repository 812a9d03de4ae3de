//! Typed errors of the socket layer.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use kcp_core::{ConfigError, SendError};

/// What went wrong in `kcp-net`. Each variant says who is at fault: the OS
/// ([`Bind`](Self::Bind), [`Io`](Self::Io)), the caller ([`Config`](Self::Config),
/// [`QueueFull`](Self::QueueFull), [`Send`](Self::Send)), the session's lifecycle
/// ([`SessionClosed`](Self::SessionClosed), [`Shutdown`](Self::Shutdown)) or the peer
/// ([`DeadLink`](Self::DeadLink), [`ServerGone`](Self::ServerGone)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// Creating or binding a UDP socket failed.
    #[error("cannot bind UDP socket to {addr}: {source}")]
    Bind {
        /// The address we tried to bind.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A socket, poll or thread operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The engine configuration is invalid.
    #[error("invalid engine configuration: {0}")]
    Config(#[from] ConfigError),
    /// A `kcp-net` setting is invalid.
    #[error("invalid setting: {0}")]
    Setting(&'static str),
    /// The engine refused the message (too many fragments, or its send queue is full).
    #[error("engine refused the message: {0}")]
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
}

impl NetError {
    pub(crate) const fn io(context: &'static str, source: io::Error) -> Self {
        Self::Io { context, source }
    }

    /// `true` for the errors that end a client's conversation ([`DeadLink`](Self::DeadLink),
    /// [`ServerGone`](Self::ServerGone)): call `reconnect` to start a new one.
    pub const fn is_link_failure(&self) -> bool {
        matches!(self, Self::DeadLink { .. } | Self::ServerGone { .. })
    }
}
