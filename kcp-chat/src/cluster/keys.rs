//! The Redis keys of a cluster, in one place. Every key starts with the cluster's
//! prefix (`kcp-chat:` unless configured), so several clusters can share a Redis.

/// Key names under one prefix.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The prefix itself (the Lua scripts build room keys from it).
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Set of the node ids that announced themselves.
    pub(crate) fn nodes(&self) -> String {
        format!("{}nodes", self.prefix)
    }

    /// A node's liveness key (expires unless the node refreshes it).
    pub(crate) fn alive(&self, node: &str) -> String {
        format!("{}node:{node}:alive", self.prefix)
    }

    /// The last publish id of one incarnation of a node: replays of a batch whose
    /// answer was lost are recognised and skipped.
    pub(crate) fn published(&self, node: &str, incarnation: u64) -> String {
        format!("{}node:{node}:pub:{incarnation}", self.prefix)
    }

    /// Set of the rooms that have members.
    pub(crate) fn rooms(&self) -> String {
        format!("{}rooms", self.prefix)
    }

    /// A room's stream: its messages, joins, leaves and renames in the room's order.
    pub(crate) fn stream(&self, room: &str) -> String {
        format!("{}room:{room}:stream", self.prefix)
    }

    /// A room's message counter (the `seq` of its messages).
    pub(crate) fn seq(&self, room: &str) -> String {
        format!("{}room:{room}:seq", self.prefix)
    }

    /// A room's members: nick → node.
    pub(crate) fn members(&self, room: &str) -> String {
        format!("{}room:{room}:members", self.prefix)
    }

    /// Who holds a nick (ASCII-lowercased): the node id, with a TTL.
    pub(crate) fn nick(&self, nick: &str) -> String {
        format!("{}nick:{}", self.prefix, nick.to_ascii_lowercase())
    }

    /// The room name of a stream key, if it is one of ours.
    pub(crate) fn room_of_stream<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(self.prefix.as_str())?
            .strip_prefix("room:")?
            .strip_suffix(":stream")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_keys_name_their_room() {
        let keys = Keys::new("kc:");
        assert_eq!(keys.stream("lobby"), "kc:room:lobby:stream");
        assert_eq!(keys.room_of_stream(&keys.stream("a.b-c")), Some("a.b-c"));
        assert_eq!(keys.room_of_stream("other:room:x:stream"), None);
        assert_eq!(keys.nick("Alice"), "kc:nick:alice");
    }
}
