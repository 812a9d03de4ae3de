//! The handshake: one Noise `NK` exchange (`NKpsk0` with a pre-shared key) in two
//! datagrams, wrapped with the indices, the MACs and the padding that let a server
//! screen it before it spends anything.
//!
//! `NK`: the client knows the server's static key (it pinned it), the server does
//! not know the client's (clients are anonymous at this layer; the application
//! authenticates users inside the seal). The first message carries the client's
//! ephemeral key and a payload sealed under `es`, so only the holder of the server's
//! private key can read it; the second completes `ee`, after which both ends hold the
//! same two transport keys (forward secret). With `psk0` the pre-shared key is mixed
//! in before the first message, so a server without it (or with another) cannot read
//! the first message and says so.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use snow::params::NoiseParams;

use super::cookie::{self, CookieJar, Macs};
use super::keys::{Psk, PublicKey, ServerIdentity};
use super::seal::{Cipher, Key};
use super::wire::{
    self, INITIATION_LEN, Kind, RejectReason, VERSION, cookie_reply, initiation, reject, response,
};

/// Bound into every handshake (Noise's prologue): a peer of another protocol or
/// version cannot complete one.
const PROLOGUE: &[u8] = b"kcp-net secure v2";

/// The Noise protocol name for a deployment with or without a pre-shared key.
fn params(psk: bool) -> NoiseParams {
    let name = if psk {
        "Noise_NKpsk0_25519_ChaChaPoly_BLAKE2s"
    } else {
        "Noise_NK_25519_ChaChaPoly_BLAKE2s"
    };
    // Both names are valid Noise protocol names that snow supports.
    name.parse().expect("a valid Noise protocol name")
}

/// What a finished handshake gives either end.
#[derive(Debug)]
pub(crate) struct Established {
    /// Our index: the peer puts it at the head of its datagrams.
    pub(crate) local_index: u32,
    /// The peer's index: we put it at the head of ours.
    pub(crate) peer_index: u32,
    pub(crate) send: Key,
    pub(crate) recv: Key,
    /// The KCP conversation id the client chose (sealed in the first message).
    pub(crate) conv: u32,
}

/// When the server asks for a cookie before it does any work for an address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CookiePolicy {
    /// Every handshake first proves its address with a cookie (one more round trip).
    Always,
    /// Only while the server is under load (many handshakes not yet confirmed): the
    /// WireGuard behaviour, and the default.
    #[default]
    UnderLoad,
    /// Never (for tests and closed networks).
    Never,
}

// ---------------------------------------------------------------- client

/// What a datagram from the server did to a handshake in progress.
#[derive(Debug)]
pub(crate) enum Reply {
    /// Not for this handshake (another index, malformed, forged): ignored.
    Ignored,
    /// A cookie arrived: send [`Initiator::initiation`] again, now with mac2.
    Cookie,
    /// The server refused, naming our index.
    Rejected {
        reason: RejectReason,
        server_version: u8,
        /// The key a server that refused our key for it says it has.
        server_key: Option<PublicKey>,
    },
    /// The handshake is done.
    Established(Box<Established>),
}

/// The client's side of a handshake in progress.
pub(crate) struct Initiator {
    state: snow::HandshakeState,
    macs: Macs,
    sender_index: u32,
    message: [u8; INITIATION_LEN],
    cookie: Option<([u8; 16], Instant)>,
    conv: u32,
    /// The ciphers we offered, our preference first.
    offer: [u8; 2],
    spoiled: bool,
}

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initiator")
            .field("sender_index", &self.sender_index)
            .field("conv", &self.conv)
            .field("cookie", &self.cookie.is_some())
            .finish_non_exhaustive()
    }
}

impl Initiator {
    /// Starts a handshake with the server whose key is `server`, for conversation
    /// `conv`, under our random `sender_index`, offering both ciphers with `preferred`
    /// first.
    pub(crate) fn new(
        server: &PublicKey,
        psk: Option<&Psk>,
        conv: u32,
        sender_index: u32,
        preferred: Cipher,
    ) -> Result<Self, snow::Error> {
        let mut builder = snow::Builder::new(params(psk.is_some()))
            .prologue(PROLOGUE)?
            .remote_public_key(server.as_bytes())?;
        if let Some(psk) = psk {
            builder = builder.psk(0, psk.as_bytes())?;
        }
        let mut state = builder.build_initiator()?;
        let mut message = [0; INITIATION_LEN];
        message[0] = Kind::Initiation as u8;
        message[initiation::VERSION] = VERSION;
        message[initiation::SENDER..initiation::SENDER + 4]
            .copy_from_slice(&sender_index.to_le_bytes());
        let offer = Cipher::offer(preferred);
        let mut payload = [0; initiation::PAYLOAD_LEN];
        payload[..4].copy_from_slice(&conv.to_le_bytes());
        payload[4..].copy_from_slice(&offer);
        let written = state.write_message(
            &payload,
            &mut message[initiation::NOISE..initiation::NOISE + initiation::NOISE_LEN],
        )?;
        debug_assert_eq!(written, initiation::NOISE_LEN);
        let macs = Macs::for_server(server);
        macs.put_mac1(&mut message);
        Ok(Self {
            state,
            macs,
            sender_index,
            message,
            cookie: None,
            conv,
            offer,
            spoiled: false,
        })
    }

