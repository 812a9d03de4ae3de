//! Proving a client's address before the server keeps state or runs Diffie-Hellman:
//! the two MACs of an initiation and the cookie, after WireGuard's design.
//!
//! - **mac1**, keyed by a hash of the server's public key, shows the sender knows
//!   which server it talks to: a blind sweep is dropped after one keyed BLAKE2s.
//! - **mac2**, keyed by a cookie, shows the sender receives at its address. The cookie
//!   is a MAC of the client's IP, port and a coarse timestamp under a server secret
//!   that rotates every [`ROTATE`]; the server stores nothing per client. It reaches
//!   the client in a cookie reply, sealed under a key derived from the server's
//!   public key with the initiation's mac1 as associated data, so that only the
//!   client that sent that initiation can use it.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use blake2::digest::Mac;
use blake2::digest::consts::U16;
use blake2::{Blake2s256, Blake2sMac, Digest};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use subtle::ConstantTimeEq;

use super::keys::PublicKey;
use super::wire::{INITIATION_LEN, initiation};

/// How often the cookie secret changes; a cookie is accepted for one to two periods
/// after it was made, and a client keeps one for one period.
pub const ROTATE: Duration = Duration::from_secs(120);

/// A 16-byte keyed BLAKE2s.
pub(crate) fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    // Keys here are 16 or 32 bytes; BLAKE2s takes up to 32.
    let mut m = <Blake2sMac<U16> as Mac>::new_from_slice(key).expect("a key of at most 32 bytes");
    for part in parts {
        Mac::update(&mut m, part);
    }
    m.finalize().into_bytes().into()
}

fn derive(label: &[u8], server: &PublicKey) -> [u8; 32] {
    Blake2s256::new()
        .chain_update(label)
        .chain_update(server.as_bytes())
        .finalize()
        .into()
}

/// The keys both ends derive from the server's public key.
#[derive(Clone, Debug)]
pub(crate) struct Macs {
    mac1_key: [u8; 32],
    cookie_key: [u8; 32],
}

impl Macs {
    pub(crate) fn for_server(server: &PublicKey) -> Self {
        Self {
            mac1_key: derive(b"kcp-net mac1 v1", server),
            cookie_key: derive(b"kcp-net cookie v1", server),
        }
    }

    /// Writes mac1 into an initiation, over everything before it.
    pub(crate) fn put_mac1(&self, msg: &mut [u8; INITIATION_LEN]) {
        let m = mac(&self.mac1_key, &[&msg[..initiation::MAC1]]);
        msg[initiation::MAC1..initiation::MAC2].copy_from_slice(&m);
    }

    /// Whether an initiation's mac1 is right (constant time).
    pub(crate) fn mac1_ok(&self, msg: &[u8]) -> bool {
        msg.len() == INITIATION_LEN && {
            let m = mac(&self.mac1_key, &[&msg[..initiation::MAC1]]);
            m.ct_eq(&msg[initiation::MAC1..initiation::MAC2]).into()
        }
    }

    /// The cookie sealed for the client whose initiation carried `mac1`.
    pub(crate) fn seal_cookie(&self, cookie: [u8; 16], mac1: &[u8], nonce: [u8; 24]) -> [u8; 32] {
        let cipher = XChaCha20Poly1305::new(&self.cookie_key.into());
        let mut out = [0; 32];
        out[..16].copy_from_slice(&cookie);
        // 16 bytes cannot exceed the AEAD's limit.
        let tag = cipher
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), mac1, &mut out[..16])
            .unwrap_or_default();
        out[16..].copy_from_slice(&tag);
        out
    }

    /// The cookie in a cookie reply, if it was sealed for the initiation with `mac1`.
    pub(crate) fn open_cookie(&self, sealed: &[u8], mac1: &[u8], nonce: &[u8]) -> Option<[u8; 16]> {
        if sealed.len() != 32 || nonce.len() != 24 {
            return None;
        }
        let cipher = XChaCha20Poly1305::new(&self.cookie_key.into());
        let mut cookie = [0; 16];
        cookie.copy_from_slice(&sealed[..16]);
        cipher
            .decrypt_in_place_detached(
                XNonce::from_slice(nonce),
                mac1,
                &mut cookie,
                sealed[16..].into(),
            )
            .ok()?;
        Some(cookie)
    }
}

/// Writes mac2 (keyed by `cookie`) into an initiation, over everything before it.
pub(crate) fn put_mac2(msg: &mut [u8; INITIATION_LEN], cookie: &[u8; 16]) {
    let m = mac(cookie, &[&msg[..initiation::MAC2]]);
    msg[initiation::MAC2..].copy_from_slice(&m);
}

