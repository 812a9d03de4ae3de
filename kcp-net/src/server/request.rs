//! Requests other threads post to a loop, and the state a server's loops share.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc::SyncSender;
use std::time::Instant;

use bytes::Bytes;

use crate::admission::Admission;
use crate::config::ServerConfig;
use crate::error::NetError;
use crate::stats::{AtomicLoopStats, SessionStats};
use crate::store::SessionKey;

/// A reply channel (capacity 1); `None` when the caller does not wait.
pub(crate) type Reply<T> = Option<SyncSender<T>>;

/// One piece of work for a loop, posted by a [`ServerHandle`](crate::ServerHandle)
/// through the loop's channel and its waker.
#[derive(Debug)]
pub(crate) enum Request {
    Send {
        key: SessionKey,
        message: Bytes,
        reply: Reply<Result<(), NetError>>,
    },
    /// The same message to each of `keys` (all on this loop); replies how many
    /// accepted it.
    SendMany {
        keys: Vec<SessionKey>,
        message: Bytes,
        reply: Reply<usize>,
    },
    Broadcast {
        message: Bytes,
        reply: Reply<usize>,
    },
    Close {
        key: SessionKey,
        reply: Reply<Result<(), NetError>>,
    },
    Stats {
        key: SessionKey,
        reply: SyncSender<Result<SessionStats, NetError>>,
    },
    List {
        reply: SyncSender<Vec<SessionInfo>>,
    },
    Shutdown {
        deadline: Instant,
    },
}

/// A session as listed by [`ServerHandle::sessions`](crate::ServerHandle::sessions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// Its key.
    pub key: SessionKey,
    /// The peer's address.
    pub peer: SocketAddr,
    /// The conversation id.
    pub conv: u32,
}

/// State every loop of a server shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Sessions open over all loops, confirmed or not.
    pub(crate) sessions: AtomicUsize,
    /// Who may open a session, over all loops (the kernel spreads one address's
    /// ports over the loops).
    pub(crate) admission: Admission,
    /// Each loop's published counters.
    pub(crate) stats: Vec<AtomicLoopStats>,
}

impl Shared {
    /// Shared state for the `config.threads` loops of a server.
    pub(crate) fn new(config: &ServerConfig, now: Instant) -> Arc<Self> {
        let loops = config.threads;
        Arc::new(Self {
            sessions: AtomicUsize::new(0),
            admission: Admission::new(config, now),
            stats: (0..loops).map(|_| AtomicLoopStats::default()).collect(),
        })
    }
}

thread_local! {
    /// Set on event-loop threads: handle calls made there must not wait for a loop.
    static ON_LOOP_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as an event loop.
pub(crate) fn mark_loop_thread() {
    ON_LOOP_THREAD.with(|c| c.set(true));
}

/// `true` on an event-loop thread (inside handlers).
pub(crate) fn on_loop_thread() -> bool {
    ON_LOOP_THREAD.with(Cell::get)
}
