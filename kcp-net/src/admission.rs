//! Who may open a session on a server: the rules every server of this workspace
//! applies (the threaded [`KcpServer`](crate::KcpServer), the single-threaded
//! [`ServerDriver`](crate::ServerDriver), and `kcp-tokio`'s listener), from the fields
//! of one [`ServerConfig`].
//!
//! A datagram for no existing (peer, conv) is first judged by its shape
//! ([`Opening::of`]); then [`Admission::admit`] checks the limits shared by a server's
//! loops (confirmed sessions, per-IP sessions and rate, the server's new-session
//! rate); then the loop's [`UnconfirmedPool`] makes room, evicting the oldest
//! unconfirmed session once it is `unconfirmed.min_age` old, or refuses.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kcp_core::conv_of;
use kcp_core::segment::{Command, HEADER_LEN, Header};

use crate::config::ServerConfig;
use crate::limits::{AddressRefusal, AddressTable, TokenBucket};
use crate::stats::LoopStats;

/// What a datagram for no existing session may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Opening {
    /// It is not KCP as a whole (a bad segment, mixed convs): `dropped_malformed`.
    Malformed,
    /// Valid KCP, but not the start of a conversation: `dropped_unknown_session`.
    NotFirst,
    /// It carries the first data segment of a conversation: a `Push` with
    /// `sn == initial_sn`.
    Opens,
}

impl Opening {
    /// Judges `datagram`. Stragglers of a closed or forgotten conversation (after a
    /// server restart, say) carry later sequence numbers and do not open a session,
    /// so their client sees a dead link and reconnects instead of talking to a
    /// session that can never deliver its data.
    pub fn of(datagram: &[u8], initial_sn: u32) -> Self {
        let Some(conv) = conv_of(datagram) else {
            return Self::Malformed;
        };
        let mut rest = datagram;
        let mut opens = false;
        while rest.len() >= HEADER_LEN {
            let Ok((header, payload)) = Header::parse(rest) else {
                return Self::Malformed;
            };
            if header.conv != conv {
                return Self::Malformed;
            }
            if header.cmd == Command::Push && header.sn.get() == initial_sn {
                opens = true;
            }
            rest = &rest[HEADER_LEN + payload.len()..];
        }
        if opens { Self::Opens } else { Self::NotFirst }
    }
}

/// Why a new session was refused; each names the [`LoopStats`] counter it is
/// counted in ([`count`](Self::count)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// `max_sessions` confirmed sessions are open (`dropped_session_limit`).
    SessionLimit,
    /// `max_sessions_per_ip` from this IP (`dropped_ip_limit`).
    IpLimit,
    /// `new_sessions_per_ip_per_sec` from this IP, or the address table is full of
    /// recent addresses (`dropped_ip_rate`).
    IpRate,
    /// `new_sessions_per_sec` over the server (`dropped_rate_limited`).
    Rate,
    /// The loop's unconfirmed pool is full of sessions younger than
    /// `unconfirmed.min_age` (`dropped_unconfirmed_full`).
    UnconfirmedFull,
}

impl Refusal {
    /// Counts the refusal in `stats`.
    pub fn count(self, stats: &mut LoopStats) {
        let counter = match self {
            Self::SessionLimit => &mut stats.dropped_session_limit,
            Self::IpLimit => &mut stats.dropped_ip_limit,
            Self::IpRate => &mut stats.dropped_ip_rate,
            Self::Rate => &mut stats.dropped_rate_limited,
            Self::UnconfirmedFull => &mut stats.dropped_unconfirmed_full,
        };
        *counter += 1;
    }
}

/// The limits a server's loops share: confirmed sessions against `max_sessions`,
/// the per-IP table, the new-session rate. `Sync`: one per server, behind an `Arc`.
#[derive(Debug)]
pub struct Admission {
    max_sessions: usize,
    confirmed: AtomicUsize,
    new_sessions: Mutex<TokenBucket>,
    addresses: Mutex<AddressTable>,
}

impl Admission {
    /// The limits of `config`, starting at `now`.
    pub fn new(config: &ServerConfig, now: Instant) -> Self {
        Self {
            max_sessions: config.max_sessions,
            confirmed: AtomicUsize::new(0),
            new_sessions: Mutex::new(TokenBucket::new(config.new_sessions_per_sec, now)),
            addresses: Mutex::new(AddressTable::new(
                config.max_sessions_per_ip,
                config.new_sessions_per_ip_per_sec,
                config.max_sessions.saturating_mul(2).saturating_add(1024),
            )),
        }
    }