    /// Our index: the server's replies name it.
    pub(crate) const fn sender_index(&self) -> u32 {
        self.sender_index
    }

    /// A response that failed to decrypt reached this attempt: start a new one (the
    /// cookie may be carried over with [`take_cookie`](Self::take_cookie)).
    pub(crate) const fn is_spoiled(&self) -> bool {
        self.spoiled
    }

    /// The cookie this attempt holds, for the next attempt.
    pub(crate) const fn take_cookie(&self) -> Option<([u8; 16], Instant)> {
        self.cookie
    }

    /// Gives this attempt a cookie an earlier attempt received.
    pub(crate) const fn with_cookie(mut self, cookie: Option<([u8; 16], Instant)>) -> Self {
        self.cookie = cookie;
        self
    }

    /// The initiation to send (again) at `now`: with mac2 while a cookie from the
    /// server is less than [`cookie::ROTATE`] old.
    pub(crate) fn initiation(&mut self, now: Instant) -> &[u8] {
        match self.cookie {
            Some((cookie, at)) if now.saturating_duration_since(at) < cookie::ROTATE => {
                cookie::put_mac2(&mut self.message, &cookie);
            }
            _ => self.message[initiation::MAC2..].fill(0),
        }
        &self.message
    }

    /// Whether the server sent us a cookie (so a silence after it is a cookie
    /// timeout).
    pub(crate) const fn has_cookie(&self) -> bool {
        self.cookie.is_some()
    }

    /// Takes a datagram from the server.
    pub(crate) fn handle(&mut self, now: Instant, datagram: &[u8]) -> Reply {
        let names_us = |at| wire::u32_at(datagram, at) == Some(self.sender_index);
        match Kind::of(datagram) {
            Some(Kind::Response)
                if datagram.len() == response::LEN && names_us(response::RECEIVER) =>
            {
                self.finish(datagram)
            }
            Some(Kind::CookieReply)
                if datagram.len() == cookie_reply::LEN && names_us(cookie_reply::RECEIVER) =>
            {
                let mac1 = &self.message[initiation::MAC1..initiation::MAC2];
                match self.macs.open_cookie(
                    &datagram[cookie_reply::COOKIE..],
                    mac1,
                    &datagram[cookie_reply::NONCE..cookie_reply::COOKIE],
                ) {
                    Some(cookie) => {
                        self.cookie = Some((cookie, now));
                        Reply::Cookie
                    }
                    None => Reply::Ignored,
                }
            }
            Some(Kind::Reject)
                if matches!(datagram.len(), reject::LEN | reject::WITH_KEY_LEN)
                    && names_us(reject::RECEIVER) =>
            {
                let server_key = datagram
                    .get(reject::LEN..reject::WITH_KEY_LEN)
                    .and_then(|k| <[u8; 32]>::try_from(k).ok())
                    .map(PublicKey::from_bytes);
                match RejectReason::from_byte(datagram[reject::REASON]) {
                    Some(reason) => Reply::Rejected {
                        reason,
                        server_version: datagram[reject::VERSION],
                        server_key,
                    },
                    None => Reply::Ignored,
                }
            }
            _ => Reply::Ignored,
        }
    }

