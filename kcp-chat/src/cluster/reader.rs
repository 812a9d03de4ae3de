//! The reader thread: `XREAD BLOCK` on the streams of the rooms this node's users are
//! in, and delivery of every entry, in stream order, to the room's local members.
//!
//! A room is read from just before the first local join's entry (the publisher says
//! where it is) until no local user is in it or joining it. A local user's join
//! takes effect when its entry is read (so the joiner sees exactly what follows it),
//! then the room's history before it is replayed to them. After a Redis outage every
//! room is read on from the last id delivered, so nothing published meanwhile is
//! missed.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use kcp_net::ServerHandle;
use redis::{Connection, RedisResult, Value};
use tracing::{debug, warn};

use super::deliver::{keys_of, to_key, to_keys};
use super::event::{Body, EventError, RoomEvent};
use super::keys::Keys;
use super::publisher::{items, text};
use super::redis_link::RedisLink;
use super::{ClusterConfig, Counters, IO_TIMEOUT};
use crate::protocol::{LeaveReason, ServerFrame};
use crate::room::UserId;
use crate::server::Hub;

/// How long one `XREAD` blocks (also how soon a new room is picked up).
const BLOCK: Duration = Duration::from_millis(50);
/// Entries per `XREAD`.
const COUNT: usize = 512;
/// Renames remembered, so a user in several rooms with the renamer is told once.
const RENAMES_KEPT: usize = 256;

/// The publisher's word that a join of ours is in a room's stream at `join_id`.
#[derive(Debug)]
pub(crate) struct Subscribe {
    pub(crate) room: String,
    pub(crate) join_id: String,
}

/// A rename as the streams carry it: (node, run, user, new nick).
type Rename = (String, u64, UserId, String);

/// An entry of a stream: its id, and its event or why it does not decode.
pub(crate) type Entry = (String, Result<RoomEvent, EventError>);

/// The id just before `id` (`ms-seq`), to read a stream from `id` included.
fn id_before(id: &str) -> String {
    let Some((ms, seq)) = id.split_once('-') else {
        return "0-0".to_owned();
    };
    match (ms.parse::<u64>(), seq.parse::<u64>()) {
        (Ok(ms), Ok(seq)) if seq > 0 => format!("{ms}-{}", seq - 1),
        (Ok(ms), Ok(_)) if ms > 0 => format!("{}-{}", ms - 1, u64::MAX),
        _ => "0-0".to_owned(),
    }
}

/// Field/value pairs of an entry.
fn pairs(value: &Value) -> HashMap<String, String> {
    match value {
        Value::Map(map) => map
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
            .collect(),
        _ => items(value)
            .unwrap_or_default()
            .chunks_exact(2)
            .filter_map(|kv| Some((text(&kv[0])?, text(&kv[1])?)))
            .collect(),
    }
}

/// The entries of an `XRANGE`-style reply: `[[id, [field, value, ...]], ...]`.
pub(crate) fn entries(reply: &Value) -> Vec<Entry> {
    items(reply)
        .unwrap_or_default()
        .iter()
        .filter_map(|entry| {
            let parts = items(entry)?;
            let id = text(parts.first()?)?;
            let fields = pairs(parts.get(1)?);
            Some((id, RoomEvent::decode(&fields)))
        })
        .collect()
}

/// The streams of an `XREAD` reply: `[[key, entries], ...]` (RESP2) or a map (RESP3).
fn streams(reply: &Value) -> Vec<(String, Vec<Entry>)> {
    match reply {
        Value::Map(map) => map
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, entries(v))))
            .collect(),
        _ => items(reply)
            .unwrap_or_default()
            .iter()
            .filter_map(|s| {
                let parts = items(s)?;
                Some((text(parts.first()?)?, entries(parts.get(1)?)))
            })
            .collect(),
    }
}

pub(crate) struct Reader {
    node: String,
    incarnation: u64,
    keys: Keys,
    history: usize,
    link: RedisLink,
    hub: Arc<Hub>,
    handle: ServerHandle,
    subscribe: Receiver<Subscribe>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    /// Room → the last id delivered.
    positions: BTreeMap<String, String>,
    /// Recent renames (by stream entry's node, run, user, new nick) and whom they were
    /// delivered to.
    renames: VecDeque<(Rename, HashSet<UserId>)>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("node", &self.node)
            .field("rooms", &self.positions.len())
            .finish_non_exhaustive()
    }
}

