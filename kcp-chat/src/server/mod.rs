//! The chat server: a `kcp-net` server whose handler speaks the chat protocol.
//!
//! Rooms, nicks and history live in one [`Rooms`](crate::room::Rooms) model behind a
//! lock shared by every event loop; each loop keeps its own clients' rate limits and
//! strikes, and a table shared by the loops keeps a second budget per source address
//! (so new conversations from one address do not get fresh buckets). A room message is encoded once and queued to every member's session
//! through the server handle, so broadcast crosses loops.

mod busy;
mod checks;
mod clustered;
mod config;
mod handler;
mod hub;
mod ip_table;
pub mod metrics;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kcp_net::{KcpServer, NetError, ServerHandle, ServerStats};

pub use checks::{CLIENT_KEEPALIVE, SettingError, SettingWarning};
pub use config::{ChatServerConfig, DEFAULT_BUSY_LOAD, DEFAULT_BUSY_RETRANSMITS};
pub use hub::ChatCounters;

use crate::cluster::{self, Cluster, ClusterConfig, ClusterError, ClusterStats, Link};
use crate::protocol::{ServerFrame, encode};
use handler::ChatHandler;
pub(crate) use hub::{Hub, HubState};
use ip_table::IpPolicy;

/// A running chat server. Dropping it stops it at once; call
/// [`shutdown`](Self::shutdown) to tell the clients and let queued frames drain.
#[derive(Debug)]
pub struct ChatServer {
    server: KcpServer,
    hub: Arc<Hub>,
    /// Cluster mode: the threads that talk to Redis.
    cluster: Option<Cluster>,
}

/// A snapshot of a server's state and counters.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ChatStats {
    /// Sessions open (welcomed or not).
    pub sessions: usize,
    /// Users welcomed and present.
    pub users: usize,
    /// Rooms that exist.
    pub rooms: usize,
    /// Chat-level counters.
    pub chat: ChatCounters,
    /// The socket layer's counters.
    pub net: ServerStats,
    /// The cluster link's counters (cluster nodes only).
    pub cluster: Option<ClusterStats>,
}

impl fmt::Display for ChatStats {
    /// One line: `sessions 3 users 3 rooms 2 frames-in 40 messages 12 ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.chat;
        let n = &self.net.total;
        write!(
            f,
            "sessions {} users {} rooms {} | frames in {} out {} messages {} errors {} \
             bad {} rate-limited {} (per address {}) kicked {} slow {} busy {} | datagrams in {} out {} retransmits {} \
             dropped {} (per-IP limits {}) | unconfirmed: confirmed {} evicted {} closed {} withheld {}",
            self.sessions,
            self.users,
            self.rooms,
            c.frames_in,
            c.frames_out,
            c.messages,
            c.errors,
            c.bad_frames,
            c.rate_limited,
            c.ip_rate_limited,
            c.kicked,
            n.closed_slow_consumer,
            c.refused_busy,
            n.datagrams_in,
            n.datagrams_out,
            n.retransmits,
            n.dropped_malformed
                + n.dropped_unknown_session
                + n.dropped_rejected
                + n.dropped_session_limit
                + n.dropped_rate_limited
                + n.dropped_refused
                + n.dropped_send_full
                + n.dropped_ip_limit
                + n.dropped_ip_rate,
            n.dropped_ip_limit + n.dropped_ip_rate,
            n.sessions_confirmed,
            n.evicted_unconfirmed,
            n.closed_unconfirmed,
            n.withheld_unconfirmed,
        )?;
        match &self.cluster {
            Some(cluster) => write!(f, " | cluster: {cluster}"),
            None => Ok(()),
        }
    }
}

impl ChatServer {
    /// Binds `addr` and starts serving.
    ///
    /// # Errors
    /// As [`KcpServer::bind`].
    pub fn bind(addr: SocketAddr, config: ChatServerConfig) -> Result<Self, NetError> {
        Self::start(addr, config, None)
    }

