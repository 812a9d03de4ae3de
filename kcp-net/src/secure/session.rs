//! `SecureSession`: what a secure conversation holds beyond its keys: the inner
//! kinds that are not KCP (unreliable datagrams, ping and pong, close), and the
//! validation of a new path after the peer moved.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kcp_core::Transmit;

use super::channel::{OpenError, RekeyPolicy, SecureChannel, SecureCounters};
use super::wire::{Inner, TRANSPORT_OVERHEAD};
use crate::lifecycle::CloseReason;

/// Unreliable datagrams received and not yet taken, at most; more are dropped
/// (counted in `datagrams_dropped`).
pub const MAX_DATAGRAMS_IN: usize = 256;

/// Unreliable datagrams queued and not yet sent, at most; a send beyond it is refused.
pub const MAX_DATAGRAMS_OUT: usize = 256;

/// How long a path challenge waits for its answer before it is sent again.
const CHALLENGE_RETRY: Duration = Duration::from_millis(500);

/// The bytes of a close's text that travel, at most.
pub const MAX_CLOSE_TEXT: usize = 200;

/// How the peer said it closed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerClose {
    /// Its reason, as far as we know the code (`None`: a code of a newer version).
    pub reason: Option<CloseReason>,
    /// The code on the wire.
    pub code: u16,
    /// Its words (at most [`MAX_CLOSE_TEXT`] bytes).
    pub text: String,
}

/// Why an unreliable datagram was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DatagramError {
    /// Larger than one sealed datagram can carry.
    #[error("a datagram of {len} bytes is larger than the {max} bytes one can carry")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit ([`Conversation::max_datagram_size`](crate::Conversation::max_datagram_size)).
        max: usize,
    },
    /// [`MAX_DATAGRAMS_OUT`] are already waiting.
    #[error("{MAX_DATAGRAMS_OUT} datagrams are already waiting to be sent")]
    Full,
    /// Raw KCP has no unreliable channel (only the secure wire mode has).
    #[error("unreliable datagrams need the secure wire mode")]
    NotSecure,
    /// The conversation is closing.
    #[error("the conversation is closing")]
    Closed,
}

/// A datagram that opened, as the conversation sees it.
#[derive(Debug)]
pub(crate) enum Delivered<'a> {
    /// A KCP datagram for the engine.
    Kcp(&'a [u8]),
    /// Handled here (datagram queued, ping answered, pong or close noted).
    Handled,
}

/// The codes of [`CloseReason`]s on the wire.
const CLOSE_CODES: [(CloseReason, u16); 9] = [
    (CloseReason::Local, 1),
    (CloseReason::Shutdown, 2),
    (CloseReason::IdleTimeout, 3),
    (CloseReason::PeerGone, 4),
    (CloseReason::DeadLink, 5),
    (CloseReason::HandlerPanicked, 6),
    (CloseReason::Unconfirmed, 7),
    (CloseReason::Evicted, 8),
    (CloseReason::SlowConsumer, 9),
];

fn close_code(reason: CloseReason) -> u16 {
    CLOSE_CODES
        .iter()
        .find(|(r, _)| *r == reason)
        .map_or(0, |&(_, c)| c)
}

fn close_reason(code: u16) -> Option<CloseReason> {
    CLOSE_CODES
        .iter()
        .find(|&&(_, c)| c == code)
        .map(|&(r, _)| r)
}

/// The secure part of a conversation.
#[derive(Debug)]
pub(crate) struct SecureSession {
    channel: SecureChannel,
    mtu: usize,
    datagrams_in: VecDeque<Bytes>,
    datagrams_out: VecDeque<Bytes>,
    pongs_owed: VecDeque<[u8; 8]>,
    /// The path challenge in flight after a move: its bytes and when it was sent.
    challenge: Option<([u8; 8], Option<Instant>)>,
    /// An outstanding ping of ours and when it left.
    ping: Option<([u8; 8], Instant)>,
    ping_due: bool,
    last_rtt: Option<Duration>,
    /// Our close, queued to leave with the next output.
    close_out: Option<(u16, String)>,
    peer_close: Option<PeerClose>,
    datagrams_dropped: u64,
    /// Engine output waiting to be sealed.
    scratch: Vec<u8>,
}

