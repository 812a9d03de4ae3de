//! The chat server's `EventHandler`: one clone per event loop, with the per-session
//! state of that loop's clients, and the shared [`Hub`] behind a lock.
//!
//! Flood control is two token buckets per frame: the session's own (`rate`/`burst`,
//! so one client behind a shared address cannot spend its neighbours' budget), then
//! its source address's, shared by every conversation from that address on every loop
//! (`ip_rate`/`ip_burst`, so a new conv per burst gets no fresh budget). Strikes are
//! counted both ways too; either limit exceeded kicks the session that erred.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kcp_net::{CloseCtx, CloseReason, EventHandler, ServerHandle, SessionCtx, SessionKey};
use tracing::{debug, info, warn};

use super::busy::Busy;
use super::config::ChatServerConfig;
use super::hub::{AtomicCounters, Hub, HubState, Member};
use crate::protocol::{
    ClientFrame, ErrorCode, LeaveReason, MessageKind, PROTOCOL_VERSION, ServerFrame, decode_client,
    encode, peek_hello_version,
};
use crate::rate::{Strikes, TokenBucket, late_slack};
use crate::room::{RoomError, UserId};

/// One session's state, kept on its loop.
#[derive(Debug)]
pub(super) struct Client {
    pub(super) user: Option<UserId>,
    /// The peer's address, whose shared budget the session draws from.
    ip: IpAddr,
    bucket: TokenBucket,
    strikes: Strikes,
    /// Closed by us (kicked, refused, quit): further frames are ignored.
    closing: bool,
    /// The reason to give the rooms when the session goes.
    leave_reason: Option<LeaveReason>,
}

/// The handler; cloned once per event loop by `KcpServer::bind`. A clone shares the
/// hub and starts with no clients of its own.
#[derive(Debug)]
pub(crate) struct ChatHandler {
    hub: Arc<Hub>,
    config: Arc<ChatServerConfig>,
    clients: HashMap<SessionKey, Client>,
}

impl Clone for ChatHandler {
    fn clone(&self) -> Self {
        Self::new(Arc::clone(&self.hub), Arc::clone(&self.config))
    }
}

impl ChatHandler {
    pub(crate) fn new(hub: Arc<Hub>, config: Arc<ChatServerConfig>) -> Self {
        Self {
            hub,
            config,
            clients: HashMap::new(),
        }
    }
}

/// A new session's state: a full bucket, no strikes, not welcomed. Counts the
/// session in its address's entry (released in `on_close`).
fn new_client(hub: &Hub, config: &ChatServerConfig, ip: IpAddr, now: Instant) -> Client {
    hub.ip_open(ip, now);
    Client {
        user: None,
        ip,
        bucket: TokenBucket::new(config.rate, config.burst, now),
        strikes: Strikes::new(config.strikes, config.strike_window),
        closing: false,
        leave_reason: None,
    }
}

/// Milliseconds since the Unix epoch, the server's message timestamp.
pub(super) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Queues a frame to the session in hand. It goes through the server handle like room
/// deliveries do, so everything a session is sent arrives in the order the server
/// decided it (a pong never overtakes the echo of a message said before the ping).
fn reply(hub: &Hub, session: &SessionCtx<'_>, frame: &ServerFrame) {
    if let Ok(bytes) = encode(frame) {
        hub.post(session.handle(), session.key(), bytes);
    }
}

/// Closes the session in hand after the frames queued so far (posted like them).
fn close(session: &SessionCtx<'_>) {
    let _ = session.handle().close(session.key());
}

impl EventHandler for ChatHandler {
    fn on_open(&mut self, session: &mut SessionCtx<'_>) {
        debug!(peer = %session.peer(), conv = session.conv(), "session opened");
        let client = new_client(&self.hub, &self.config, session.peer().ip(), Instant::now());
        if let Some(old) = self.clients.insert(session.key(), client) {
            self.hub.ip_close(old.ip, Instant::now());
        }
    }

    fn on_message(&mut self, session: &mut SessionCtx<'_>, message: Bytes) {
        let now = Instant::now();
        let config = &self.config;
        let hub = &self.hub;
        let client = self
            .clients
            .entry(session.key())
            .or_insert_with(|| new_client(hub, config, session.peer().ip(), now));
        if !client.closing {
            let mut turn = Turn {
                hub: &self.hub,
                config,
                session,
                client,
                now,
            };
            turn.handle(&message);
        }
    }