    /// Counts one more (unconfirmed) session from `ip` if every limit allows, in
    /// order: confirmed sessions, the IP's sessions and rate, the server's rate. On
    /// `Ok`, call [`release`](Self::release) when the session goes (or is not
    /// opened after all).
    ///
    /// # Errors
    /// The limit that refused it; nothing is counted then.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        if self.confirmed.load(Ordering::Relaxed) >= self.max_sessions {
            return Err(Refusal::SessionLimit);
        }
        let admitted = match self.addresses.lock() {
            Ok(mut table) => table.admit(ip, now),
            Err(_) => Err(AddressRefusal::TooFast),
        };
        match admitted {
            Ok(()) => {}
            Err(AddressRefusal::TooMany) => return Err(Refusal::IpLimit),
            Err(AddressRefusal::TooFast) => return Err(Refusal::IpRate),
        }
        let token = self
            .new_sessions
            .lock()
            .map(|mut bucket| bucket.take(now))
            .unwrap_or(false);
        if !token {
            self.release(ip, false);
            return Err(Refusal::Rate);
        }
        Ok(())
    }

    /// A session from `ip` that [`admit`](Self::admit) let in went away;
    /// `confirmed`: it had been [`confirm`](Self::confirm)ed.
    pub fn release(&self, ip: IpAddr, confirmed: bool) {
        if confirmed {
            self.confirmed.fetch_sub(1, Ordering::Relaxed);
        }
        if let Ok(mut table) = self.addresses.lock() {
            table.release(ip);
        }
    }

    /// A session's peer proved its address: it counts against `max_sessions` now.
    pub fn confirm(&self) {
        self.confirmed.fetch_add(1, Ordering::Relaxed);
    }

    /// Confirmed sessions open.
    pub fn confirmed(&self) -> usize {
        self.confirmed.load(Ordering::Relaxed)
    }
}

/// What [`UnconfirmedPool::make_room`] asks of the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Room<K> {
    /// There is room: [`push`](UnconfirmedPool::push) the new session.
    Free,
    /// Close this (oldest, unconfirmed) session as
    /// [`CloseReason::Evicted`](crate::CloseReason::Evicted), tell the pool
    /// ([`left`](UnconfirmedPool::left)), and ask again.
    Evict(K),
    /// Every unconfirmed session is younger than `unconfirmed.min_age`: refuse the
    /// new one ([`Refusal::UnconfirmedFull`]).
    Full,
}

/// One loop's unconfirmed sessions, oldest first, by key `K`: at most
/// `max_unconfirmed_sessions`, a session evicted for a newer one only once it is
/// `unconfirmed.min_age` old.
#[derive(Debug)]
pub struct UnconfirmedPool<K> {
    /// Oldest first, with the time each opened; may hold keys of sessions since
    /// confirmed or closed (skipped, and dropped in bulk when they pile up).
    keys: VecDeque<(K, Instant)>,
    live: usize,
    max: usize,
    min_age: Duration,
}

impl<K: Copy> UnconfirmedPool<K> {
    /// An empty pool with `config`'s limits.
    pub fn new(config: &ServerConfig) -> Self {
        Self {
            keys: VecDeque::new(),
            live: 0,
            max: config.max_unconfirmed_sessions,
            min_age: config.unconfirmed.min_age,
        }
    }

    /// Whether there is room for one more session at `now`; `unconfirmed(key)` says
    /// whether a listed key is still an open, unconfirmed session.
    pub fn make_room(&mut self, now: Instant, unconfirmed: impl Fn(K) -> bool) -> Room<K> {
        while self.live >= self.max {
            let Some(&(oldest, opened)) = self.keys.front() else {
                return Room::Full;
            };
            if !unconfirmed(oldest) {
                self.keys.pop_front();
                continue;
            }
            if now < opened + self.min_age {
                return Room::Full;
            }
            self.keys.pop_front();
            return Room::Evict(oldest);
        }
        Room::Free
    }

    /// Lists a new unconfirmed session opened at `now`.
    pub fn push(&mut self, key: K, now: Instant, unconfirmed: impl Fn(K) -> bool) {
        self.keys.push_back((key, now));
        self.live += 1;
        if self.keys.len() > 2 * self.live + 64 {
            self.keys.retain(|&(k, _)| unconfirmed(k));
        }
    }

