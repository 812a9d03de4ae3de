//! One direction's AEAD key: ChaCha20-Poly1305 or AES-256-GCM (agreed in the
//! handshake, [`Cipher`]) with an explicit 64-bit counter as its nonce (Noise's nonce
//! layout for each), sealing in place, and Noise's `REKEY`.
//!
//! The ciphers are `ring`'s. On this machine (AMD EPYC, x86-64 with AES-NI, PCLMULQDQ
//! and AVX2 but no VAES, so ring runs its AES-NI and CLMUL code) one 1,300-byte seal
//! takes about 0.5 µs with AES-256-GCM and 1.4 µs with ChaCha20-Poly1305, a 64-byte
//! one 0.2 µs and 0.4 µs; the RustCrypto crate that snow uses managed a third of
//! ring's ChaCha20 speed. The handshake stays snow's; only the
//! transport keys come here, through snow's raw split.

use ring::aead::{
    AES_256_GCM, Aad, Algorithm, CHACHA20_POLY1305, LessSafeKey, Nonce, Tag, UnboundKey,
};

/// Length of the tag that ends every sealed datagram (both ciphers).
pub(crate) const TAG_LEN: usize = 16;

/// The AEAD that seals a session's transport datagrams, agreed in the handshake: the
/// client offers both, its preference first, and the server takes the client's
/// preference. Both take the 32-byte keys the handshake makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cipher {
    /// ChaCha20-Poly1305 (RFC 8439): fast in software everywhere, and what every
    /// offer must contain.
    ChaCha20Poly1305,
    /// AES-256-GCM: two to three times faster where the CPU has AES and carry-less
    /// multiplication instructions (x86-64 AES-NI and PCLMULQDQ, ARMv8 AES and PMULL),
    /// much slower where it has not.
    Aes256Gcm,
}

impl Cipher {
    /// The faster of the two on this machine: AES-256-GCM when the CPU has the
    /// instructions for it, else ChaCha20-Poly1305 (the TLS clients' rule).
    pub fn fastest_here() -> Self {
        if aes_in_hardware() {
            Self::Aes256Gcm
        } else {
            Self::ChaCha20Poly1305
        }
    }

    /// Its byte in a handshake's offer and answer.
    pub(crate) const fn to_byte(self) -> u8 {
        match self {
            Self::ChaCha20Poly1305 => 1,
            Self::Aes256Gcm => 2,
        }
    }

    /// The cipher a byte of an offer or answer names, if we know it.
    pub(crate) const fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::ChaCha20Poly1305,
            2 => Self::Aes256Gcm,
            _ => return None,
        })
    }

    /// The client's offer: its preference, then the other (ChaCha20-Poly1305 is in
    /// every offer, so any two builds of this version agree on something).
    pub(crate) const fn offer(preferred: Self) -> [u8; 2] {
        match preferred {
            Self::ChaCha20Poly1305 => [1, 2],
            Self::Aes256Gcm => [2, 1],
        }
    }

    /// What the server takes from an offer: the first cipher it knows, if the offer
    /// holds ChaCha20-Poly1305 as every offer must.
    pub(crate) fn choose(offer: [u8; 2]) -> Option<Self> {
        if !offer.contains(&Self::ChaCha20Poly1305.to_byte()) {
            return None;
        }
        offer.into_iter().find_map(Self::from_byte)
    }

    fn algorithm(self) -> &'static Algorithm {
        match self {
            Self::ChaCha20Poly1305 => &CHACHA20_POLY1305,
            Self::Aes256Gcm => &AES_256_GCM,
        }
    }

    /// Noise's nonce for the counter: four zero bytes, then the counter,
    /// little-endian for ChaChaPoly and big-endian for AESGCM (Noise spec 12.3, 12.4).
    fn nonce(self, counter: u64) -> Nonce {
        let mut n = [0; 12];
        n[4..].copy_from_slice(&match self {
            Self::ChaCha20Poly1305 => counter.to_le_bytes(),
            Self::Aes256Gcm => counter.to_be_bytes(),
        });
        Nonce::assume_unique_for_key(n)
    }
}

impl std::fmt::Display for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ChaCha20Poly1305 => "ChaCha20-Poly1305",
            Self::Aes256Gcm => "AES-256-GCM",
        })
    }
}

/// Whether this CPU has the instructions that make AES-GCM fast and constant-time.
fn aes_in_hardware() -> bool {
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64")))]
    {
        false
    }
}

/// A transport key of one direction.
pub(crate) struct Key {
    key: LessSafeKey,
    cipher: Cipher,
    raw: [u8; 32],
}

impl Clone for Key {
    fn clone(&self) -> Self {
        Self::new(self.cipher, self.raw)
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({}, ..)", self.cipher)
    }
}

impl Key {
    pub(crate) fn new(cipher: Cipher, raw: [u8; 32]) -> Self {
        // A 32-byte key is what both ciphers take: this cannot fail.
        let unbound = UnboundKey::new(cipher.algorithm(), &raw)
            .unwrap_or_else(|_| unreachable!("both ciphers take 32-byte keys"));
        Self {
            key: LessSafeKey::new(unbound),
            cipher,
            raw,
        }
    }