    fn on_close(&mut self, closed: &CloseCtx<'_>, reason: CloseReason) {
        let session = closed.session();
        if reason == CloseReason::SlowConsumer {
            warn!(peer = %session.peer(), "closed a client that could not keep up (its queue stayed full)");
        } else {
            debug!(peer = %session.peer(), ?reason, "session closed");
        }
        let Some(client) = self.clients.remove(&session.key()) else {
            return;
        };
        self.hub.ip_close(client.ip, Instant::now());
        let Some(id) = client.user else {
            return;
        };
        let leave = client.leave_reason.unwrap_or(LeaveReason::Lost);
        let mut state = self.hub.lock();
        // A resumed user's old session finds its user already gone.
        if state
            .members
            .get(&id)
            .is_none_or(|m| m.key != session.key())
        {
            return;
        }
        info!(
            nick = state.rooms.nick(id).unwrap_or_default(),
            ?reason,
            "user gone"
        );
        if reason == CloseReason::Shutdown {
            // Nobody to tell: every session is closing.
            state.rooms.remove_user(id);
            state.members.remove(&id);
        } else {
            remove_member(&self.hub, &mut state, closed.handle(), id, leave);
        }
    }
}

/// The handling of one frame from one session.
pub(super) struct Turn<'a, 'b, 'c> {
    pub(super) hub: &'a Hub,
    config: &'a ChatServerConfig,
    pub(super) session: &'a mut SessionCtx<'b>,
    pub(super) client: &'c mut Client,
    now: Instant,
}