impl Reader {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: &ClusterConfig,
        client: redis::Client,
        hub: Arc<Hub>,
        handle: ServerHandle,
        subscribe: Receiver<Subscribe>,
        counters: Arc<Counters>,
        stop: Arc<AtomicBool>,
        incarnation: u64,
        history: usize,
    ) -> Self {
        Self {
            node: config.node_id.clone(),
            incarnation,
            keys: Keys::new(&config.prefix),
            history,
            // An XREAD blocks for BLOCK: its answer may take that much longer.
            link: RedisLink::new(client, "reader", IO_TIMEOUT + BLOCK, Arc::clone(&counters)),
            hub,
            handle,
            subscribe,
            counters,
            stop,
            positions: BTreeMap::new(),
            renames: VecDeque::new(),
        }
    }

    pub(crate) fn run(mut self) {
        while !self.stop.load(Relaxed) {
            while let Ok(sub) = self.subscribe.try_recv() {
                self.subscribed(sub);
            }
            self.prune();
            if self.positions.is_empty() {
                match self.subscribe.recv_timeout(BLOCK) {
                    Ok(sub) => self.subscribed(sub),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                continue;
            }
            let now = Instant::now();
            let Some((conn, _)) = self.link.get(now) else {
                let pause = self.link.retry_at().saturating_duration_since(now);
                std::thread::sleep(pause.min(BLOCK));
                continue;
            };
            match read(conn, &self.keys, &self.positions) {
                Ok(reply) => {
                    for (key, batch) in streams(&reply) {
                        let Some(room) = self.keys.room_of_stream(&key).map(str::to_owned) else {
                            continue;
                        };
                        for (id, event) in batch {
                            self.positions.insert(room.clone(), id.clone());
                            match event {
                                Ok(event) => self.deliver(&room, &id, event),
                                Err(e) => {
                                    Counters::add(&self.counters.bad_entries, 1);
                                    warn!(%room, %id, "skipped a bad stream entry: {e}");
                                }
                            }
                        }
                    }
                }
                Err(e) => self.link.broke(&e),
            }
        }
    }

    fn subscribed(&mut self, sub: Subscribe) {
        debug!(room = %sub.room, id = %sub.join_id, "reading a room");
        self.positions
            .entry(sub.room)
            .or_insert_with(|| id_before(&sub.join_id));
    }

    /// Stops reading rooms no local user is in or joining.
    fn prune(&mut self) {
        let state = self.hub.lock();
        self.positions.retain(|room, _| {
            !state.rooms.members(room).is_empty()
                || state.pending_joins.iter().any(|(_, r)| r == room)
        });
    }

    /// Delivers one entry to the room's local members, applying our users' joins and
    /// leaves to the local model at their place in the order.
    fn deliver(&mut self, room: &str, id: &str, event: RoomEvent) {
        Counters::add(&self.counters.entries_read, 1);
        let ours = event.is_ours(&self.node, self.incarnation);
        let hub = Arc::clone(&self.hub);
        let mut state = hub.lock();
        match event.body {
            Body::Message {
                text,
                kind,
                ts_ms,
                seq,
            } => {
                let keys = keys_of(&state, state.rooms.members(room));
                drop(state);
                let frame = ServerFrame::Message {
                    room: room.to_owned(),
                    from: event.nick,
                    text,
                    kind,
                    ts_ms,
                    seq,
                    history: false,
                };
                to_keys(&hub, &self.handle, keys, &frame);
            }
            Body::Join => {
                let joiner = (ours
                    && state.pending_joins.remove(&(event.uid, room.to_owned()))
                    && state.rooms.join(event.uid, room).is_ok())
                .then(|| state.members.get(&event.uid).map(|m| m.key))
                .flatten();
                let keys = keys_of(&state, state.rooms.members(room));
                drop(state);
                let frame = ServerFrame::Joined {
                    room: room.to_owned(),
                    nick: event.nick,
                };
                to_keys(&hub, &self.handle, keys, &frame);
                if let Some(key) = joiner {
                    self.replay(room, id, key);
                }
            }
            Body::Leave { reason } => {
                let mut keys = keys_of(&state, state.rooms.members(room));
                if event.node == self.node {
                    // Ours: a /leave (already applied: the leaver hears it too), or
                    // this node's users removed as a lost node's.
                    let uid = if ours {
                        Some(event.uid)
                    } else {
                        state.rooms.holder(&event.nick)
                    };
                    if let Some(uid) = uid {
                        if reason == LeaveReason::NodeLost && state.rooms.is_member(uid, room) {
                            let _ = state.rooms.leave(uid, room);
                        } else if matches!(reason, LeaveReason::Left | LeaveReason::NodeLost)
                            && let Some(member) = state.members.get(&uid)
                            && !keys.contains(&member.key)
                        {
                            keys.push(member.key);
                        }
                    }
                }
                drop(state);
                let frame = ServerFrame::Left {
                    room: room.to_owned(),
                    nick: event.nick,
                    reason,
                };
                to_keys(&hub, &self.handle, keys, &frame);
            }
            Body::Nick { old } => {
                // The renamer was told by the publisher; room mates once each.
                let rename = (event.node.clone(), event.inc, event.uid, event.nick.clone());
                let members = state.rooms.members(room);
                let index = match self.renames.iter().position(|(r, _)| *r == rename) {
                    Some(index) => index,
                    None => {
                        if self.renames.len() == RENAMES_KEPT {
                            self.renames.pop_front();
                        }
                        self.renames.push_back((rename, HashSet::new()));
                        self.renames.len() - 1
                    }
                };
                let mut none = HashSet::new();
                let told = self.renames.get_mut(index).map_or(&mut none, |(_, t)| t);
                let fresh: Vec<UserId> = members
                    .into_iter()
                    .filter(|id| !(ours && *id == event.uid) && told.insert(*id))
                    .collect();
                let keys = keys_of(&state, fresh);
                drop(state);
                let frame = ServerFrame::NickChanged {
                    old,
                    new: event.nick,
                };
                to_keys(&hub, &self.handle, keys, &frame);
            }
        }
    }

    /// Replays to a joiner the room's last messages before its join entry.
    fn replay(&mut self, room: &str, join_id: &str, key: kcp_net::SessionKey) {
        if self.history == 0 {
            return;
        }
        let Some((conn, _)) = self.link.get(Instant::now()) else {
            return;
        };
        match history(conn, &self.keys.stream(room), room, join_id, self.history) {
            Ok(lines) => {
                for frame in lines {
                    to_key(&self.hub, &self.handle, key, &frame);
                }
            }
            Err(e) => {
                warn!(%room, "could not read the room's history: {e}");
                self.link.broke(&e);
            }
        }
    }
}

