//! State every event loop of a chat server shares: the room model, which session
//! each user is on, the per-address flood control and the chat-level counters.
//!
//! Two locks, never held together: the room state's ([`Hub::lock`]) and the address
//! table's (taken inside the `ip_*` methods only, for a few map operations).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use kcp_net::{ServerHandle, SessionKey};

use super::ip_table::{IpPolicy, IpTable};
use crate::cluster::Link;
use crate::protocol::{ServerFrame, encode};
use crate::room::{RoomLimits, Rooms, UserId};

/// Chat-level counters of a server, since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChatCounters {
    /// Frames received from clients (keepalives excluded).
    pub frames_in: u64,
    /// Chat messages posted (say and me).
    pub messages: u64,
    /// Frames queued to sessions (every copy of a broadcast counts).
    pub frames_out: u64,
    /// Error frames sent.
    pub errors: u64,
    /// Frames that did not decode.
    pub bad_frames: u64,
    /// Frames dropped by a rate limit (the session's or its address's).
    pub rate_limited: u64,
    /// Of those, frames dropped by the per-address limit.
    pub ip_rate_limited: u64,
    /// Clients disconnected for abuse.
    pub kicked: u64,
    /// Users welcomed.
    pub welcomed: u64,
    /// Hellos refused as `server-busy` (admission control).
    pub refused_busy: u64,
    /// Of those, hellos refused because the loop worked nearly all the time
    /// (`busy_load`).
    pub refused_busy_load: u64,
    /// Of those, hellos refused because too much of the loop's sending was
    /// retransmission (`busy_retransmits`; the rest: `busy_lag`).
    pub refused_busy_retransmits: u64,
}

#[derive(Debug, Default)]
pub(crate) struct AtomicCounters {
    pub(crate) frames_in: AtomicU64,
    pub(crate) messages: AtomicU64,
    pub(crate) frames_out: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) bad_frames: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) ip_rate_limited: AtomicU64,
    pub(crate) kicked: AtomicU64,
    pub(crate) welcomed: AtomicU64,
    pub(crate) refused_busy: AtomicU64,
    pub(crate) refused_busy_load: AtomicU64,
    pub(crate) refused_busy_retransmits: AtomicU64,
}

impl AtomicCounters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// An error frame was sent.
    pub(crate) fn count_error(&self) {
        Self::bump(&self.errors);
    }

    fn snapshot(&self) -> ChatCounters {
        ChatCounters {
            frames_in: self.frames_in.load(Relaxed),
            messages: self.messages.load(Relaxed),
            frames_out: self.frames_out.load(Relaxed),
            errors: self.errors.load(Relaxed),
            bad_frames: self.bad_frames.load(Relaxed),
            rate_limited: self.rate_limited.load(Relaxed),
            ip_rate_limited: self.ip_rate_limited.load(Relaxed),
            kicked: self.kicked.load(Relaxed),
            welcomed: self.welcomed.load(Relaxed),
            refused_busy: self.refused_busy.load(Relaxed),
            refused_busy_load: self.refused_busy_load.load(Relaxed),
            refused_busy_retransmits: self.refused_busy_retransmits.load(Relaxed),
        }
    }
}

/// A user as the server knows them beyond the room model.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) key: SessionKey,
    pub(crate) token: u64,
}

/// What the lock protects.
#[derive(Debug)]
pub(crate) struct HubState {
    pub(crate) rooms: Rooms,
    pub(crate) members: HashMap<UserId, Member>,
    /// Cluster mode: joins published but not yet read back from the room's stream
    /// (the reader applies them to `rooms` in the stream's order). Empty otherwise.
    pub(crate) pending_joins: BTreeSet<(UserId, String)>,
    next_id: UserId,
}

impl HubState {
    pub(crate) const fn next_id(&mut self) -> UserId {
        self.next_id += 1;
        self.next_id
    }
}

