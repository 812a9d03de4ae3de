//! A generational slab of sessions: keys carry a generation so a key of a closed
//! session never reaches the session that reused its slot (h2's `Key` ABA guard).

use std::fmt;

use crate::session::KcpSession;

/// Names one session of a server: its loop, its slot and the slot's generation.
///
/// Keys are cheap to copy and safe to keep: once the session closes, every call with
/// its key fails with [`NetError::SessionClosed`](crate::NetError::SessionClosed), even
/// after a new session reuses the slot.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionKey {
    loop_id: u16,
    index: u32,
    generation: u32,
}

impl SessionKey {
    /// The event loop (thread) that owns the session.
    pub const fn loop_id(self) -> usize {
        self.loop_id as usize
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}v{}", self.loop_id, self.index, self.generation)
    }
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    session: Option<KcpSession>,
}

/// The sessions of one loop.
#[derive(Debug)]
pub(crate) struct Store {
    loop_id: u16,
    slots: Vec<Slot>,
    free: Vec<u32>,
    len: usize,
}

impl Store {
    pub(crate) fn new(loop_id: u16) -> Self {
        Self {
            loop_id,
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores the session `make` builds for its new key.
    pub(crate) fn insert(&mut self, make: impl FnOnce(SessionKey) -> KcpSession) -> SessionKey {
        let index = self.free.pop().unwrap_or_else(|| {
            self.slots.push(Slot {
                generation: 0,
                session: None,
            });
            (self.slots.len() - 1) as u32
        });
        let slot = &mut self.slots[index as usize];
        let key = SessionKey {
            loop_id: self.loop_id,
            index,
            generation: slot.generation,
        };
        slot.session = Some(make(key));
        self.len += 1;
        key
    }

    fn slot(&self, key: SessionKey) -> Option<&Slot> {
        let slot = self.slots.get(key.index as usize)?;
        (key.loop_id == self.loop_id && slot.generation == key.generation).then_some(slot)
    }

    pub(crate) fn get(&self, key: SessionKey) -> Option<&KcpSession> {
        self.slot(key)?.session.as_ref()
    }

    pub(crate) fn get_mut(&mut self, key: SessionKey) -> Option<&mut KcpSession> {
        self.slot(key)?;
        self.slots[key.index as usize].session.as_mut()
    }

    /// Removes the session and retires its key.
    pub(crate) fn remove(&mut self, key: SessionKey) -> Option<KcpSession> {
        self.slot(key)?;
        let slot = &mut self.slots[key.index as usize];
        let session = slot.session.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.index);
        self.len -= 1;
        Some(session)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &KcpSession> {
        self.slots.iter().filter_map(|s| s.session.as_ref())
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut KcpSession> {
        self.slots.iter_mut().filter_map(|s| s.session.as_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn session(key: SessionKey) -> KcpSession {
        let kcp = kcp_core::Kcp::new(1, kcp_core::Config::fast()).unwrap();
        KcpSession::new(key, "127.0.0.1:1".parse().unwrap(), kcp, Instant::now())
    }

    #[test]
    fn a_reused_slot_does_not_answer_to_the_old_key() {
        let mut store = Store::new(3);
        let a = store.insert(session);
        assert_eq!(a.loop_id(), 3);
        assert!(store.get(a).is_some());
        assert!(store.remove(a).is_some());
        assert!(store.remove(a).is_none());
        let b = store.insert(session);
        assert_ne!(a, b);
        assert!(store.get(a).is_none());
        assert!(store.get_mut(b).is_some());
        assert_eq!(store.len(), 1);
        assert_eq!(store.iter().count(), 1);
    }

    #[test]
    fn keys_of_another_loop_are_foreign() {
        let mut one = Store::new(1);
        let mut two = Store::new(2);
        let k1 = one.insert(session);
        let _k2 = two.insert(session);
        assert!(two.get(k1).is_none());
    }
}
