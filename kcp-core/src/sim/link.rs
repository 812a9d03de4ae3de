//! One direction of a simulated network path.

use alloc::collections::{BinaryHeap, VecDeque};
use core::cmp::{Ordering, Reverse};
use core::convert::Infallible;

use bytes::{Bytes, BytesMut};

use super::SimTime;
use super::arena::Arena;
use super::loss::{LossKind, LossModel, LossState, chance};
use super::rng::SimRng;
use crate::Transmit;
use crate::ring::Ring;

/// How datagrams leave the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Delivery {
    /// Each datagram is delivered at its own due time, so jitter and `reorder` let
    /// later datagrams overtake earlier ones.
    #[default]
    Scheduled,
    /// A FIFO tunnel that only releases its head once due: nothing overtakes, a
    /// datagram behind a slower one waits (the C reference test's model).
    Fifo,
}

/// Settings of one direction of a [`Link`]. Start from [`LinkConfig::default`] (a
/// perfect, instant link) and set what you need.
///
/// ```
/// use kcp_core::sim::{LinkConfig, LossModel};
/// let lossy = LinkConfig {
///     loss: LossModel::Random { rate: 0.1 },
///     delay_ms: 30,
///     jitter_ms: 20,
///     ..LinkConfig::default()
/// };
/// assert_eq!(lossy.mtu, 65_535);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// Which datagrams are lost.
    pub loss: LossModel,
    /// Fixed one-way delay in ms.
    pub delay_ms: u64,
    /// Extra delay drawn uniformly from `0..=jitter_ms` per datagram.
    pub jitter_ms: u64,
    /// Probability that a datagram is held back an extra `reorder_ms`, letting later
    /// ones overtake it ([`Delivery::Scheduled`] only).
    pub reorder: f64,
    /// The extra delay of a reordered datagram.
    pub reorder_ms: u64,
    /// Probability that a datagram is delivered twice (the copy with its own jitter).
    pub duplicate: f64,
    /// Bottleneck rate in bytes per second; `None` for unlimited.
    pub rate_bytes_per_sec: Option<u64>,
    /// Bytes that may wait for the bottleneck; beyond it datagrams are tail-dropped.
    pub queue_bytes: usize,
    /// Most datagrams in transit at once; beyond it new ones are dropped (the
    /// reference test's `nmax`).
    pub max_in_transit: usize,
    /// Datagrams longer than this are dropped.
    pub mtu: usize,
    /// Scheduled or FIFO release.
    pub delivery: Delivery,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            loss: LossModel::None,
            delay_ms: 0,
            jitter_ms: 0,
            reorder: 0.0,
            reorder_ms: 0,
            duplicate: 0.0,
            rate_bytes_per_sec: None,
            queue_bytes: 1 << 20,
            max_in_transit: 1 << 20,
            mtu: 65_535,
            delivery: Delivery::Scheduled,
        }
    }
}

impl LinkConfig {
    /// The C reference test's link (`shared/reference-scenario.md`): bag-sampled loss
    /// of `lost_per_100`, one-way delay 30–61 ms, FIFO release, at most 1000 in transit.
    pub fn reference(lost_per_100: u8) -> Self {
        Self {
            loss: LossModel::Bag { lost_per_100 },
            delay_ms: 30,
            jitter_ms: 31,
            max_in_transit: 1000,
            delivery: Delivery::Fifo,
            ..Self::default()
        }
    }

    /// Random loss `rate` with `delay_ms` ± `jitter_ms / 2`-ish spread: a quick lossy
    /// link.
    pub fn lossy(rate: f64, delay_ms: u64, jitter_ms: u64) -> Self {
        Self {
            loss: LossModel::Random { rate },
            delay_ms,
            jitter_ms,
            ..Self::default()
        }
    }
}

/// What happened to the datagrams offered to a link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkStats {
    /// Datagrams pushed into the link.
    pub offered: u64,
    /// Bytes pushed into the link.
    pub bytes_offered: u64,
    /// Lost to independent (or Good-state) loss.
    pub dropped_random: u64,
    /// Lost in the Bad state of a Gilbert–Elliott model.
    pub dropped_burst: u64,
    /// Tail-dropped: the bottleneck queue or the in-transit limit was full.
    pub dropped_queue_full: u64,
    /// Longer than the MTU.
    pub dropped_mtu: u64,
    /// Dropped by [`Link::drop_next`].
    pub dropped_targeted: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Held back to be reordered.
    pub reordered: u64,
    /// Datagrams handed out by [`Link::pop_ready`].
    pub delivered: u64,
    /// Bytes handed out.
    pub bytes_delivered: u64,
}

impl LinkStats {
    /// All datagrams dropped, whatever the cause.
    pub const fn dropped(&self) -> u64 {
        self.dropped_random
            + self.dropped_burst
            + self.dropped_queue_full
            + self.dropped_mtu
            + self.dropped_targeted
    }
}