/// The shared state, one per server.
#[derive(Debug)]
pub(crate) struct Hub {
    state: Mutex<HubState>,
    /// Per-address buckets and strikes. A lock of its own, so a frame's rate check does
    /// not wait for the room lock; never taken while that one is held, or the reverse.
    ips: Mutex<IpTable>,
    pub(crate) counters: AtomicCounters,
    /// Cluster mode: the link to the publisher (`None` for a single server).
    pub(crate) cluster: Option<Link>,
}

impl Hub {
    /// A hub with empty rooms and an address table of at most `ip_cap` entries (see
    /// [`IpTable`] for the bound).
    pub(crate) fn new(
        limits: RoomLimits,
        ip_policy: IpPolicy,
        ip_cap: usize,
        cluster: Option<Link>,
    ) -> Self {
        Self {
            state: Mutex::new(HubState {
                rooms: Rooms::new(limits),
                members: HashMap::new(),
                pending_joins: BTreeSet::new(),
                next_id: 0,
            }),
            ips: Mutex::new(IpTable::new(ip_policy, ip_cap)),
            counters: AtomicCounters::default(),
            cluster,
        }
    }

    /// The address table, for one short operation. Its operations change one entry
    /// each (or sweep whole entries), so a poisoned lock is taken over.
    fn ips(&self) -> MutexGuard<'_, IpTable> {
        self.ips.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A session from `ip` opened.
    pub(crate) fn ip_open(&self, ip: IpAddr, now: Instant) {
        self.ips().open(ip, now);
    }

    /// A session from `ip` closed.
    pub(crate) fn ip_close(&self, ip: IpAddr, now: Instant) {
        self.ips().close(ip, now);
    }

    /// Takes a token from `ip`'s shared bucket; `false` when it is empty.
    pub(crate) fn ip_take(&self, ip: IpAddr, now: Instant, slack: f64) -> bool {
        self.ips().take(ip, now, slack)
    }

    /// Records an abuse strike against `ip`; `true` when it is one too many.
    pub(crate) fn ip_strike(&self, ip: IpAddr, now: Instant) -> bool {
        self.ips().strike(ip, now)
    }

    /// Locks the state. A handler that panicked while holding the lock leaves the
    /// model as it was between two whole operations (each validates before changing
    /// anything), so a poisoned lock is taken over rather than propagated.
    pub(crate) fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn counters(&self) -> ChatCounters {
        self.counters.snapshot()
    }

    /// Users and rooms now.
    pub(crate) fn census(&self) -> (usize, usize) {
        let state = self.lock();
        (state.rooms.user_count(), state.rooms.room_count())
    }

    /// Encodes `frame` once and queues it to each of `to`'s sessions, with one command
    /// per event loop (the sessions share the encoded bytes).
    ///
    /// Called with the lock held, on purpose: queueing only posts to the target loops'
    /// channels (no waiting), and posting in lock order is what gives every member of a
    /// room the room's messages in `seq` order, whichever loops the senders are on.
    pub(crate) fn deliver(
        &self,
        state: &HubState,
        handle: &ServerHandle,
        to: &[UserId],
        frame: &ServerFrame,
    ) {
        let Ok(bytes) = encode(frame) else {
            return;
        };
        let keys = to
            .iter()
            .filter_map(|id| state.members.get(id).map(|m| m.key))
            .collect();
        self.post_many(handle, keys, bytes);
    }

    /// Queues `bytes` to each of `keys`; off a loop thread it waits for the loops, so
    /// never call it with the lock held there.
    pub(crate) fn post_many(&self, handle: &ServerHandle, keys: Vec<SessionKey>, bytes: Bytes) {
        if let Ok(posted) = handle.send_to_many(keys, bytes) {
            self.counters.frames_out.fetch_add(posted as u64, Relaxed);
        }
    }

    pub(crate) fn post(&self, handle: &ServerHandle, key: SessionKey, bytes: Bytes) {
        if handle.send(key, bytes).is_ok() {
            Self::bump(&self.counters.frames_out);
        }
    }

    fn bump(counter: &AtomicU64) {
        AtomicCounters::bump(counter);
    }
}