/// The server's side: the rotating secret, and the cookies it makes and checks.
#[derive(Debug)]
pub(crate) struct CookieJar {
    started: Instant,
    /// The period the current secret belongs to.
    period: u64,
    current: [u8; 32],
    previous: [u8; 32],
}

impl CookieJar {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            started: now,
            period: 0,
            current: rand::random(),
            previous: rand::random(),
        }
    }

    fn rotate(&mut self, now: Instant) {
        let period = now.saturating_duration_since(self.started).as_secs() / ROTATE.as_secs();
        if period == self.period {
            return;
        }
        self.previous = if period == self.period + 1 {
            self.current
        } else {
            rand::random()
        };
        self.current = rand::random();
        self.period = period;
    }

    fn cookie_in(secret: &[u8; 32], period: u64, addr: SocketAddr) -> [u8; 16] {
        let ip = match addr.ip() {
            IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
            IpAddr::V6(ip) => ip.octets(),
        };
        mac(
            secret,
            &[&period.to_le_bytes(), &ip, &addr.port().to_le_bytes()],
        )
    }

    /// The cookie for `addr` now.
    pub(crate) fn cookie(&mut self, now: Instant, addr: SocketAddr) -> [u8; 16] {
        self.rotate(now);
        Self::cookie_in(&self.current, self.period, addr)
    }

    /// Whether an initiation from `addr` carries a mac2 made with a cookie of this
    /// period or the one before (constant time in the comparison).
    pub(crate) fn mac2_ok(&mut self, now: Instant, addr: SocketAddr, msg: &[u8]) -> bool {
        if msg.len() != INITIATION_LEN {
            return false;
        }
        self.rotate(now);
        let given = &msg[initiation::MAC2..];
        let candidates = [
            (&self.current, self.period),
            (&self.previous, self.period.wrapping_sub(1)),
        ];
        let mut ok = subtle::Choice::from(0);
        for (secret, period) in candidates {
            let cookie = Self::cookie_in(secret, period, addr);
            ok |= mac(&cookie, &[&msg[..initiation::MAC2]]).ct_eq(given);
        }
        ok.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> [u8; INITIATION_LEN] {
        let mut m = [0u8; INITIATION_LEN];
        m[0] = 1;
        m[8..40].fill(0x5a);
        m
    }

    #[test]
    fn mac1_needs_the_servers_public_key() {
        let key = PublicKey::from_bytes([3; 32]);
        let macs = Macs::for_server(&key);
        let mut m = msg();
        macs.put_mac1(&mut m);
        assert!(macs.mac1_ok(&m));
        assert!(!Macs::for_server(&PublicKey::from_bytes([4; 32])).mac1_ok(&m));
        m[9] ^= 1;
        assert!(!macs.mac1_ok(&m), "mac1 covers the message");
        assert!(!macs.mac1_ok(&m[..100]));
    }

    #[test]
    fn a_cookie_works_from_its_address_for_one_to_two_periods() {
        let t0 = Instant::now();
        let mut jar = CookieJar::new(t0);
        let alice: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let eve: SocketAddr = "127.0.0.1:4001".parse().unwrap();
        let cookie = jar.cookie(t0, alice);
        let mut m = msg();
        put_mac2(&mut m, &cookie);
        assert!(jar.mac2_ok(t0, alice, &m));
        assert!(!jar.mac2_ok(t0, eve, &m), "another port");
        assert!(
            jar.mac2_ok(t0 + ROTATE + Duration::from_secs(1), alice, &m),
            "previous period"
        );
        assert!(
            !jar.mac2_ok(t0 + 2 * ROTATE + Duration::from_secs(1), alice, &m),
            "expired"
        );
        let mut zeros = msg();
        zeros[initiation::MAC2..].fill(0);
        assert!(!jar.mac2_ok(t0, alice, &zeros));
    }

    #[test]
    fn a_sealed_cookie_opens_only_for_the_initiation_it_answers() {
        let macs = Macs::for_server(&PublicKey::from_bytes([9; 32]));
        let sealed = macs.seal_cookie([1; 16], &[2; 16], [3; 24]);
        assert_eq!(macs.open_cookie(&sealed, &[2; 16], &[3; 24]), Some([1; 16]));
        assert_eq!(
            macs.open_cookie(&sealed, &[5; 16], &[3; 24]),
            None,
            "another mac1"
        );
        let mut bad = sealed;
        bad[0] ^= 1;
        assert_eq!(macs.open_cookie(&bad, &[2; 16], &[3; 24]), None);
        assert_eq!(macs.open_cookie(&sealed[..31], &[2; 16], &[3; 24]), None);
    }
}
