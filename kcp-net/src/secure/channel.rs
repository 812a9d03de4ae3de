//! `SecureChannel`: the keys of one established session, sealing what we send and
//! opening what we receive, with the replay window and rekeying.

use std::time::{Duration, Instant};

use kcp_core::Transmit;

use super::handshake::Established;
use super::replay::{ReplayWindow, Stale};
use super::seal::{Key, TAG_LEN};
use super::wire::{self, Inner, Kind, TRANSPORT_OVERHEAD, transport};

/// When a sending key is replaced by the next one (Noise's `REKEY`, computed by both
/// ends, so nothing travels and nothing stops): after this many bytes or this long,
/// whichever comes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RekeyPolicy {
    /// Bytes sealed under one key. Default 1 GiB.
    pub after_bytes: u64,
    /// Time under one key. Default 2 minutes (WireGuard's `REKEY_AFTER_TIME`).
    pub after: Duration,
}

impl Default for RekeyPolicy {
    fn default() -> Self {
        Self {
            after_bytes: 1 << 30,
            after: Duration::from_secs(120),
        }
    }
}

/// How many key epochs ahead of ours a datagram may be and still be opened (each
/// costs one `REKEY` to try, so a forged epoch costs at most this many).
const MAX_EPOCH_JUMP: u8 = 8;

/// Why a datagram was dropped by the secure receive path. None of these changes any
/// state but its counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Too short, or not a transport datagram.
    #[error("not a sealed datagram")]
    Malformed,
    /// It names another session's index.
    #[error("sealed for another session")]
    Foreign,
    /// Its key epoch is neither ours, the one before, nor one of the next two.
    #[error("sealed under an unknown key epoch")]
    UnknownEpoch,
    /// The tag does not verify (tampered, truncated, or not sealed by our peer).
    #[error("its seal does not verify")]
    Tampered,
    /// Its counter was accepted before.
    #[error("replayed")]
    Replayed,
    /// Its counter is older than the replay window.
    #[error("older than the replay window")]
    TooOld,
    /// Authentic, but its inner kind is unknown or its body malformed.
    #[error("authentic but of an unknown kind")]
    UnknownInner,
}

/// Counters of a secure conversation's receive path and keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecureCounters {
    /// Datagrams that opened (authentic and fresh).
    pub opened: u64,
    /// Dropped: not a sealed datagram.
    pub malformed: u64,
    /// Dropped: another session's index.
    pub foreign: u64,
    /// Dropped: unknown key epoch.
    pub unknown_epoch: u64,
    /// Dropped: the seal did not verify.
    pub tampered: u64,
    /// Dropped: replayed.
    pub replayed: u64,
    /// Dropped: older than the replay window.
    pub too_old: u64,
    /// Dropped: authentic but of an unknown kind.
    pub unknown_inner: u64,
    /// Our sending key was replaced.
    pub rekeys_sent: u64,
    /// The peer's sending key was replaced (we followed).
    pub rekeys_received: u64,
}

impl SecureCounters {
    fn count(&mut self, e: OpenError) {
        *match e {
            OpenError::Malformed => &mut self.malformed,
            OpenError::Foreign => &mut self.foreign,
            OpenError::UnknownEpoch => &mut self.unknown_epoch,
            OpenError::Tampered => &mut self.tampered,
            OpenError::Replayed => &mut self.replayed,
            OpenError::TooOld => &mut self.too_old,
            OpenError::UnknownInner => &mut self.unknown_inner,
        } += 1;
    }
}

/// A datagram that opened.
#[derive(Debug)]
pub(crate) struct Opened<'a> {
    pub(crate) inner: Inner,
    pub(crate) body: &'a [u8],
    /// Its counter is the newest accepted so far (only such a datagram may move the
    /// session to a new address).
    pub(crate) newest: bool,
}

/// The keys of one session and what guards them.
#[derive(Debug)]
pub(crate) struct SecureChannel {
    local_index: u32,
    peer_index: u32,
    send_key: Key,
    send_epoch: u8,
    next_counter: u64,
    epoch_bytes: u64,
    epoch_started: Instant,
    recv_key: Key,
    recv_epoch: u8,
    recv_previous: Option<Key>,
    replay: ReplayWindow,
    rekey: RekeyPolicy,
    /// The plaintext of the last datagram opened.
    plain: Vec<u8>,
    counters: SecureCounters,
}

impl SecureChannel {
    pub(crate) fn new(established: Established, rekey: RekeyPolicy, now: Instant) -> Self {
        Self {
            local_index: established.local_index,
            peer_index: established.peer_index,
            send_key: established.send,
            send_epoch: 0,
            next_counter: 0,
            epoch_bytes: 0,
            epoch_started: now,
            recv_key: established.recv,
            recv_epoch: 0,
            recv_previous: None,
            replay: ReplayWindow::new(),
            rekey,
            plain: Vec::new(),
            counters: SecureCounters::default(),
        }
    }

    pub(crate) const fn local_index(&self) -> u32 {
        self.local_index
    }