impl Turn<'_, '_, '_> {
    fn handle(&mut self, message: &[u8]) {
        AtomicCounters::bump(&self.hub.counters.frames_in);
        if message.len() > self.config.max_frame() {
            let text = format!(
                "frame of {} bytes exceeds the limit of {}",
                message.len(),
                self.config.max_frame()
            );
            return self.error(ErrorCode::TooLong, text);
        }
        // Frames a retransmission held back arrive together: not a flood (see
        // `late_slack`).
        let rto = self.session.session().conversation().engine().stats().rto;
        let rto = Duration::from_millis(u64::from(rto));
        let slack = late_slack(self.config.rate, rto, self.config.max_late);
        if !self.client.bucket.take_with_slack(self.now, slack) {
            AtomicCounters::bump(&self.hub.counters.rate_limited);
            let text = format!("slow down: at most {} frames per second", self.config.rate);
            return self.error(ErrorCode::RateLimited, text);
        }
        let ip_slack = late_slack(self.config.ip_rate, rto, self.config.max_late);
        if !self.hub.ip_take(self.client.ip, self.now, ip_slack) {
            AtomicCounters::bump(&self.hub.counters.rate_limited);
            AtomicCounters::bump(&self.hub.counters.ip_rate_limited);
            let text = format!(
                "slow down: at most {} frames per second from your address, over all \
                 its conversations",
                self.config.ip_rate
            );
            return self.error(ErrorCode::RateLimited, text);
        }
        match decode_client(message) {
            Ok(frame) => self.dispatch(frame),
            Err(e) => {
                if let Some(version) =
                    peek_hello_version(message).filter(|v| *v != PROTOCOL_VERSION)
                {
                    return self.wrong_version(version);
                }
                AtomicCounters::bump(&self.hub.counters.bad_frames);
                debug!(peer = %self.session.peer(), "bad frame: {e}");
                self.error(ErrorCode::BadFrame, format!("cannot decode frame: {e}"));
            }
        }
    }

    fn dispatch(&mut self, frame: ClientFrame) {
        let cluster = self.hub.cluster.as_ref();
        if cluster.is_some() {
            self.cluster_check_welcome();
        }
        let user = match (&frame, self.client.user) {
            (
                ClientFrame::Hello {
                    version,
                    nick,
                    resume,
                },
                None,
            ) => {
                return self.hello(*version, nick, *resume);
            }
            (ClientFrame::Hello { .. }, Some(_)) => {
                return self.error(ErrorCode::NotWelcomed, "already welcomed".into());
            }
            (ClientFrame::Ping { nonce }, _) => {
                return self.reply(&ServerFrame::Pong { nonce: *nonce });
            }
            (ClientFrame::Quit { reason }, user) => return self.quit(user, reason),
            (_, None) => {
                return self.error(ErrorCode::NotWelcomed, "say hello first".into());
            }
            (_, Some(user)) => user,
        };
        if let Some(link) = cluster
            && self.cluster_dispatch(link, user, &frame)
        {
            return;
        }
        match frame {
            ClientFrame::Join { room } => self.join(user, &room),
            ClientFrame::Leave { room } => self.leave(user, &room),
            ClientFrame::Say { room, text } => self.post(user, &room, &text, MessageKind::Say),
            ClientFrame::Me { room, text } => self.post(user, &room, &text, MessageKind::Me),
            ClientFrame::Nick { nick } => self.rename(user, &nick),
            ClientFrame::ListRooms => {
                let rooms = self.hub.lock().rooms.room_list();
                self.reply(&ServerFrame::Rooms { rooms });
            }
            ClientFrame::ListUsers { room } => {
                let listed = self.hub.lock().rooms.users_in(&room);
                match listed {
                    Ok(nicks) => self.reply(&ServerFrame::Users { room, nicks }),
                    Err(_) => self.error(ErrorCode::NotInRoom, format!("no room {room}")),
                }
            }
            ClientFrame::Hello { .. } | ClientFrame::Ping { .. } | ClientFrame::Quit { .. } => {}
        }
    }

    fn hello(&mut self, version: u16, nick: &str, resume: Option<u64>) {
        if version != PROTOCOL_VERSION {
            return self.wrong_version(version);
        }
        let hub = self.hub;
        let handle = self.session.handle();
        let mut state = hub.lock();
        let holder = state.rooms.holder(nick);
        let resumed = holder
            .filter(|id| resume.is_some() && state.members.get(id).map(|m| m.token) == resume);
        let busy = resumed.is_none().then(|| {
            Busy::judge(
                self.config,
                self.session.loop_busy(),
                self.session.loop_lag(),
                self.session.retransmit_share(),
            )
        });
        if let Some(reason) = busy.flatten() {
            drop(state);
            AtomicCounters::bump(&hub.counters.refused_busy);
            match reason {
                Busy::Loaded(_) => AtomicCounters::bump(&hub.counters.refused_busy_load),
                Busy::Retransmitting(_) => {
                    AtomicCounters::bump(&hub.counters.refused_busy_retransmits);
                }
                Busy::Behind(_) => {}
            }
            self.client.closing = true;
            self.reply(&ServerFrame::Error {
                code: ErrorCode::ServerBusy,
                text: format!(
                    "server busy ({reason}), retry in {} s",
                    self.config.busy_retry.as_secs().max(1)
                ),
            });
            close(self.session);
            return;
        }
        if resumed.is_none() && state.rooms.user_count() >= self.config.max_clients {
            drop(state);
            self.client.closing = true;
            self.reply(&ServerFrame::Error {
                code: ErrorCode::ServerFull,
                text: format!(
                    "the server has {} users, its limit",
                    self.config.max_clients
                ),
            });
            close(self.session);
            return;
        }
        if let Some(old) = resumed {
            // The same person on a new conversation: drop the old one.
            if let Some(member) = state.members.get(&old) {
                let _ = handle.close(member.key);
            }
            remove_member(hub, &mut state, handle, old, LeaveReason::Reconnected);
        }
        let id = state.next_id();
        if let Err(e) = state.rooms.add_user(id, nick) {
            drop(state);
            return self.room_error(&e);
        }
        let token = rand::random::<u64>();
        state.members.insert(
            id,
            Member {
                key: self.session.key(),
                token,
            },
        );
        let rooms = state.rooms.room_list();
        drop(state);
        AtomicCounters::bump(&hub.counters.welcomed);
        if let Some(link) = &hub.cluster {
            return self.cluster_hello(link, id, nick, token);
        }
        self.client.user = Some(id);
        info!(%nick, peer = %self.session.peer(), resumed = resumed.is_some(), "welcome");
        self.reply(&ServerFrame::Welcome {
            version: PROTOCOL_VERSION,
            id,
            nick: nick.to_owned(),
            token,
            rooms,
        });
    }

    fn join(&mut self, user: UserId, room: &str) {
        let hub = self.hub;
        let handle = self.session.handle();
        let mut state = hub.lock();
        let joined = match state.rooms.join(user, room) {
            Ok(joined) => joined,
            Err(e) => {
                drop(state);
                return self.room_error(&e);
            }
        };
        let nick = state.rooms.nick(user).unwrap_or_default().to_owned();
        let notice = ServerFrame::Joined {
            room: room.to_owned(),
            nick,
        };
        hub.deliver(&state, handle, &joined.members, &notice);
        for posted in &joined.history {
            hub.deliver(&state, handle, &[user], &posted.to_frame(true));
        }
    }

    fn leave(&mut self, user: UserId, room: &str) {
        let hub = self.hub;
        let handle = self.session.handle();
        let mut state = hub.lock();
        let audience = match state.rooms.leave(user, room) {
            Ok(audience) => audience,
            Err(e) => {
                drop(state);
                return self.room_error(&e);
            }
        };
        let notice = ServerFrame::Left {
            room: room.to_owned(),
            nick: state.rooms.nick(user).unwrap_or_default().to_owned(),
            reason: LeaveReason::Left,
        };
        hub.deliver(&state, handle, &audience, &notice);
    }

    fn post(&mut self, user: UserId, room: &str, text: &str, kind: MessageKind) {
        let hub = self.hub;
        let handle = self.session.handle();
        let mut state = hub.lock();
        match state.rooms.post(user, room, text, kind, unix_ms()) {
            Ok((posted, members)) => {
                AtomicCounters::bump(&hub.counters.messages);
                hub.deliver(&state, handle, &members, &posted.to_frame(false));
            }
            Err(e) => {
                drop(state);
                self.room_error(&e);
            }
        }
    }

    fn rename(&mut self, user: UserId, nick: &str) {
        let hub = self.hub;
        let handle = self.session.handle();
        let mut state = hub.lock();
        match state.rooms.rename(user, nick) {
            Ok((old, audience)) => {
                info!(%old, new = %nick, "nick change");
                let notice = ServerFrame::NickChanged {
                    old,
                    new: nick.to_owned(),
                };
                hub.deliver(&state, handle, &audience, &notice);
            }
            Err(e) => {
                drop(state);
                self.room_error(&e);
            }
        }
    }

    fn quit(&mut self, user: Option<UserId>, reason: &str) {
        self.client.closing = true;
        self.client.leave_reason = Some(LeaveReason::Quit);
        if let Some(id) = user {
            let hub = self.hub;
            let handle = self.session.handle();
            let mut state = hub.lock();
            let nick = state.rooms.nick(id).unwrap_or_default().to_owned();
            let rooms = state.rooms.rooms_of(id);
            remove_member(hub, &mut state, handle, id, LeaveReason::Quit);
            drop(state);
            // The quitter hears it too: the confirmation shows it left, and a session
            // with data queued stays open until that data is acknowledged, so the
            // acknowledgement of the quit itself goes out with it.
            for room in rooms {
                let frame = ServerFrame::Left {
                    room,
                    nick: nick.clone(),
                    reason: LeaveReason::Quit,
                };
                reply(hub, self.session, &frame);
            }
            info!(peer = %self.session.peer(), %reason, "quit");
            self.client.user = None;
        }
        close(self.session);
    }

    fn wrong_version(&mut self, version: u16) {
        self.client.closing = true;
        self.reply(&ServerFrame::Error {
            code: ErrorCode::WrongVersion,
            text: format!("this server speaks protocol {PROTOCOL_VERSION}, not {version}"),
        });
        close(self.session);
    }

    fn room_error(&mut self, e: &RoomError) {
        self.error(e.code(), e.to_string());
    }

    fn reply(&mut self, frame: &ServerFrame) {
        reply(self.hub, self.session, frame);
    }

    /// Sends an error; abuse counts a strike, and one strike too many kicks.
    pub(super) fn error(&mut self, code: ErrorCode, text: String) {
        AtomicCounters::bump(&self.hub.counters.errors);
        self.reply(&ServerFrame::Error { code, text });
        if !code.is_abuse() {
            return;
        }
        // Both are counted: the address's strikes must see every session's abuse.
        let session_out = self.client.strikes.strike(self.now);
        let address_out = self.hub.ip_strike(self.client.ip, self.now);
        if session_out || address_out {
            warn!(peer = %self.session.peer(), last = %code, address_out, "kicked for abuse");
            AtomicCounters::bump(&self.hub.counters.kicked);
            AtomicCounters::bump(&self.hub.counters.errors);
            self.reply(&ServerFrame::Error {
                code: ErrorCode::Kicked,
                text: if session_out {
                    format!(
                        "more than {} errors in {:?}: disconnected",
                        self.config.strikes, self.config.strike_window
                    )
                } else {
                    format!(
                        "more than {} errors in {:?} from your address: disconnected",
                        self.config.ip_strikes, self.config.strike_window
                    )
                },
            });
            self.client.closing = true;
            self.client.leave_reason = Some(LeaveReason::Kicked);
            close(self.session);
        }
    }
}

/// Removes a user and tells the rooms they were in.
pub(crate) fn remove_member(
    hub: &Hub,
    state: &mut HubState,
    handle: &ServerHandle,
    id: UserId,
    reason: LeaveReason,
) {
    if let Some(link) = &hub.cluster {
        return super::clustered::remove(link, state, id, reason);
    }
    let Some(removed) = state.rooms.remove_user(id) else {
        return;
    };
    for (room, left) in &removed.rooms {
        let frame = ServerFrame::Left {
            room: room.clone(),
            nick: removed.nick.clone(),
            reason,
        };
        hub.deliver(state, handle, left, &frame);
    }
    state.members.remove(&id);
}
