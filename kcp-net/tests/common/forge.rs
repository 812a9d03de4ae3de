//! Forging and sniffing UDP on loopback, for the tests that play an attacker: a
//! [`Forger`] sends datagrams from any 127.0.0.0/8 address through a raw socket, a
//! [`Sniffer`] sees every UDP datagram delivered on the host (an on-path view).
//! Both need root (or `CAP_NET_RAW`); without it the tests using them fail and say so.
#![allow(dead_code, unreachable_pub)]

use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::mpsc::Sender;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

pub const IPV4_HEADER: usize = 20;
pub const UDP_HEADER: usize = 8;

/// Creates a raw IPv4 socket for UDP, or fails the test saying why.
#[track_caller]
pub fn raw_udp_socket(purpose: &str) -> Socket {
    Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::UDP)).unwrap_or_else(|e| {
        panic!(
            "{purpose} needs a raw IPv4 socket (root or CAP_NET_RAW), and creating one failed: \
             {e}. These tests forge source addresses; they fail rather than skip."
        )
    })
}

pub fn is_loopback(addr: SocketAddrV4) -> bool {
    addr.ip().octets()[0] == 127
}

pub fn v4(addr: SocketAddr) -> SocketAddrV4 {
    match addr {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(a) => panic!("an IPv4 address expected, got {a}"),
    }
}

/// Sends UDP datagrams with any 127.0.0.0/8 source address and port: it builds the
/// IPv4 and UDP headers itself. The kernel fills in the IP checksum and id (left
/// zero); the UDP checksum is 0, "none", which IPv4 allows.
pub struct Forger {
    socket: Socket,
    packet: Vec<u8>,
}

impl Forger {
    #[track_caller]
    pub fn new() -> Self {
        let socket = raw_udp_socket("forging datagrams");
        socket
            .set_header_included_v4(true)
            .unwrap_or_else(|e| panic!("IP_HDRINCL refused on the raw socket: {e}"));
        // A raw UDP socket also receives a copy of every UDP datagram; this one is
        // never read, so keep its receive buffer small.
        let _ = socket.set_recv_buffer_size(4096);
        let _ = socket.set_send_buffer_size(4 << 20);
        Self {
            socket,
            packet: Vec::with_capacity(2048),
        }
    }

    /// Sends `payload` from `from` to `to`, both in 127.0.0.0/8. Returns whether the
    /// kernel took it (`false`: no buffer space, as a flood may meet).
    pub fn send(&mut self, from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) -> bool {
        assert!(
            is_loopback(from) && is_loopback(to),
            "only loopback addresses are ever forged: {from} -> {to}"
        );
        let udp_len = u16::try_from(UDP_HEADER + payload.len()).expect("a UDP datagram");
        let total =
            u16::try_from(IPV4_HEADER + UDP_HEADER + payload.len()).expect("an IPv4 packet");
        let p = &mut self.packet;
        p.clear();
        p.extend_from_slice(&[0x45, 0]); // version 4, 5 words of header; TOS 0
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0, 0]); // id: the kernel fills it in
        p.extend_from_slice(&[0x40, 0]); // don't fragment, offset 0
        p.extend_from_slice(&[64, 17]); // TTL, protocol UDP
        p.extend_from_slice(&[0, 0]); // header checksum: the kernel fills it in
        p.extend_from_slice(&from.ip().octets());
        p.extend_from_slice(&to.ip().octets());
        p.extend_from_slice(&from.port().to_be_bytes());
        p.extend_from_slice(&to.port().to_be_bytes());
        p.extend_from_slice(&udp_len.to_be_bytes());
        p.extend_from_slice(&[0, 0]); // no UDP checksum
        p.extend_from_slice(payload);
        let dest = SockAddr::from(SocketAddrV4::new(*to.ip(), 0));
        loop {
            match self.socket.send_to(p, &dest) {
                Ok(n) => {
                    assert_eq!(n, p.len(), "a raw send is whole");
                    return true;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // ENOBUFS: the flood outran the loopback queue.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => return false,
                Err(e) => panic!("raw send {from} -> {to} failed: {e}"),
            }
        }
    }
}

/// Sees every UDP datagram delivered on this host (a raw socket gets a copy of each):
/// an on-path attacker's view.
pub struct Sniffer {
    socket: Socket,
    buf: Vec<u8>,
}

impl Sniffer {
    #[track_caller]
    pub fn new() -> Self {
        let socket = raw_udp_socket("sniffing datagrams");
        let _ = socket.set_recv_buffer_size(4 << 20);
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        Self {
            socket,
            buf: vec![0; 65_536],
        }
    }