    fn finish(&mut self, datagram: &[u8]) -> Reply {
        let Some(peer_index) = wire::u32_at(datagram, response::SENDER) else {
            return Reply::Ignored;
        };
        let mut payload = [0; 16];
        // snow does not roll its state back after a message that fails to decrypt,
        // so a forged response naming our index (only someone on the path sees it)
        // spoils this attempt: the caller starts a new one.
        let noise = &datagram[response::NOISE..response::NOISE + response::NOISE_LEN];
        let read = self.state.read_message(noise, &mut payload);
        // The answer is authenticated by the handshake: a cipher we did not offer
        // is a broken server, and this attempt cannot go on.
        let cipher = match read {
            Ok(1) => Cipher::from_byte(payload[0]).filter(|c| self.offer.contains(&c.to_byte())),
            _ => None,
        };
        let Some(cipher) = cipher else {
            self.spoiled = true;
            return Reply::Ignored;
        };
        let (send, recv) = self.state.dangerously_get_raw_split();
        Reply::Established(Box::new(Established {
            local_index: self.sender_index,
            peer_index,
            send: Key::new(cipher, send),
            recv: Key::new(cipher, recv),
            conv: self.conv,
        }))
    }
}

// ---------------------------------------------------------------- server

/// What the server's first look at an initiation found (cheap: no Diffie-Hellman).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Screened {
    /// Not an initiation (length, kind).
    Malformed,
    /// Another version: a reject went to `out`.
    Version,
    /// mac1 is wrong (the client has another key for us): a reject went to `out`.
    WrongKey,
    /// The address is not proven and the policy asks for it: a cookie reply went to
    /// `out`.
    CookieSent,
    /// Worth the Diffie-Hellman: the client's index.
    Valid { sender_index: u32 },
}

/// The server's side of handshakes: its identity, the cookie jar, the policy.
pub(crate) struct Responder {
    identity: Arc<ServerIdentity>,
    psk: Option<Psk>,
    macs: Macs,
    jar: CookieJar,
    policy: CookiePolicy,
    params: NoiseParams,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("server", &self.identity.public())
            .field("psk", &self.psk.is_some())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A handshake the server accepted: the session's keys and the response to send.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) established: Established,
    pub(crate) response: [u8; response::LEN],
}

impl Responder {
    pub(crate) fn new(
        identity: Arc<ServerIdentity>,
        psk: Option<Psk>,
        policy: CookiePolicy,
        now: Instant,
    ) -> Self {
        Self {
            macs: Macs::for_server(&identity.public()),
            params: params(psk.is_some()),
            identity,
            psk,
            jar: CookieJar::new(now),
            policy,
        }
    }

    /// The first look at a datagram of kind initiation from `from`. Replies (each
    /// smaller than the initiation) are appended to `out`.
    pub(crate) fn screen(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: &[u8],
        under_load: bool,
        out: &mut Vec<u8>,
    ) -> Screened {
        if msg.len() < 8 || Kind::of(msg) != Some(Kind::Initiation) {
            return Screened::Malformed;
        }
        let sender = wire::u32_at(msg, initiation::SENDER).unwrap_or(0);
        if msg[initiation::VERSION] != VERSION {
            write_reject(out, RejectReason::Version, sender);
            return Screened::Version;
        }
        if msg.len() != INITIATION_LEN {
            return Screened::Malformed;
        }
        if !self.macs.mac1_ok(msg) {
            write_reject(out, RejectReason::WrongKey, sender);
            out.extend_from_slice(self.identity.public().as_bytes());
            return Screened::WrongKey;
        }
        let ask = match self.policy {
            CookiePolicy::Always => true,
            CookiePolicy::UnderLoad => under_load,
            CookiePolicy::Never => false,
        };
        if ask && !self.jar.mac2_ok(now, from, msg) {
            let cookie = self.jar.cookie(now, from);
            let mac1 = &msg[initiation::MAC1..initiation::MAC2];
            let nonce: [u8; 24] = rand::random();
            let sealed = self.macs.seal_cookie(cookie, mac1, nonce);
            let start = out.len();
            out.resize(start + cookie_reply::LEN, 0);
            let reply = &mut out[start..];
            reply[0] = Kind::CookieReply as u8;
            reply[cookie_reply::RECEIVER..cookie_reply::RECEIVER + 4]
                .copy_from_slice(&sender.to_le_bytes());
            reply[cookie_reply::NONCE..cookie_reply::COOKIE].copy_from_slice(&nonce);
            reply[cookie_reply::COOKIE..].copy_from_slice(&sealed);
            return Screened::CookieSent;
        }
        Screened::Valid {
            sender_index: sender,
        }
    }