    pub(crate) const fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// The key after this one: Noise's `REKEY(k)`, the first 32 bytes of
    /// `ENCRYPT(k, 2^64 - 1, "", zeros)` (Noise spec section 4.2). Both ends compute
    /// it from the key they share, so nothing about it travels.
    pub(crate) fn next(&self) -> Self {
        let mut block = [0; 32];
        // The tag is not part of the new key; sealing 32 bytes cannot fail.
        let nonce = self.cipher.nonce(u64::MAX);
        let _tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::empty(), &mut block);
        Self::new(self.cipher, block)
    }

    /// Encrypts `buf` in place under `counter` with `aad` authenticated; returns
    /// the tag.
    pub(crate) fn seal(&self, counter: u64, aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        // Fails only past the AEAD's input limit (2^38 bytes): a datagram is at most
        // 64 KiB.
        let mut out = [0; TAG_LEN];
        if let Ok(tag) =
            self.key
                .seal_in_place_separate_tag(self.cipher.nonce(counter), Aad::from(aad), buf)
        {
            out.copy_from_slice(tag.as_ref());
        }
        out
    }

    /// Decrypts `buf` in place if `tag` authenticates it with `aad` under `counter`.
    /// On failure the contents of `buf` are unspecified (`ring` zeroes them): callers
    /// open a copy.
    pub(crate) fn open(&self, counter: u64, aad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
        let Ok(tag) = <[u8; TAG_LEN]>::try_from(tag) else {
            return false;
        };
        let nonce = self.cipher.nonce(counter);
        self.key
            .open_in_place_separate_tag(nonce, Aad::from(aad), Tag::from(tag), buf, 0..)
            .is_ok()
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        // Best effort: the cipher's own copy is ring's to clear.
        self.raw = [0; 32];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: [Cipher; 2] = [Cipher::ChaCha20Poly1305, Cipher::Aes256Gcm];

    #[test]
    fn sealed_bytes_open_only_with_the_same_key_counter_and_aad() {
        for cipher in BOTH {
            sealed_bytes_open_only_with(cipher);
        }
    }

    fn sealed_bytes_open_only_with(cipher: Cipher) {
        let key = Key::new(cipher, [7; 32]);
        let mut buf = *b"hello, sealed world";
        let tag = key.seal(5, b"head", &mut buf);
        assert_ne!(&buf, b"hello, sealed world");
        let sealed = buf;
        // A failed open may spoil the buffer: each attempt opens a fresh copy.
        let fails = |counter, aad: &[u8], key: &Key, tag: &[u8]| {
            let mut copy = sealed;
            !key.open(counter, aad, &mut copy, tag)
        };
        assert!(fails(6, b"head", &key, &tag), "another counter");
        assert!(fails(5, b"hEad", &key, &tag), "another aad");
        assert!(
            fails(5, b"head", &Key::new(cipher, [8; 32]), &tag),
            "another key"
        );
        let other = BOTH.into_iter().find(|&c| c != cipher).unwrap();
        assert!(
            fails(5, b"head", &Key::new(other, [7; 32]), &tag),
            "another cipher"
        );
        let mut bad = tag;
        bad[0] ^= 1;
        assert!(fails(5, b"head", &key, &bad), "another tag");
        assert!(fails(5, b"head", &key, &tag[..15]), "a short tag");
        assert!(key.open(5, b"head", &mut buf, &tag));
        assert_eq!(&buf, b"hello, sealed world");
    }

    #[test]
    fn rekey_is_deterministic_and_gives_a_different_key() {
        for cipher in BOTH {
            let a = Key::new(cipher, [1; 32]);
            assert_eq!(a.next().raw, a.next().raw);
            assert_ne!(a.next().raw, a.raw);
            assert_ne!(a.next().next().raw, a.next().raw);
            assert_eq!(a.next().cipher(), cipher);
        }
        let chacha = Key::new(Cipher::ChaCha20Poly1305, [1; 32]).next().raw;
        assert_ne!(chacha, Key::new(Cipher::Aes256Gcm, [1; 32]).next().raw);
    }

    #[test]
    fn the_server_takes_the_clients_preference_and_every_offer_holds_chacha() {
        for preferred in BOTH {
            assert_eq!(Cipher::choose(Cipher::offer(preferred)), Some(preferred));
        }
        // A later version's cipher first: the next known one is taken.
        assert_eq!(Cipher::choose([9, 1]), Some(Cipher::ChaCha20Poly1305));
        assert_eq!(Cipher::choose([2, 2]), None, "no ChaCha20-Poly1305");
        assert_eq!(Cipher::choose([0, 0]), None);
        for c in BOTH {
            assert_eq!(Cipher::from_byte(c.to_byte()), Some(c));
        }
    }

    #[test]
    fn the_nonce_layouts_are_noises_for_each_cipher() {
        let le = Cipher::ChaCha20Poly1305.nonce(0x0102);
        let be = Cipher::Aes256Gcm.nonce(0x0102);
        assert_eq!(le.as_ref(), &[0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(be.as_ref(), &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
    }
}
