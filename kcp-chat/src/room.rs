//! Users, nicks and rooms: the chat's state as pure logic, with no sockets or clocks.
//!
//! The server keeps one [`Rooms`] behind a lock. Every operation validates first and
//! changes nothing when it returns an error, and tells the caller whom to notify: the
//! model knows users only by [`UserId`], the server maps them to sessions.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::protocol::{ErrorCode, LOBBY, MessageKind, RoomInfo, ServerFrame};

/// A user's id, unique for the lifetime of a [`Rooms`].
pub type UserId = u64;

/// Bounds on what users can make the model hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomLimits {
    /// Longest nick, in characters.
    pub max_nick: usize,
    /// Longest room name, in characters.
    pub max_room_name: usize,
    /// Longest message text, in bytes of UTF-8.
    pub max_message: usize,
    /// Messages a room keeps for replay on join.
    pub history: usize,
    /// Rooms that may exist at once (the lobby included).
    pub max_rooms: usize,
    /// Rooms one user may be in at once.
    pub max_rooms_per_user: usize,
}

impl Default for RoomLimits {
    fn default() -> Self {
        Self {
            max_nick: 24,
            max_room_name: 32,
            max_message: 1000,
            history: 20,
            max_rooms: 1000,
            max_rooms_per_user: 32,
        }
    }
}

/// Why an operation was refused. Each maps to an [`ErrorCode`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    /// Someone else has the nick.
    #[error("nick {0:?} is taken")]
    NickTaken(String),
    /// The nick is not acceptable.
    #[error("bad nick: {0}")]
    BadNick(&'static str),
    /// The room name is not acceptable.
    #[error("bad room name: {0}")]
    BadRoom(&'static str),
    /// The user is not in that room.
    #[error("you are not in {0}")]
    NotInRoom(String),
    /// The user is already in that room.
    #[error("you are already in {0}")]
    AlreadyInRoom(String),
    /// Too many rooms on the server, or for this user.
    #[error("too many rooms: {0}")]
    TooManyRooms(&'static str),
    /// The message is longer than the limit.
    #[error("message of {len} bytes exceeds the limit of {limit}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// No such user (already removed).
    #[error("unknown user")]
    UnknownUser,
}

impl RoomError {
    /// The protocol's code for this refusal.
    pub const fn code(&self) -> ErrorCode {
        match self {
            Self::NickTaken(_) => ErrorCode::NickTaken,
            Self::BadNick(_) => ErrorCode::BadNick,
            Self::BadRoom(_) => ErrorCode::BadRoom,
            Self::NotInRoom(_) | Self::UnknownUser => ErrorCode::NotInRoom,
            Self::AlreadyInRoom(_) => ErrorCode::AlreadyInRoom,
            Self::TooManyRooms(_) => ErrorCode::TooManyRooms,
            Self::TooLong { .. } => ErrorCode::TooLong,
        }
    }
}

/// A message as posted in a room (kept in its history).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Posted {
    /// Room name.
    pub room: String,
    /// Sender's nick at the time.
    pub from: String,
    /// The text.
    pub text: String,
    /// Said or acted.
    pub kind: MessageKind,
    /// Server time, ms since the Unix epoch.
    pub ts_ms: u64,
    /// The room's counter, from 1.
    pub seq: u64,
}

impl Posted {
    /// The frame that delivers it (`history` when replayed on join).
    pub fn to_frame(&self, history: bool) -> ServerFrame {
        ServerFrame::Message {
            room: self.room.clone(),
            from: self.from.clone(),
            text: self.text.clone(),
            kind: self.kind,
            ts_ms: self.ts_ms,
            seq: self.seq,
            history,
        }
    }
}

/// What a successful join tells the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    /// Everyone in the room now, the joiner included.
    pub members: Vec<UserId>,
    /// The room's recent messages, oldest first, to replay to the joiner.
    pub history: Vec<Posted>,
}

/// What removing a user tells the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removed {
    /// The user's last nick.
    pub nick: String,
    /// Each room they were in, with the members left in it.
    pub rooms: Vec<(String, Vec<UserId>)>,
}

