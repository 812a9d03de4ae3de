//! Settings of a cluster node.

use std::time::Duration;

/// How a chat server joins a cluster through Redis. Start from
/// [`ClusterConfig::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// The Redis to meet the other nodes in, `redis://HOST:PORT`.
    pub url: String,
    /// This node's name, unique in the cluster (users' nicks and room memberships are
    /// recorded under it).
    pub node_id: String,
    /// How long a node's presence and its users' nicks live in Redis without a
    /// refresh. A node refreshes every quarter of it; the others declare it lost
    /// (its users leave with "node lost") at most this long after its last refresh.
    /// Keep it above the longest Redis outage a node should survive unnoticed.
    pub presence_ttl: Duration,
    /// Room events (lines, joins) kept while Redis is unreachable, published in order
    /// once it is back; beyond it, users are told their line was not sent.
    pub buffer: usize,
    /// Prefix of every key, so clusters can share a Redis.
    pub prefix: String,
    /// Entries a room's stream keeps (about; trimmed with `MAXLEN ~`).
    pub stream_maxlen: usize,
    /// How long an emptied room's stream (its history) is kept.
    pub empty_room_ttl: Duration,
}

impl ClusterConfig {
    /// A node `node_id` on the Redis at `url`: presence TTL 15 s, a buffer of 1,000
    /// events, streams of about 1,000 entries, empty rooms kept an hour.
    pub fn new(url: impl Into<String>, node_id: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            node_id: node_id.into(),
            presence_ttl: Duration::from_secs(15),
            buffer: 1000,
            prefix: "kcp-chat:".to_owned(),
            stream_maxlen: 1000,
            empty_room_ttl: Duration::from_secs(3600),
        }
    }

    /// How often presence and nicks are refreshed and lost nodes looked for.
    pub(crate) fn refresh_every(&self) -> Duration {
        (self.presence_ttl / 4).max(Duration::from_millis(50))
    }

    /// The TTL of the node's liveness key: three quarters of the presence TTL, so a
    /// node's death is noticed (at the next look, a quarter later) within the TTL.
    pub(crate) fn alive_ttl(&self) -> Duration {
        (self.presence_ttl * 3 / 4).max(Duration::from_millis(100))
    }
}
