//! The publisher thread: takes what the event loops ask (a bounded channel), keeps it
//! in a bounded outbox, and sends it to Redis one pipeline per turn; claims nicks,
//! answers `/who` and `/rooms`, keeps the node's presence and reaps lost nodes.
//!
//! Order: ops leave the outbox in the order they arrived, so a user's join precedes
//! their lines and their lines precede their leave. While Redis is away the outbox
//! fills (up to [`ClusterConfig::buffer`]); on reconnect the node's presence is
//! restored first, then the outbox is published. A pipeline whose answer is lost is
//! sent again whole: the publish script skips the ops Redis already applied (their
//! ids are not above the last one it recorded for this run of the node).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use kcp_net::{ServerHandle, SessionKey};
use redis::{Connection, RedisError, RedisResult, Value};
use tracing::{debug, info, warn};

use super::deliver::{refuse, to_key};
use super::event::{Body, RoomEvent};
use super::keys::Keys;
use super::outbox::{Op, Outbox, Query};
use super::presence::Presence;
use super::reader::Subscribe;
use super::redis_link::RedisLink;
use super::scripts::Scripts;
use super::{ClusterConfig, Counters, IO_TIMEOUT};
use crate::protocol::{ErrorCode, LOBBY, PROTOCOL_VERSION, RoomInfo, ServerFrame};
use crate::room::UserId;
use crate::server::Hub;

/// Most ops in one pipeline.
const PIPELINE_MAX: usize = 512;
/// Longest wait for new ops while idle (also the reconnect poll while Redis is away).
const IDLE_WAIT: Duration = Duration::from_millis(50);
/// How long a clean departure may spend publishing what is left.
const DEPART_DEADLINE: Duration = Duration::from_secs(1);
/// Failed-claim users remembered, so ops they sent meanwhile are dropped.
const FORGOTTEN_MAX: usize = 1024;

pub(crate) struct Publisher {
    config: ClusterConfig,
    keys: Keys,
    scripts: Scripts,
    link: RedisLink,
    hub: Arc<Hub>,
    handle: ServerHandle,
    ops: Receiver<Op>,
    subscribe: SyncSender<Subscribe>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    depart: Arc<AtomicBool>,
    outbox: Outbox,
    presence: Presence,
    /// Users whose claim failed (and were forgotten), oldest first.
    forgotten: VecDeque<UserId>,
    forgotten_set: HashSet<UserId>,
    next_refresh: Instant,
    /// Whether the node's presence was restored once (the first time also clears
    /// what a killed previous run of this node id left).
    restored_once: bool,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("node", &self.config.node_id)
            .field("outbox", &self.outbox.len())
            .finish_non_exhaustive()
    }
}

/// Builds an `EVALSHA` of `script` with `keys` and `args`.
pub(crate) fn evalsha(script: &redis::Script, keys: &[String], args: &[String]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash())
        .arg(keys.len())
        .arg(keys)
        .arg(args);
    cmd
}

/// A reply's text, if it is a string.
pub(crate) fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Okay => Some("OK".to_owned()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The items of an array (or set) reply.
pub(crate) fn items(value: &Value) -> Option<&[Value]> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items),
        _ => None,
    }
}