impl SecureSession {
    pub(crate) fn new(channel: SecureChannel, mtu: usize) -> Self {
        Self {
            channel,
            mtu,
            datagrams_in: VecDeque::new(),
            datagrams_out: VecDeque::new(),
            pongs_owed: VecDeque::new(),
            challenge: None,
            ping: None,
            ping_due: false,
            last_rtt: None,
            close_out: None,
            peer_close: None,
            datagrams_dropped: 0,
            scratch: Vec::new(),
        }
    }

    pub(crate) const fn counters(&self) -> &SecureCounters {
        self.channel.counters()
    }

    pub(crate) const fn rekey_policy(&self) -> RekeyPolicy {
        self.channel.rekey_policy()
    }

    pub(crate) const fn cipher(&self) -> super::Cipher {
        self.channel.cipher()
    }

    pub(crate) const fn local_index(&self) -> u32 {
        self.channel.local_index()
    }

    pub(crate) const fn datagrams_dropped(&self) -> u64 {
        self.datagrams_dropped
    }

    pub(crate) const fn last_rtt(&self) -> Option<Duration> {
        self.last_rtt
    }

    pub(crate) const fn peer_close(&self) -> Option<&PeerClose> {
        self.peer_close.as_ref()
    }

    /// The largest unreliable datagram one sealed datagram carries.
    pub(crate) const fn max_datagram_size(&self) -> usize {
        self.mtu - TRANSPORT_OVERHEAD
    }

    /// Opens a datagram and handles what is not KCP. Returns what it was and whether
    /// it is the newest so far.
    pub(crate) fn open(
        &mut self,
        now: Instant,
        datagram: &[u8],
    ) -> Result<(Delivered<'_>, bool), OpenError> {
        let opened = self.channel.open(datagram)?;
        let newest = opened.newest;
        let body = opened.body;
        match opened.inner {
            Inner::Kcp => return Ok((Delivered::Kcp(body), newest)),
            Inner::Datagram => {
                if self.datagrams_in.len() >= MAX_DATAGRAMS_IN {
                    self.datagrams_dropped += 1;
                } else {
                    self.datagrams_in.push_back(Bytes::copy_from_slice(body));
                }
            }
            Inner::Ping => {
                if let Ok(id) = <[u8; 8]>::try_from(body) {
                    if self.pongs_owed.len() < 8 {
                        self.pongs_owed.push_back(id);
                    }
                }
            }
            Inner::Pong => {
                if let Ok(id) = <[u8; 8]>::try_from(body) {
                    if self.challenge.is_some_and(|(c, _)| c == id) {
                        self.challenge = None;
                    }
                    if let Some((_, sent)) = self.ping.filter(|(p, _)| *p == id) {
                        self.last_rtt = Some(now.saturating_duration_since(sent));
                        self.ping = None;
                    }
                }
            }
            Inner::Close => {
                if self.peer_close.is_none() && body.len() >= 2 {
                    let code = u16::from_le_bytes([body[0], body[1]]);
                    let text =
                        String::from_utf8_lossy(&body[2..body.len().min(2 + MAX_CLOSE_TEXT)]);
                    self.peer_close = Some(PeerClose {
                        reason: close_reason(code),
                        code,
                        text: text.into_owned(),
                    });
                }
            }
        }
        Ok((Delivered::Handled, newest))
    }

    /// Queues an unreliable datagram.
    pub(crate) fn queue_datagram(&mut self, datagram: Bytes) -> Result<(), DatagramError> {
        let max = self.max_datagram_size();
        if datagram.len() > max {
            return Err(DatagramError::TooLarge {
                len: datagram.len(),
                max,
            });
        }
        if self.datagrams_out.len() >= MAX_DATAGRAMS_OUT {
            return Err(DatagramError::Full);
        }
        self.datagrams_out.push_back(datagram);
        Ok(())
    }

    pub(crate) fn recv_datagram(&mut self) -> Option<Bytes> {
        self.datagrams_in.pop_front()
    }

    /// Sends a ping at the next output; its pong gives [`last_rtt`](Self::last_rtt).
    pub(crate) fn ping(&mut self, now: Instant) {
        self.ping = Some((rand::random(), now));
        self.ping_due = true;
    }

