//! Settings of servers and clients, with their defaults and worst cases.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use kcp_core::Config;

use crate::error::NetError;
#[cfg(feature = "impair")]
use crate::impair::ImpairConfig;
use crate::udp::IoBackend;

/// The C reference's named engine settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Preset {
    /// `ikcp_create` defaults: interval 100 ms, no fast resend, congestion control on.
    Default,
    /// The reference README's "normal": interval 40 ms.
    Normal,
    /// The reference README's "fastest", `ikcp_nodelay(1, 10, 2, 1)`.
    #[default]
    Fast,
}

impl Preset {
    /// The engine configuration of this preset.
    pub const fn config(self) -> Config {
        match self {
            Self::Default => Config::reference_default(),
            Self::Normal => Config::normal(),
            Self::Fast => Config::fast(),
        }
    }
}

impl FromStr for Preset {
    type Err = NetError;

    /// Parses `default`, `normal` or `fast`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" => Ok(Self::Default),
            "normal" => Ok(Self::Normal),
            "fast" => Ok(Self::Fast),
            _ => Err(NetError::Setting("preset must be default, normal or fast")),
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Default => "default",
            Self::Normal => "normal",
            Self::Fast => "fast",
        })
    }
}

/// Requested socket buffer size (each direction): 4 MiB, so a burst of datagrams from
/// a thousand peers is not dropped by the kernel before the loop drains it. Linux caps
/// it at `net.core.rmem_max`/`wmem_max`.
pub const DEFAULT_SOCKET_BUFFER: usize = 4 << 20;

/// How a conversation's datagrams look on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WireMode {
    /// Plain ikcp datagrams, as every KCP peer (the C reference included) speaks them.
    #[default]
    Raw,
    /// The secure session protocol ([`crate::secure`]): both ends ours.
    Secure,
}

/// Limits on a server conversation whose peer has not yet proved that it receives at
/// its address (see [`Conversation::is_confirmed`](crate::Conversation::is_confirmed)).
/// Until it does, the conversation sends at most three times the bytes it accepted
/// from the peer, retransmissions included: that bounds what a spoofed address can
/// draw from us, however often the engine retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnconfirmedLimits {
    /// Hearing nothing from an unconfirmed peer for this long ends the conversation
    /// ([`CloseReason::Unconfirmed`](crate::CloseReason::Unconfirmed)). Default 8 s:
    /// a client that only sends keepalives (every 5 s by default) to a server that
    /// never replies with data stays.
    pub idle_timeout: Duration,
    /// An unconfirmed session is not evicted for a newer one before it is this old,
    /// so that a real client has time to confirm (its acknowledgement may wait in the
    /// socket queue behind a flood). While the pool is full of younger ones, new
    /// unconfirmed sessions are refused (`dropped_unconfirmed_full`; the client
    /// retransmits its first segment and gets in when a slot ages out). Default
    /// 500 ms: well above a round trip, plus the time an acknowledgement can wait
    /// behind a full socket queue of forged datagrams (tens of ms).
    pub min_age: Duration,
}

impl Default for UnconfirmedLimits {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(8),
            min_age: Duration::from_millis(500),
        }
    }
}

