//! Where engines put their datagrams during a loop turn: straight into the send batch,
//! or through the impaired-socket link first.

#[cfg(feature = "impair")]
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Instant;

use kcp_core::{Kcp, Timestamp};
use mio::net::UdpSocket;

use crate::clock::Clock;
#[cfg(feature = "impair")]
use crate::impair::{ImpairConfig, Impairment};
use crate::stats::SessionCounters;
use crate::udp::{DatagramIo, SendBatch, SendOutcome, send_all};

/// Outgoing datagrams of one loop or client.
#[derive(Debug)]
pub(crate) struct Outbox {
    batch: SendBatch,
    clock: Clock,
    /// The time datagrams are stamped with for the link (set once per turn).
    now: Instant,
    #[cfg(feature = "impair")]
    impair: Option<Impairment>,
}

impl Outbox {
    pub(crate) fn new(clock: Clock, now: Instant) -> Self {
        Self {
            batch: SendBatch::default(),
            clock,
            now,
            #[cfg(feature = "impair")]
            impair: None,
        }
    }

    /// Routes every datagram through a link with `config`.
    #[cfg(feature = "impair")]
    pub(crate) fn impaired(mut self, config: Option<&ImpairConfig>) -> Self {
        self.impair = config.map(Impairment::new);
        self
    }

    /// Sets the time of the datagrams pushed next.
    pub(crate) fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    /// Runs `kcp`'s timer at `ts` (`update`), or flushes it at once if `flush`, and
    /// queues the datagrams it emits for `addr`, counting them in `counters`
    /// (`datagrams_out`, `bytes_out`). Returns whether it emitted any.
    ///
    /// Without impairment the engine writes each datagram straight into the send
    /// batch ([`Kcp::flush_into`]); through the impaired link it hands them over from
    /// its own buffer and the link copies them.
    pub(crate) fn drive(
        &mut self,
        kcp: &mut Kcp,
        addr: SocketAddr,
        ts: Timestamp,
        flush: bool,
        counters: &mut SessionCounters,
    ) -> bool {
        let before = kcp.stats();
        self.emit(kcp, addr, ts, flush);
        let after = kcp.stats();
        // Every datagram is accepted (neither destination can fail), so the engine's
        // own counts are exactly what was queued.
        counters.datagrams_out += after.datagrams_out - before.datagrams_out;
        counters.bytes_out += after.bytes_out - before.bytes_out;
        after.datagrams_out > before.datagrams_out
    }

    fn emit(&mut self, kcp: &mut Kcp, addr: SocketAddr, ts: Timestamp, flush: bool) {
        #[cfg(feature = "impair")]
        if let Some(impair) = &mut self.impair {
            let now = self.clock.sim_millis(self.now);
            let out = |d: &[u8]| {
                impair.push(now, addr, d);
                Ok::<(), Infallible>(())
            };
            let Ok(()) = if flush {
                kcp.flush(ts, out)
            } else {
                kcp.update(ts, out)
            };
            return;
        }
        let out = &mut self.batch.to(addr);
        let Ok(()) = if flush {
            kcp.flush_into(ts, out)
        } else {
            kcp.update_into(ts, out)
        };
    }

    /// When the link next releases a datagram (`None` without impairment).
    pub(crate) fn next_release(&self) -> Option<Instant> {
        #[cfg(feature = "impair")]
        if let Some(impair) = &self.impair {
            return impair
                .next_release()
                .map(|ms| self.clock.instant_of_sim(ms));
        }
        None
    }

    /// Datagrams the link dropped so far.
    pub(crate) fn impaired_drops(&self) -> u64 {
        #[cfg(feature = "impair")]
        if let Some(impair) = &self.impair {
            return impair.stats().dropped();
        }
        0
    }

    /// Sends everything due by `now`.
    pub(crate) fn send(
        &mut self,
        now: Instant,
        io: &mut dyn DatagramIo,
        socket: &UdpSocket,
    ) -> SendOutcome {
        #[cfg(feature = "impair")]
        if let Some(impair) = &mut self.impair {
            impair.release(self.clock.sim_millis(now), &mut self.batch);
        }
        let _ = now;
        if self.batch.is_empty() {
            return SendOutcome::default();
        }
        send_all(io, socket, &mut self.batch)
    }
}

#[cfg(test)]
mod tests {
    use kcp_core::Config;

    use super::*;

    const PEER: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9);

    /// An outbox and an engine whose update grid has started at `ts(0)`, with nothing
    /// sent or counted yet.
    fn started(outbox: Outbox) -> (Outbox, Kcp, SessionCounters) {
        let (mut outbox, mut kcp) = (outbox, Kcp::new(7, Config::fast()).unwrap());
        let mut counters = SessionCounters::default();
        assert!(!outbox.drive(&mut kcp, PEER, ts(0), false, &mut counters));
        assert_eq!(counters, SessionCounters::default());
        (outbox, kcp, counters)
    }

    fn ts(ms: u32) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn batch_bytes(batch: &SendBatch) -> u64 {
        (0..batch.len()).map(|i| batch.get(i).1.len() as u64).sum()
    }

    #[test]
    fn drive_writes_into_the_batch_and_counts_what_it_queued() {
        let now = Instant::now();
        let (mut outbox, mut kcp, mut counters) = started(Outbox::new(Clock::new(now), now));

        kcp.send(&[5; 3000]).unwrap();
        assert!(outbox.drive(&mut kcp, PEER, ts(1), true, &mut counters));
        assert_eq!(outbox.batch.len(), 3);
        assert_eq!(counters.datagrams_out, 3);
        assert_eq!(counters.bytes_out, 3000 + 3 * 24);
        assert!((0..3).all(|i| outbox.batch.get(i).0 == PEER));

        // Not due on the update grid: nothing, and nothing counted.
        kcp.send(&[6; 100]).unwrap();
        assert!(!outbox.drive(&mut kcp, PEER, ts(2), false, &mut counters));
        assert_eq!(counters.datagrams_out, 3);
        // Due: the grid's next point sends the queued message.
        let interval = Config::fast().interval;
        assert!(outbox.drive(&mut kcp, PEER, ts(interval), false, &mut counters));
        assert_eq!(counters.datagrams_out, outbox.batch.len() as u64);
        assert_eq!(counters.bytes_out, batch_bytes(&outbox.batch));
        assert_eq!(outbox.batch.get(3).1.len(), 100 + 24);
        assert_eq!(kcp.stats().datagrams_out, counters.datagrams_out);
    }

    #[cfg(feature = "impair")]
    #[test]
    fn impaired_drive_goes_through_the_link_and_counts_the_same() {
        use kcp_core::sim::LinkConfig;

        let now = Instant::now();
        let impair = ImpairConfig::new(LinkConfig::default(), 1);
        let outbox = Outbox::new(Clock::new(now), now).impaired(Some(&impair));
        let (mut outbox, mut kcp, mut counters) = started(outbox);

        kcp.send(&[5; 3000]).unwrap();
        assert!(outbox.drive(&mut kcp, PEER, ts(1), true, &mut counters));
        assert!(outbox.batch.is_empty(), "held by the link until released");
        assert_eq!(counters.datagrams_out, 3);
        assert_eq!(counters.bytes_out, 3000 + 3 * 24);

        let link = outbox.impair.as_mut().unwrap();
        link.release(u64::MAX, &mut outbox.batch);
        assert_eq!(outbox.batch.len(), 3);
        assert_eq!(batch_bytes(&outbox.batch), counters.bytes_out);
        assert!((0..3).all(|i| outbox.batch.get(i).0 == PEER));
    }
}
