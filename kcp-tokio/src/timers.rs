//! The driver's one timer over all its sessions: a lazy min-heap of `(deadline,
//! session id)` entries.
//!
//! A session's deadline ([`State::next_wake`]) moves all the time, mostly later (a
//! stream's task drives its conversation and sets it without telling the driver).
//! Removing an entry from a binary heap costs a search, so a moved deadline leaves
//! its entry in place. What keeps that cheap is that each session has one *current*
//! entry, the one at [`State::queued`], which is never after its deadline: an entry
//! that comes up and is not its session's current one is older and is dropped; the
//! current one, come up before the deadline it stands for, is moved to it. Every
//! other entry is dropped once, so a moved deadline makes no copies. (Re-pushing every
//! entry that came up early did: the copies travelled with the deadline, and a
//! single paced session's heap held about sixty of them, popping six a turn.)

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::MutexGuard;
use std::time::Instant;

use crate::session::State;

/// The driver's timer heap.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
}

impl Timers {
    /// Arms session `id`'s timer at `at` if that is sooner than its deadline. Its
    /// current entry moves only if `at` is sooner than that entry: one at or before
    /// `at` already wakes the driver in time (and is moved on then).
    pub(crate) fn schedule(&mut self, state: &mut State, id: u64, at: Instant) {
        if state.next_wake.is_none_or(|wake| at < wake) {
            state.next_wake = Some(at);
        }
        if state.queued.is_none_or(|queued| at < queued) {
            self.requeue(state, id, at);
        }
    }

    /// Makes session `id`'s current entry one at `at`.
    fn requeue(&mut self, state: &mut State, id: u64, at: Instant) {
        state.queued = Some(at);
        self.heap.push(Reverse((at, id)));
    }

