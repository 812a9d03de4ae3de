//! What a frame does on a cluster node: the same checks as on a single server, then
//! the event goes to the publisher instead of to the room, and comes back to every
//! member (the sender's node included) from the room's Redis stream, in the room's
//! order. Nothing here waits for Redis: a request the publisher's channel cannot take
//! is refused at once with [`ErrorCode::Unavailable`].

use super::handler::{Turn, unix_ms};
use super::hub::HubState;
use crate::cluster::{Body, Link, Op, Query, RoomEvent};
use crate::protocol::{ClientFrame, ErrorCode, LeaveReason, MessageKind};
use crate::room::{RoomError, UserId};

/// An event of a local user.
fn event(link: &Link, uid: UserId, nick: &str, body: Body) -> RoomEvent {
    RoomEvent {
        node: link.node.clone(),
        inc: link.incarnation(),
        uid,
        nick: nick.to_owned(),
        body,
    }
}

const BUSY: &str = "the cluster link is overloaded; try again";

impl Turn<'_, '_, '_> {
    /// A hello was accepted locally (nick free on this node): claim it cluster-wide;
    /// the publisher sends the welcome, or the refusal.
    pub(super) fn cluster_hello(&mut self, link: &Link, uid: UserId, nick: &str, token: u64) {
        self.client.user = Some(uid);
        let claim = Op::Claim {
            uid,
            key: self.session.key(),
            nick: nick.to_owned(),
            token,
        };
        if !link.post(claim) {
            let mut state = self.hub.lock();
            state.rooms.remove_user(uid);
            state.members.remove(&uid);
            drop(state);
            self.client.user = None;
            self.error(ErrorCode::Unavailable, BUSY.into());
        }
    }

    /// Forgets the user if the publisher dropped them (their claim failed), so the
    /// session may say hello again.
    pub(super) fn cluster_check_welcome(&mut self) {
        if let Some(uid) = self.client.user {
            let here = self
                .hub
                .lock()
                .members
                .get(&uid)
                .is_some_and(|m| m.key == self.session.key());
            if !here {
                self.client.user = None;
            }
        }
    }

    /// A frame of a welcomed user, on a cluster node. `false` if it is not one the
    /// cluster handles (the single-server code does).
    pub(super) fn cluster_dispatch(
        &mut self,
        link: &Link,
        user: UserId,
        frame: &ClientFrame,
    ) -> bool {
        match frame {
            ClientFrame::Join { room } => self.cluster_join(link, user, room),
            ClientFrame::Leave { room } => self.cluster_leave(link, user, room),
            ClientFrame::Say { room, text } => {
                self.cluster_post(link, user, room, text, MessageKind::Say)
            }
            ClientFrame::Me { room, text } => {
                self.cluster_post(link, user, room, text, MessageKind::Me)
            }
            ClientFrame::Nick { nick } => self.cluster_rename(link, user, nick),
            ClientFrame::ListRooms => self.cluster_query(link, Query::Rooms),
            ClientFrame::ListUsers { room } => self.cluster_query(link, Query::Users(room.clone())),
            _ => return false,
        }
        true
    }

    fn publish(&mut self, link: &Link, room: &str, event: RoomEvent) -> bool {
        let op = Op::Publish {
            room: room.to_owned(),
            event,
            from: Some(self.session.key()),
        };
        if link.post(op) {
            return true;
        }
        self.error(
            ErrorCode::Unavailable,
            format!("not sent to {room}: {BUSY}"),
        );
        false
    }

    fn refused(&mut self, e: &RoomError) {
        self.error(e.code(), e.to_string());
    }

    fn cluster_join(&mut self, link: &Link, user: UserId, room: &str) {
        let mut state = self.hub.lock();
        let pending = (user, room.to_owned());
        let checked = if state.pending_joins.contains(&pending) {
            Err(RoomError::AlreadyInRoom(room.to_owned()))
        } else {
            state.rooms.check_join(user, room)
        };
        if let Err(e) = checked {
            drop(state);
            return self.refused(&e);
        }
        let nick = state.rooms.nick(user).unwrap_or_default().to_owned();
        // Applied when the reader meets the entry; until then it is pending.
        state.pending_joins.insert(pending.clone());
        drop(state);
        if !self.publish(link, room, event(link, user, &nick, Body::Join)) {
            self.hub.lock().pending_joins.remove(&pending);
        }
    }

    fn cluster_leave(&mut self, link: &Link, user: UserId, room: &str) {
        let mut state = self.hub.lock();
        let was_pending = state.pending_joins.remove(&(user, room.to_owned()));
        if !was_pending && let Err(e) = state.rooms.leave(user, room) {
            drop(state);
            return self.refused(&e);
        }
        let nick = state.rooms.nick(user).unwrap_or_default().to_owned();
        drop(state);
        let reason = LeaveReason::Left;
        // A leave is never refused for a full buffer (see `Op::refusable`).
        link.post(Op::Publish {
            room: room.to_owned(),
            event: event(link, user, &nick, Body::Leave { reason }),
            from: None,
        });
    }

    fn cluster_post(
        &mut self,
        link: &Link,
        user: UserId,
        room: &str,
        text: &str,
        kind: MessageKind,
    ) {
        let state = self.hub.lock();
        let checked = state.rooms.check_text(text).and_then(|()| {
            let member = state.rooms.is_member(user, room)
                || state.pending_joins.contains(&(user, room.to_owned()));
            if member {
                Ok(())
            } else {
                Err(RoomError::NotInRoom(room.to_owned()))
            }
        });
        let nick = state.rooms.nick(user).unwrap_or_default().to_owned();
        drop(state);
        if let Err(e) = checked {
            return self.refused(&e);
        }
        let body = Body::Message {
            text: text.to_owned(),
            kind,
            ts_ms: unix_ms(),
            seq: 0,
        };
        if self.publish(link, room, event(link, user, &nick, body)) {
            super::hub::AtomicCounters::bump(&self.hub.counters.messages);
        }
    }

    fn cluster_rename(&mut self, link: &Link, user: UserId, nick: &str) {
        let state = self.hub.lock();
        let checked = state
            .rooms
            .check_nick(nick)
            .and_then(|()| match state.rooms.holder(nick) {
                Some(holder) if holder != user => Err(RoomError::NickTaken(nick.to_owned())),
                _ => Ok(()),
            });
        drop(state);
        if let Err(e) = checked {
            return self.refused(&e);
        }
        let op = Op::Rename {
            uid: user,
            key: self.session.key(),
            nick: nick.to_owned(),
        };
        if !link.post(op) {
            self.error(ErrorCode::Unavailable, format!("nick not changed: {BUSY}"));
        }
    }

    fn cluster_query(&mut self, link: &Link, query: Query) {
        let op = Op::Query {
            key: self.session.key(),
            query,
        };
        if !link.post(op) {
            self.error(ErrorCode::Unavailable, format!("cannot list: {BUSY}"));
        }
    }
}

/// Removes a local user (quit, lost, kicked, replaced by a resume): at once here, and
/// through the publisher from every room they were in or joining, and their nick.
pub(super) fn remove(link: &Link, state: &mut HubState, id: UserId, reason: LeaveReason) {
    let mut rooms: Vec<String> = state
        .pending_joins
        .iter()
        .filter(|(uid, _)| *uid == id)
        .map(|(_, room)| room.clone())
        .collect();
    state.pending_joins.retain(|(uid, _)| *uid != id);
    state.members.remove(&id);
    let Some(removed) = state.rooms.remove_user(id) else {
        return;
    };
    rooms.extend(removed.rooms.into_iter().map(|(room, _)| room));
    for room in rooms {
        link.post(Op::Publish {
            room,
            event: event(link, id, &removed.nick, Body::Leave { reason }),
            from: None,
        });
    }
    link.post(Op::Release { nick: removed.nick });
}