    /// Binds `addr` and starts serving as one node of the cluster that `cluster`
    /// names: rooms, nicks, presence and history are shared with the other nodes
    /// through Redis (see [`crate::cluster`]). Redis need not be up yet: the
    /// node connects (and reconnects) on its own, and refuses hellos until it can
    /// claim their nicks.
    ///
    /// # Errors
    /// [`ClusterError`]: a bad Redis URL or node id, or the server not starting.
    pub fn bind_cluster(
        addr: SocketAddr,
        config: ChatServerConfig,
        cluster: ClusterConfig,
    ) -> Result<Self, ClusterError> {
        let history = config.rooms.history;
        let (link, pending) = cluster::prepare(cluster)?;
        let mut server = Self::start(addr, config, Some(link))?;
        let handle = server.server.handle();
        server.cluster = Some(pending.start(Arc::clone(&server.hub), handle, history)?);
        Ok(server)
    }

    fn start(
        addr: SocketAddr,
        config: ChatServerConfig,
        link: Option<Link>,
    ) -> Result<Self, NetError> {
        let mut config = config;
        // Room for hellos beyond the limit to be told `server-full` instead of dropped.
        config.net.max_sessions = config.max_clients.saturating_add(64);
        let ip_policy = IpPolicy {
            rate: config.ip_rate,
            burst: config.ip_burst,
            strikes: config.ip_strikes,
            window: config.strike_window,
        };
        // As kcp-net's own per-IP table: room for every session's address and as many
        // recently gone ones.
        let ip_cap = config
            .net
            .max_sessions
            .saturating_mul(2)
            .saturating_add(1024);
        let hub = Arc::new(Hub::new(config.rooms.clone(), ip_policy, ip_cap, link));
        let net = config.net.clone();
        let handler = ChatHandler::new(Arc::clone(&hub), Arc::new(config));
        let server = KcpServer::bind(addr, net, handler)?;
        Ok(Self {
            server,
            hub,
            cluster: None,
        })
    }

    /// The bound address (with the port picked, if 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The `kcp-net` handle (stats, sessions).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Counters and census now.
    pub fn stats(&self) -> ChatStats {
        let handle = self.server.handle();
        let (users, rooms) = self.hub.census();
        ChatStats {
            sessions: handle.session_count(),
            users,
            rooms,
            chat: self.hub.counters(),
            net: handle.stats(),
            cluster: self.cluster.as_ref().map(Cluster::stats),
        }
    }

    /// Tells every session the server is going away. Returns how many were told.
    ///
    /// # Errors
    /// [`NetError::Shutdown`] if the loops have stopped.
    pub fn announce_shutdown(&self, text: &str) -> Result<usize, NetError> {
        let frame = ServerFrame::Shutdown {
            text: text.to_owned(),
        };
        let bytes = encode(&frame).map_err(|_| NetError::Shutdown)?;
        self.server.handle().broadcast(bytes)
    }

    /// Tells the clients (see [`announce_shutdown`](Self::announce_shutdown)), lets
    /// queued frames drain for up to `deadline`, stops the loops and returns the final
    /// counters.
    ///
    /// # Errors
    /// The first error an event loop stopped with.
    ///
    /// A cluster node first publishes what it has queued and leaves the cluster: the
    /// other nodes see its users quit.
    pub fn shutdown(self, text: &str, deadline: Duration) -> Result<ChatStats, NetError> {
        let _ = self.announce_shutdown(text);
        let hub = Arc::clone(&self.hub);
        let cluster = self.cluster.as_ref().map(|c| {
            c.stop(true);
            c.stats()
        });
        let net = self.server.shutdown(deadline)?;
        let (users, rooms) = hub.census();
        Ok(ChatStats {
            sessions: 0,
            users,
            rooms,
            chat: hub.counters(),
            net,
            cluster,
        })
    }
}
