//! Where engines put their datagrams during a loop turn: straight into the send batch,
//! or through the impaired-socket link first.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Instant;

use kcp_core::Transmit;
use mio::net::UdpSocket;

use crate::clock::Clock;
#[cfg(feature = "impair")]
use crate::impair::{ImpairConfig, Impairment};
use crate::udp::{BatchTransmit, DatagramIo, SendBatch, SendOutcome, send_all};

/// Outgoing datagrams of one loop or client.
#[derive(Debug)]
pub(crate) struct Outbox {
    batch: SendBatch,
    /// Turns instants into the impaired link's milliseconds.
    #[cfg_attr(not(feature = "impair"), allow(dead_code))]
    clock: Clock,
    /// The time datagrams are stamped with for the link (set once per turn).
    now: Instant,
    #[cfg(feature = "impair")]
    impair: Option<Impairment>,
    /// Where the engine builds a datagram for the impaired link.
    #[cfg(feature = "impair")]
    scratch: Vec<u8>,
}

/// Where a conversation's datagrams for one address go (see [`Outbox::to`]).
#[derive(Debug)]
pub(crate) enum Sink<'a> {
    /// Written straight into the send batch.
    Batch(BatchTransmit<'a>),
    /// Built in `buf`, then offered to the link at `now`.
    #[cfg(feature = "impair")]
    Impaired {
        link: &'a mut Impairment,
        now: u64,
        addr: SocketAddr,
        buf: &'a mut Vec<u8>,
    },
}

impl Transmit for Sink<'_> {
    type Error = Infallible;
    type Buf = Vec<u8>;

    fn buffer(&mut self, room: usize) -> &mut Vec<u8> {
        match self {
            Self::Batch(batch) => batch.buffer(room),
            #[cfg(feature = "impair")]
            Self::Impaired { buf, .. } => buf,
        }
    }

    fn commit(&mut self, len: usize) -> Result<(), Infallible> {
        match self {
            Self::Batch(batch) => batch.commit(len),
            #[cfg(feature = "impair")]
            Self::Impaired {
                link,
                now,
                addr,
                buf,
            } => {
                link.push(*now, *addr, buf);
                buf.clear();
                Ok(())
            }
        }
    }
}

impl Outbox {
    pub(crate) fn new(clock: Clock, now: Instant) -> Self {
        Self {
            batch: SendBatch::default(),
            clock,
            now,
            #[cfg(feature = "impair")]
            impair: None,
            #[cfg(feature = "impair")]
            scratch: Vec::new(),
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

    /// The sink for datagrams to `addr`: straight into the send batch, or through
    /// the impaired link, which copies them.
    pub(crate) fn to(&mut self, addr: SocketAddr) -> Sink<'_> {
        #[cfg(feature = "impair")]
        if let Some(link) = &mut self.impair {
            return Sink::Impaired {
                link,
                now: self.clock.sim_millis(self.now),
                addr,
                buf: &mut self.scratch,
            };
        }
        Sink::Batch(self.batch.to(addr))
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
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::config::{ConversationConfig, Preset};
    use crate::conversation::Conversation;

    const PEER: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9);

    fn batch_bytes(batch: &SendBatch) -> u64 {
        (0..batch.len()).map(|i| batch.get(i).1.len() as u64).sum()
    }

    #[test]
    fn a_conversation_writes_into_the_batch_and_counts_what_it_queued() {
        let now = Instant::now();
        let mut outbox = Outbox::new(Clock::new(now), now);
        let mut config = ConversationConfig::new(Preset::Fast);
        config.flush_on_send = true;
        let mut conv = Conversation::new(7, config, now).unwrap();

        conv.send(now, Bytes::from(vec![5; 3000])).unwrap();
        let Ok(_) = conv.drive(now, &mut outbox.to(PEER));
        assert_eq!(outbox.batch.len(), 3);
        let counters = conv.counters();
        assert_eq!(counters.datagrams_out, 3);
        assert_eq!(counters.bytes_out, 3000 + 3 * 24);
        assert_eq!(batch_bytes(&outbox.batch), counters.bytes_out);
        assert!((0..3).all(|i| outbox.batch.get(i).0 == PEER));
    }

    #[cfg(feature = "impair")]
    #[test]
    fn an_impaired_sink_goes_through_the_link_and_counts_the_same() {
        use kcp_core::sim::LinkConfig;

        let now = Instant::now();
        let impair = ImpairConfig::new(LinkConfig::default(), 1);
        let mut outbox = Outbox::new(Clock::new(now), now).impaired(Some(&impair));
        let mut config = ConversationConfig::new(Preset::Fast);
        config.flush_on_send = true;
        let mut conv = Conversation::new(7, config, now).unwrap();

        conv.send(now, Bytes::from(vec![5; 3000])).unwrap();
        let Ok(_) = conv.drive(now + Duration::from_millis(1), &mut outbox.to(PEER));
        assert!(outbox.batch.is_empty(), "held by the link until released");
        assert_eq!(conv.counters().datagrams_out, 3);

        let link = outbox.impair.as_mut().unwrap();
        link.release(u64::MAX, &mut outbox.batch);
        assert_eq!(outbox.batch.len(), 3);
        assert_eq!(batch_bytes(&outbox.batch), conv.counters().bytes_out);
        assert!((0..3).all(|i| outbox.batch.get(i).0 == PEER));
    }
}
