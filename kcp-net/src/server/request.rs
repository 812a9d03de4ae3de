//! Requests other threads post to a loop, and the state a server's loops share.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// A sealed datagram another loop's socket received for a session of this loop.
    Datagram {
        from: SocketAddr,
        datagram: Bytes,
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
    /// Sealed datagrams in flight between loops (`Request::Datagram`), bounded.
    pub(crate) forwards: ForwardBudget,
}

/// Most sealed datagrams in flight from one loop to another at once, over the
/// server: a flood of forged datagrams naming another loop's indices costs at most
/// this many buffers (~1.5 KiB each) and is otherwise dropped and counted.
const MAX_FORWARDS_IN_FLIGHT: usize = 4096;

/// The count of datagrams in flight between loops.
#[derive(Debug, Default)]
pub(crate) struct ForwardBudget(AtomicUsize);

impl ForwardBudget {
    /// Takes a place if one is free.
    pub(crate) fn try_take(&self) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_FORWARDS_IN_FLIGHT).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives a place back (the datagram was handled).
    pub(crate) fn give_back(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

impl Shared {
    /// Shared state for the `config.threads` loops of a server.
    pub(crate) fn new(config: &ServerConfig, now: Instant) -> Arc<Self> {
        let loops = config.threads;
        Arc::new(Self {
            sessions: AtomicUsize::new(0),
            admission: Admission::new(config, now),
            stats: (0..loops).map(|_| AtomicLoopStats::default()).collect(),
            forwards: ForwardBudget::default(),
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
