//! Cluster mode: chat nodes joined through Redis, so rooms span machines.
//!
//! A node is a [`ChatServer`](crate::server::ChatServer) started with
//! [`bind_cluster`](crate::server::ChatServer::bind_cluster). It serves its own
//! users as a single server does, and meets the other nodes in Redis (the design,
//! with its guarantees and limits, is in `docs/cluster.md`):
//!
//! - **One order per room.** Every room event (line, join, leave, rename) is appended
//!   to the room's Redis stream by a Lua script (`XADD` assigns the order, `INCR` the
//!   message's `seq`), and every node, the sender's included, delivers the stream in
//!   order to its members. A node's own users see their lines come back the same way.
//! - **Nicks** are claimed cluster-wide (a key per nick, held by a node, with a TTL the
//!   node refreshes); **presence** is a liveness key per node and a member list per
//!   room, so `/who` and `/rooms` show every node's users.
//! - **History** is the stream itself: a join replays the room's last lines before the
//!   join entry, whichever node they were said on.
//! - **A node that dies** stops refreshing its liveness key; the first node to see it
//!   expired removes the dead node's users from every room with a `node-lost` leave in
//!   the streams, exactly once.
//! - **Redis away.** Nodes keep serving local users; their publisher queues events in
//!   a bounded buffer and publishes them in order on reconnect (each with an id Redis
//!   remembers, so a replayed batch is not applied twice); readers resume every stream
//!   from the last id they delivered. Lines beyond the buffer are refused with an
//!   error the user sees.
//!
//! Two threads per node do the Redis I/O: the *publisher* (one pipeline per turn of
//! whatever the event loops asked for) and the *reader* (`XREAD BLOCK` on the rooms
//! its users are in). They reach the sessions through the server's
//! [`kcp_net::ServerHandle`]; the event loops only post to a bounded
//! channel and never wait for Redis.

mod config;
mod deliver;
mod event;
mod keys;
mod outbox;
mod presence;
mod publisher;
mod reader;
mod redis_link;
pub mod redis_server;
mod scripts;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use kcp_net::ServerHandle;

pub use config::ClusterConfig;
pub(crate) use event::{Body, RoomEvent};
pub(crate) use outbox::{Op, Query};

use crate::server::Hub;

/// Requests the event loops may have waiting for the publisher at once; beyond it a
/// request is refused and the user told (the publisher drains it every turn, also
/// while Redis is away, into its own bounded buffer).
const CHANNEL_CAP: usize = 4096;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The Redis URL does not parse.
    #[error("bad Redis URL {url:?}: {detail}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The node id is not usable.
    #[error("bad node id {id:?}: {why}")]
    NodeId {
        /// The id given.
        id: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The chat server itself did not start.
    #[error(transparent)]
    Net(#[from] kcp_net::NetError),
    /// A cluster thread could not be started.
    #[error("starting the cluster threads: {0}")]
    Thread(#[from] std::io::Error),
}

/// Counters of a node's cluster link, since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterStats {
    /// Whether the publisher's connection to Redis is up now.
    pub connected: bool,
    /// Events published in room streams.
    pub published: u64,
    /// Pipelines sent (each carries every publish of one publisher turn).
    pub pipelines: u64,
    /// Stream entries read and delivered to this node's users.
    pub entries_read: u64,
    /// Stream entries or replies that did not decode, logged and skipped.
    pub bad_entries: u64,
    /// Requests refused because Redis was unreachable or the buffer full (the user
    /// was told).
    pub refused: u64,
    /// Events waiting for Redis now.
    pub buffered: u64,
    /// Reconnections to Redis (publisher and reader).
    pub reconnects: u64,
    /// Other nodes this node declared lost.
    pub nodes_reaped: u64,
    /// Nick claims refused because another node holds the nick.
    pub nick_conflicts: u64,
}

impl fmt::Display for ClusterStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "redis {} published {} pipelines {} read {} bad {} refused {} buffered {} \
             reconnects {} reaped {} nick-conflicts {}",
            if self.connected { "up" } else { "DOWN" },
            self.published,
            self.pipelines,
            self.entries_read,
            self.bad_entries,
            self.refused,
            self.buffered,
            self.reconnects,
            self.nodes_reaped,
            self.nick_conflicts
        )
    }
}

/// The counters, shared by the loops and the two threads.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connected: AtomicBool,
    pub(crate) published: AtomicU64,
    pub(crate) pipelines: AtomicU64,
    pub(crate) entries_read: AtomicU64,
    pub(crate) bad_entries: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) buffered: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) nodes_reaped: AtomicU64,
    pub(crate) nick_conflicts: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    fn snapshot(&self) -> ClusterStats {
        ClusterStats {
            connected: self.connected.load(Relaxed),
            published: self.published.load(Relaxed),
            pipelines: self.pipelines.load(Relaxed),
            entries_read: self.entries_read.load(Relaxed),
            bad_entries: self.bad_entries.load(Relaxed),
            refused: self.refused.load(Relaxed),
            buffered: self.buffered.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            nodes_reaped: self.nodes_reaped.load(Relaxed),
            nick_conflicts: self.nick_conflicts.load(Relaxed),
        }
    }
}