    /// Runs the Diffie-Hellman on a screened initiation and, if it decrypts, makes
    /// the session's keys (under the client's preferred cipher) and the response,
    /// naming the session `local_index`.
    ///
    /// # Errors
    /// The message does not decrypt (another pre-shared key, or corrupted), or its
    /// offer of ciphers lacks ChaCha20-Poly1305 (not from a client of this version).
    pub(crate) fn accept(&self, msg: &[u8], local_index: u32) -> Result<Accepted, snow::Error> {
        let mut builder = snow::Builder::new(self.params.clone())
            .prologue(PROLOGUE)?
            .local_private_key(self.identity.private())?;
        if let Some(psk) = &self.psk {
            builder = builder.psk(0, psk.as_bytes())?;
        }
        let mut state = builder.build_responder()?;
        let mut payload = [0; 64];
        let noise = &msg[initiation::NOISE..initiation::NOISE + initiation::NOISE_LEN];
        let n = state.read_message(noise, &mut payload)?;
        let (conv, cipher) = match payload.get(..n) {
            Some(&[a, b, c, d, first, second]) => (
                u32::from_le_bytes([a, b, c, d]),
                Cipher::choose([first, second]).ok_or(snow::Error::Input)?,
            ),
            _ => return Err(snow::Error::Input),
        };
        let peer_index = wire::u32_at(msg, initiation::SENDER).unwrap_or(0);
        let mut response = [0; response::LEN];
        response[0] = Kind::Response as u8;
        response[1] = VERSION;
        response[response::SENDER..response::SENDER + 4]
            .copy_from_slice(&local_index.to_le_bytes());
        response[response::RECEIVER..response::RECEIVER + 4]
            .copy_from_slice(&peer_index.to_le_bytes());
        let written = state.write_message(&[cipher.to_byte()], &mut response[response::NOISE..])?;
        debug_assert_eq!(written, response::NOISE_LEN);
        // Split: the first key is the initiator's sending key.
        let (initiator_send, responder_send) = state.dangerously_get_raw_split();
        Ok(Accepted {
            established: Established {
                local_index,
                peer_index,
                send: Key::new(cipher, responder_send),
                recv: Key::new(cipher, initiator_send),
                conv,
            },
            response,
        })
    }

    /// The cookie the jar gives `addr` at `now` (what a client that proved its
    /// address would have), for the fuzz harness.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn cookie_for(&mut self, now: Instant, addr: SocketAddr) -> [u8; 16] {
        self.jar.cookie(now, addr)
    }

    /// Appends a reject to `out` for the initiation from the client's `sender`.
    pub(crate) fn reject(&self, reason: RejectReason, sender: u32, out: &mut Vec<u8>) {
        write_reject(out, reason, sender);
    }
}

fn write_reject(out: &mut Vec<u8>, reason: RejectReason, receiver: u32) {
    out.extend_from_slice(&[Kind::Reject as u8, VERSION, reason as u8, 0]);
    out.extend_from_slice(&receiver.to_le_bytes());
}