    /// A listed session was confirmed or closed while unconfirmed.
    pub fn left(&mut self) {
        self.live = self.live.saturating_sub(1);
    }

    /// Unconfirmed sessions open.
    pub const fn len(&self) -> usize {
        self.live
    }

    /// No unconfirmed session is open.
    pub const fn is_empty(&self) -> bool {
        self.live == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kcp_core::Sn;

    fn segment(conv: u32, cmd: Command, sn: u32, payload: &[u8]) -> Vec<u8> {
        Header::new(conv, cmd, Sn::new(sn)).encode(payload)
    }

    #[test]
    fn only_the_first_push_of_a_conversation_opens_a_session() {
        use Command::{Ack, Push};
        assert_eq!(Opening::of(&segment(7, Push, 0, b"hi"), 0), Opening::Opens);
        assert_eq!(
            Opening::of(&segment(7, Push, 5, b"hi"), 0),
            Opening::NotFirst
        );
        assert_eq!(Opening::of(&segment(7, Ack, 0, b""), 0), Opening::NotFirst);
        let mut two = segment(7, Ack, 3, b"");
        two.extend(segment(7, Push, 0, b"x"));
        assert_eq!(Opening::of(&two, 0), Opening::Opens);
        let mut mixed = segment(7, Push, 0, b"x");
        mixed.extend(segment(8, Push, 0, b"x"));
        assert_eq!(Opening::of(&mixed, 0), Opening::Malformed);
        let mut garbage = segment(7, Push, 0, b"x");
        garbage[4] = 99;
        assert_eq!(Opening::of(&garbage, 0), Opening::Malformed);
        assert_eq!(Opening::of(b"abc", 0), Opening::Malformed);
    }

    #[test]
    fn the_limits_hold_in_order_and_a_release_gives_back() {
        let t0 = Instant::now();
        let mut config = ServerConfig::new(crate::Preset::Fast);
        config.max_sessions_per_ip = 2;
        config.new_sessions_per_sec = 3;
        config.max_sessions = 1;
        let a = Admission::new(&config, t0);
        let ip1 = IpAddr::from([127, 0, 0, 1]);
        let ip2 = IpAddr::from([127, 0, 0, 2]);
        assert_eq!(a.admit(ip1, t0), Ok(()));
        assert_eq!(a.admit(ip1, t0), Ok(()));
        assert_eq!(a.admit(ip1, t0), Err(Refusal::IpLimit));
        assert_eq!(a.admit(ip2, t0), Ok(()));
        assert_eq!(
            a.admit(ip2, t0),
            Err(Refusal::Rate),
            "the server's 3 per second"
        );
        a.confirm();
        assert_eq!(a.admit(ip2, t0), Err(Refusal::SessionLimit));
        a.release(ip1, true);
        assert_eq!(a.confirmed(), 0);
        let mut stats = LoopStats::default();
        Refusal::UnconfirmedFull.count(&mut stats);
        assert_eq!(stats.dropped_unconfirmed_full, 1);
    }

    #[test]
    fn the_pool_evicts_the_oldest_only_once_it_is_old_enough() {
        let t0 = Instant::now();
        let mut config = ServerConfig::new(crate::Preset::Fast);
        config.max_unconfirmed_sessions = 2;
        config.unconfirmed.min_age = Duration::from_millis(500);
        let mut pool = UnconfirmedPool::new(&config);
        let open = |_: u32| true;
        assert_eq!(pool.make_room(t0, open), Room::Free);
        pool.push(1, t0, open);
        pool.push(2, t0 + Duration::from_millis(100), open);
        assert_eq!(
            pool.make_room(t0 + Duration::from_millis(499), open),
            Room::Full
        );
        assert_eq!(
            pool.make_room(t0 + Duration::from_millis(500), open),
            Room::Evict(1)
        );
        pool.left();
        assert_eq!(
            pool.make_room(t0 + Duration::from_millis(500), open),
            Room::Free
        );
        // A confirmed (or closed) oldest is skipped, not evicted.
        pool.push(3, t0 + Duration::from_millis(500), open);
        let not_two = |k: u32| k != 2;
        pool.left(); // 2 was confirmed
        assert_eq!(
            pool.make_room(t0 + Duration::from_secs(2), not_two),
            Room::Free
        );
        assert_eq!(pool.len(), 1);
    }
}