/// Settings of one [`Conversation`](crate::Conversation): the engine and the rules
/// kept around it. Servers and clients derive theirs from [`ServerConfig`] and
/// [`ClientConfig`] ([`ServerConfig::conversation`], [`ClientConfig::conversation`]);
/// build one yourself ([`ConversationConfig::builder`]) to drive a `Conversation`
/// from your own loop.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConversationConfig {
    /// The engine settings. Default: [`Preset::Fast`].
    pub engine: Config,
    /// Most bytes held unacknowledged (queued or in flight, counted in whole segments
    /// of `mtu - 24` bytes); a send beyond it fails with
    /// [`QueueError::Full`](crate::QueueError::Full). Default 1 MiB.
    pub max_queued_bytes: usize,
    /// Flush the engine on the next drive after a message was queued, instead of at
    /// its next `interval` tick. Default `false`.
    pub flush_on_send: bool,
    /// Flush the engine on the next drive after datagrams arrived, so the ACKs owed
    /// leave at once, unless received messages still wait for the application: then
    /// they are held for its reply, for a millisecond at most. Default `false`.
    pub flush_on_input: bool,
    /// Send an empty message after this long without sending anything (message mode
    /// only; ignored in stream mode). Default `None`.
    pub keepalive: Option<Duration>,
    /// After we send something, hearing nothing from the peer for this long ends the
    /// conversation ([`CloseReason::PeerGone`](crate::CloseReason::PeerGone)).
    /// Default `None`.
    pub peer_timeout: Option<Duration>,
    /// Hearing nothing from the peer for this long ends the conversation
    /// ([`CloseReason::IdleTimeout`](crate::CloseReason::IdleTimeout)), whether we wait
    /// for it or not. Default `None`.
    pub idle_timeout: Option<Duration>,
    /// Count received empty messages as keepalives instead of delivering them.
    /// Default `true`.
    pub swallow_empty_messages: bool,
    /// Start unconfirmed, under these limits, until the peer proves its address (a
    /// server's conversations). `None`: the peer is trusted from the start (a client,
    /// which picked its server's address itself). Default `None`.
    pub unconfirmed: Option<UnconfirmedLimits>,
    /// Pad the first datagram we send to 1,200 bytes with window-tell segments (a
    /// no-op for every KCP peer), so that a server holding to the three-times rule may
    /// answer with up to 3,600 bytes at once. Default `false`; [`ClientConfig`] sets it.
    pub pad_opening: bool,
    /// End the conversation with
    /// [`CloseReason::SlowConsumer`](crate::CloseReason::SlowConsumer) when a send was
    /// refused for a full queue and the queue is still over half of
    /// `max_queued_bytes` this long after: the peer cannot keep up, and every further
    /// message to it would be dropped. `None` (the default): sends keep failing with
    /// [`QueueError::Full`](crate::QueueError::Full) and the conversation stays.
    pub slow_consumer: Option<Duration>,
}

