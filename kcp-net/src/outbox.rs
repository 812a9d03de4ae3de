//! Where engines put their datagrams during a loop turn: straight into the send batch,
//! or through the impaired-socket link first.

use std::net::SocketAddr;
use std::time::Instant;

use mio::net::UdpSocket;

use crate::clock::Clock;
#[cfg(feature = "impair")]
use crate::impair::{ImpairConfig, Impairment};
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

    /// Queues a datagram for `addr`.
    pub(crate) fn push(&mut self, addr: SocketAddr, datagram: &[u8]) {
        #[cfg(feature = "impair")]
        if let Some(impair) = &mut self.impair {
            impair.push(self.clock.sim_millis(self.now), addr, datagram);
            return;
        }
        self.batch.push(addr, datagram);
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
