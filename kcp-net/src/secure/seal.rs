//! One direction's AEAD key: ChaCha20-Poly1305 with an explicit 64-bit counter as its
//! nonce (Noise's nonce layout), sealing in place, and Noise's `REKEY`.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};

/// Length of the Poly1305 tag that ends every sealed datagram.
pub(crate) const TAG_LEN: usize = 16;

/// A transport key of one direction.
#[derive(Clone)]
pub(crate) struct Key {
    cipher: ChaCha20Poly1305,
    raw: [u8; 32],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Noise's ChaChaPoly nonce: four zero bytes, then the counter little-endian.
fn nonce(counter: u64) -> Nonce {
    let mut n = [0; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::from(n)
}

impl Key {
    pub(crate) fn new(raw: [u8; 32]) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(&raw.into()),
            raw,
        }
    }

    /// The key after this one: Noise's `REKEY(k)`, the first 32 bytes of
    /// `ENCRYPT(k, 2^64 - 1, "", zeros)` (Noise spec section 4.2). Both ends compute
    /// it from the key they share, so nothing about it travels.
    pub(crate) fn next(&self) -> Self {
        let mut block = [0; 32];
        // Encrypting a buffer of this size cannot fail (the AEAD's limit is 2^38 bytes).
        let _tag = self
            .cipher
            .encrypt_in_place_detached(&nonce(u64::MAX), &[], &mut block);
        Self::new(block)
    }

    /// Encrypts `buf` in place under `counter` with `aad` authenticated; returns
    /// the tag.
    pub(crate) fn seal(&self, counter: u64, aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        // Fails only past 2^38 bytes: a datagram is at most 64 KiB.
        let tag = self
            .cipher
            .encrypt_in_place_detached(&nonce(counter), aad, buf)
            .unwrap_or_default();
        tag.into()
    }

    /// Decrypts `buf` in place if `tag` authenticates it with `aad` under `counter`.
    /// On failure `buf` is left as it was.
    pub(crate) fn open(&self, counter: u64, aad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
        let Ok(tag) = <[u8; TAG_LEN]>::try_from(tag) else {
            return false;
        };
        self.cipher
            .decrypt_in_place_detached(&nonce(counter), aad, buf, &Tag::from(tag))
            .is_ok()
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        // Best effort: the cipher's own copy is the crate's to clear.
        self.raw = [0; 32];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_open_only_with_the_same_key_counter_and_aad() {
        let key = Key::new([7; 32]);
        let mut buf = *b"hello, sealed world";
        let tag = key.seal(5, b"head", &mut buf);
        assert_ne!(&buf, b"hello, sealed world");
        let sealed = buf;
        assert!(!key.open(6, b"head", &mut buf, &tag), "another counter");
        assert_eq!(buf, sealed, "a failed open leaves the bytes");
        assert!(!key.open(5, b"hEad", &mut buf, &tag), "another aad");
        assert!(
            !Key::new([8; 32]).open(5, b"head", &mut buf, &tag),
            "another key"
        );
        let mut bad = tag;
        bad[0] ^= 1;
        assert!(!key.open(5, b"head", &mut buf, &bad), "another tag");
        assert!(!key.open(5, b"head", &mut buf, &tag[..15]), "a short tag");
        assert!(key.open(5, b"head", &mut buf, &tag));
        assert_eq!(&buf, b"hello, sealed world");
    }

    #[test]
    fn rekey_is_deterministic_and_gives_a_different_key() {
        let a = Key::new([1; 32]);
        assert_eq!(a.next().raw, a.next().raw);
        assert_ne!(a.next().raw, a.raw);
        assert_ne!(a.next().next().raw, a.next().raw);
    }
}
