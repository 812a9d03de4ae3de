//! What event loops ask of the cluster, and the bounded queue the publisher keeps
//! of it while Redis is slow or away.

use std::collections::VecDeque;

use kcp_net::SessionKey;

use super::event::RoomEvent;
use crate::room::UserId;

/// A question answered from Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Query {
    /// `/rooms`.
    Rooms,
    /// `/who ROOM`.
    Users(String),
}

/// One request from an event loop to the publisher.
#[derive(Debug)]
pub(crate) enum Op {
    /// Publish an event in a room's stream. `from` is the session to tell if it is
    /// refused (none for leaves of departed users, which are never refused).
    Publish {
        room: String,
        event: RoomEvent,
        from: Option<SessionKey>,
    },
    /// A hello: claim the nick cluster-wide, then welcome (or refuse and forget the
    /// user, who was added locally already).
    Claim {
        uid: UserId,
        key: SessionKey,
        nick: String,
        token: u64,
    },
    /// `/nick`: claim the new nick, then rename in the local model and every room.
    Rename {
        uid: UserId,
        key: SessionKey,
        nick: String,
    },
    /// Free a nick of a user who left.
    Release { nick: String },
    /// Answer a query to a session.
    Query { key: SessionKey, query: Query },
}

impl Op {
    /// Ops that need Redis's answer before the next can go (claims, renames and
    /// queries run on their own; the rest are pipelined).
    pub(crate) const fn needs_answer(&self) -> bool {
        matches!(
            self,
            Self::Claim { .. } | Self::Rename { .. } | Self::Query { .. }
        )
    }

    /// Ops that may be refused when the buffer is full: lines and joins (their user
    /// is told). Leaves and releases are bounded by the users and their rooms, and
    /// never dropped, so Redis is never left with members who are gone.
    pub(crate) const fn refusable(&self) -> bool {
        match self {
            Self::Publish { from, .. } => from.is_some(),
            Self::Claim { .. } | Self::Rename { .. } | Self::Query { .. } => true,
            Self::Release { .. } => false,
        }
    }
}

/// The publisher's queue: ops in arrival order, each publish with its id (increasing,
/// so Redis can skip replays).
#[derive(Debug)]
pub(crate) struct Outbox {
    ops: VecDeque<(u64, Op)>,
    cap: usize,
    next_pub: u64,
}

impl Outbox {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            ops: VecDeque::new(),
            cap: cap.max(1),
            next_pub: 1,
        }
    }

    /// Queues an op; gives it back when the queue is full and it may be refused.
    pub(crate) fn push(&mut self, op: Op) -> Result<(), Box<Op>> {
        if self.ops.len() >= self.cap && op.refusable() {
            return Err(Box::new(op));
        }
        let id = self.next_pub;
        self.next_pub += 1;
        self.ops.push_back((id, op));
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.ops.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub(crate) fn front(&self) -> Option<&(u64, Op)> {
        self.ops.front()
    }

    /// The first `n` ops (at most), for one pipeline.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &(u64, Op)> {
        self.ops.iter()
    }

    pub(crate) fn pop(&mut self) -> Option<(u64, Op)> {
        self.ops.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_and_releases_are_kept_beyond_the_bound_and_ids_increase() {
        let mut outbox = Outbox::new(1);
        outbox.push(Op::Release { nick: "a".into() }).unwrap();
        outbox.push(Op::Release { nick: "b".into() }).unwrap();
        assert_eq!(outbox.len(), 2);
        let first = outbox.pop().unwrap().0;
        assert!(outbox.pop().unwrap().0 > first);
        assert!(outbox.is_empty());
    }
}
