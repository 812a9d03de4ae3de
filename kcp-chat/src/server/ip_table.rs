//! Flood control per source address, shared by every session from that address on
//! every event loop.
//!
//! A client that opens a new conversation per burst gets a fresh per-session bucket
//! each time; the bucket and strikes here follow the address instead, so all its
//! conversations draw from one budget. With `SO_REUSEPORT` the kernel spreads one
//! address's conversations over the loops (it hashes address *and* port), so the table
//! lives in the [`Hub`](super::hub::Hub), behind a lock of its own.
//!
//! Pure logic with the time passed in, so tests need no clock.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::rate::{Strikes, TokenBucket};

/// The per-address budget.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IpPolicy {
    /// Frames per second an address may send on average, over all its sessions.
    pub(crate) rate: f64,
    /// Frames an address may send in a burst.
    pub(crate) burst: u32,
    /// Abuse errors tolerated per `window` from an address.
    pub(crate) strikes: u32,
    /// The window in which strikes count.
    pub(crate) window: Duration,
}

/// One address's state.
#[derive(Debug)]
struct IpEntry {
    sessions: usize,
    bucket: TokenBucket,
    strikes: Strikes,
}

impl IpEntry {
    /// Whether forgetting it loses nothing: no session, a full bucket, no live strike.
    fn is_idle(&self, now: Instant) -> bool {
        self.sessions == 0 && self.bucket.is_full(now) && self.strikes.is_clear(now)
    }
}

/// The state of every address that has sessions, or had them recently enough that
/// its bucket is not full again (or a strike still counts).
///
/// Memory: an entry is removed when its address has no session left and forgetting
/// it loses nothing (full bucket, no live strike); until then it lingers at most
/// `burst / rate` seconds (or the strike window). When the table reaches `cap`
/// entries, such entries are swept, and if none is left an address without sessions is
/// evicted (the one with the fullest bucket, whose successor loses least). Entries with
/// sessions are never evicted, so the table holds at most `max(cap, sessions open)`
/// entries, each about 100 bytes plus 16 bytes per live strike.
#[derive(Debug)]
pub(crate) struct IpTable {
    policy: IpPolicy,
    cap: usize,
    entries: HashMap<IpAddr, IpEntry>,
}

/// The address a budget belongs to: IPv4-mapped IPv6 addresses count as their IPv4
/// address, and IPv6 addresses by their /64 prefix (one host, or one site's LAN,
/// usually has a whole /64 to pick addresses from).
pub(crate) fn budget_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

impl IpTable {
    /// An empty table of at most `cap` entries (see the type's docs for the bound).
    pub(crate) fn new(policy: IpPolicy, cap: usize) -> Self {
        Self {
            policy,
            cap: cap.max(1),
            entries: HashMap::new(),
        }
    }

    /// The entry for `ip`, created with a full bucket if there is none.
    fn entry(&mut self, ip: IpAddr, now: Instant) -> &mut IpEntry {
        let key = budget_key(ip);
        if !self.entries.contains_key(&key) && self.entries.len() >= self.cap {
            self.make_room(now);
        }
        let policy = self.policy;
        self.entries.entry(key).or_insert_with(|| IpEntry {
            sessions: 0,
            bucket: TokenBucket::new(policy.rate, policy.burst, now),
            strikes: Strikes::new(policy.strikes, policy.window),
        })
    }

    /// Sweeps idle entries; if none was, evicts the session-less entry with the most
    /// tokens. Runs only at the cap, and a sweep leaves at most the addresses with
    /// sessions, so its cost is spread over the inserts that filled the table again.
    fn make_room(&mut self, now: Instant) {
        let before = self.entries.len();
        self.entries.retain(|_, e| !e.is_idle(now));
        if self.entries.len() < before {
            return;
        }
        let victim = self
            .entries
            .iter()
            .filter(|(_, e)| e.sessions == 0)
            .max_by(|a, b| {
                a.1.bucket
                    .tokens_at(now)
                    .total_cmp(&b.1.bucket.tokens_at(now))
            })
            .map(|(ip, _)| *ip);
        if let Some(ip) = victim {
            self.entries.remove(&ip);
        }
    }