impl Publisher {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: ClusterConfig,
        client: redis::Client,
        hub: Arc<Hub>,
        handle: ServerHandle,
        ops: Receiver<Op>,
        subscribe: SyncSender<Subscribe>,
        counters: Arc<Counters>,
        stop: Arc<AtomicBool>,
        depart: Arc<AtomicBool>,
        incarnation: u64,
    ) -> Self {
        let keys = Keys::new(&config.prefix);
        Self {
            presence: Presence::new(&config, keys.clone(), incarnation),
            outbox: Outbox::new(config.buffer),
            keys,
            scripts: Scripts::new(),
            link: RedisLink::new(client, "publisher", IO_TIMEOUT, Arc::clone(&counters)),
            config,
            hub,
            handle,
            ops,
            subscribe,
            counters,
            stop,
            depart,
            forgotten: VecDeque::new(),
            forgotten_set: HashSet::new(),
            next_refresh: Instant::now(),
            restored_once: false,
        }
    }

    pub(crate) fn run(mut self) {
        info!(node = %self.config.node_id, url = %self.config.url, "cluster publisher up");
        loop {
            if self.stop.load(Relaxed) {
                if self.depart.load(Relaxed) {
                    self.depart_cleanly();
                }
                break;
            }
            let now = Instant::now();
            self.connect(now);
            let wait = if self.link.is_up() && !self.outbox.is_empty() {
                Duration::ZERO
            } else {
                self.next_refresh
                    .saturating_duration_since(now)
                    .min(IDLE_WAIT)
            };
            match self.ops.recv_timeout(wait) {
                Ok(op) => self.admit(op),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while let Ok(op) = self.ops.try_recv() {
                self.admit(op);
            }
            self.flush();
            if Instant::now() >= self.next_refresh {
                self.refresh();
                self.next_refresh = Instant::now() + self.config.refresh_every();
            }
            self.counters
                .buffered
                .store(self.outbox.len() as u64, Relaxed);
            self.counters.connected.store(self.link.is_up(), Relaxed);
        }
        self.counters.connected.store(false, Relaxed);
        info!(node = %self.config.node_id, "cluster publisher down");
    }

    /// Connects if down and due; a new connection loads the scripts and restores the
    /// node's presence (a restarted Redis may have lost it).
    fn connect(&mut self, now: Instant) {
        let Some((conn, fresh)) = self.link.get(now) else {
            return;
        };
        if !fresh {
            return;
        }
        let first = !self.restored_once;
        let restored = load_scripts(conn)
            .and_then(|()| self.presence.restore(conn, &self.scripts, &self.hub, first));
        if let Err(e) = restored {
            self.link.broke(&e);
        } else {
            self.restored_once = true;
            self.next_refresh = Instant::now() + self.config.refresh_every();
        }
    }

    /// Takes an op from the loops into the outbox, or refuses it now: when Redis is
    /// away, ops that need an answer; when the outbox is full, lines and joins.
    fn admit(&mut self, op: Op) {
        if op.needs_answer() && !self.link.is_up() {
            return self.refuse(op, "the cluster's Redis is unreachable; try again shortly");
        }
        if let Err(op) = self.outbox.push(op) {
            let why = format!(
                "the cluster's Redis is unreachable and {} events are waiting for it",
                self.outbox.len()
            );
            self.refuse(*op, &why);
        }
    }

    fn refuse(&mut self, op: Op, why: &str) {
        let (hub, handle, counters) = (
            Arc::clone(&self.hub),
            self.handle.clone(),
            Arc::clone(&self.counters),
        );
        let (hub, handle, counters) = (&*hub, &handle, &*counters);
        match op {
            Op::Publish {
                room,
                event,
                from: Some(key),
            } => {
                let what = match event.body {
                    Body::Join => {
                        hub.lock().pending_joins.remove(&(event.uid, room.clone()));
                        format!("not joined to {room}")
                    }
                    _ => format!("not sent to {room}"),
                };
                refuse(
                    hub,
                    handle,
                    counters,
                    key,
                    ErrorCode::Unavailable,
                    format!("{what}: {why}"),
                );
            }
            Op::Claim { uid, key, nick, .. } => {
                self.forget(uid, key);
                let text = format!("cannot claim the nick {nick}: {why}");
                refuse(hub, handle, counters, key, ErrorCode::Unavailable, text);
            }
            Op::Rename { key, nick, .. } => {
                let text = format!("nick not changed to {nick}: {why}");
                refuse(hub, handle, counters, key, ErrorCode::Unavailable, text);
            }
            Op::Query { key, .. } => {
                let text = format!("cannot list: {why}");
                refuse(hub, handle, counters, key, ErrorCode::Unavailable, text);
            }
            Op::Publish { from: None, .. } | Op::Release { .. } => {}
        }
    }

    /// Removes a user whose hello was refused (added to the local model at hello),
    /// so the session may say hello again; ops it sent meanwhile are dropped.
    fn forget(&mut self, uid: UserId, key: SessionKey) {
        let mut state = self.hub.lock();
        if state.members.get(&uid).is_some_and(|m| m.key == key) {
            state.rooms.remove_user(uid);
            state.members.remove(&uid);
            state.pending_joins.retain(|(id, _)| *id != uid);
        }
        drop(state);
        if self.forgotten_set.insert(uid) {
            self.forgotten.push_back(uid);
            if self.forgotten.len() > FORGOTTEN_MAX
                && let Some(old) = self.forgotten.pop_front()
            {
                self.forgotten_set.remove(&old);
            }
        }
    }

    /// Sends the outbox: pipelines of publishes and releases, claims and queries one
    /// at a time. Stops at the first broken connection (what is left stays).
    fn flush(&mut self) {
        while let Some((_, front)) = self.outbox.front() {
            if !self.link.is_up() {
                return;
            }
            let result = if front.needs_answer() {
                self.answer_front()
            } else {
                self.pipeline_front()
            };
            if let Err(e) = result {
                self.link.broke(&e);
                return;
            }
        }
    }

    fn is_forgotten(&self, op: &Op) -> bool {
        match op {
            Op::Publish {
                event,
                from: Some(_),
                ..
            } => self.forgotten_set.contains(&event.uid),
            _ => false,
        }
    }

    /// One pipeline of the publishes and releases at the front of the outbox.
    fn pipeline_front(&mut self) -> RedisResult<()> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for (count, (id, op)) in self.outbox.iter().enumerate() {
            if op.needs_answer() || count == PIPELINE_MAX {
                break;
            }
            match op {
                Op::Publish { room, event, .. } if !self.is_forgotten(op) => {
                    pipe.add_command(self.publish_cmd(*id, room, event));
                }
                Op::Release { nick } => {
                    pipe.add_command(evalsha(
                        &self.scripts.release,
                        &[self.keys.nick(nick)],
                        std::slice::from_ref(&self.config.node_id),
                    ));
                }
                _ => {
                    pipe.cmd("PING");
                }
            }
        }
        let Some((conn, _)) = self.link.get(Instant::now()) else {
            return Ok(());
        };
        let results: Vec<RedisResult<Value>> = pipe.query(conn)?;
        Counters::add(&self.counters.pipelines, 1);
        if results.iter().any(|r| is_noscript(r.as_ref().err())) {
            // Redis forgot the scripts (SCRIPT FLUSH, or a restart we did not see):
            // reconnect, which loads them, and send the batch again.
            return Err(RedisError::from((
                redis::ErrorKind::Io,
                "Redis no longer has our scripts",
            )));
        }
        let mut published = 0;
        let mut joins = Vec::new();
        for result in results {
            let Some((_, op)) = self.outbox.pop() else {
                break;
            };
            match (op, result) {
                (Op::Publish { room, event, .. }, Ok(value)) => {
                    published += 1;
                    if event.body == Body::Join
                        && event.is_ours(&self.config.node_id, self.presence.incarnation())
                    {
                        joins.push((room, event, value));
                    }
                }
                (Op::Publish { room, .. }, Err(e)) => {
                    Counters::add(&self.counters.bad_entries, 1);
                    warn!(%room, "Redis refused a publish: {e}");
                }
                (Op::Release { nick }, Err(e)) => {
                    warn!(%nick, "Redis refused a nick release: {e}");
                }
                _ => {}
            }
        }
        Counters::add(&self.counters.published, published);
        for (room, event, reply) in joins {
            let conn = self.link.get(Instant::now()).map(|(c, _)| c);
            joined(&self.keys, &self.subscribe, &room, &event, &reply, conn);
        }
        Ok(())
    }

    fn publish_cmd(&self, id: u64, room: &str, event: &RoomEvent) -> redis::Cmd {
        let keys = [
            self.keys
                .published(&self.config.node_id, self.presence.incarnation()),
            self.keys.stream(room),
            self.keys.seq(room),
            self.keys.members(room),
            self.keys.rooms(),
        ];
        let old = match &event.body {
            Body::Nick { old } => old.clone(),
            _ => String::new(),
        };
        let mut args = vec![
            id.to_string(),
            event.kind_letter().to_owned(),
            self.config.stream_maxlen.to_string(),
            room.to_owned(),
            event.nick.clone(),
            event.node.clone(),
            old,
            millis(self.config.empty_room_ttl),
            LOBBY.to_owned(),
        ];
        for (field, value) in event.fields() {
            args.push(field.to_owned());
            args.push(value);
        }
        evalsha(&self.scripts.publish, &keys, &args)
    }

    /// Runs the claim, rename or query at the front of the outbox.
    fn answer_front(&mut self) -> RedisResult<()> {
        let Some((conn, _)) = self.link.get(Instant::now()) else {
            return Ok(());
        };
        let Some((_, op)) = self.outbox.front() else {
            return Ok(());
        };
        let outcome = match op {
            Op::Claim { nick, .. } | Op::Rename { nick, .. } => {
                Answer::Claimed(claim(conn, &self.scripts, &self.keys, &self.config, nick)?)
            }
            Op::Query {
                query: Query::Rooms,
                ..
            } => Answer::Rooms(room_list(conn, &self.scripts, &self.keys)?),
            Op::Query {
                query: Query::Users(room),
                ..
            } => Answer::Users(users(conn, &self.keys, room)?),
            Op::Publish { .. } | Op::Release { .. } => return Ok(()),
        };
        let rooms = match (&outcome, op) {
            (Answer::Claimed(true), Op::Claim { .. }) => {
                room_list(conn, &self.scripts, &self.keys)?
            }
            _ => Vec::new(),
        };
        let Some((_, op)) = self.outbox.pop() else {
            return Ok(());
        };
        self.answered(op, outcome, rooms);
        Ok(())
    }

    fn answered(&mut self, op: Op, outcome: Answer, rooms: Vec<RoomInfo>) {
        let (hub, handle) = (Arc::clone(&self.hub), self.handle.clone());
        let (hub, handle) = (&*hub, &handle);
        match (op, outcome) {
            (
                Op::Claim {
                    uid,
                    key,
                    nick,
                    token,
                },
                Answer::Claimed(true),
            ) => {
                let here = hub.lock().members.get(&uid).is_some_and(|m| m.key == key);
                if here {
                    info!(%nick, "nick claimed in the cluster");
                    let welcome = ServerFrame::Welcome {
                        version: PROTOCOL_VERSION,
                        id: uid,
                        nick,
                        token,
                        rooms,
                    };
                    to_key(hub, handle, key, &welcome);
                } else {
                    // Gone before the answer: free the nick again.
                    let _ = self.outbox.push(Op::Release { nick });
                }
            }
            (Op::Claim { uid, key, nick, .. }, Answer::Claimed(false)) => {
                Counters::add(&self.counters.nick_conflicts, 1);
                self.forget(uid, key);
                let text = format!("nick {nick:?} is taken (on another node)");
                refuse(hub, handle, &self.counters, key, ErrorCode::NickTaken, text);
            }
            (Op::Rename { uid, key, nick }, Answer::Claimed(claimed)) => {
                self.renamed(uid, key, nick, claimed);
            }
            (Op::Query { key, query }, Answer::Rooms(rooms)) => {
                debug!(?query, "rooms listed");
                to_key(hub, handle, key, &ServerFrame::Rooms { rooms });
            }
            (
                Op::Query {
                    key,
                    query: Query::Users(room),
                },
                Answer::Users(nicks),
            ) => {
                let frame = match nicks {
                    Some(nicks) => ServerFrame::Users { room, nicks },
                    None => {
                        hub.counters.count_error();
                        ServerFrame::Error {
                            code: ErrorCode::NotInRoom,
                            text: format!("no room {room}"),
                        }
                    }
                };
                to_key(hub, handle, key, &frame);
            }
            _ => {}
        }
    }

    /// A rename's claim came back: rename in the local model, publish the rename in
    /// every room of the user, free the old nick, tell the user.
    fn renamed(&mut self, uid: UserId, key: SessionKey, nick: String, claimed: bool) {
        let (hub, handle) = (Arc::clone(&self.hub), self.handle.clone());
        let (hub, handle) = (&*hub, &handle);
        if !claimed {
            Counters::add(&self.counters.nick_conflicts, 1);
            let text = format!("nick {nick:?} is taken (on another node)");
            return refuse(hub, handle, &self.counters, key, ErrorCode::NickTaken, text);
        }
        let mut state = hub.lock();
        if state.members.get(&uid).is_none_or(|m| m.key != key) {
            drop(state);
            let _ = self.outbox.push(Op::Release { nick });
            return;
        }
        let renamed = state.rooms.rename(uid, &nick);
        let rooms = state.rooms.rooms_of(uid);
        drop(state);
        match renamed {
            Ok((old, _)) => {
                info!(%old, new = %nick, "nick change");
                for room in rooms {
                    let event = RoomEvent {
                        node: self.config.node_id.clone(),
                        inc: self.presence.incarnation(),
                        uid,
                        nick: nick.clone(),
                        body: Body::Nick { old: old.clone() },
                    };
                    let _ = self.outbox.push(Op::Publish {
                        room,
                        event,
                        from: None,
                    });
                }
                if !old.eq_ignore_ascii_case(&nick) {
                    let _ = self.outbox.push(Op::Release { nick: old.clone() });
                }
                to_key(
                    hub,
                    handle,
                    key,
                    &ServerFrame::NickChanged { old, new: nick },
                );
            }
            Err(e) => {
                let _ = self.outbox.push(Op::Release { nick });
                refuse(hub, handle, &self.counters, key, e.code(), e.to_string());
            }
        }
    }

    /// Presence refresh and the look for lost nodes, when connected.
    fn refresh(&mut self) {
        let Some((conn, _)) = self.link.get(Instant::now()) else {
            return;
        };
        match self.presence.refresh(conn, &self.scripts, &self.hub) {
            Ok(report) => {
                Counters::add(&self.counters.nodes_reaped, report.reaped);
                Counters::add(&self.counters.nick_conflicts, report.nicks_lost);
            }
            Err(e) => self.link.broke(&e),
        }
    }

    /// A clean shutdown: publish what is queued (for a second at most), then take the
    /// node and its users out of Redis.
    fn depart_cleanly(&mut self) {
        while let Ok(op) = self.ops.try_recv() {
            self.admit(op);
        }
        let deadline = Instant::now() + DEPART_DEADLINE;
        while !self.outbox.is_empty() && Instant::now() < deadline {
            self.connect(Instant::now());
            self.flush();
            if !self.link.is_up() {
                std::thread::sleep(IDLE_WAIT);
            }
        }
        if !self.outbox.is_empty() {
            warn!(
                left = self.outbox.len(),
                "shutting down with events not published"
            );
        }
        if let Some((conn, _)) = self.link.get(Instant::now())
            && let Err(e) = self.presence.depart(conn, &self.scripts, &self.hub)
        {
            warn!("could not remove this node from Redis: {e}");
        }
    }
}