#[derive(Debug)]
struct InTransit {
    due: SimTime,
    id: u64,
    data: Bytes,
}

impl PartialEq for InTransit {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.id) == (other.due, other.id)
    }
}
impl Eq for InTransit {}
impl PartialOrd for InTransit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InTransit {
    /// By due time, ties broken by push order, so equal times come out fixed.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.id).cmp(&(other.due, other.id))
    }
}

/// One direction of a simulated path: seeded, deterministic, on a virtual clock in
/// milliseconds ([`SimTime`]). Push datagrams in, pop them out when due.
///
/// ```
/// use kcp_core::sim::{Link, LinkConfig};
/// let mut link = Link::new(LinkConfig { delay_ms: 20, ..LinkConfig::default() }, 7);
/// link.push(100, b"hello");
/// assert_eq!(link.next_arrival(), Some(120));
/// assert!(link.pop_ready(119).is_none());
/// assert_eq!(link.pop_ready(120).as_deref(), Some(&b"hello"[..]));
/// ```
#[derive(Debug)]
pub struct Link {
    config: LinkConfig,
    rng: SimRng,
    loss: LossState,
    scheduled: BinaryHeap<Reverse<InTransit>>,
    fifo: Ring<InTransit>,
    next_id: u64,
    /// When the bottleneck finishes sending what it holds.
    busy_until: SimTime,
    /// `(departure time, bytes)` of datagrams waiting for the bottleneck.
    backlog: VecDeque<(SimTime, usize)>,
    backlog_bytes: usize,
    targeted_drops: usize,
    stats: LinkStats,
    /// Datagrams in transit are copied into its blocks.
    arena: Arena,
}

impl Link {
    /// A link with `config`, its randomness seeded by `seed` (xoshiro256++: the same
    /// on every machine, whatever the dependencies' versions).
    pub fn new(config: LinkConfig, seed: u64) -> Self {
        Self {
            loss: LossState::new(config.loss.clone()),
            config,
            rng: SimRng::seed_from_u64(seed),
            scheduled: BinaryHeap::new(),
            fifo: Ring::new(),
            next_id: 0,
            busy_until: 0,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            targeted_drops: 0,
            stats: LinkStats::default(),
            arena: Arena::default(),
        }
    }

    /// The link's settings.
    pub const fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Counters so far.
    pub const fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Datagrams in transit.
    pub fn in_transit(&self) -> usize {
        self.scheduled.len() + self.fifo.len()
    }

    /// Drops the next `n` datagrams pushed, whatever the loss model says (for scenario
    /// tests: "lose exactly this one").
    pub fn drop_next(&mut self, n: usize) {
        self.targeted_drops += n;
    }

    /// Offers a datagram at time `now`. It may be dropped, delayed, duplicated or
    /// reordered according to the configuration.
    pub fn push(&mut self, now: SimTime, datagram: &[u8]) {
        if let Some(departure) = self.admit(now, datagram.len()) {
            let data = self.arena.copy_in(datagram);
            self.send(departure, data);
        }
    }