impl ConversationConfig {
    /// The defaults, with `preset`'s engine settings.
    pub fn new(preset: Preset) -> Self {
        Self {
            engine: preset.config(),
            max_queued_bytes: 1 << 20,
            flush_on_send: false,
            flush_on_input: false,
            keepalive: None,
            peer_timeout: None,
            idle_timeout: None,
            swallow_empty_messages: true,
            unconfirmed: None,
            pad_opening: false,
            slow_consumer: None,
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`NetError::Config`] for the engine, [`NetError::Setting`] for the rest.
    pub fn validate(&self) -> Result<(), NetError> {
        self.engine.validate()?;
        if self.max_queued_bytes == 0 {
            return Err(NetError::Setting("max_queued_bytes must be at least 1"));
        }
        if self.keepalive.is_some_and(|k| k.is_zero()) {
            return Err(NetError::Setting("keepalive must be positive"));
        }
        if self.peer_timeout.is_some_and(|t| t.is_zero()) {
            return Err(NetError::Setting("peer_timeout must be positive"));
        }
        if self.idle_timeout.is_some_and(|t| t.is_zero()) {
            return Err(NetError::Setting("idle_timeout must be positive"));
        }
        if self.slow_consumer.is_some_and(|t| t.is_zero()) {
            return Err(NetError::Setting("slow_consumer must be positive"));
        }
        Ok(())
    }
}

impl Default for ConversationConfig {
    fn default() -> Self {
        Self::new(Preset::default())
    }
}

/// Settings of a [`KcpServer`](crate::KcpServer). Start from [`ServerConfig::new`] and
/// change what you need, or write it in one expression with [`ServerConfig::builder`]
/// (the type is `#[non_exhaustive]`, so struct update syntax only works inside
/// this crate).
///
/// # Memory
///
/// What one session can hold, measured (`tests/memory.rs`, fast preset): about 1.4 KiB
/// when fresh; each received segment it holds (out of order, or a message not yet
/// complete) keeps its datagram's allocation alive, `engine.mtu` + ~40 bytes, so a
/// receive window filled out of order costs `engine.rcv_wnd` × (`engine.mtu` + 40),
/// 180 KiB at the defaults (128 × 1,440 B), whoever sent it; plus, on the sending
/// side, what *our* application queued, at most `max_queued_bytes_per_session`; plus
/// up to 64 KiB held for an unconfirmed peer. The peers' side is also bounded server
/// wide by `max_buffered_bytes`: past it, data segments that would be held out of
/// order are left out of their datagrams, sealed or raw, while the ACKs and in-order
/// data beside them are taken (counted as `dropped_memory_budget`; the peer
/// retransmits them once memory is free again) instead of allocated
/// ([`HoldBudget`](crate::HoldBudget), which kcp-tokio's listener applies too).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The engine settings of every session. Default: [`Preset::Fast`].
    pub engine: Config,
    /// The secure wire mode ([`crate::secure`]): every session starts with a
    /// handshake and every datagram is sealed. Default `None`: raw KCP, which every
    /// KCP peer speaks.
    pub secure: Option<crate::secure::ServerSecurity>,
    /// Event loops (threads), each with its own socket bound to the same port with
    /// `SO_REUSEPORT`. Default 1.
    pub threads: usize,
    /// Most sessions open at once, over all loops. A datagram that would open one more
    /// is dropped and counted (`dropped_session_limit`). Default 10,000.
    pub max_sessions: usize,
    /// Most bytes a session may hold unacknowledged (queued or in flight, counted in
    /// whole segments of `mtu - 24` bytes). A send beyond it fails with
    /// [`NetError::QueueFull`]. Default 1 MiB.
    pub max_queued_bytes_per_session: usize,
    /// A session that hears nothing from its peer for this long is closed with
    /// [`CloseReason::IdleTimeout`](crate::CloseReason::IdleTimeout). Default 30 s.
    pub idle_timeout: Duration,
    /// New sessions accepted per second over all loops (a token bucket holding at most
    /// one second's worth). Beyond it, opening datagrams are dropped and counted
    /// (`dropped_rate_limited`); the peer retransmits and gets in later. Default 1,000.
    pub new_sessions_per_sec: u32,
    /// Most bytes of received data the server's sessions may hold together (estimated
    /// from the segments they hold, each counted as a whole datagram, see *Memory*),
    /// shared evenly by the loops. Default: a quarter of the machine's memory
    /// (`/proc/meminfo`), 1 GiB where that cannot be read.
    pub max_buffered_bytes: usize,
    /// Limits on a session whose peer has not proved its address yet (it has not
    /// acknowledged anything we sent). Default [`UnconfirmedLimits::default`].
    pub unconfirmed: UnconfirmedLimits,
    /// Most unconfirmed sessions open at once on each loop, beside `max_sessions`
    /// (which counts confirmed sessions only, so a spoofed flood cannot fill it).
    /// When full, the oldest unconfirmed session of the loop is closed
    /// ([`CloseReason::Evicted`](crate::CloseReason::Evicted)) to make room once it is
    /// [`UnconfirmedLimits::min_age`] old, so a spoofed flood turns the pool over at
    /// most `max_unconfirmed_sessions` per `min_age` and every session that got in has
    /// time to confirm. Default 1,024.
    pub max_unconfirmed_sessions: usize,
    /// Most sessions open at once from one source IP (all its ports), over all loops.
    /// Beyond it, opening datagrams are dropped and counted (`dropped_ip_limit`).
    /// Default 512: an office behind one NAT address fits; one host cannot take the
    /// whole server.
    pub max_sessions_per_ip: u32,
    /// New sessions accepted per second from one source IP (a token bucket holding
    /// one second's worth). Beyond it, opening datagrams are dropped and counted
    /// (`dropped_ip_rate`). Default 64. The table behind both per-IP limits holds at
    /// most `2 × max_sessions + 1,024` addresses (~100 bytes each).
    pub new_sessions_per_ip_per_sec: u32,
    /// Flush a session's engine at the end of the loop turn in which a message was
    /// queued for it, instead of waiting for its next `interval` tick: lower latency,
    /// sometimes more datagrams. Default `false` (the reference's timing).
    pub flush_on_send: bool,
    /// Flush a session's engine at the end of the loop turn in which datagrams arrived
    /// for it, instead of waiting for its next `interval` tick: the ACKs it owes leave
    /// at once (one flush acknowledges everything the turn read), and data waiting for
    /// the window goes out as soon as the peer's ACKs open it. Raises throughput and
    /// cuts latency at the cost of more, smaller ACK datagrams. Default `false` (the
    /// reference's timing).
    pub flush_on_input: bool,
    /// Treat a received empty message as a keepalive: count it, do not hand it to the
    /// handler. Default `true`. See the crate docs on keepalives.
    pub swallow_empty_messages: bool,
    /// How long a session closed by the application keeps running to deliver what it
    /// has queued before it is dropped. Default 2 s.
    pub close_linger: Duration,
    /// Close a session whose peer cannot keep up: a send to it was refused for a full
    /// queue (`max_queued_bytes_per_session`) and its queue is still over half full
    /// this long after ([`CloseReason::SlowConsumer`](crate::CloseReason::SlowConsumer),
    /// counted in `closed_slow_consumer`; a secure peer is told why). Default `None`:
    /// sends keep failing with [`QueueError::Full`](crate::QueueError::Full) and the
    /// session stays.
    pub slow_consumer_timeout: Option<Duration>,
    /// How datagrams move between socket and memory. Default [`IoBackend::Auto`].
    pub io: IoBackend,
    /// Requested `SO_RCVBUF`. Default [`DEFAULT_SOCKET_BUFFER`].
    pub recv_buffer: usize,
    /// Requested `SO_SNDBUF`. Default [`DEFAULT_SOCKET_BUFFER`].
    pub send_buffer: usize,
    /// Impair every datagram the server sends (tests and demos). Default `None`. With
    /// several loops, each loop impairs with its own link seeded `seed + loop index`.
    #[cfg(feature = "impair")]
    pub impair: Option<ImpairConfig>,
}