/// The event loops' end of the cluster: post requests, never wait.
#[derive(Debug)]
pub(crate) struct Link {
    ops: SyncSender<Op>,
    /// This node's id (written in the events of its users).
    pub(crate) node: String,
    /// This run of the node: its users' ids start again at 1, so events carry it.
    incarnation: u64,
    pub(crate) counters: Arc<Counters>,
}

impl Link {
    /// This run of the node.
    pub(crate) const fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Posts a request to the publisher; `false` (counted) when its channel is full.
    /// A refused line or join is the caller's to report to its user; a refused leave
    /// or release has nobody to tell, so it is logged.
    pub(crate) fn post(&self, op: Op) -> bool {
        match self.ops.try_send(op) {
            Ok(()) => true,
            Err(TrySendError::Full(op) | TrySendError::Disconnected(op)) => {
                Counters::add(&self.counters.refused, 1);
                if !op.refusable() {
                    tracing::warn!(
                        ?op,
                        "the cluster publisher's channel is full: a leave or release is lost \
                         (Redis keeps the member until this node leaves the cluster or is reaped)"
                    );
                }
                false
            }
        }
    }
}

/// What [`prepare`] makes before the server is bound: the loops' link, and the rest
/// for [`Pending::start`] once the server's handle exists.
#[derive(Debug)]
pub(crate) struct Pending {
    ops: Receiver<Op>,
    config: ClusterConfig,
    client: redis::Client,
    counters: Arc<Counters>,
    incarnation: u64,
}

fn check_node_id(id: &str) -> Result<(), ClusterError> {
    let why = if id.is_empty() {
        Some("empty")
    } else if id.len() > 64 {
        Some("longer than 64 bytes")
    } else if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Some("use ASCII letters, digits, - _ and .")
    } else {
        None
    };
    why.map_or(Ok(()), |why| {
        Err(ClusterError::NodeId {
            id: id.to_owned(),
            why,
        })
    })
}

/// Checks the settings and makes the link the event loops post to.
pub(crate) fn prepare(config: ClusterConfig) -> Result<(Link, Pending), ClusterError> {
    check_node_id(&config.node_id)?;
    let client = redis::Client::open(config.url.as_str()).map_err(|e| ClusterError::Url {
        url: config.url.clone(),
        detail: e.to_string(),
    })?;
    let (tx, rx) = mpsc::sync_channel(CHANNEL_CAP);
    let counters = Arc::new(Counters::default());
    let incarnation = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    let link = Link {
        ops: tx,
        node: config.node_id.clone(),
        incarnation,
        counters: Arc::clone(&counters),
    };
    Ok((
        link,
        Pending {
            ops: rx,
            config,
            client,
            counters,
            incarnation,
        },
    ))
}

/// A node's running cluster threads.
#[derive(Debug)]
pub(crate) struct Cluster {
    stop: Arc<AtomicBool>,
    /// Set before `stop` for a clean departure (users removed from Redis now).
    depart: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    counters: Arc<Counters>,
}

impl Pending {
    /// Starts the publisher and the reader; joins replay up to `history` lines.
    pub(crate) fn start(
        self,
        hub: Arc<Hub>,
        handle: ServerHandle,
        history: usize,
    ) -> Result<Cluster, ClusterError> {
        let incarnation = self.incarnation;
        let stop = Arc::new(AtomicBool::new(false));
        let depart = Arc::new(AtomicBool::new(false));
        let (subscribe_tx, subscribe_rx) = mpsc::sync_channel(CHANNEL_CAP);
        let reader = reader::Reader::new(
            &self.config,
            self.client.clone(),
            Arc::clone(&hub),
            handle.clone(),
            subscribe_rx,
            Arc::clone(&self.counters),
            Arc::clone(&stop),
            incarnation,
            history,
        );
        let publisher = publisher::Publisher::new(
            self.config,
            self.client,
            hub,
            handle,
            self.ops,
            subscribe_tx,
            Arc::clone(&self.counters),
            Arc::clone(&stop),
            Arc::clone(&depart),
            incarnation,
        );
        let threads = vec![
            thread::Builder::new()
                .name("kcp-chat-publisher".into())
                .spawn(move || publisher.run())?,
            thread::Builder::new()
                .name("kcp-chat-reader".into())
                .spawn(move || reader.run())?,
        ];
        Ok(Cluster {
            stop,
            depart,
            threads: Mutex::new(threads),
            counters: self.counters,
        })
    }
}

impl Cluster {
    /// Counters now.
    pub(crate) fn stats(&self) -> ClusterStats {
        self.counters.snapshot()
    }

    /// Stops the threads. With `depart`, the publisher first publishes what it has
    /// queued and removes this node and its users from Redis (a clean shutdown: the
    /// others see them quit at once); without, they go as a killed node's would.
    pub(crate) fn stop(&self, depart: bool) {
        self.depart.store(depart, Relaxed);
        self.stop.store(true, Relaxed);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop(false);
    }
}

/// How long a Redis answer may take before the connection counts as broken.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(2);