    /// The cipher both directions use (the handshake agreed it).
    pub(crate) const fn cipher(&self) -> super::Cipher {
        self.send_key.cipher()
    }

    pub(crate) const fn rekey_policy(&self) -> RekeyPolicy {
        self.rekey
    }

    pub(crate) const fn counters(&self) -> &SecureCounters {
        &self.counters
    }

    /// What opening a datagram may change (the key epoch, the replay window, the
    /// counts of opened datagrams and of rekeys followed): equal before and after a
    /// refused datagram.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn receive_state(&self) -> (u8, ReplayWindow, u64, u64) {
        (
            self.recv_epoch,
            self.replay.clone(),
            self.counters.opened,
            self.counters.rekeys_received,
        )
    }

    /// Opens a transport datagram. On any error nothing changes but the counter.
    pub(crate) fn open(&mut self, datagram: &[u8]) -> Result<Opened<'_>, OpenError> {
        match self.try_open(datagram) {
            Ok((inner, newest)) => {
                self.counters.opened += 1;
                Ok(Opened {
                    inner,
                    body: &self.plain[1..],
                    newest,
                })
            }
            Err(e) => {
                self.counters.count(e);
                Err(e)
            }
        }
    }

    fn try_open(&mut self, datagram: &[u8]) -> Result<(Inner, bool), OpenError> {
        let receiver = wire::transport_receiver(datagram).ok_or(OpenError::Malformed)?;
        if receiver != self.local_index {
            return Err(OpenError::Foreign);
        }
        let counter = wire::u64_at(datagram, transport::COUNTER).ok_or(OpenError::Malformed)?;
        self.replay.is_fresh(counter).map_err(|s| match s {
            Stale::Replayed => OpenError::Replayed,
            Stale::TooOld => OpenError::TooOld,
        })?;
        let (aad, rest) = datagram.split_at(transport::HEADER_LEN);
        let (sealed, tag) = rest.split_at(rest.len() - TAG_LEN);
        let epoch = datagram[transport::EPOCH];
        let ahead = epoch.wrapping_sub(self.recv_epoch);
        self.plain.clear();
        self.plain.extend_from_slice(sealed);
        // The key for this epoch: ours, the one before (stragglers across a rekey),
        // or one of the next few (the peer rekeyed, perhaps more than once while we
        // heard nothing of it; we follow once one verifies).
        let next;
        let key = match ahead {
            0 => &self.recv_key,
            255 => self.recv_previous.as_ref().ok_or(OpenError::UnknownEpoch)?,
            1..=MAX_EPOCH_JUMP => {
                let mut k = self.recv_key.next();
                for _ in 1..ahead {
                    k = k.next();
                }
                next = k;
                &next
            }
            _ => return Err(OpenError::UnknownEpoch),
        };
        if !key.open(counter, aad, &mut self.plain, tag) {
            return Err(OpenError::Tampered);
        }
        let inner = self
            .plain
            .first()
            .and_then(|&b| Inner::from_byte(b))
            .ok_or(OpenError::UnknownInner)?;
        if (1..=MAX_EPOCH_JUMP).contains(&ahead) {
            let mut previous = self.recv_key.clone();
            for _ in 1..ahead {
                previous = previous.next();
            }
            self.recv_key = previous.next();
            self.recv_previous = Some(previous);
            self.recv_epoch = epoch;
            self.counters.rekeys_received += u64::from(ahead);
        }
        let newest = self.replay.mark(counter);
        Ok((inner, newest))
    }

    /// Seals `body` as an `inner` datagram into `out` (one datagram: the sink's
    /// `buffer` then `commit`).
    pub(crate) fn seal_into<T: Transmit<Buf = Vec<u8>>>(
        &mut self,
        now: Instant,
        inner: Inner,
        body: &[u8],
        out: &mut T,
    ) -> Result<(), T::Error> {
        self.maybe_rekey(now);
        let counter = self.next_counter;
        self.next_counter += 1;
        let total = body.len() + TRANSPORT_OVERHEAD;
        self.epoch_bytes += total as u64;
        let buf = out.buffer(total);
        let start = buf.len();
        buf.push(Kind::Transport as u8);
        buf.push(self.send_epoch);
        buf.extend_from_slice(&self.peer_index.to_le_bytes());
        buf.extend_from_slice(&counter.to_le_bytes());
        buf.push(inner as u8);
        buf.extend_from_slice(body);
        let (head, plain) = buf[start..].split_at_mut(transport::HEADER_LEN);
        let tag = self.send_key.seal(counter, head, plain);
        buf.extend_from_slice(&tag);
        out.commit(total)
    }

    fn maybe_rekey(&mut self, now: Instant) {
        let due = self.epoch_bytes >= self.rekey.after_bytes
            || now.saturating_duration_since(self.epoch_started) >= self.rekey.after;
        if due {
            self.send_key = self.send_key.next();
            self.send_epoch = self.send_epoch.wrapping_add(1);
            self.epoch_bytes = 0;
            self.epoch_started = now;
            self.counters.rekeys_sent += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secure::seal::{Cipher, Key};

    fn pair(rekey: RekeyPolicy, now: Instant) -> (SecureChannel, SecureChannel) {
        let a_to_b = [1; 32];
        let b_to_a = [2; 32];
        let a = Established {
            local_index: 10,
            peer_index: 20,
            send: Key::new(Cipher::Aes256Gcm, a_to_b),
            recv: Key::new(Cipher::Aes256Gcm, b_to_a),
            conv: 1,
        };
        let b = Established {
            local_index: 20,
            peer_index: 10,
            send: Key::new(Cipher::Aes256Gcm, b_to_a),
            recv: Key::new(Cipher::Aes256Gcm, a_to_b),
            conv: 1,
        };
        (
            SecureChannel::new(a, rekey, now),
            SecureChannel::new(b, rekey, now),
        )
    }

    fn seal(ch: &mut SecureChannel, now: Instant, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        ch.seal_to_vec(now, Inner::Datagram, body, &mut out);
        out
    }

    impl SecureChannel {
        fn seal_to_vec(&mut self, now: Instant, inner: Inner, body: &[u8], out: &mut Vec<u8>) {
            struct One<'a>(&'a mut Vec<u8>);
            impl Transmit for One<'_> {
                type Error = std::convert::Infallible;
                type Buf = Vec<u8>;
                fn buffer(&mut self, _room: usize) -> &mut Vec<u8> {
                    self.0
                }
                fn commit(&mut self, _len: usize) -> Result<(), Self::Error> {
                    Ok(())
                }
            }
            let Ok(()) = self.seal_into(now, inner, body, &mut One(out));
        }
    }

    #[test]
    fn a_sealed_datagram_opens_once_and_every_alteration_is_dropped() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(RekeyPolicy::default(), t0);
        let d = seal(&mut a, t0, b"hi");
        assert_eq!(d.len(), 2 + TRANSPORT_OVERHEAD);
        for i in 0..d.len() {
            let mut bad = d.clone();
            bad[i] ^= 0x40;
            let e = b.open(&bad).unwrap_err();
            assert!(
                matches!(
                    e,
                    OpenError::Tampered
                        | OpenError::Foreign
                        | OpenError::Malformed
                        | OpenError::UnknownEpoch
                ),
                "byte {i}: {e:?}"
            );
        }
        assert_eq!(b.open(&d[..d.len() - 1]).unwrap_err(), OpenError::Tampered);
        let opened = b.open(&d).unwrap();
        assert_eq!(
            (opened.inner, opened.body, opened.newest),
            (Inner::Datagram, &b"hi"[..], true)
        );
        assert_eq!(b.open(&d).unwrap_err(), OpenError::Replayed);
        assert_eq!(b.counters().opened, 1);
        assert_eq!(b.counters().replayed, 1);
    }

    #[test]
    fn rekeying_by_volume_goes_on_without_a_gap_and_stragglers_still_open() {
        let t0 = Instant::now();
        let policy = RekeyPolicy {
            after_bytes: 1000,
            after: Duration::from_secs(3600),
        };
        let (mut a, mut b) = pair(policy, t0);
        let sealed: Vec<Vec<u8>> = (0..100)
            .map(|i| seal(&mut a, t0, &[i as u8; 100]))
            .collect();
        assert!(a.counters().rekeys_sent >= 10);
        // Delivered with each straggler one behind: the previous key still opens it.
        for pair in sealed.chunks(2) {
            if let [x, y] = pair {
                assert!(b.open(y).is_ok());
                assert!(b.open(x).is_ok());
            }
        }
        assert_eq!(b.counters().opened, 100);
        assert!(b.counters().rekeys_received >= 10);
    }

    #[test]
    fn rekeying_by_time_is_followed_across_a_lost_epoch() {
        let t0 = Instant::now();
        let policy = RekeyPolicy {
            after_bytes: u64::MAX,
            after: Duration::from_secs(10),
        };
        let (mut a, mut b) = pair(policy, t0);
        assert!(b.open(&seal(&mut a, t0, b"0")).is_ok());
        let _lost = seal(&mut a, t0 + Duration::from_secs(10), b"1");
        let d = seal(&mut a, t0 + Duration::from_secs(20), b"2");
        assert_eq!(a.counters().rekeys_sent, 2);
        assert!(b.open(&d).is_ok(), "two epochs ahead is followed");
        for s in 3..11 {
            let _lost = seal(&mut a, t0 + Duration::from_secs(10 * s), b"lost");
        }
        let far = seal(&mut a, t0 + Duration::from_secs(110), b"far");
        assert_eq!(b.open(&far).unwrap_err(), OpenError::UnknownEpoch);
    }

    #[test]
    fn a_datagram_for_another_index_is_foreign() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(RekeyPolicy::default(), t0);
        let mut d = seal(&mut a, t0, b"x");
        d[transport::RECEIVER] ^= 1;
        assert_eq!(b.open(&d).unwrap_err(), OpenError::Foreign);
        assert_eq!(b.open(&[5; 10]).unwrap_err(), OpenError::Malformed);
    }
}