    /// A [`Transmit`] destination that builds datagrams straight in the link's memory
    /// and offers each, at time `now`, as [`push`](Self::push) would: the same fates
    /// from the same seed, without copying the datagram in.
    ///
    /// ```
    /// use kcp_core::sim::{Link, LinkConfig};
    /// use kcp_core::{Config, Kcp, Timestamp};
    ///
    /// let mut link = Link::new(LinkConfig::default(), 1);
    /// let mut kcp = Kcp::new(7, Config::fast()).unwrap();
    /// kcp.send(b"hi").unwrap();
    /// kcp.flush_into(Timestamp::from_millis(0), &mut link.transmit(0)).unwrap();
    /// assert_eq!(link.pop_ready(0).map(|d| d.len()), Some(24 + 2));
    /// ```
    pub const fn transmit(&mut self, now: SimTime) -> LinkTransmit<'_> {
        LinkTransmit { link: self, now }
    }

    /// Decides the fate of a datagram of `len` bytes offered at `now`: its departure
    /// time from the bottleneck, or `None` if it is dropped (counted).
    #[inline]
    fn admit(&mut self, now: SimTime, len: usize) -> Option<SimTime> {
        self.stats.offered += 1;
        self.stats.bytes_offered += len as u64;
        if len > self.config.mtu {
            self.stats.dropped_mtu += 1;
            return None;
        }
        if self.targeted_drops > 0 {
            self.targeted_drops -= 1;
            self.stats.dropped_targeted += 1;
            return None;
        }
        match self.loss.draw(&mut self.rng) {
            Some(LossKind::Random) => {
                self.stats.dropped_random += 1;
                return None;
            }
            Some(LossKind::Burst) => {
                self.stats.dropped_burst += 1;
                return None;
            }
            None => {}
        }
        if self.in_transit() >= self.config.max_in_transit {
            self.stats.dropped_queue_full += 1;
            return None;
        }
        let Some(departure) = self.through_bottleneck(now, len) else {
            self.stats.dropped_queue_full += 1;
            return None;
        };
        Some(departure)
    }

    /// Puts an admitted datagram in transit: once, or twice if duplicated, each copy
    /// with its own delay.
    #[inline(always)]
    fn send(&mut self, departure: SimTime, data: Bytes) {
        let copies = if chance(&mut self.rng, self.config.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        let mut data = Some(data);
        for copy in 1..=copies {
            let mut due = departure + self.config.delay_ms + self.jitter();
            if self.config.delivery == Delivery::Scheduled
                && chance(&mut self.rng, self.config.reorder)
            {
                self.stats.reordered += 1;
                due += self.config.reorder_ms;
            }
            // The last copy takes the buffer itself.
            let this = if copy == copies {
                data.take()
            } else {
                data.clone()
            };
            if let Some(this) = this {
                self.enqueue(due, this);
            }
        }
    }

    fn jitter(&mut self) -> SimTime {
        match self.config.jitter_ms {
            0 => 0,
            j => self.rng.next_u64() % (j + 1),
        }
    }

    /// Passes a datagram through the rate limiter: its departure time, or `None` if the
    /// bottleneck queue is full.
    fn through_bottleneck(&mut self, now: SimTime, len: usize) -> Option<SimTime> {
        let Some(rate) = self.config.rate_bytes_per_sec.filter(|&r| r > 0) else {
            return Some(now);
        };
        while self.backlog.front().is_some_and(|&(done, _)| done <= now) {
            if let Some((_, bytes)) = self.backlog.pop_front() {
                self.backlog_bytes -= bytes;
            }
        }
        if self.backlog_bytes + len > self.config.queue_bytes {
            return None;
        }
        let start = self.busy_until.max(now);
        let serialisation = (len as u64 * 1000).div_ceil(rate);
        self.busy_until = start + serialisation;
        self.backlog.push_back((self.busy_until, len));
        self.backlog_bytes += len;
        Some(self.busy_until)
    }

    #[inline]
    fn enqueue(&mut self, due: SimTime, data: Bytes) {
        let item = InTransit {
            due,
            id: self.next_id,
            data,
        };
        self.next_id += 1;
        match self.config.delivery {
            Delivery::Scheduled => self.scheduled.push(Reverse(item)),
            Delivery::Fifo => self.fifo.push_back(item),
        }
    }

    /// When the next datagram becomes deliverable, if any is in transit. (FIFO: the
    /// head's due time, even if a later one is due earlier.)
    pub fn next_arrival(&self) -> Option<SimTime> {
        match self.config.delivery {
            Delivery::Scheduled => self.scheduled.peek().map(|Reverse(i)| i.due),
            Delivery::Fifo => self.fifo.front().map(|i| i.due),
        }
    }

    /// The next datagram due at or before `now`, if any.
    ///
    /// Always inlined (FIFO delivery): the datagram then reaches the caller in
    /// registers, not written to memory and read back at once with wider loads,
    /// which stall until the writes reach the cache.
    #[inline(always)]
    pub fn pop_ready(&mut self, now: SimTime) -> Option<Bytes> {
        let item = match self.config.delivery {
            Delivery::Scheduled => self.pop_scheduled(now)?,
            Delivery::Fifo => {
                if self.fifo.front()?.due > now {
                    return None;
                }
                self.fifo.pop_front()?
            }
        };
        self.stats.delivered += 1;
        self.stats.bytes_delivered += item.data.len() as u64;
        Some(item.data)
    }

    /// The earliest scheduled datagram if it is due at `now`.
    fn pop_scheduled(&mut self, now: SimTime) -> Option<InTransit> {
        if self.scheduled.peek()?.0.due > now {
            return None;
        }
        self.scheduled.pop().map(|Reverse(item)| item)
    }
}

/// Builds datagrams in a [`Link`]'s memory for
/// [`Kcp::flush_into`](crate::Kcp::flush_into); made by [`Link::transmit`].
#[derive(Debug)]
pub struct LinkTransmit<'a> {
    link: &'a mut Link,
    now: SimTime,
}

