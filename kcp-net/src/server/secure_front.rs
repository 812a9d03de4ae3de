//! The driver's secure front door: [`SecureFront`] (screening, handshakes, the index
//! table) on the driver's socket, plus what only a server of several loops does:
//! handing a sealed datagram to the loop that holds its session.

use std::net::SocketAddr;
use std::time::Instant;

use kcp_core::Transmit;

use crate::admission::Refusal;
use crate::outbox::Outbox;
use crate::secure::{Route, Screening, SecureFront, index_loop};
use crate::store::SessionKey;

use super::driver::ServerDriver;

impl ServerDriver {
    /// A datagram on a secure driver.
    pub(super) fn secure_datagram(
        &mut self,
        i: usize,
        now: Instant,
        accept: &mut dyn FnMut(SocketAddr, u32) -> bool,
    ) {
        let (meta, datagram) = self.recv.get(i);
        let Some(front) = &self.front else {
            return;
        };
        match front.route(datagram, &mut self.stats) {
            Route::Session(key) => self.deliver(i, key, now),
            Route::Unknown { index } => match index.and_then(|index| self.owner_of(index)) {
                Some(owner) => {
                    let copy = bytes::Bytes::copy_from_slice(datagram);
                    self.forward(owner, meta.addr, copy);
                }
                None => self.stats.dropped_unknown_index += 1,
            },
            Route::Initiation => self.initiation(i, meta.addr, now, accept),
            _ => {}
        }
    }

    /// The other loop of this server whose session `index` names, if any (see
    /// [`index_loop`]).
    fn owner_of(&self, index: u32) -> Option<usize> {
        let owner = usize::from(index_loop(index));
        (owner != usize::from(self.id) && owner < self.config.threads).then_some(owner)
    }

    /// Queues a sealed datagram for the loop that holds its session (a client that
    /// moved to an address the kernel hashes to this loop's socket), within the
    /// server-wide budget of datagrams in flight between loops; beyond it, dropped
    /// and counted.
    fn forward(&mut self, owner: usize, from: SocketAddr, datagram: bytes::Bytes) {
        if !self.shared.forwards.try_take() {
            self.stats.dropped_forward_full += 1;
            return;
        }
        self.stats.forwarded_out += 1;
        self.forwards.push((owner, from, datagram));
    }

    /// A sealed datagram another loop of this server received for a session of this
    /// one, taken as if this loop's socket had delivered it.
    pub(crate) fn forwarded(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.shared.forwards.give_back();
        self.stats.forwarded_in += 1;
        self.outbox.set_now(now);
        self.recv.load(from, datagram);
        let (meta, _) = self.recv.get(0);
        if meta.truncated {
            self.stats.dropped_truncated += 1;
        } else {
            // A transport datagram never opens a session: refuse any that would.
            self.datagram(0, now, &mut |_, _| false);
        }
    }

    /// Screens initiation `i` from `peer` and, if it is a valid handshake the limits
    /// and `accept` admit, opens its session. Every answer goes back to `peer`.
    fn initiation(
        &mut self,
        i: usize,
        peer: SocketAddr,
        now: Instant,
        accept: &mut dyn FnMut(SocketAddr, u32) -> bool,
    ) {
        let Some(front) = &mut self.front else {
            return;
        };
        let (_, msg) = self.recv.get(i);
        let screened = front.initiation(now, peer, msg, self.unconfirmed.len(), &mut self.stats);
        let offer = match screened {
            Screening::Offer(offer) => *offer,
            Screening::Reply(reply) => {
                send_reply(&mut self.outbox, peer, reply);
                return;
            }
            _ => return,
        };
        // The conv is sealed inside; the application's `accept` sees it once the
        // handshake decrypted.
        match self.admit(peer, offer.conv(), now, accept) {
            Ok(()) => {}
            Err(Some(Refusal::SessionLimit)) => {
                if let Some(front) = &mut self.front {
                    let reply = front.refuse_full(offer, &mut self.stats);
                    send_reply(&mut self.outbox, peer, reply);
                }
                return;
            }
            Err(_) => return,
        }
        let Some(front) = &mut self.front else {
            return;
        };
        let Ok((conversation, opened)) = front.accept(offer, self.conversation.clone(), now) else {
            self.shared.admission.release(peer.ip(), false);
            return;
        };
        let key = self.insert(peer, conversation, now);
        if let Some(front) = &mut self.front {
            let response = front.register(opened, key, &mut self.stats);
            send_reply(&mut self.outbox, peer, response);
        }
    }
}

/// Queues `reply` to `peer`.
fn send_reply(outbox: &mut Outbox, peer: SocketAddr, reply: &[u8]) {
    if reply.is_empty() {
        return;
    }
    let mut sink = outbox.to(peer);
    let buf = sink.buffer(reply.len());
    buf.extend_from_slice(reply);
    let Ok(()) = sink.commit(reply.len());
}

/// The front door a driver runs in the secure mode, its sessions named by key.
pub(crate) type DriverFront = SecureFront<SessionKey>;
