//! The `dispatch` target: datagrams from a few peers into a server driver, raw KCP
//! and secure, as the socket would deliver them.

use std::net::{SocketAddr, UdpSocket};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::Script;
use crate::secure::{CookiePolicy, ServerIdentity, ServerSecurity};
use crate::{IoBackend, Preset, ServerConfig, ServerDriver};

/// The peers the datagrams come from: sockets bound once and never read, so replies
/// to them cost a send and no ICMP error (the kernel drops what their full buffers
/// cannot take).
fn peers() -> &'static [SocketAddr; 4] {
    static PEERS: OnceLock<(Vec<UdpSocket>, [SocketAddr; 4])> = OnceLock::new();
    &PEERS
        .get_or_init(|| {
            let sockets: Vec<UdpSocket> = (0..4)
                .map(|_| UdpSocket::bind("127.0.0.1:0").expect("a loopback socket"))
                .collect();
            let addrs = std::array::from_fn(|i| sockets[i].local_addr().expect("bound"));
            (sockets, addrs)
        })
        .1
}

fn identity() -> ServerIdentity {
    static IDENTITY: OnceLock<ServerIdentity> = OnceLock::new();
    IDENTITY
        .get_or_init(|| ServerIdentity::from_private([0x24; 32]))
        .clone()
}

/// Runs one case on a new driver (bound to a loopback port). The first byte picks
/// raw KCP or the secure mode (bit 0), for the secure mode whether cookies are always
/// asked (bit 1), and whether the memory budget is spent from the first held segment
/// (bit 2: `max_buffered_bytes` of 1, so data beyond the in-order run is left out of
/// the datagrams that carry it); then each datagram is
/// a peer byte (which of four peers, and ticks of 10 ms to pass before it, bits
/// 2-4), a length byte and that many bytes. The driver ticks after each datagram.
///
/// # Panics
/// If an invariant breaks: the sessions open are those opened and not closed, never
/// more than `max_sessions`; every datagram taken is counted.
pub fn dispatch(data: &[u8]) {
    let mut script = Script(data);
    let mode = script.byte();
    let mut config = ServerConfig::new(Preset::Fast);
    config.max_sessions = 3;
    config.max_unconfirmed_sessions = 2;
    // One datagram per call, no GRO: small receive slots (GRO's 1 MiB would be most
    // of the cost of a case).
    config.io = IoBackend::Portable;
    if mode & 4 != 0 {
        config.max_buffered_bytes = 1;
    }
    if mode & 1 != 0 {
        let mut security = ServerSecurity::new(identity());
        if mode & 2 != 0 {
            security.cookies = CookiePolicy::Always;
        }
        config.secure = Some(security);
    }
    let start = Instant::now();
    let Ok(mut driver) =
        ServerDriver::bind_at(SocketAddr::from(([127, 0, 0, 1], 0)), config, start)
    else {
        return; // no socket: nothing to fuzz
    };
    let mut now = start;
    let mut taken = 0u64;
    while !script.is_done() {
        let peer = script.byte();
        let len = usize::from(script.byte());
        let datagram = script.bytes(len);
        now += Duration::from_millis(10 * u64::from(peer >> 2 & 7));
        let from = peers()[usize::from(peer & 3)];
        driver.inject(now, from, datagram);
        taken += 1;
        while driver.next_event().is_some() {}
        driver.tick(now);
        while driver.next_event().is_some() {}
        let stats = driver.stats();
        let closed = stats.closed_idle
            + stats.closed_dead_link
            + stats.closed_local
            + stats.closed_shutdown
            + stats.closed_handler_panicked
            + stats.closed_unconfirmed
            + stats.evicted_unconfirmed
            + stats.closed_by_peer;
        assert_eq!(
            stats.sessions_opened,
            closed + driver.session_count() as u64,
            "sessions lost track of: {stats:?}"
        );
        assert!(driver.session_count() <= 3, "past max_sessions");
        assert_eq!(stats.datagrams_in, taken);
    }
}