impl Transmit for LinkTransmit<'_> {
    type Error = Infallible;
    type Buf = BytesMut;

    fn buffer(&mut self, room: usize) -> &mut BytesMut {
        self.link.arena.buffer(room)
    }

    fn commit(&mut self, len: usize) -> Result<(), Infallible> {
        match self.link.admit(self.now, len) {
            Some(departure) => {
                let data = self.link.arena.take(len);
                self.link.send(departure, data);
            }
            None => self.link.arena.discard(len),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn drain(link: &mut Link, until: SimTime) -> Vec<(SimTime, Bytes)> {
        let mut out = Vec::new();
        for t in 0..=until {
            while let Some(d) = link.pop_ready(t) {
                out.push((t, d));
            }
        }
        out
    }

    #[test]
    fn transmit_gives_datagrams_the_fates_push_gives_them() {
        use bytes::BufMut;
        let config = LinkConfig {
            loss: LossModel::Random { rate: 0.3 },
            delay_ms: 5,
            jitter_ms: 9,
            reorder: 0.2,
            reorder_ms: 7,
            duplicate: 0.2,
            ..LinkConfig::default()
        };
        let (mut pushed, mut written) = (Link::new(config.clone(), 9), Link::new(config, 9));
        for i in 0..400u32 {
            let datagram: Vec<u8> = (0..(i % 1500) as usize)
                .map(|b| (b as u32 ^ i) as u8)
                .collect();
            let now = u64::from(i / 4);
            pushed.push(now, &datagram);
            let mut tx = written.transmit(now);
            tx.buffer(datagram.len()).put_slice(&datagram);
            let Ok(()) = tx.commit(datagram.len());
        }
        assert_eq!(drain(&mut pushed, 200), drain(&mut written, 200));
        assert_eq!(pushed.stats(), written.stats());
        assert!(pushed.stats().dropped_random > 50 && pushed.stats().duplicated > 30);
    }

    #[test]
    fn fifo_holds_later_datagrams_behind_a_slow_head() {
        let config = LinkConfig {
            delay_ms: 30,
            jitter_ms: 31,
            delivery: Delivery::Fifo,
            ..LinkConfig::default()
        };
        let mut link = Link::new(config, 5);
        for i in 0..50u8 {
            link.push(u64::from(i), &[i]);
        }
        let out = drain(&mut link, 200);
        let order: Vec<u8> = out.iter().map(|(_, d)| d[0]).collect();
        assert_eq!(order, (0..50).collect::<Vec<_>>());
        assert!(out.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(out.iter().all(|(t, d)| *t >= u64::from(d[0]) + 30));
    }

    #[test]
    fn jitter_and_reorder_let_datagrams_overtake() {
        let config = LinkConfig {
            delay_ms: 10,
            jitter_ms: 5,
            reorder: 0.2,
            reorder_ms: 40,
            ..LinkConfig::default()
        };
        let mut link = Link::new(config, 6);
        for i in 0..100u8 {
            link.push(u64::from(i), &[i]);
        }
        let order: Vec<u8> = drain(&mut link, 400).iter().map(|(_, d)| d[0]).collect();
        assert_eq!(order.len(), 100);
        assert!(
            order.windows(2).any(|w| w[0] > w[1]),
            "something was reordered"
        );
        assert!(link.stats().reordered > 0);
    }

    #[test]
    fn rate_limit_spaces_datagrams_and_tail_drops() {
        let config = LinkConfig {
            rate_bytes_per_sec: Some(100_000), // 1000-byte datagram = 10 ms
            queue_bytes: 5_000,
            ..LinkConfig::default()
        };
        let mut link = Link::new(config, 1);
        for _ in 0..10 {
            link.push(0, &[0; 1000]);
        }
        assert_eq!(link.stats().dropped_queue_full, 5);
        let times: Vec<SimTime> = drain(&mut link, 100).iter().map(|(t, _)| *t).collect();
        assert_eq!(times, [10, 20, 30, 40, 50]);
        // Once the queue has drained, the link accepts again.
        link.push(60, &[0; 1000]);
        assert_eq!(link.next_arrival(), Some(70));
    }

    #[test]
    fn mtu_duplicates_and_targeted_drops() {
        let config = LinkConfig {
            mtu: 100,
            duplicate: 1.0,
            ..LinkConfig::default()
        };
        let mut link = Link::new(config, 2);
        link.push(0, &[0; 101]);
        link.drop_next(1);
        link.push(0, b"gone");
        link.push(0, b"twice");
        let out = drain(&mut link, 1);
        assert_eq!(out.len(), 2);
        let s = link.stats();
        assert_eq!(
            (
                s.dropped_mtu,
                s.dropped_targeted,
                s.duplicated,
                s.delivered,
                s.dropped()
            ),
            (1, 1, 1, 2, 2)
        );
    }

    #[test]
    fn same_seed_same_trace() {
        let trace = |seed| {
            let mut link = Link::new(LinkConfig::lossy(0.3, 5, 20), seed);
            for i in 0..200u8 {
                link.push(u64::from(i), &[i]);
            }
            drain(&mut link, 500)
        };
        assert_eq!(trace(11), trace(11));
        assert_ne!(trace(11), trace(12));
    }
}
