//! A generational slab: keys carry a generation so a key of a closed session never
//! reaches the session that reused its slot (h2's `Key` ABA guard), and a dirty list
//! of the entries touched this turn.

use std::fmt;

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
struct Slot<T> {
    generation: u32,
    value: Option<T>,
    /// Listed in the store's dirty list.
    dirty: bool,
}

/// The sessions (or any values) of one loop, by [`SessionKey`], with the list of
/// those marked dirty since it was last taken.
#[derive(Debug)]
pub(crate) struct Store<T> {
    loop_id: u16,
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
    dirty: Vec<SessionKey>,
}

/// One live entry of a [`Store`]: its value, and the means to mark it dirty while
/// the value is borrowed.
#[derive(Debug)]
pub(crate) struct Entry<'a, T> {
    key: SessionKey,
    value: &'a mut T,
    marked: &'a mut bool,
    dirty: &'a mut Vec<SessionKey>,
}

impl<T> Entry<'_, T> {
    pub(crate) const fn key(&self) -> SessionKey {
        self.key
    }

    pub(crate) fn get(&self) -> &T {
        self.value
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.value
    }

    /// Lists the entry in the store's dirty list, once until the list is taken.
    pub(crate) fn mark_dirty(&mut self) {
        if !*self.marked {
            *self.marked = true;
            self.dirty.push(self.key);
        }
    }
}

impl<T> Store<T> {
    pub(crate) fn new(loop_id: u16) -> Self {
        Self {
            loop_id,
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            dirty: Vec::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores the value `make` builds for its new key.
    pub(crate) fn insert(&mut self, make: impl FnOnce(SessionKey) -> T) -> SessionKey {
        let index = self.free.pop().unwrap_or_else(|| {
            self.slots.push(Slot {
                generation: 0,
                value: None,
                dirty: false,
            });
            (self.slots.len() - 1) as u32
        });
        let slot = &mut self.slots[index as usize];
        let key = SessionKey {
            loop_id: self.loop_id,
            index,
            generation: slot.generation,
        };
        slot.value = Some(make(key));
        slot.dirty = false;
        self.len += 1;
        key
    }

    fn slot_index(&self, key: SessionKey) -> Option<usize> {
        let slot = self.slots.get(key.index as usize)?;
        (key.loop_id == self.loop_id && slot.generation == key.generation && slot.value.is_some())
            .then_some(key.index as usize)
    }

    pub(crate) fn get(&self, key: SessionKey) -> Option<&T> {
        self.slots[self.slot_index(key)?].value.as_ref()
    }

    pub(crate) fn get_mut(&mut self, key: SessionKey) -> Option<&mut T> {
        let index = self.slot_index(key)?;
        self.slots[index].value.as_mut()
    }

    /// The live entry of `key`, to change its value and mark it dirty together.
    pub(crate) fn entry(&mut self, key: SessionKey) -> Option<Entry<'_, T>> {
        let index = self.slot_index(key)?;
        let slot = &mut self.slots[index];
        Some(Entry {
            key,
            value: slot.value.as_mut()?,
            marked: &mut slot.dirty,
            dirty: &mut self.dirty,
        })
    }

    /// Takes the dirty list, in the order entries were marked, and clears their marks
    /// (they may be marked again at once). `into` is a reused buffer; it is cleared
    /// first. Keys of entries removed since they were marked are left out.
    pub(crate) fn take_dirty(&mut self, into: &mut Vec<SessionKey>) {
        into.clear();
        std::mem::swap(into, &mut self.dirty);
        into.retain(|&key| match self.slot_index(key) {
            Some(index) => {
                self.slots[index].dirty = false;
                true
            }
            None => false,
        });
    }

    /// Whether anything is marked dirty.
    pub(crate) fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Removes the value and retires its key.
    pub(crate) fn remove(&mut self, key: SessionKey) -> Option<T> {
        let index = self.slot_index(key)?;
        let slot = &mut self.slots[index];
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        slot.dirty = false;
        self.free.push(key.index);
        self.len -= 1;
        Some(value)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (SessionKey, &T)> {
        let loop_id = self.loop_id;
        self.slots.iter().enumerate().filter_map(move |(i, s)| {
            let key = SessionKey {
                loop_id,
                index: i as u32,
                generation: s.generation,
            };
            s.value.as_ref().map(|v| (key, v))
        })
    }

    pub(crate) fn keys(&self) -> Vec<SessionKey> {
        self.iter().map(|(key, _)| key).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_slot_does_not_answer_to_the_old_key() {
        let mut store = Store::new(3);
        let a = store.insert(|_| "a");
        assert_eq!(a.loop_id(), 3);
        assert_eq!(store.get(a), Some(&"a"));
        assert_eq!(store.remove(a), Some("a"));
        assert_eq!(store.remove(a), None);
        let b = store.insert(|_| "b");
        assert_ne!(a, b);
        assert_eq!(store.get(a), None);
        assert_eq!(store.get_mut(b), Some(&mut "b"));
        assert!(store.entry(a).is_none());
        assert_eq!(store.len(), 1);
        assert_eq!(store.iter().count(), 1);
        assert_eq!(store.keys(), vec![b]);
    }

    #[test]
    fn keys_of_another_loop_are_foreign() {
        let mut one = Store::new(1);
        let mut two = Store::new(2);
        let k1 = one.insert(|key| key);
        let k2 = two.insert(|key| key);
        assert_eq!(one.get(k1), Some(&k1));
        assert!(two.get(k1).is_none());
        assert_eq!(two.get(k2), Some(&k2));
    }

    #[test]
    fn dirty_keys_are_listed_once_in_order_and_stale_ones_are_dropped() {
        let mut store = Store::new(0);
        let [a, b, c] = [1, 2, 3].map(|v| store.insert(|_| v));
        let mark = |store: &mut Store<i32>, key| {
            if let Some(mut entry) = store.entry(key) {
                entry.mark_dirty();
            }
        };
        mark(&mut store, b);
        mark(&mut store, a);
        mark(&mut store, b);
        if let Some(mut entry) = store.entry(c) {
            *entry.get_mut() += 10;
            entry.mark_dirty();
            entry.mark_dirty();
        }
        store.remove(a);
        mark(&mut store, a); // stale: no entry
        assert!(store.has_dirty());
        let mut dirty = vec![a]; // a reused buffer is cleared first
        store.take_dirty(&mut dirty);
        assert_eq!(dirty, vec![b, c]);
        assert!(!store.has_dirty());
        assert_eq!(store.get(c), Some(&13));
        // Taken marks are cleared, so each entry can be listed again.
        mark(&mut store, c);
        mark(&mut store, b);
        store.take_dirty(&mut dirty);
        assert_eq!(dirty, vec![c, b]);
    }

    #[test]
    fn a_new_value_in_a_reused_slot_starts_clean() {
        let mut store = Store::new(0);
        let a = store.insert(|_| 1);
        store.entry(a).unwrap().mark_dirty();
        store.remove(a);
        let b = store.insert(|_| 2);
        let mut dirty = Vec::new();
        store.take_dirty(&mut dirty);
        assert!(
            dirty.is_empty(),
            "the old key's mark does not list the new value"
        );
        store.entry(b).unwrap().mark_dirty();
        store.take_dirty(&mut dirty);
        assert_eq!(dirty, vec![b]);
    }
}