    /// The peer moved: its new path must answer a challenge before it is trusted.
    pub(crate) fn challenge_path(&mut self) {
        self.challenge = Some((rand::random(), None));
    }

    /// Whether the current path answered (or never needed to).
    pub(crate) const fn path_validated(&self) -> bool {
        self.challenge.is_none()
    }

    /// When the path challenge is due again.
    pub(crate) fn challenge_deadline(&self) -> Option<Instant> {
        match self.challenge? {
            (_, Some(sent)) => Some(sent + CHALLENGE_RETRY),
            (_, None) => None,
        }
    }

    /// Queues our close (once).
    pub(crate) fn announce_close(&mut self, reason: CloseReason, text: &str) {
        if self.close_out.is_none() && self.peer_close.is_none() {
            let mut end = text.len().min(MAX_CLOSE_TEXT);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            self.close_out = Some((close_code(reason), text[..end].to_owned()));
        }
    }

    /// Whether anything but KCP waits to be sent.
    pub(crate) fn has_control(&self, now: Instant) -> bool {
        !self.pongs_owed.is_empty()
            || !self.datagrams_out.is_empty()
            || self.close_out.is_some()
            || self.ping_due
            || self
                .challenge
                .is_some_and(|(_, sent)| sent.is_none_or(|at| now >= at + CHALLENGE_RETRY))
    }

    /// Seals what is not KCP into `out`: pongs, a path challenge, a ping, datagrams,
    /// and a close (last, sent twice).
    pub(crate) fn emit_control<T: Transmit<Buf = Vec<u8>>>(
        &mut self,
        now: Instant,
        out: &mut T,
    ) -> Result<(), T::Error> {
        while let Some(id) = self.pongs_owed.pop_front() {
            self.channel.seal_into(now, Inner::Pong, &id, out)?;
        }
        if let Some((id, sent)) = &mut self.challenge {
            if sent.is_none_or(|at| now >= at + CHALLENGE_RETRY) {
                *sent = Some(now);
                let id = *id;
                self.channel.seal_into(now, Inner::Ping, &id, out)?;
            }
        }
        if self.ping_due {
            self.ping_due = false;
            if let Some((id, _)) = self.ping {
                self.channel.seal_into(now, Inner::Ping, &id, out)?;
            }
        }
        while let Some(d) = self.datagrams_out.pop_front() {
            self.channel.seal_into(now, Inner::Datagram, &d, out)?;
        }
        if let Some((code, text)) = self.close_out.take() {
            let mut body = Vec::with_capacity(2 + text.len());
            body.extend_from_slice(&code.to_le_bytes());
            body.extend_from_slice(text.as_bytes());
            // Twice: a close is not retransmitted, and one loss should not cost the
            // peer its whole timeout.
            self.channel.seal_into(now, Inner::Close, &body, out)?;
            self.channel.seal_into(now, Inner::Close, &body, out)?;
        }
        Ok(())
    }

    /// A sink that seals each KCP datagram written to it into `inner`.
    pub(crate) fn sealing<'a, T>(&'a mut self, now: Instant, inner: &'a mut T) -> Sealing<'a, T> {
        self.scratch.clear();
        Sealing {
            channel: &mut self.channel,
            scratch: &mut self.scratch,
            now,
            inner,
        }
    }
}

/// Seals each KCP datagram the engine writes (into a scratch buffer) into the sink
/// underneath.
#[derive(Debug)]
pub(crate) struct Sealing<'a, T> {
    channel: &'a mut SecureChannel,
    scratch: &'a mut Vec<u8>,
    now: Instant,
    inner: &'a mut T,
}

impl<T: Transmit<Buf = Vec<u8>>> Transmit for Sealing<'_, T> {
    type Error = T::Error;
    type Buf = Vec<u8>;

    fn buffer(&mut self, room: usize) -> &mut Vec<u8> {
        // The engine may ask again while it builds one datagram: keep what it wrote.
        self.scratch.reserve(room);
        self.scratch
    }

    fn commit(&mut self, len: usize) -> Result<(), T::Error> {
        let start = self.scratch.len().saturating_sub(len);
        let result =
            self.channel
                .seal_into(self.now, Inner::Kcp, &self.scratch[start..], self.inner);
        self.scratch.clear();
        result
    }
}