/// How long a client waits for each answer before it sends its initiation again;
/// doubled each time up to one second.
pub(crate) const FIRST_RETRY: Duration = Duration::from_millis(250);

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: &str = "127.0.0.1:5000";

    fn server(policy: CookiePolicy, psk: Option<Psk>, now: Instant) -> Responder {
        let identity = Arc::new(ServerIdentity::generate().unwrap());
        Responder::new(identity, psk, policy, now)
    }

    fn key(r: &Responder) -> PublicKey {
        r.identity.public()
    }

    #[test]
    fn a_handshake_gives_both_ends_the_same_two_keys_crosswise() {
        for preferred in [Cipher::ChaCha20Poly1305, Cipher::Aes256Gcm] {
            handshake_under(preferred);
        }
    }

    fn handshake_under(preferred: Cipher) {
        let now = Instant::now();
        let mut r = server(CookiePolicy::Never, None, now);
        let mut i = Initiator::new(&key(&r), None, 77, 1234, preferred).unwrap();
        let msg = i.initiation(now).to_vec();
        assert_eq!(msg.len(), INITIATION_LEN);
        let mut out = Vec::new();
        let from = ADDR.parse().unwrap();
        assert_eq!(
            r.screen(now, from, &msg, false, &mut out),
            Screened::Valid { sender_index: 1234 }
        );
        assert!(out.is_empty());
        let accepted = r.accept(&msg, 99).unwrap();
        assert_eq!(accepted.established.conv, 77);
        assert_eq!(accepted.established.peer_index, 1234);
        assert!(accepted.response.len() * 3 <= INITIATION_LEN);
        let Reply::Established(client) = i.handle(now, &accepted.response) else {
            panic!("no session");
        };
        assert_eq!((client.local_index, client.peer_index), (1234, 99));
        assert_eq!(client.send.cipher(), preferred, "the client's preference");
        assert_eq!(accepted.established.send.cipher(), preferred);
        let mut buf = *b"secret";
        let tag = client.send.seal(0, b"", &mut buf);
        assert!(accepted.established.recv.open(0, b"", &mut buf, &tag));
        assert_eq!(&buf, b"secret");
    }

    #[test]
    fn a_cookie_round_trip_proves_the_address_and_the_cookie_reply_is_smaller() {
        let now = Instant::now();
        let mut r = server(CookiePolicy::Always, None, now);
        let mut i = Initiator::new(&key(&r), None, 1, 5, Cipher::ChaCha20Poly1305).unwrap();
        let from = ADDR.parse().unwrap();
        let mut out = Vec::new();
        let first = i.initiation(now).to_vec();
        assert_eq!(
            r.screen(now, from, &first, false, &mut out),
            Screened::CookieSent
        );
        assert_eq!(out.len(), cookie_reply::LEN);
        assert!(matches!(i.handle(now, &out), Reply::Cookie));
        let second = i.initiation(now).to_vec();
        out.clear();
        assert_eq!(
            r.screen(now, from, &second, false, &mut out),
            Screened::Valid { sender_index: 5 }
        );
        // From another address the same initiation needs its own cookie.
        let other = "127.0.0.2:5000".parse().unwrap();
        assert_eq!(
            r.screen(now, other, &second, false, &mut out),
            Screened::CookieSent
        );
        // A cookie reply for someone else's initiation does not open.
        let mut j = Initiator::new(&key(&r), None, 1, 5, Cipher::ChaCha20Poly1305).unwrap();
        assert!(matches!(
            j.handle(now, &out[cookie_reply::LEN..]),
            Reply::Ignored
        ));
    }

    #[test]
    fn a_wrong_key_a_psk_mismatch_and_another_version_are_told_apart() {
        let now = Instant::now();
        let from = ADDR.parse().unwrap();
        let mut r = server(
            CookiePolicy::Never,
            Some(Psk::from_passphrase("title")),
            now,
        );
        let other = ServerIdentity::generate().unwrap().public();
        let mut out = Vec::new();

        let mut wrong_key = Initiator::new(&other, None, 1, 7, Cipher::ChaCha20Poly1305).unwrap();
        let msg = wrong_key.initiation(now).to_vec();
        assert_eq!(
            r.screen(now, from, &msg, false, &mut out),
            Screened::WrongKey
        );
        assert!(matches!(
            wrong_key.handle(now, &out),
            Reply::Rejected {
                reason: RejectReason::WrongKey,
                ..
            }
        ));

        for psk in [None, Some(Psk::from_passphrase("other"))] {
            let mut no_psk =
                Initiator::new(&key(&r), psk.as_ref(), 1, 8, Cipher::ChaCha20Poly1305).unwrap();
            let msg = no_psk.initiation(now).to_vec();
            out.clear();
            assert_eq!(
                r.screen(now, from, &msg, false, &mut out),
                Screened::Valid { sender_index: 8 }
            );
            assert!(r.accept(&msg, 1).is_err(), "psk {psk:?}");
        }
        let mut good = Initiator::new(
            &key(&r),
            Some(&Psk::from_passphrase("title")),
            1,
            9,
            Cipher::ChaCha20Poly1305,
        )
        .unwrap();
        let msg = good.initiation(now).to_vec();
        let accepted = r.accept(&msg, 2).unwrap();
        assert!(matches!(
            good.handle(now, &accepted.response),
            Reply::Established(_)
        ));

        let mut msg = msg;
        msg[initiation::VERSION] = 9;
        out.clear();
        assert_eq!(
            r.screen(now, from, &msg, false, &mut out),
            Screened::Version
        );
        assert_eq!(out[reject::VERSION], VERSION);
    }

    #[test]
    fn replies_that_do_not_name_our_index_are_ignored() {
        let now = Instant::now();
        let r = server(CookiePolicy::Never, None, now);
        let mut i = Initiator::new(&key(&r), None, 1, 5, Cipher::ChaCha20Poly1305).unwrap();
        let msg = i.initiation(now).to_vec();
        let mut accepted = r.accept(&msg, 2).unwrap();
        accepted.response[response::RECEIVER] ^= 1;
        assert!(matches!(i.handle(now, &accepted.response), Reply::Ignored));
        assert!(!i.is_spoiled());
        let mut out = Vec::new();
        write_reject(&mut out, RejectReason::Full, 6);
        assert!(matches!(i.handle(now, &out), Reply::Ignored));
    }
}
