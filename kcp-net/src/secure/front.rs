//! `SecureFront`: a secure server's front door, sans-IO: initiations screened and
//! answered, handshakes turned into sealed [`Conversation`]s, and transport datagrams
//! routed by receiver index.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;
use std::time::Instant;

use super::handshake::{Accepted, Established, Responder, Screened};
use super::wire::{Kind, RejectReason, response, transport_receiver};
use super::{SecureChannel, ServerSecurity};
use crate::config::ConversationConfig;
use crate::conversation::Conversation;
use crate::error::NetError;
use crate::stats::LoopStats;

/// An initiation's source address and the client's sender index.
type Initiation = (SocketAddr, u32);

/// The front door of a server in the secure wire mode, without sockets, threads or
/// clocks: what `kcp-net`'s [`ServerDriver`](crate::ServerDriver) (and so each loop of
/// [`KcpServer`](crate::KcpServer)) and `kcp-tokio`'s listener both run, so that they
/// admit and route secure sessions by the same code.
///
/// It holds the handshake responder (the server's key, the cookie secret), the table
/// of sessions by the receiver index their peer puts at the head of every sealed
/// datagram, and the response of each handshake whose client has not yet sent a
/// sealed datagram (sent again, with no new state, if its initiation repeats). The
/// sessions themselves stay with the caller, named by a key `K` of its choosing.
/// Everything it does is counted in the caller's [`LoopStats`].
///
/// # Method families and the calling order
///
/// - routing: [`route`](Self::route) says where a received datagram goes.
/// - initiations: [`initiation`](Self::initiation) screens one (cookie, reject,
///   repeated response, or an [`Offer`]). The caller applies its admission rules to
///   the offer ([`crate::admission`]); then either [`refuse_full`](Self::refuse_full)
///   or [`accept`](Self::accept) → store the [`Conversation`] under a key →
///   [`register`](Self::register), which gives the response to send. An offer merely
///   dropped leaves nothing behind.
/// - bookkeeping: [`confirmed`](Self::confirmed) when a session's conversation first
///   reports [`Conversation::is_confirmed`], [`forget`](Self::forget) when it closes.
///
/// Feed a [`Route::Session`] datagram to its conversation with
/// [`Conversation::input`] if it came from the session's current address, else with
/// [`Conversation::input_from_new_address`] (move the session on `Ok(true)`): the
/// 3x anti-amplification budget and the path challenge live in the conversation.
///
/// # Example
///
/// ```
/// use std::collections::HashMap;
/// use std::time::Instant;
/// use kcp_net::secure::{Route, SecureFront, Screening, ServerIdentity, ServerSecurity};
/// use kcp_net::{ConversationConfig, LoopStats, Preset};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let security = ServerSecurity::new(ServerIdentity::generate()?);
/// let mut front: SecureFront<u64> = SecureFront::new(security, 0, Instant::now());
/// let mut stats = LoopStats::default();
/// let mut sessions = HashMap::new();
/// let (peer, datagram) = ("127.0.0.1:5000".parse()?, vec![0u8; 1200]);
/// match front.route(&datagram, &mut stats) {
///     Route::Session(_key) => { /* sessions[&_key].input_from(..) */ }
///     Route::Initiation => match front.initiation(Instant::now(), peer, &datagram, 0, &mut stats) {
///         Screening::Reply(bytes) => { /* send `bytes` to `peer` */ let _ = bytes; }
///         Screening::Offer(offer) => {
///             // The admission rules go here (limits, `accept`).
///             let config = ConversationConfig::new(Preset::Fast);
///             let (conversation, opened) = front.accept(*offer, config, Instant::now())?;
///             sessions.insert(1, conversation);
///             let response = front.register(opened, 1, &mut stats);
///             let _ = response; // send it to `peer`
///         }
///         _ => {} // dropped, counted
///     },
///     Route::Unknown { .. } => stats.dropped_unknown_index += 1,
///     _ => {} // dropped, counted
/// }
/// assert_eq!(stats.dropped_malformed, 1, "zeros are not an initiation");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct SecureFront<K> {
    responder: Responder,
    security: ServerSecurity,
    /// Put in the low byte of every index this front hands out.
    loop_id: u8,
    /// Sessions by the index their peer puts at the head of its datagrams.
    indices: HashMap<u32, K>,
    /// Sessions whose client has not sent a sealed datagram yet, by the address and
    /// index of its initiation, with the response (sent again if it repeats).
    pending: HashMap<Initiation, (K, Box<[u8]>)>,
    /// Each session's index, and its initiation while it is pending.
    sessions: HashMap<K, (u32, Option<Initiation>)>,
    /// Replies being built.
    reply: Vec<u8>,
}

