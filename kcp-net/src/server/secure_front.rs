//! The driver's secure front door: initiations screened, answered and turned into
//! sessions, and sealed datagrams routed by receiver index.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use kcp_core::Transmit;

use crate::admission::Refusal;
use crate::conversation::Conversation;
use crate::secure::{
    Accepted, Kind, RejectReason, Responder, Screened, SecureChannel, ServerSecurity,
    transport_receiver,
};
use crate::session::KcpSession;
use crate::store::SessionKey;

use super::driver::ServerDriver;

/// An initiation's source address and the client's sender index.
type Initiation = (SocketAddr, u32);

/// What a secure driver keeps beyond its sessions.
#[derive(Debug)]
pub(crate) struct SecureFront {
    responder: Responder,
    security: ServerSecurity,
    /// Sessions by the index their peer puts at the head of its datagrams.
    indices: HashMap<u32, SessionKey>,
    /// Sessions whose client has not sent a sealed datagram yet, by the address and
    /// index of its initiation, with the response (sent again if it repeats).
    pending: HashMap<Initiation, (SessionKey, Box<[u8]>)>,
    /// Replies being built.
    reply: Vec<u8>,
}

impl SecureFront {
    pub(crate) fn new(security: ServerSecurity, now: Instant) -> Self {
        Self {
            responder: Responder::new(
                security.identity.clone(),
                security.psk.clone(),
                security.cookies,
                now,
            ),
            security,
            indices: HashMap::new(),
            pending: HashMap::new(),
            reply: Vec::new(),
        }
    }

    /// A fresh random index no session of this loop has, whose low byte names loop
    /// `loop_id` (at most 256 loops): a datagram that a client's new address hashed
    /// to another loop's socket can be handed to the loop that holds its session.
    fn new_index(&self, loop_id: u16) -> u32 {
        loop {
            let index = (rand::random::<u32>() & !0xFF) | u32::from(loop_id & 0xFF);
            if index != 0 && !self.indices.contains_key(&index) {
                return index;
            }
        }
    }

    /// The session's peer proved its address: its response need not be kept.
    pub(crate) fn confirmed(&mut self, session: &mut KcpSession) {
        if let Some(initiation) = session.initiation.take() {
            self.pending.remove(&initiation);
        }
    }

    /// The session closed.
    pub(crate) fn forget(&mut self, session: &KcpSession) {
        if let Some(index) = session.conversation().local_index() {
            self.indices.remove(&index);
        }
        if let Some(initiation) = session.initiation {
            self.pending.remove(&initiation);
        }
    }
}

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
        match Kind::of(datagram) {
            Some(Kind::Transport) => {
                let index = transport_receiver(datagram);
                match index.and_then(|index| front.indices.get(&index)) {
                    Some(&key) => self.deliver(i, key, now),
                    None => match index.and_then(|index| self.owner_of(index)) {
                        Some(owner) => {
                            let copy = bytes::Bytes::copy_from_slice(datagram);
                            self.forward(owner, meta.addr, copy);
                        }
                        None => self.stats.dropped_unknown_index += 1,
                    },
                }
            }
            Some(Kind::Initiation) => {
                let peer = meta.addr;
                self.initiation(i, peer, now, accept);
            }
            _ => self.stats.dropped_malformed += 1,
        }
    }

    /// The other loop of this server whose session `index` names, if any: its low
    /// byte (see `SecureFront::new_index`).
    fn owner_of(&self, index: u32) -> Option<usize> {
        let owner = (index & 0xFF) as usize;
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

    fn initiation(
        &mut self,
        i: usize,
        peer: SocketAddr,
        now: Instant,
        accept: &mut dyn FnMut(SocketAddr, u32) -> bool,
    ) {
        let under_load = self
            .front
            .as_ref()
            .is_some_and(|f| self.unconfirmed.len() >= f.security.load_threshold);
        let Some(front) = &mut self.front else {
            return;
        };
        let (_, msg) = self.recv.get(i);
        front.reply.clear();
        let screened = front
            .responder
            .screen(now, peer, msg, under_load, &mut front.reply);
        let sender = match screened {
            Screened::Valid { sender_index } => sender_index,
            other => {
                match other {
                    Screened::Malformed => self.stats.dropped_malformed += 1,
                    Screened::Version => self.stats.rejected_version += 1,
                    Screened::WrongKey => self.stats.rejected_wrong_key += 1,
                    Screened::CookieSent => self.stats.cookies_sent += 1,
                    Screened::Valid { .. } => {}
                }
                self.send_reply(peer);
                return;
            }
        };
        // The same initiation again (its response was lost): the same response, no
        // new state.
        if let Some((_, response)) = front.pending.get(&(peer, sender)) {
            front.reply.clear();
            front.reply.extend_from_slice(response);
            self.stats.initiations_repeated += 1;
            self.send_reply(peer);
            return;
        }
        // The conv is sealed inside; the application's `accept` sees it once the
        // handshake decrypted, so admit with a placeholder first only for the limits.
        let index = front.new_index(self.id);
        let accepted = front.responder.accept(msg, index);
        let Ok(Accepted {
            established,
            response,
        }) = accepted
        else {
            self.stats.rejected_handshake += 1;
            self.reject(peer, RejectReason::HandshakeFailed, sender);
            return;
        };
        let conv = established.conv;
        match self.admit(peer, conv, now, accept) {
            Ok(()) => {}
            Err(Some(Refusal::SessionLimit)) => {
                self.stats.rejected_full += 1;
                self.reject(peer, RejectReason::Full, sender);
                return;
            }
            Err(_) => return,
        }
        let Some(front) = &mut self.front else {
            return;
        };
        let channel = SecureChannel::new(established, front.security.rekey, now);
        let accepted_bytes = msg_len(&self.recv, i);
        let unproven = Some((accepted_bytes, response.len() as u64));
        let Ok(conversation) =
            Conversation::secure(conv, self.conversation.clone(), channel, unproven, now)
        else {
            self.shared.admission.release(peer.ip(), false);
            return;
        };
        let key = self.insert(peer, conversation, now);
        let Some(front) = &mut self.front else {
            return;
        };
        front.indices.insert(index, key);
        front
            .pending
            .insert((peer, sender), (key, Box::from(&response[..])));
        if let Some(session) = self.store.get_mut(key) {
            session.initiation = Some((peer, sender));
        }
        front.reply.clear();
        front.reply.extend_from_slice(&response);
        self.stats.handshakes += 1;
        self.send_reply(peer);
    }

    fn reject(&mut self, peer: SocketAddr, reason: RejectReason, sender: u32) {
        if let Some(front) = &mut self.front {
            front.reply.clear();
            front.responder.reject(reason, sender, &mut front.reply);
            self.send_reply(peer);
        }
    }

    /// Sends the reply built in `front.reply` (if any) to `peer`.
    fn send_reply(&mut self, peer: SocketAddr) {
        let Some(front) = &mut self.front else {
            return;
        };
        if front.reply.is_empty() {
            return;
        }
        let mut sink = self.outbox.to(peer);
        let buf = sink.buffer(front.reply.len());
        buf.extend_from_slice(&front.reply);
        let Ok(()) = sink.commit(front.reply.len());
        front.reply.clear();
    }
}

fn msg_len(recv: &crate::udp::RecvBatch, i: usize) -> u64 {
    recv.get(i).1.len() as u64
}