    /// The earliest deadline still wanted, for the driver's sleep. Entries come up in
    /// order; older ones and those of closed sessions (`state_of` gives `None`) are
    /// dropped, and a current one whose deadline moved later is moved with it.
    pub(crate) fn next<'a>(
        &mut self,
        state_of: impl Fn(u64) -> Option<MutexGuard<'a, State>>,
    ) -> Option<Instant> {
        while let Some(&Reverse((at, id))) = self.heap.peek() {
            let Some(mut state) = state_of(id) else {
                self.heap.pop(); // closed since
                continue;
            };
            if state.queued == Some(at) && state.next_wake == Some(at) {
                return Some(at);
            }
            self.heap.pop();
            if state.queued != Some(at) {
                continue; // an older entry
            }
            match state.next_wake {
                Some(wake) => self.requeue(&mut state, id, wake),
                None => state.queued = None,
            }
        }
        None
    }

    /// Takes every session whose deadline is at or before `now` off the heap (its
    /// deadline cleared) and hands it to `due`; entries that came up for a deadline
    /// moved later are moved with it.
    pub(crate) fn fire<'a>(
        &mut self,
        now: Instant,
        state_of: impl Fn(u64) -> Option<MutexGuard<'a, State>>,
        mut due: impl FnMut(&mut State, u64),
    ) {
        while let Some(&Reverse((at, id))) = self.heap.peek() {
            if at > now {
                break;
            }
            self.heap.pop();
            let Some(mut state) = state_of(id) else {
                continue; // closed since
            };
            if state.queued != Some(at) {
                continue; // an older entry
            }
            state.queued = None;
            match state.next_wake {
                Some(wake) if wake <= now => {
                    state.next_wake = None;
                    due(&mut state, id);
                }
                Some(wake) => self.requeue(&mut state, id, wake),
                None => {}
            }
        }
    }

    /// Rebuilds the heap from the sessions' deadlines once older entries outnumber
    /// the `sessions` live ones (amortised: at least as many pushes as the rebuild
    /// costs). Older entries are otherwise dropped only when they come up, and a
    /// deadline moved sooner and sooner again leaves one behind each time.
    pub(crate) fn compact<'a>(
        &mut self,
        sessions: usize,
        states: impl Iterator<Item = (u64, MutexGuard<'a, State>)>,
    ) {
        if self.heap.len() <= 2 * sessions + 16 {
            return;
        }
        self.heap = states
            .filter_map(|(id, mut state)| {
                state.queued = state.next_wake;
                state.queued.map(|at| Reverse((at, id)))
            })
            .collect();
    }

    /// Forgets every entry (no session left).
    pub(crate) fn clear(&mut self) {
        self.heap.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Duration;

    use kcp_net::{Conversation, ConversationConfig};

    use super::*;
    use crate::session::lock;

    /// `n` sessions (ids 1..=n) with no deadline, and a clock starting at `t0`.
    struct Fixture {
        t0: Instant,
        states: HashMap<u64, Mutex<State>>,
    }

    impl Fixture {
        fn new(n: u64) -> Self {
            let t0 = Instant::now();
            let peer = "127.0.0.1:9".parse().unwrap();
            let states = (1..=n)
                .map(|id| {
                    let config = ConversationConfig::default();
                    let conversation = Conversation::new(id as u32, config, t0).unwrap();
                    (id, Mutex::new(State::new(conversation, peer)))
                })
                .collect();
            Self { t0, states }
        }

        fn ms(&self, n: u64) -> Instant {
            self.t0 + Duration::from_millis(n)
        }

        fn state(&self, id: u64) -> MutexGuard<'_, State> {
            lock(&self.states[&id])
        }

        fn state_of<'a>(&'a self) -> impl Fn(u64) -> Option<MutexGuard<'a, State>> + Copy {
            |id| self.states.get(&id).map(lock)
        }
    }

    #[test]
    fn deadlines_moved_sooner_then_later_again_and_again_keep_one_entry_and_fire_once() {
        let f = Fixture::new(1);
        let mut timers = Timers::default();
        let mut deadline = 10;
        timers.schedule(&mut f.state(1), 1, f.ms(deadline));
        for step in 0..100 {
            // Something sooner (an ACK hold): the later entry stays in the heap.
            timers.schedule(&mut f.state(1), 1, f.ms(deadline - 1));
            // Then a stream's task drove the conversation: its deadline is later now.
            deadline += 10;
            f.state(1).next_wake = Some(f.ms(deadline));
            assert_eq!(timers.next(f.state_of()), Some(f.ms(deadline)));
            assert_eq!(timers.len(), 1, "copies at step {step}");
        }
        let mut fired = Vec::new();
        timers.fire(f.ms(deadline - 1), f.state_of(), |_, id| fired.push(id));
        assert!(fired.is_empty(), "fired before its deadline");
        timers.fire(f.ms(deadline), f.state_of(), |_, id| fired.push(id));
        assert_eq!(fired, [1]);
        assert_eq!(f.state(1).next_wake, None);
        assert_eq!(timers.next(f.state_of()), None);
    }

    #[test]
    fn an_entry_that_comes_up_early_follows_its_deadline_instead_of_being_lost() {
        let f = Fixture::new(2);
        let mut timers = Timers::default();
        timers.schedule(&mut f.state(1), 1, f.ms(5));
        timers.schedule(&mut f.state(2), 2, f.ms(6));
        // Session 2's deadline moved later without the driver looking.
        f.state(2).next_wake = Some(f.ms(20));
        let mut fired = Vec::new();
        timers.fire(f.ms(10), f.state_of(), |_, id| fired.push(id));
        assert_eq!(fired, [1]);
        assert_eq!(timers.next(f.state_of()), Some(f.ms(20)));
        timers.fire(f.ms(20), f.state_of(), |_, id| fired.push(id));
        assert_eq!(fired, [1, 2]);
    }

    #[test]
    fn deadlines_moved_sooner_leave_older_entries_that_never_fire_and_are_compacted() {
        let f = Fixture::new(1);
        let mut timers = Timers::default();
        for step in (10..100).rev() {
            timers.schedule(&mut f.state(1), 1, f.ms(step));
        }
        assert_eq!(timers.len(), 90);
        timers.compact(1, f.states.iter().map(|(&id, s)| (id, lock(s))));
        assert_eq!(timers.len(), 1);
        let mut fired = Vec::new();
        timers.fire(f.ms(1000), f.state_of(), |_, id| fired.push(id));
        assert_eq!(fired, [1], "one deadline, one fire");
        // A session with no deadline fires nothing, whatever its entries say.
        timers.schedule(&mut f.state(1), 1, f.ms(1001));
        f.state(1).next_wake = None;
        timers.fire(f.ms(2000), f.state_of(), |_, id| fired.push(id));
        assert_eq!(fired, [1]);
        assert_eq!(timers.next(f.state_of()), None);
    }
}
