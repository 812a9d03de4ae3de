//! `ClientHandshake`: the client's side of the secure handshake, sans-IO: when to
//! send (and resend) the initiation, what each answer means, and the conversation it
//! ends in.

use std::time::{Duration, Instant};

use super::handshake::{FIRST_RETRY, Initiator, Reply};
use super::wire::{RejectReason, VERSION};
use super::{ClientSecurity, HandshakeError, SecureChannel};
use crate::config::ConversationConfig;
use crate::conversation::Conversation;
use crate::error::NetError;

/// The longest wait between two initiations.
const MAX_RETRY: Duration = Duration::from_secs(1);

/// A secure handshake in progress, driven by its caller (as [`Conversation`] is):
/// send what [`poll_transmit`](Self::poll_transmit) gives, feed every datagram from
/// the server to [`handle`](Self::handle) until it returns the conversation, and
/// come back at [`next_deadline`](Self::next_deadline).
///
/// The initiation is sent again after 250 ms, then after twice as long each time
/// (at most 1 s), until the handshake timeout.
///
/// # Example
///
/// ```no_run
/// use std::time::Instant;
/// use kcp_net::secure::{ClientHandshake, ClientSecurity, PublicKey};
/// use kcp_net::{ConversationConfig, Preset};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let key: PublicKey = "ZBtWkHCVO0z3DHv6nFPDXDnQX7cFOx3wNPnNfOOUkCk=".parse()?;
/// let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
/// socket.connect("127.0.0.1:4000")?;
/// let config = ConversationConfig::new(Preset::Fast);
/// let mut handshake = ClientHandshake::new(ClientSecurity::new(key), 7, config, Instant::now())?;
/// let mut buf = [0; 1500];
/// let conversation = loop {
///     let now = Instant::now();
///     handshake.check_timeout(now)?;
///     if let Some(initiation) = handshake.poll_transmit(now) {
///         socket.send(initiation)?;
///     }
///     socket.set_read_timeout(Some(handshake.next_deadline().saturating_duration_since(now).max(std::time::Duration::from_millis(1))))?;
///     if let Ok(n) = socket.recv(&mut buf) {
///         if let Some(conversation) = handshake.handle(Instant::now(), &buf[..n])? {
///             break conversation;
///         }
///     }
/// };
/// # let _ = conversation;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ClientHandshake {
    security: ClientSecurity,
    config: ConversationConfig,
    conv: u32,
    attempt: Initiator,
    retry: Duration,
    send_at: Instant,
    deadline: Instant,
    sent: u64,
}

impl ClientHandshake {
    /// Starts a handshake for conversation `conv` at `now`.
    ///
    /// # Errors
    /// [`NetError::Setting`] if the pinned key is unusable, or `config` is invalid.
    pub fn new(
        security: ClientSecurity,
        conv: u32,
        config: ConversationConfig,
        now: Instant,
    ) -> Result<Self, NetError> {
        config.validate()?;
        let attempt = Self::attempt(&security, conv)?;
        Ok(Self {
            deadline: now + security.handshake_timeout,
            security,
            config,
            conv,
            attempt,
            retry: FIRST_RETRY,
            send_at: now,
            sent: 0,
        })
    }

    fn attempt(security: &ClientSecurity, conv: u32) -> Result<Initiator, NetError> {
        Initiator::new(
            &security.server_key,
            security.psk.as_ref(),
            conv,
            random_index(),
            security.cipher,
        )
        .map_err(|_| NetError::Setting("the server key is not a usable X25519 key"))
    }

    /// The initiation, if one is due at `now` (the first at once, then each retry).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<&[u8]> {
        if now < self.send_at || now >= self.deadline {
            return None;
        }
        self.send_at = now + self.retry;
        self.retry = (self.retry * 2).min(MAX_RETRY);
        self.sent += 1;
        Some(self.attempt.initiation(now))
    }

    /// The index the server's replies to this handshake name
    /// ([`receiver_index`](super::receiver_index)): random, and new if the attempt
    /// had to start again (a forged response spoiled it), so ask again after each
    /// [`handle`](Self::handle). The conversation keeps it as its
    /// [`local_index`](Conversation::local_index).
    pub const fn sender_index(&self) -> u32 {
        self.attempt.sender_index()
    }

    /// Initiations sent so far.
    pub const fn initiations_sent(&self) -> u64 {
        self.sent
    }

    /// When to come back if nothing arrives: the next retry or the timeout.
    pub fn next_deadline(&self) -> Instant {
        self.send_at.min(self.deadline)
    }

    /// Fails once the handshake timeout has passed.
    ///
    /// # Errors
    /// [`HandshakeError::CookieTimeout`] if the server asked for a cookie and then
    /// went silent, else [`HandshakeError::Timeout`].
    pub fn check_timeout(&self, now: Instant) -> Result<(), HandshakeError> {
        if now < self.deadline {
            return Ok(());
        }
        let timeout = self.security.handshake_timeout;
        Err(if self.attempt.has_cookie() {
            HandshakeError::CookieTimeout(timeout)
        } else {
            HandshakeError::Timeout(timeout)
        })
    }

    /// Takes a datagram from the server. Returns the conversation once the handshake
    /// is done; datagrams that are not for it are ignored.
    ///
    /// # Errors
    /// The server's reject as a [`HandshakeError`] (in a [`NetError::Handshake`]).
    pub fn handle(
        &mut self,
        now: Instant,
        datagram: &[u8],
    ) -> Result<Option<Conversation>, NetError> {
        match self.attempt.handle(now, datagram) {
            Reply::Established(established) => {
                let channel = SecureChannel::new(*established, self.security.rekey, now);
                let mut conversation =
                    Conversation::secure(self.conv, self.config.clone(), channel, None, now)?;
                // A first sealed datagram at once: it proves our address to the server
                // (which until then sends at most 3x what we sent) and measures the RTT.
                conversation.ping(now);
                Ok(Some(conversation))
            }
            Reply::Cookie => {
                // Prove the address at once.
                self.send_at = now;
                Ok(None)
            }
            Reply::Rejected {
                reason,
                server_version,
                server_key,
            } => Err(match reason {
                RejectReason::Version => HandshakeError::VersionMismatch {
                    ours: VERSION,
                    server: server_version,
                },
                RejectReason::WrongKey => HandshakeError::WrongServerKey {
                    pinned: self.security.server_key,
                    offered: server_key,
                },
                RejectReason::HandshakeFailed => HandshakeError::PskMismatch,
                RejectReason::Full => HandshakeError::ServerFull,
            }
            .into()),
            Reply::Ignored if self.attempt.is_spoiled() => {
                let cookie = self.attempt.take_cookie();
                self.attempt = Self::attempt(&self.security, self.conv)?.with_cookie(cookie);
                self.send_at = now;
                Ok(None)
            }
            Reply::Ignored => Ok(None),
        }
    }
}

fn random_index() -> u32 {
    loop {
        let index: u32 = rand::random();
        if index != 0 {
            return index;
        }
    }
}
