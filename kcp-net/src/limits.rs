//! Admission limits: the new-session rate cap (a token bucket) and the per-address
//! limits (sessions and new sessions per source IP).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Allows `rate` events per second on average, bursts of at most `rate`.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(rate: u32, now: Instant) -> Self {
        Self {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl TokenBucket {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
    }

    /// Whether the bucket is full again at `now` (it remembers nothing worth keeping).
    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.rate
    }
}

/// Why a source address may not open another session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AddressRefusal {
    /// It has `max_sessions_per_ip` open already.
    TooMany,
    /// It opened `new_sessions_per_ip_per_sec` in the last second, or the table is
    /// full of addresses that did.
    TooFast,
}

/// Sessions open and new-session tokens per source IP, shared by a server's loops.
///
/// Memory bound: an address has an entry while it has a session, or for about a
/// second after it last opened one (until its bucket is full again). Entries beyond
/// `capacity` are pruned at most every [`PRUNE_EVERY`]; while none can be pruned, new
/// addresses are refused (`TooFast`), so a flood of spoofed addresses costs at most
/// `capacity` entries (~100 bytes each).
#[derive(Debug)]
pub(crate) struct AddressTable {
    max_sessions: u32,
    rate: u32,
    capacity: usize,
    entries: HashMap<IpAddr, AddressEntry>,
    last_prune: Option<Instant>,
}

#[derive(Debug)]
struct AddressEntry {
    sessions: u32,
    bucket: TokenBucket,
}

/// The least time between two prunes of a full [`AddressTable`].
const PRUNE_EVERY: Duration = Duration::from_millis(100);

impl AddressTable {
    pub(crate) fn new(max_sessions: u32, rate: u32, capacity: usize) -> Self {
        Self {
            max_sessions,
            rate,
            capacity,
            entries: HashMap::new(),
            last_prune: None,
        }
    }

    /// Counts one more session from `ip` if its limits allow.
    pub(crate) fn admit(&mut self, ip: IpAddr, now: Instant) -> Result<(), AddressRefusal> {
        if !self.entries.contains_key(&ip) && self.entries.len() >= self.capacity {
            self.prune(now);
            if self.entries.len() >= self.capacity {
                return Err(AddressRefusal::TooFast);
            }
        }
        let rate = self.rate;
        let entry = self.entries.entry(ip).or_insert_with(|| AddressEntry {
            sessions: 0,
            bucket: TokenBucket::new(rate, now),
        });
        if entry.sessions >= self.max_sessions {
            return Err(AddressRefusal::TooMany);
        }
        if !entry.bucket.take(now) {
            return Err(AddressRefusal::TooFast);
        }
        entry.sessions += 1;
        Ok(())
    }

    /// A session from `ip` closed.
    pub(crate) fn release(&mut self, ip: IpAddr) {
        if let Some(entry) = self.entries.get_mut(&ip) {
            entry.sessions = entry.sessions.saturating_sub(1);
        }
    }

    /// Sessions open from `ip`.
    #[cfg(test)]
    fn sessions(&self, ip: IpAddr) -> u32 {
        self.entries.get(&ip).map_or(0, |e| e.sessions)
    }

    fn prune(&mut self, now: Instant) {
        if self
            .last_prune
            .is_some_and(|last| now.saturating_duration_since(last) < PRUNE_EVERY)
        {
            return;
        }
        self.last_prune = Some(now);
        self.entries
            .retain(|_, e| e.sessions > 0 || !e.bucket.is_full(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_up_to_the_rate_then_refills_over_time() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10, t0);
        assert_eq!((0..20).filter(|_| bucket.take(t0)).count(), 10);
        assert!(!bucket.take(t0 + Duration::from_millis(50)));
        assert!(bucket.take(t0 + Duration::from_millis(100)));
        assert_eq!(
            (0..20)
                .filter(|_| bucket.take(t0 + Duration::from_secs(60)))
                .count(),
            10
        );
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn an_address_gets_its_sessions_up_to_the_cap_and_back_when_they_close() {
        let t0 = Instant::now();
        let mut table = AddressTable::new(2, 100, 16);
        assert_eq!(table.admit(ip(1), t0), Ok(()));
        assert_eq!(table.admit(ip(1), t0), Ok(()));
        assert_eq!(table.admit(ip(1), t0), Err(AddressRefusal::TooMany));
        assert_eq!(
            table.admit(ip(2), t0),
            Ok(()),
            "another address is not affected"
        );
        table.release(ip(1));
        assert_eq!(table.sessions(ip(1)), 1);
        assert_eq!(table.admit(ip(1), t0), Ok(()));
    }

    #[test]
    fn an_address_opens_at_most_its_rate_per_second() {
        let t0 = Instant::now();
        let mut table = AddressTable::new(1000, 5, 16);
        let admitted = (0..20).filter(|_| table.admit(ip(1), t0).is_ok()).count();
        assert_eq!(admitted, 5);
        assert_eq!(table.admit(ip(1), t0), Err(AddressRefusal::TooFast));
        assert_eq!(table.admit(ip(1), t0 + Duration::from_millis(200)), Ok(()));
    }

    #[test]
    fn a_flood_of_addresses_is_bounded_by_the_capacity_and_pruned_later() {
        let t0 = Instant::now();
        let mut table = AddressTable::new(10, 10, 4);
        for last in 1..=4 {
            table.admit(ip(last), t0).unwrap();
            table.release(ip(last)); // no session left, but its bucket is not full
        }
        assert_eq!(
            table.admit(ip(9), t0),
            Err(AddressRefusal::TooFast),
            "table full"
        );
        assert_eq!(table.entries.len(), 4);
        // A second later every bucket is full again: the idle entries go.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(table.admit(ip(9), later), Ok(()));
        assert_eq!(table.entries.len(), 1);
    }
}