/// Where a received datagram goes ([`SecureFront::route`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Route<K> {
    /// A transport datagram for the session with key `K`.
    Session(K),
    /// A transport datagram whose index (`None`: too short to carry one) names no
    /// session here. Not counted: a server of several loops may hand it to the loop
    /// whose index it is ([`index_loop`]); otherwise count it in
    /// `dropped_unknown_index`.
    Unknown {
        /// Its receiver index.
        index: Option<u32>,
    },
    /// An initiation: pass it to [`SecureFront::initiation`].
    Initiation,
    /// Neither: dropped and counted (`dropped_malformed`).
    Dropped,
}

/// What an initiation comes to ([`SecureFront::initiation`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum Screening<'a> {
    /// Answered without keeping state: send these bytes back to the initiation's
    /// address (a cookie reply, a reject, or the stored response to a repeated
    /// initiation). Never larger than the initiation.
    Reply(&'a [u8]),
    /// Dropped without an answer (malformed), counted.
    Dropped,
    /// A valid handshake: apply the admission rules, then
    /// [`accept`](SecureFront::accept) or [`refuse_full`](SecureFront::refuse_full)
    /// it, or drop it. (Boxed: it holds the session's keys and response.)
    Offer(Box<Offer>),
}

/// A handshake the responder completed, waiting for the server's admission
/// ([`Screening::Offer`]).
#[derive(Debug)]
pub struct Offer {
    established: Established,
    response: [u8; response::LEN],
    peer: SocketAddr,
    sender: u32,
    /// The initiation's length (what the client's address sent us).
    received: u64,
}

impl Offer {
    /// The conversation id the client chose (sealed in its initiation).
    pub const fn conv(&self) -> u32 {
        self.established.conv
    }

    /// The initiation's source address.
    pub const fn peer(&self) -> SocketAddr {
        self.peer
    }
}

/// An accepted offer, to [`register`](SecureFront::register) under the key its
/// conversation was stored with.
#[derive(Debug)]
pub struct Opened {
    index: u32,
    peer: SocketAddr,
    sender: u32,
    response: [u8; response::LEN],
}

/// The loop that handed out `index` (its low byte): a server of several loops
/// passes a datagram whose client moved to an address the kernel hashes to another
/// loop's socket to the loop that holds its session.
pub const fn index_loop(index: u32) -> u8 {
    index.to_le_bytes()[0]
}

impl<K: Copy + Eq + Hash> SecureFront<K> {
    /// The front door of `security`, for loop `loop_id` of a server (0 for a server
    /// of one loop; at most 256 loops, see [`index_loop`]), starting its cookie
    /// secret's rotation at `now`.
    pub fn new(security: ServerSecurity, loop_id: u8, now: Instant) -> Self {
        Self {
            responder: Responder::new(
                security.identity.clone(),
                security.psk.clone(),
                security.cookies,
                now,
            ),
            security,
            loop_id,
            indices: HashMap::new(),
            pending: HashMap::new(),
            sessions: HashMap::new(),
            reply: Vec::new(),
        }
    }

    /// The settings it runs with.
    pub const fn security(&self) -> &ServerSecurity {
        &self.security
    }

    /// Sessions registered and not forgotten.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// No session is registered.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    // ---------------------------------------------------------------- routing

    /// Where `datagram` goes: to a session by its receiver index, to
    /// [`initiation`](Self::initiation), or nowhere (malformed: counted in `stats`).
    pub fn route(&self, datagram: &[u8], stats: &mut LoopStats) -> Route<K> {
        match Kind::of(datagram) {
            Some(Kind::Transport) => {
                let index = transport_receiver(datagram);
                match index.and_then(|index| self.indices.get(&index)) {
                    Some(&key) => Route::Session(key),
                    None => Route::Unknown { index },
                }
            }
            Some(Kind::Initiation) => Route::Initiation,
            _ => {
                stats.dropped_malformed += 1;
                Route::Dropped
            }
        }
    }

    // ---------------------------------------------------------------- initiations

