//! A UDP socket that several bench clients of one worker share: one `recvmmsg` reads
//! datagrams for all of them, each routed to its client by the key the server puts
//! at its head, and one `sendmmsg` per turn carries what they all have to send.
//!
//! The key is the receiver index in the secure mode (the server routes our
//! datagrams by its own index, so the sessions stay distinct whatever the address)
//! and the conv in raw KCP (the server routes by address and conv: distinct convs on
//! one address are distinct sessions).
//!
//! The lanes send with `IoBackend::Batched`, never GSO: a GSO run to the server
//! would reach it as one coalesced datagram of many sessions, which clients on
//! hosts of their own never send.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use kcp_net::udp::{
    BATCH, DatagramIo, IoBackend, RecvBatch, SendBatch, SendOutcome, datagram_io, send_all,
};
use mio::net::UdpSocket;

/// Most receive calls one turn makes on one lane before the worker runs its timers
/// (the socket is read again on the next turn, which then does not wait).
const MAX_BATCHES_PER_TURN: usize = 8;

/// The longest datagram a lane accepts (the server's MTU is at most this).
const MAX_DATAGRAM: usize = 1500;

/// One shared socket and the clients on it.
#[derive(Debug)]
pub(crate) struct Lane {
    socket: UdpSocket,
    io: Box<dyn DatagramIo>,
    recv: RecvBatch,
    /// What the lane's clients wrote this turn.
    pub(crate) out: SendBatch,
    /// Key (receiver index or conv) to the worker's client number.
    routes: HashMap<u32, usize>,
    /// The socket may hold datagrams the last turn left (readiness is edge-triggered).
    pub(crate) readable: bool,
    /// Datagrams received that no client of the lane claims.
    pub(crate) unrouted: u64,
    /// Outgoing datagrams a full socket buffer (or the OS) refused.
    pub(crate) send_drops: u64,
    /// Receive and send syscalls made.
    pub(crate) syscalls: u64,
}

impl Lane {
    /// A socket for talking to `server` (bound to the unspecified address of its family,
    /// any port), with `buffer` bytes of socket buffer each way as far as the system
    /// allows.
    pub(crate) fn bind(server: SocketAddr, buffer: usize) -> io::Result<Self> {
        let ip = match server.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let socket = bind_udp(SocketAddr::new(ip, 0), buffer, false)?;
        let io = datagram_io(IoBackend::Batched, &socket);
        let recv = RecvBatch::for_io(io.as_ref(), MAX_DATAGRAM, BATCH);
        Ok(Self {
            socket,
            io,
            recv,
            out: SendBatch::default(),
            routes: HashMap::new(),
            readable: true,
            unrouted: 0,
            send_drops: 0,
            syscalls: 0,
        })
    }

    /// The socket, to register with the worker's poll.
    pub(crate) const fn socket_mut(&mut self) -> &mut UdpSocket {
        &mut self.socket
    }

    /// Whether `key` is free on this lane.
    pub(crate) fn is_free(&self, key: u32) -> bool {
        !self.routes.contains_key(&key)
    }

    /// Routes datagrams naming `key` to `client` from now on (replacing `old`, if the
    /// client had another key).
    pub(crate) fn route(&mut self, key: u32, client: usize, old: Option<u32>) {
        if let Some(old) = old {
            self.routes.remove(&old);
        }
        self.routes.insert(key, client);
    }

    /// Reads what the socket holds (up to [`MAX_BATCHES_PER_TURN`] receive calls) and
    /// hands each datagram that `key_of` names a client of the lane to `deliver`.
    pub(crate) fn receive(
        &mut self,
        key_of: impl Fn(&[u8]) -> Option<u32>,
        mut deliver: impl FnMut(usize, &[u8]),
    ) {
        for _ in 0..MAX_BATCHES_PER_TURN {
            self.syscalls += 1;
            let n = match self.io.recv(&self.socket, &mut self.recv) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock (drained), or an ICMP error of an earlier send: the
                // engines' timers deal with whatever was lost.
                Err(_) => {
                    self.readable = false;
                    return;
                }
            };
            for i in 0..n {
                let (meta, datagram) = self.recv.get(i);
                let client = key_of(datagram).and_then(|key| self.routes.get(&key));
                match client {
                    Some(&client) if !meta.truncated => deliver(client, datagram),
                    _ => self.unrouted += 1,
                }
            }
            if !self.recv.may_hold_more() {
                // Emptied: the next datagram raises a new edge.
                self.readable = false;
                return;
            }
        }
    }

    /// Sends what the lane's clients wrote this turn (a full socket buffer drops the
    /// rest, which the engines retransmit).
    pub(crate) fn flush(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let SendOutcome {
            syscalls,
            dropped_full,
            errors,
            ..
        } = send_all(self.io.as_mut(), &self.socket, &mut self.out);
        self.syscalls += syscalls;
        self.send_drops += dropped_full + errors;
    }
}

/// A non-blocking UDP socket bound to `addr` with `buffer` bytes each way (as far as
/// the system allows), ready for `mio`, made by kcp-net's own binder; with
/// `reuse_port`, others may bind the same port (`SO_REUSEPORT`, Unix).
pub(crate) fn bind_udp(addr: SocketAddr, buffer: usize, reuse_port: bool) -> io::Result<UdpSocket> {
    let options = kcp_net::udp::SocketOptions {
        reuse_port,
        recv_buffer: buffer,
        send_buffer: buffer,
    };
    kcp_net::udp::bind(addr, options).map_err(io::Error::other)
}