impl ServerConfig {
    /// The defaults, with `preset`'s engine settings.
    pub fn new(preset: Preset) -> Self {
        Self {
            engine: preset.config(),
            secure: None,
            threads: 1,
            max_sessions: 10_000,
            max_queued_bytes_per_session: 1 << 20,
            idle_timeout: Duration::from_secs(30),
            new_sessions_per_sec: 1_000,
            max_buffered_bytes: default_buffer_budget(),
            unconfirmed: UnconfirmedLimits::default(),
            max_unconfirmed_sessions: 1_024,
            max_sessions_per_ip: 512,
            new_sessions_per_ip_per_sec: 64,
            flush_on_send: false,
            flush_on_input: false,
            swallow_empty_messages: true,
            close_linger: Duration::from_secs(2),
            slow_consumer_timeout: None,
            io: IoBackend::Auto,
            recv_buffer: DEFAULT_SOCKET_BUFFER,
            send_buffer: DEFAULT_SOCKET_BUFFER,
            #[cfg(feature = "impair")]
            impair: None,
        }
    }

    /// What each session's [`Conversation`](crate::Conversation) runs with.
    pub fn conversation(&self) -> ConversationConfig {
        ConversationConfig {
            engine: self.engine.clone(),
            max_queued_bytes: self.max_queued_bytes_per_session,
            flush_on_send: self.flush_on_send,
            flush_on_input: self.flush_on_input,
            keepalive: None,
            peer_timeout: None,
            idle_timeout: Some(self.idle_timeout),
            swallow_empty_messages: self.swallow_empty_messages,
            unconfirmed: Some(self.unconfirmed),
            pad_opening: false,
            slow_consumer: self.slow_consumer_timeout,
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`NetError::Config`] for the engine, [`NetError::Setting`] for the rest.
    pub fn validate(&self) -> Result<(), NetError> {
        if self.max_queued_bytes_per_session == 0 {
            return Err(NetError::Setting(
                "max_queued_bytes_per_session must be at least 1",
            ));
        }
        self.conversation().validate()?;
        if !(1..=256).contains(&self.threads) {
            return Err(NetError::Setting("threads must be 1..=256"));
        }
        if self.max_sessions == 0 {
            return Err(NetError::Setting("max_sessions must be at least 1"));
        }
        if self.new_sessions_per_sec == 0 {
            return Err(NetError::Setting("new_sessions_per_sec must be at least 1"));
        }
        if self.max_buffered_bytes == 0 {
            return Err(NetError::Setting("max_buffered_bytes must be at least 1"));
        }
        if self.max_unconfirmed_sessions == 0 {
            return Err(NetError::Setting(
                "max_unconfirmed_sessions must be at least 1",
            ));
        }
        if self.unconfirmed.idle_timeout.is_zero() {
            return Err(NetError::Setting(
                "unconfirmed.idle_timeout must be positive",
            ));
        }
        if self.max_sessions_per_ip == 0 {
            return Err(NetError::Setting("max_sessions_per_ip must be at least 1"));
        }
        if self.new_sessions_per_ip_per_sec == 0 {
            return Err(NetError::Setting(
                "new_sessions_per_ip_per_sec must be at least 1",
            ));
        }
        Ok(())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self::new(Preset::default())
    }
}

/// Settings of a [`KcpClient`](crate::KcpClient). Start from [`ClientConfig::new`], or
/// use [`ClientConfig::builder`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The engine settings; the server's must match in `mtu` and `stream`.
    /// Default: [`Preset::Fast`].
    pub engine: Config,
    /// The secure wire mode ([`crate::secure`]), pinning the server's key. Default
    /// `None`: raw KCP.
    pub secure: Option<crate::secure::ClientSecurity>,
    /// Local address to bind. Default `None`: an ephemeral port on the unspecified
    /// address of the server's family.
    pub bind: Option<SocketAddr>,
    /// Send an empty message after this long without sending anything, so the server
    /// does not time the session out and we learn whether it is still there. `None`
    /// disables it. Default 5 s. Message mode only (stream mode cannot send an empty
    /// message): in stream mode it is ignored.
    pub keepalive: Option<Duration>,
    /// After we send something (data or keepalive), hearing nothing from the server
    /// for this long ends the conversation with [`NetError::ServerGone`]. Default 15 s.
    pub server_timeout: Duration,
    /// Flush the engine right after each send instead of at its next `interval` tick.
    /// Default `false`.
    pub flush_on_send: bool,
    /// Flush the engine after each read of the socket that brought datagrams, instead
    /// of at its next `interval` tick: ACKs leave at once and data waiting for the
    /// window goes out as soon as the server's ACKs open it. While received messages
    /// wait in the inbox, the ACKs are held back so that they leave with the
    /// application's reply, for a millisecond at most ([`next_deadline`] asks for the
    /// tick that sends them). See [`ServerConfig::flush_on_input`]. Default `false`.
    ///
    /// [`next_deadline`]: crate::KcpClient::next_deadline
    pub flush_on_input: bool,
    /// Most bytes held unacknowledged (queued or in flight, counted in whole segments);
    /// a send beyond it fails with [`NetError::QueueFull`]. Default 4 MiB.
    pub max_queued_bytes: usize,
    /// Pad the first datagram to 1,200 bytes (see
    /// [`ConversationConfig::pad_opening`]), so a server that limits what it sends to
    /// an unconfirmed address to three times what it received can answer a first
    /// message of up to 3,600 bytes at once. Default `true`.
    pub pad_opening: bool,
    /// How datagrams move between socket and memory. Default [`IoBackend::Auto`].
    pub io: IoBackend,
    /// Requested `SO_RCVBUF`. Default 1 MiB.
    pub recv_buffer: usize,
    /// Requested `SO_SNDBUF`. Default 1 MiB.
    pub send_buffer: usize,
    /// Impair every datagram the client sends (tests and demos). Default `None`.
    #[cfg(feature = "impair")]
    pub impair: Option<ImpairConfig>,
}