    /// A session from `ip` opened.
    pub(crate) fn open(&mut self, ip: IpAddr, now: Instant) {
        self.entry(ip, now).sessions += 1;
    }

    /// A session from `ip` closed: the entry goes if that loses nothing.
    pub(crate) fn close(&mut self, ip: IpAddr, now: Instant) {
        let key = budget_key(ip);
        if let Entry::Occupied(mut slot) = self.entries.entry(key) {
            let entry = slot.get_mut();
            entry.sessions = entry.sessions.saturating_sub(1);
            if entry.is_idle(now) {
                slot.remove();
            }
        }
    }

    /// Takes one token from `ip`'s bucket if there is one, with `slack` tokens
    /// beyond the burst allowed (as `TokenBucket::take_with_slack`).
    pub(crate) fn take(&mut self, ip: IpAddr, now: Instant, slack: f64) -> bool {
        self.entry(ip, now).bucket.take_with_slack(now, slack)
    }

    /// Records a strike against `ip`; `true` when it is one too many.
    pub(crate) fn strike(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.entry(ip, now).strikes.strike(now)
    }

    /// Addresses tracked now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> IpPolicy {
        IpPolicy {
            rate: 10.0,
            burst: 5,
            strikes: 2,
            window: Duration::from_secs(10),
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn sessions_of_one_address_share_one_bucket() {
        let t0 = Instant::now();
        let mut table = IpTable::new(policy(), 100);
        table.open(ip(1), t0);
        assert_eq!((0..3).filter(|_| table.take(ip(1), t0, 0.0)).count(), 3);
        // A second session of the same address, or a reconnect: no fresh bucket.
        table.close(ip(1), t0);
        table.open(ip(1), t0);
        assert_eq!((0..5).filter(|_| table.take(ip(1), t0, 0.0)).count(), 2);
        // Another address has its own.
        table.open(ip(2), t0);
        assert_eq!((0..5).filter(|_| table.take(ip(2), t0, 0.0)).count(), 5);
    }

    #[test]
    fn an_entry_goes_when_its_address_has_no_session_and_a_full_bucket() {
        let t0 = Instant::now();
        let mut table = IpTable::new(policy(), 100);
        table.open(ip(1), t0);
        table.open(ip(1), t0);
        assert!(table.take(ip(1), t0, 0.0));
        table.close(ip(1), t0);
        table.close(ip(1), t0);
        // The bucket is one token short: the entry stays, or a reconnect would refill it.
        assert_eq!(table.len(), 1);
        table.open(ip(1), t0);
        table.close(ip(1), t0 + Duration::from_millis(100));
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn strikes_are_counted_per_address_and_keep_the_entry() {
        let t0 = Instant::now();
        let mut table = IpTable::new(policy(), 100);
        table.open(ip(1), t0);
        assert!(!table.strike(ip(1), t0));
        table.close(ip(1), t0);
        assert_eq!(table.len(), 1, "a live strike keeps the entry");
        table.open(ip(1), t0);
        assert!(!table.strike(ip(1), t0));
        assert!(table.strike(ip(1), t0));
    }

    #[test]
    fn the_table_stays_at_its_cap() {
        let t0 = Instant::now();
        let mut table = IpTable::new(policy(), 4);
        for last in 0..4 {
            table.open(ip(last), t0);
            assert!(table.take(ip(last), t0, 0.0));
            table.close(ip(last), t0);
        }
        assert_eq!(table.len(), 4);
        // None is idle yet (each bucket is a token short): one is evicted.
        for last in 4..50 {
            table.open(ip(last), t0);
            table.close(ip(last), t0);
            assert!(table.len() <= 4);
        }
        // Entries with sessions are never evicted.
        for last in 100..110 {
            table.open(ip(last), t0);
        }
        assert_eq!(table.len(), 10);
    }

    #[test]
    fn ipv6_counts_by_prefix_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(budget_key(a), budget_key(b));
        assert_ne!(budget_key(a), budget_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(budget_key(mapped), ip(1));
    }
}