#[derive(Debug)]
struct User {
    nick: String,
    rooms: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct Room {
    members: BTreeSet<UserId>,
    history: VecDeque<Posted>,
    last_seq: u64,
}

/// Every user, nick and room. Nicks are unique ignoring ASCII case; rooms are created
/// on first join and removed when their last member leaves, except the lobby.
#[derive(Debug)]
pub struct Rooms {
    limits: RoomLimits,
    users: HashMap<UserId, User>,
    /// Lowercased nick → holder.
    nicks: HashMap<String, UserId>,
    rooms: BTreeMap<String, Room>,
}

impl Rooms {
    /// An empty model holding only the lobby.
    pub fn new(limits: RoomLimits) -> Self {
        let mut rooms = BTreeMap::new();
        rooms.insert(LOBBY.to_owned(), Room::default());
        Self {
            limits,
            users: HashMap::new(),
            nicks: HashMap::new(),
            rooms,
        }
    }

    /// The limits in force.
    pub const fn limits(&self) -> &RoomLimits {
        &self.limits
    }

    /// Users present.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Rooms that exist (the lobby included).
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// A user's nick.
    pub fn nick(&self, id: UserId) -> Option<&str> {
        self.users.get(&id).map(|u| u.nick.as_str())
    }

    /// Who holds `nick` (ignoring ASCII case).
    pub fn holder(&self, nick: &str) -> Option<UserId> {
        self.nicks.get(&nick.to_ascii_lowercase()).copied()
    }

