//! The impaired-socket mode: `kcp_core::sim::Link` applied to real outgoing datagrams.
//!
//! Every datagram a loop or client would send goes through a seeded [`Link`] first,
//! which may drop, delay, duplicate or reorder it; the loop sends it to the socket when
//! the link releases it and wakes up for the link's next release. The link only carries
//! bytes, so each datagram travels with its destination address as a small tag in
//! front.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use kcp_core::sim::{Link, LinkStats, SimTime};

pub use kcp_core::sim::{Delivery, LinkConfig, LossModel};

use crate::udp::SendBatch;

/// Settings of the impaired-socket mode (feature `impair`): the link model applied to
/// every datagram sent, and its seed.
///
/// Loss on both directions of a conversation needs both ends impaired (a server and
/// its clients each impair what they send).
///
/// ```
/// use kcp_net::impair::{ImpairConfig, LinkConfig};
/// let impair = ImpairConfig::new(LinkConfig::lossy(0.2, 5, 5), 42);
/// assert_eq!(impair.seed, 42);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ImpairConfig {
    /// Loss, delay, jitter, duplication, reordering, rate and MTU of the link. Its
    /// `mtu` applies to the datagram itself, not counting the internal address tag.
    pub link: LinkConfig,
    /// Seed of the link's random choices.
    pub seed: u64,
}

impl ImpairConfig {
    /// Impairs with `link`, seeded by `seed`.
    pub const fn new(link: LinkConfig, seed: u64) -> Self {
        Self { link, seed }
    }
}

/// Length of the address tag: family, port, 16 address bytes, IPv6 scope id.
const TAG_LEN: usize = 1 + 2 + 16 + 4;

/// A [`Link`] with destination tagging. `SimTime` is milliseconds of the owner's clock.
#[derive(Debug)]
pub(crate) struct Impairment {
    link: Link,
    scratch: Vec<u8>,
}

impl Impairment {
    pub(crate) fn new(config: &ImpairConfig) -> Self {
        let mut link = config.link.clone();
        link.mtu = link.mtu.saturating_add(TAG_LEN);
        Self {
            link: Link::new(link, config.seed),
            scratch: Vec::with_capacity(2048),
        }
    }

    /// Offers a datagram for `addr` to the link at `now`.
    pub(crate) fn push(&mut self, now: SimTime, addr: SocketAddr, datagram: &[u8]) {
        self.scratch.clear();
        encode(addr, &mut self.scratch);
        self.scratch.extend_from_slice(datagram);
        self.link.push(now, &self.scratch);
    }

    /// Moves every datagram the link releases by `now` into `batch`.
    pub(crate) fn release(&mut self, now: SimTime, batch: &mut SendBatch) {
        while let Some(tagged) = self.link.pop_ready(now) {
            let (addr, datagram) = decode(&tagged);
            batch.push(addr, datagram);
        }
    }

    /// When the link next releases a datagram.
    pub(crate) fn next_release(&self) -> Option<SimTime> {
        self.link.next_arrival()
    }

    /// The link's counters.
    pub(crate) fn stats(&self) -> LinkStats {
        self.link.stats()
    }
}

fn encode(addr: SocketAddr, out: &mut Vec<u8>) {
    let (family, octets, scope) = match addr {
        SocketAddr::V4(a) => (4u8, a.ip().to_ipv6_mapped().octets(), 0),
        SocketAddr::V6(a) => (6u8, a.ip().octets(), a.scope_id()),
    };
    out.push(family);
    out.extend_from_slice(&addr.port().to_le_bytes());
    out.extend_from_slice(&octets);
    out.extend_from_slice(&scope.to_le_bytes());
}

fn decode(tagged: &[u8]) -> (SocketAddr, &[u8]) {
    let port = u16::from_le_bytes([tagged[1], tagged[2]]);
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&tagged[3..19]);
    let v6 = Ipv6Addr::from(octets);
    let addr = if tagged[0] == 4 {
        let v4 = v6.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED);
        SocketAddr::new(IpAddr::V4(v4), port)
    } else {
        let scope = u32::from_le_bytes([tagged[19], tagged[20], tagged[21], tagged[22]]);
        SocketAddr::V6(SocketAddrV6::new(v6, port, 0, scope))
    };
    (addr, &tagged[TAG_LEN..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_both_families() {
        for addr in ["127.0.0.1:9000", "[::1]:7", "[fe80::1%3]:65535"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let mut buf = Vec::new();
            encode(addr, &mut buf);
            assert_eq!(buf.len(), TAG_LEN);
            buf.extend_from_slice(b"payload");
            assert_eq!(decode(&buf), (addr, &b"payload"[..]));
        }
    }

    #[test]
    fn delays_and_drops_on_the_seeded_schedule() {
        let config = ImpairConfig::new(
            LinkConfig {
                delay_ms: 10,
                ..LinkConfig::default()
            },
            1,
        );
        let mut imp = Impairment::new(&config);
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        imp.push(100, peer, &[7; 1400]);
        assert_eq!(imp.next_release(), Some(110));
        let mut batch = SendBatch::default();
        imp.release(109, &mut batch);
        assert!(batch.is_empty());
        imp.release(110, &mut batch);
        assert_eq!(batch.get(0), (peer, &[7u8; 1400][..]));
        assert_eq!(imp.stats().delivered, 1);
    }
}