    /// The payload of the next UDP datagram seen that `want(source, destination)`
    /// accepts, by `deadline`.
    pub fn next_matching(
        &mut self,
        deadline: Instant,
        mut want: impl FnMut(SocketAddrV4, SocketAddrV4) -> bool,
    ) -> Option<Vec<u8>> {
        while Instant::now() < deadline {
            let n = match (&self.socket).read(&mut self.buf) {
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => panic!("sniffing: {e}"),
            };
            let packet = &self.buf[..n];
            if n < IPV4_HEADER || packet[9] != 17 {
                continue;
            }
            let ihl = usize::from(packet[0] & 0x0f) * 4;
            if n < ihl + UDP_HEADER {
                continue;
            }
            let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
            let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
            let udp = &packet[ihl..];
            let sport = u16::from_be_bytes([udp[0], udp[1]]);
            let dport = u16::from_be_bytes([udp[2], udp[3]]);
            if want(SocketAddrV4::new(src, sport), SocketAddrV4::new(dst, dport)) {
                return Some(udp[UDP_HEADER..].to_vec());
            }
        }
        None
    }

    /// The payload of the next datagram from `from` to `to`, by `deadline`.
    pub fn next_between(
        &mut self,
        from: SocketAddrV4,
        to: SocketAddrV4,
        deadline: Instant,
    ) -> Option<Vec<u8>> {
        self.next_matching(deadline, |s, d| s == from && d == to)
    }
}

/// A small deterministic generator (xorshift64*): convs, ports and timestamps of the
/// forgeries.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn u32(&mut self) -> u32 {
        (self.next() >> 32) as u32
    }
}

/// Reads everything `socket` (nonblocking) receives until `until`; returns the bytes.
pub fn drain_until(socket: &UdpSocket, until: Instant) -> usize {
    let mut buf = [0u8; 2048];
    let mut received = 0;
    loop {
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => received += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if Instant::now() >= until {
                    return received;
                }
                thread::sleep(Duration::from_millis(2));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("reading a forged source's socket: {e}"),
        }
    }
}

/// A nonblocking UDP socket on `ip` (a port the OS picks): an address we forge from
/// and listen at.
pub fn listener(ip: Ipv4Addr) -> (UdpSocket, SocketAddrV4) {
    let socket = UdpSocket::bind((ip, 0)).unwrap();
    socket.set_nonblocking(true).unwrap();
    let addr = v4(socket.local_addr().unwrap());
    (socket, addr)
}

/// The tests measure times and run floods: one at a time, so they do not disturb
/// each other on a 2-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A flood of forged datagrams: `count` of them to `server`, each from a new address
/// in 127.`network`.0.0/16 except every `listened_every`th, which comes from one of
/// `listened` (addresses a test listens at, to see what the server sends back).
pub struct Flood<'a> {
    pub server: SocketAddrV4,
    pub count: usize,
    pub network: u8,
    pub listened: &'a [SocketAddrV4],
    pub listened_every: usize,
    /// Pause 1 ms after every this many datagrams (so the server's socket drains and
    /// the test is about what the server does, not about the kernel dropping them).
    pub pace_every: Option<usize>,
    pub seed: u64,
}

/// What a [`Flood`] sent.
#[derive(Debug, Default)]
pub struct Flooded {
    /// Datagrams and bytes the kernel took.
    pub datagrams: usize,
    pub bytes: usize,
    /// Refused by the kernel (no buffer space).
    pub refused: usize,
    /// Bytes sent from each listened address.
    pub from_listened: Vec<usize>,
    pub distinct_sources: usize,
}

impl Flood<'_> {
    /// Sends the flood, datagram `i` made by `datagram(i, rng)`; says on `progress`
    /// when a quarter is out.
    pub fn run(
        &self,
        progress: &Sender<()>,
        mut datagram: impl FnMut(usize, &mut Rng) -> Vec<u8>,
    ) -> Flooded {
        let mut forger = Forger::new();
        let mut rng = Rng(self.seed);
        let mut out = Flooded {
            from_listened: vec![0; self.listened.len()],
            ..Flooded::default()
        };
        let mut unlistened = 0usize;
        for i in 0..self.count {
            let datagram = datagram(i, &mut rng);
            let (from, listened_index) = if i % self.listened_every == 0 {
                let l = (i / self.listened_every) % self.listened.len();
                (self.listened[l], Some(l))
            } else {
                // .1.1 onwards, one address each, never .0 or .255.
                let ip = Ipv4Addr::new(
                    127,
                    self.network,
                    1 + (unlistened / 250) as u8,
                    1 + (unlistened % 250) as u8,
                );
                unlistened += 1;
                let port = 1024 + (rng.u32() % 60_000) as u16;
                (SocketAddrV4::new(ip, port), None)
            };
            if forger.send(from, self.server, &datagram) {
                out.datagrams += 1;
                out.bytes += datagram.len();
                if let Some(l) = listened_index {
                    out.from_listened[l] += datagram.len();
                }
            } else {
                out.refused += 1;
                thread::yield_now();
            }
            if i == self.count / 4 {
                let _ = progress.send(());
            }
            if self.pace_every.is_some_and(|n| i % n == n - 1) {
                thread::sleep(Duration::from_millis(1));
            }
        }
        out.distinct_sources = unlistened + self.listened.len();
        out
    }
}