/// One `XREAD` of every room read, from its position.
fn read(
    conn: &mut Connection,
    keys: &Keys,
    positions: &BTreeMap<String, String>,
) -> RedisResult<Value> {
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT")
        .arg(COUNT)
        .arg("BLOCK")
        .arg(BLOCK.as_millis() as u64)
        .arg("STREAMS");
    for room in positions.keys() {
        cmd.arg(keys.stream(room));
    }
    for id in positions.values() {
        cmd.arg(id);
    }
    cmd.query(conn)
}

/// The last `want` messages of a stream before `before`, oldest first (a few pages of
/// `XREVRANGE` at most: joins and leaves sit between the lines).
fn history(
    conn: &mut Connection,
    stream: &str,
    room: &str,
    before: &str,
    want: usize,
) -> RedisResult<Vec<ServerFrame>> {
    let mut lines = Vec::new();
    let mut end = format!("({before}");
    let page = (want * 2).max(32);
    for _ in 0..4 {
        let reply: Value = redis::cmd("XREVRANGE")
            .arg(stream)
            .arg(&end)
            .arg("-")
            .arg("COUNT")
            .arg(page)
            .query(conn)?;
        let batch = entries(&reply);
        let exhausted = batch.len() < page;
        for (id, event) in batch {
            end = format!("({id}");
            if let Ok(RoomEvent {
                nick,
                body:
                    Body::Message {
                        text,
                        kind,
                        ts_ms,
                        seq,
                    },
                ..
            }) = event
            {
                lines.push(ServerFrame::Message {
                    room: room.to_owned(),
                    from: nick,
                    text,
                    kind,
                    ts_ms,
                    seq,
                    history: true,
                });
                if lines.len() == want {
                    break;
                }
            }
        }
        if lines.len() == want || exhausted {
            break;
        }
    }
    lines.reverse();
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_before_reads_the_entry_itself() {
        assert_eq!(id_before("5-3"), "5-2");
        assert_eq!(id_before("5-0"), format!("4-{}", u64::MAX));
        assert_eq!(id_before("0-0"), "0-0");
        assert_eq!(id_before("junk"), "0-0");
    }
}