    /// The rooms a user is in, sorted.
    pub fn rooms_of(&self, id: UserId) -> Vec<String> {
        self.users
            .get(&id)
            .map(|u| u.rooms.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Adds a user with `nick`, in no room yet.
    ///
    /// # Errors
    /// [`RoomError::BadNick`], [`RoomError::NickTaken`].
    pub fn add_user(&mut self, id: UserId, nick: &str) -> Result<(), RoomError> {
        self.check_nick(nick)?;
        let key = nick.to_ascii_lowercase();
        if self.nicks.contains_key(&key) {
            return Err(RoomError::NickTaken(nick.to_owned()));
        }
        self.nicks.insert(key, id);
        self.users.insert(
            id,
            User {
                nick: nick.to_owned(),
                rooms: BTreeSet::new(),
            },
        );
        Ok(())
    }

    /// Removes a user from every room and frees their nick.
    pub fn remove_user(&mut self, id: UserId) -> Option<Removed> {
        let user = self.users.remove(&id)?;
        self.nicks.remove(&user.nick.to_ascii_lowercase());
        let mut rooms = Vec::with_capacity(user.rooms.len());
        for name in user.rooms {
            if let Some(room) = self.rooms.get_mut(&name) {
                room.members.remove(&id);
                let left: Vec<UserId> = room.members.iter().copied().collect();
                self.drop_if_empty(&name);
                rooms.push((name, left));
            }
        }
        Some(Removed {
            nick: user.nick,
            rooms,
        })
    }

    /// Whether [`join`](Self::join) would accept `id` into `room`, changing nothing:
    /// how a cluster node checks a join before it publishes it.
    ///
    /// # Errors
    /// As [`join`](Self::join).
    pub fn check_join(&self, id: UserId, room: &str) -> Result<(), RoomError> {
        self.check_room(room)?;
        let user = self.users.get(&id).ok_or(RoomError::UnknownUser)?;
        if user.rooms.contains(room) {
            return Err(RoomError::AlreadyInRoom(room.to_owned()));
        }
        if user.rooms.len() >= self.limits.max_rooms_per_user {
            return Err(RoomError::TooManyRooms(
                "you are in as many rooms as allowed",
            ));
        }
        if !self.rooms.contains_key(room) && self.rooms.len() >= self.limits.max_rooms {
            return Err(RoomError::TooManyRooms(
                "the server has as many rooms as allowed",
            ));
        }
        Ok(())
    }

    /// Puts a user in a room, creating it if needed.
    ///
    /// # Errors
    /// [`RoomError::BadRoom`], [`RoomError::AlreadyInRoom`], [`RoomError::TooManyRooms`],
    /// [`RoomError::UnknownUser`].
    pub fn join(&mut self, id: UserId, room: &str) -> Result<Joined, RoomError> {
        self.check_join(id, room)?;
        let entry = self.rooms.entry(room.to_owned()).or_default();
        entry.members.insert(id);
        let joined = Joined {
            members: entry.members.iter().copied().collect(),
            history: entry.history.iter().cloned().collect(),
        };
        if let Some(user) = self.users.get_mut(&id) {
            user.rooms.insert(room.to_owned());
        }
        Ok(joined)
    }

    /// Takes a user out of a room. Returns the members before leaving (the leaver
    /// included), who are told.
    ///
    /// # Errors
    /// [`RoomError::NotInRoom`], [`RoomError::UnknownUser`].
    pub fn leave(&mut self, id: UserId, room: &str) -> Result<Vec<UserId>, RoomError> {
        let user = self.users.get_mut(&id).ok_or(RoomError::UnknownUser)?;
        if !user.rooms.remove(room) {
            return Err(RoomError::NotInRoom(room.to_owned()));
        }
        let Some(entry) = self.rooms.get_mut(room) else {
            return Err(RoomError::NotInRoom(room.to_owned()));
        };
        let audience = entry.members.iter().copied().collect();
        entry.members.remove(&id);
        self.drop_if_empty(room);
        Ok(audience)
    }

    /// Posts a message in a room the user is in: stamps it with the room's next
    /// sequence number, keeps it in the history, and returns it with the members who
    /// receive it (the sender included).
    ///
    /// # Errors
    /// [`RoomError::TooLong`], [`RoomError::NotInRoom`], [`RoomError::UnknownUser`].
    pub fn post(
        &mut self,
        id: UserId,
        room: &str,
        text: &str,
        kind: MessageKind,
        ts_ms: u64,
    ) -> Result<(Posted, Vec<UserId>), RoomError> {
        self.check_text(text)?;
        let user = self.users.get(&id).ok_or(RoomError::UnknownUser)?;
        let entry = match self.rooms.get_mut(room) {
            Some(entry) if user.rooms.contains(room) => entry,
            _ => return Err(RoomError::NotInRoom(room.to_owned())),
        };
        entry.last_seq += 1;
        let posted = Posted {
            room: room.to_owned(),
            from: user.nick.clone(),
            text: text.to_owned(),
            kind,
            ts_ms,
            seq: entry.last_seq,
        };
        if self.limits.history > 0 {
            if entry.history.len() == self.limits.history {
                entry.history.pop_front();
            }
            entry.history.push_back(posted.clone());
        }
        Ok((posted, entry.members.iter().copied().collect()))
    }

    /// Changes a user's nick. Returns the old nick and everyone who shares a room with
    /// the user (the user included), who are told.
    ///
    /// # Errors
    /// [`RoomError::BadNick`], [`RoomError::NickTaken`], [`RoomError::UnknownUser`].
    pub fn rename(&mut self, id: UserId, nick: &str) -> Result<(String, Vec<UserId>), RoomError> {
        self.check_nick(nick)?;
        let key = nick.to_ascii_lowercase();
        match self.nicks.get(&key) {
            Some(holder) if *holder != id => return Err(RoomError::NickTaken(nick.to_owned())),
            _ => {}
        }
        let user = self.users.get_mut(&id).ok_or(RoomError::UnknownUser)?;
        let old = std::mem::replace(&mut user.nick, nick.to_owned());
        self.nicks.remove(&old.to_ascii_lowercase());
        self.nicks.insert(key, id);
        let mut audience = BTreeSet::from([id]);
        for name in &user.rooms {
            if let Some(room) = self.rooms.get(name) {
                audience.extend(room.members.iter().copied());
            }
        }
        Ok((old, audience.into_iter().collect()))
    }

    /// Every room with its user count, by name.
    pub fn room_list(&self) -> Vec<RoomInfo> {
        self.rooms
            .iter()
            .map(|(name, room)| RoomInfo {
                name: name.clone(),
                users: u32::try_from(room.members.len()).unwrap_or(u32::MAX),
            })
            .collect()
    }

    /// The nicks in a room, sorted.
    ///
    /// # Errors
    /// [`RoomError::NotInRoom`] if the room does not exist.
    pub fn users_in(&self, room: &str) -> Result<Vec<String>, RoomError> {
        let entry = self
            .rooms
            .get(room)
            .ok_or_else(|| RoomError::NotInRoom(room.to_owned()))?;
        let mut nicks: Vec<String> = entry
            .members
            .iter()
            .filter_map(|id| self.users.get(id).map(|u| u.nick.clone()))
            .collect();
        nicks.sort_unstable_by_key(|n| n.to_ascii_lowercase());
        Ok(nicks)
    }

    /// The members of a room (empty if it does not exist).
    pub fn members(&self, room: &str) -> Vec<UserId> {
        self.rooms
            .get(room)
            .map(|r| r.members.iter().copied().collect())
            .unwrap_or_default()
    }

    fn drop_if_empty(&mut self, room: &str) {
        if room != LOBBY && self.rooms.get(room).is_some_and(|r| r.members.is_empty()) {
            self.rooms.remove(room);
        }
    }

    /// Refuses a message text longer than the limit.
    ///
    /// # Errors
    /// [`RoomError::TooLong`].
    pub const fn check_text(&self, text: &str) -> Result<(), RoomError> {
        if text.len() > self.limits.max_message {
            return Err(RoomError::TooLong {
                len: text.len(),
                limit: self.limits.max_message,
            });
        }
        Ok(())
    }

    /// Whether `id` is in `room`.
    pub fn is_member(&self, id: UserId, room: &str) -> bool {
        self.users.get(&id).is_some_and(|u| u.rooms.contains(room))
    }

    /// Refuses a nick that is empty, too long, has spaces or control characters, or
    /// starts with `/` or `#` (whether it is free is another question).
    ///
    /// # Errors
    /// [`RoomError::BadNick`].
    pub fn check_nick(&self, nick: &str) -> Result<(), RoomError> {
        if nick.is_empty() {
            return Err(RoomError::BadNick("empty"));
        }
        if nick.chars().count() > self.limits.max_nick {
            return Err(RoomError::BadNick("too long"));
        }
        if nick.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(RoomError::BadNick(
                "spaces and control characters are not allowed",
            ));
        }
        if nick.starts_with('/') || nick.starts_with('#') {
            return Err(RoomError::BadNick("may not start with / or #"));
        }
        Ok(())
    }

    fn check_room(&self, room: &str) -> Result<(), RoomError> {
        if room.is_empty() {
            return Err(RoomError::BadRoom("empty"));
        }
        if room.chars().count() > self.limits.max_room_name {
            return Err(RoomError::BadRoom("too long"));
        }
        if !room
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(RoomError::BadRoom("use letters, digits, - _ and ."));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Rooms {
        Rooms::new(RoomLimits {
            history: 2,
            max_rooms: 3,
            max_rooms_per_user: 2,
            max_message: 10,
            ..RoomLimits::default()
        })
    }

    #[test]
    fn lobby_exists_from_the_start_and_survives_emptying() {
        let mut m = model();
        assert_eq!(
            m.room_list(),
            vec![RoomInfo {
                name: LOBBY.into(),
                users: 0
            }]
        );
        m.add_user(1, "alice").unwrap();
        m.join(1, LOBBY).unwrap();
        m.leave(1, LOBBY).unwrap();
        assert_eq!(m.room_count(), 1);
    }

    #[test]
    fn rooms_are_created_on_join_and_dropped_when_empty() {
        let mut m = model();
        m.add_user(1, "alice").unwrap();
        m.add_user(2, "bob").unwrap();
        assert_eq!(m.join(1, "rust").unwrap().members, vec![1]);
        assert_eq!(m.join(2, "rust").unwrap().members, vec![1, 2]);
        assert_eq!(m.users_in("rust").unwrap(), vec!["alice", "bob"]);
        assert_eq!(m.leave(1, "rust").unwrap(), vec![1, 2]);
        assert_eq!(m.members("rust"), vec![2]);
        let removed = m.remove_user(2).unwrap();
        assert_eq!(removed.nick, "bob");
        assert_eq!(removed.rooms, vec![("rust".to_owned(), vec![])]);
        assert_eq!(m.room_count(), 1);
        assert!(m.users_in("rust").is_err());
    }

    #[test]
    fn nicks_are_unique_ignoring_case_and_validated() {
        let mut m = model();
        m.add_user(1, "Alice").unwrap();
        assert_eq!(
            m.add_user(2, "alice"),
            Err(RoomError::NickTaken("alice".into()))
        );
        assert!(matches!(m.add_user(2, ""), Err(RoomError::BadNick(_))));
        assert!(matches!(m.add_user(2, "a b"), Err(RoomError::BadNick(_))));
        assert!(matches!(m.add_user(2, "/op"), Err(RoomError::BadNick(_))));
        let long = "x".repeat(25);
        assert!(matches!(m.add_user(2, &long), Err(RoomError::BadNick(_))));
        assert_eq!(m.user_count(), 1);
        m.add_user(2, &"é".repeat(24)).unwrap(); // characters, not bytes
    }

    #[test]
    fn rename_frees_the_old_nick_and_tells_room_mates_once() {
        let mut m = model();
        for (id, nick) in [(1, "a"), (2, "b"), (3, "c")] {
            m.add_user(id, nick).unwrap();
        }
        m.join(1, LOBBY).unwrap();
        m.join(2, LOBBY).unwrap();
        m.join(1, "x").unwrap();
        m.join(2, "x").unwrap();
        assert_eq!(m.rename(1, "b"), Err(RoomError::NickTaken("b".into())));
        let (old, audience) = m.rename(1, "A2").unwrap();
        assert_eq!(old, "a");
        assert_eq!(audience, vec![1, 2]); // c shares no room with us
        assert_eq!(m.holder("a2"), Some(1));
        assert_eq!(m.holder("a"), None);
        m.add_user(4, "a").unwrap();
        // Changing only the case of one's own nick is allowed.
        m.rename(1, "a2").unwrap();
        assert_eq!(m.nick(1), Some("a2"));
    }

    #[test]
    fn posts_are_numbered_kept_in_bounded_history_and_replayed_on_join() {
        let mut m = model();
        m.add_user(1, "a").unwrap();
        m.add_user(2, "b").unwrap();
        m.join(1, LOBBY).unwrap();
        assert_eq!(
            m.post(2, LOBBY, "hi", MessageKind::Say, 0),
            Err(RoomError::NotInRoom(LOBBY.into()))
        );
        for (i, text) in ["one", "two", "three"].iter().enumerate() {
            let (posted, to) = m.post(1, LOBBY, text, MessageKind::Say, i as u64).unwrap();
            assert_eq!(posted.seq, i as u64 + 1);
            assert_eq!(to, vec![1]);
        }
        let joined = m.join(2, LOBBY).unwrap();
        let replay: Vec<_> = joined.history.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(replay, vec!["two", "three"]);
        assert!(matches!(
            m.post(1, LOBBY, "0123456789a", MessageKind::Me, 0),
            Err(RoomError::TooLong { len: 11, limit: 10 })
        ));
        let (posted, to) = m.post(2, LOBBY, "0123456789", MessageKind::Me, 9).unwrap();
        assert_eq!((posted.seq, to), (4, vec![1, 2]));
    }

    #[test]
    fn room_limits_and_names_are_enforced_without_side_effects() {
        let mut m = model();
        m.add_user(1, "a").unwrap();
        m.add_user(2, "b").unwrap();
        assert!(matches!(m.join(1, "no spaces"), Err(RoomError::BadRoom(_))));
        assert!(matches!(m.join(1, ""), Err(RoomError::BadRoom(_))));
        m.join(1, "r1").unwrap();
        assert_eq!(m.join(1, "r1"), Err(RoomError::AlreadyInRoom("r1".into())));
        m.join(1, "r2").unwrap();
        assert!(matches!(m.join(1, LOBBY), Err(RoomError::TooManyRooms(_))));
        // lobby, r1, r2 exist: a fourth room is refused, existing ones are fine.
        assert!(matches!(m.join(2, "r3"), Err(RoomError::TooManyRooms(_))));
        m.join(2, "r2").unwrap();
        assert_eq!(m.room_count(), 3);
        assert_eq!(m.rooms_of(1), vec!["r1", "r2"]);
        assert_eq!(m.leave(2, "r1"), Err(RoomError::NotInRoom("r1".into())));
        assert_eq!(m.join(9, LOBBY), Err(RoomError::UnknownUser));
    }
}