impl ClientConfig {
    /// The defaults, with `preset`'s engine settings.
    pub fn new(preset: Preset) -> Self {
        Self {
            engine: preset.config(),
            secure: None,
            bind: None,
            keepalive: Some(Duration::from_secs(5)),
            server_timeout: Duration::from_secs(15),
            flush_on_send: false,
            flush_on_input: false,
            max_queued_bytes: 4 << 20,
            pad_opening: true,
            io: IoBackend::Auto,
            recv_buffer: 1 << 20,
            send_buffer: 1 << 20,
            #[cfg(feature = "impair")]
            impair: None,
        }
    }

    /// What the client's [`Conversation`](crate::Conversation) runs with: the
    /// keepalive (message mode only) and the server timeout as its peer timeout; the
    /// client never closes on idleness, and drops the empty messages it receives.
    pub fn conversation(&self) -> ConversationConfig {
        ConversationConfig {
            engine: self.engine.clone(),
            max_queued_bytes: self.max_queued_bytes,
            flush_on_send: self.flush_on_send,
            flush_on_input: self.flush_on_input,
            keepalive: self.keepalive.filter(|_| !self.engine.stream),
            peer_timeout: Some(self.server_timeout),
            idle_timeout: None,
            swallow_empty_messages: true,
            unconfirmed: None,
            pad_opening: self.pad_opening,
            slow_consumer: None,
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`NetError::Config`] for the engine, [`NetError::Setting`] for the rest.
    pub fn validate(&self) -> Result<(), NetError> {
        if self.keepalive.is_some_and(|k| k.is_zero()) {
            return Err(NetError::Setting("keepalive must be positive"));
        }
        if self.server_timeout.is_zero() {
            return Err(NetError::Setting("server_timeout must be positive"));
        }
        self.conversation().validate()
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self::new(Preset::default())
    }
}

/// A quarter of the machine's memory as `/proc/meminfo` tells it; 1 GiB where it
/// cannot be read.
fn default_buffer_budget() -> usize {
    let total_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        });
    match total_kib {
        Some(kib) => usize::try_from(kib.saturating_mul(1024) / 4).unwrap_or(usize::MAX),
        None => 1 << 30,
    }
}

/// The longest datagram we accept: our `mtu`, and at least 1,500 (an Ethernet MTU),
/// so a peer with a larger `mtu` than ours still gets through up to that size. Longer
/// ones are dropped unread, so a peer cannot make a session hold payloads larger than
/// a datagram of that size (GRO receive slots hold 64 KiB).
pub(crate) fn max_datagram(engine: &Config) -> usize {
    engine.mtu.max(1500)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_print() {
        for p in [Preset::Default, Preset::Normal, Preset::Fast] {
            assert_eq!(p.to_string().parse::<Preset>().unwrap(), p);
        }
        assert!("fastest".parse::<Preset>().is_err());
        assert_eq!(Preset::Normal.config().interval, 40);
    }

    #[test]
    fn defaults_are_valid_and_zero_limits_are_not() {
        ServerConfig::default().validate().unwrap();
        ClientConfig::default().validate().unwrap();
        let server = ServerConfig {
            threads: 0,
            ..ServerConfig::default()
        };
        assert!(server.validate().is_err());
        let client = ClientConfig {
            keepalive: Some(Duration::ZERO),
            ..ClientConfig::default()
        };
        assert!(client.validate().is_err());
    }
}