/// What a claim, rename or query came back with.
enum Answer {
    Claimed(bool),
    Rooms(Vec<RoomInfo>),
    /// `None`: no such room.
    Users(Option<Vec<String>>),
}

fn is_noscript(error: Option<&RedisError>) -> bool {
    error.is_some_and(|e| e.code() == Some("NOSCRIPT"))
}

/// A join of ours is in the stream: the reader starts reading the room there (if it
/// does not read it already).
fn joined(
    keys: &Keys,
    subscribe: &SyncSender<Subscribe>,
    room: &str,
    event: &RoomEvent,
    reply: &Value,
    conn: Option<&mut Connection>,
) {
    let id = match text(reply).as_deref() {
        Some("dup") => conn.and_then(|c| find_join(c, &keys.stream(room), event)),
        Some("gone") | None => None,
        Some(id) => Some(id.to_owned()),
    };
    let Some(join_id) = id else {
        warn!(%room, nick = %event.nick, "the stream entry of a join was not found");
        return;
    };
    // A full channel waits: the reader drains it every turn.
    let _ = subscribe.send(Subscribe {
        room: room.to_owned(),
        join_id,
    });
}

pub(crate) fn millis(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

/// Loads every script (a new connection may be to a restarted Redis).
fn load_scripts(conn: &mut Connection) -> RedisResult<()> {
    let mut pipe = redis::pipe();
    for source in Scripts::sources() {
        pipe.cmd("SCRIPT").arg("LOAD").arg(source).ignore();
    }
    pipe.query::<()>(conn)
}

fn claim(
    conn: &mut Connection,
    scripts: &Scripts,
    keys: &Keys,
    config: &ClusterConfig,
    nick: &str,
) -> RedisResult<bool> {
    let args = [config.node_id.clone(), millis(config.presence_ttl)];
    let won: i64 = evalsha(&scripts.claim, &[keys.nick(nick)], &args).query(conn)?;
    Ok(won == 1)
}

/// Every room with its member count, by name.
fn room_list(conn: &mut Connection, scripts: &Scripts, keys: &Keys) -> RedisResult<Vec<RoomInfo>> {
    let args = [keys.prefix().to_owned(), LOBBY.to_owned()];
    let reply: Value = evalsha(&scripts.room_list, &[keys.rooms()], &args).query(conn)?;
    let mut rooms: Vec<RoomInfo> = items(&reply)
        .unwrap_or_default()
        .chunks_exact(2)
        .filter_map(|pair| {
            Some(RoomInfo {
                name: text(&pair[0])?,
                users: text(&pair[1])?.parse().ok()?,
            })
        })
        .collect();
    rooms.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rooms)
}

/// The nicks in a room, sorted as a single server sorts them; `None` if there is no
/// such room.
fn users(conn: &mut Connection, keys: &Keys, room: &str) -> RedisResult<Option<Vec<String>>> {
    let mut nicks: Vec<String> = redis::cmd("HKEYS").arg(keys.members(room)).query(conn)?;
    if nicks.is_empty() && room != LOBBY {
        return Ok(None);
    }
    nicks.sort_unstable_by_key(|n| n.to_ascii_lowercase());
    Ok(Some(nicks))
}

/// The id of a join entry of ours among a stream's last entries (after a replayed
/// publish, whose first answer, with the id, was lost).
fn find_join(conn: &mut Connection, stream: &str, event: &RoomEvent) -> Option<String> {
    let reply: Value = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1000)
        .query(conn)
        .ok()?;
    super::reader::entries(&reply)
        .into_iter()
        .find(|(_, e)| {
            e.as_ref().is_ok_and(|e| {
                e.body == Body::Join && e.uid == event.uid && e.is_ours(&event.node, event.inc)
            })
        })
        .map(|(id, _)| id)
}