    /// Screens an initiation from `peer`, counting the outcome in `stats`. The
    /// server is under load (cookies first, with [`CookiePolicy::UnderLoad`]) while
    /// `unconfirmed`, its sessions whose peer has not proven its address yet, reach
    /// `load_threshold`.
    ///
    /// [`CookiePolicy::UnderLoad`]: super::CookiePolicy::UnderLoad
    pub fn initiation(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        datagram: &[u8],
        unconfirmed: usize,
        stats: &mut LoopStats,
    ) -> Screening<'_> {
        let under_load = unconfirmed >= self.security.load_threshold;
        self.reply.clear();
        let screened = self
            .responder
            .screen(now, peer, datagram, under_load, &mut self.reply);
        let sender = match screened {
            Screened::Valid { sender_index } => sender_index,
            refused => {
                match refused {
                    Screened::Malformed => stats.dropped_malformed += 1,
                    Screened::Version => stats.rejected_version += 1,
                    Screened::WrongKey => stats.rejected_wrong_key += 1,
                    Screened::CookieSent => stats.cookies_sent += 1,
                    Screened::Valid { .. } => {}
                }
                return self.replied();
            }
        };
        // The same initiation again (its response was lost): the same response, no
        // new state.
        if let Some((_, response)) = self.pending.get(&(peer, sender)) {
            stats.initiations_repeated += 1;
            return Screening::Reply(response);
        }
        let index = self.new_index();
        match self.responder.accept(datagram, index) {
            Ok(Accepted {
                established,
                response,
            }) => Screening::Offer(Box::new(Offer {
                established,
                response,
                peer,
                sender,
                received: datagram.len() as u64,
            })),
            Err(_) => {
                stats.rejected_handshake += 1;
                self.responder
                    .reject(RejectReason::HandshakeFailed, sender, &mut self.reply);
                self.replied()
            }
        }
    }

    /// The reply built, if any.
    fn replied(&self) -> Screening<'_> {
        if self.reply.is_empty() {
            Screening::Dropped
        } else {
            Screening::Reply(&self.reply)
        }
    }

    /// A fresh random index no session here has, whose low byte names this loop.
    fn new_index(&self) -> u32 {
        loop {
            let index = (rand::random::<u32>() & !0xFF) | u32::from(self.loop_id);
            if index != 0 && !self.indices.contains_key(&index) {
                return index;
            }
        }
    }

    /// Refuses `offer` because the server is at `max_sessions`: the reject to send
    /// to its address (counted in `rejected_full`), so the client fails at once with
    /// [`HandshakeError::ServerFull`](super::HandshakeError::ServerFull).
    pub fn refuse_full(&mut self, offer: Offer, stats: &mut LoopStats) -> &[u8] {
        stats.rejected_full += 1;
        self.reply.clear();
        self.responder
            .reject(RejectReason::Full, offer.sender, &mut self.reply);
        &self.reply
    }

    /// The sealed conversation of an admitted `offer`, with `config` (the server's
    /// [`ServerConfig::conversation`](crate::ServerConfig::conversation)), starting at
    /// `now`. Its peer's address is unproven until the client's first sealed
    /// datagram: until then it sends at most three times what the address sent.
    ///
    /// # Errors
    /// An invalid `config` ([`ConversationConfig::validate`]).
    pub fn accept(
        &self,
        offer: Offer,
        config: ConversationConfig,
        now: Instant,
    ) -> Result<(Conversation, Opened), NetError> {
        let Offer {
            established,
            response,
            peer,
            sender,
            received,
        } = offer;
        let conv = established.conv;
        let index = established.local_index;
        let channel = SecureChannel::new(established, self.security.rekey, now);
        let unproven = Some((received, response.len() as u64));
        let conversation = Conversation::secure(conv, config, channel, unproven, now)?;
        let opened = Opened {
            index,
            peer,
            sender,
            response,
        };
        Ok((conversation, opened))
    }

    /// Lists the session stored under `key` (counted in `handshakes`): its datagrams
    /// route to it from now on. Returns the response to send to its address.
    pub fn register(&mut self, opened: Opened, key: K, stats: &mut LoopStats) -> &[u8] {
        let initiation = (opened.peer, opened.sender);
        self.indices.insert(opened.index, key);
        self.sessions.insert(key, (opened.index, Some(initiation)));
        let stored = self
            .pending
            .entry(initiation)
            .insert_entry((key, Box::from(&opened.response[..])));
        stats.handshakes += 1;
        &stored.into_mut().1
    }

    // ---------------------------------------------------------------- bookkeeping

    /// The session's peer proved its address (its conversation is confirmed): its
    /// response need not be kept.
    pub fn confirmed(&mut self, key: K) {
        if let Some((_, initiation)) = self.sessions.get_mut(&key) {
            if let Some(initiation) = initiation.take() {
                self.pending.remove(&initiation);
            }
        }
    }

    /// The session closed: its index names nothing from now on.
    pub fn forget(&mut self, key: K) {
        if let Some((index, initiation)) = self.sessions.remove(&key) {
            self.indices.remove(&index);
            if let Some(initiation) = initiation {
                self.pending.remove(&initiation);
            }
        }
    }
}
