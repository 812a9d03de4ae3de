//! Settings of a chat server.

use std::time::Duration;

use kcp_net::{Preset, ServerConfig};

use crate::room::RoomLimits;

/// The default [`ChatServerConfig::busy_retransmits`]: 10% of the loop's sending.
/// Measured on the bench (`docs/bench/chat.md`): a loop that keeps up retransmits
/// 0–4%, one past its capacity 18%.
pub const DEFAULT_BUSY_RETRANSMITS: f64 = 0.1;

/// The default [`ChatServerConfig::busy_load`]: the loop works 90% of the time.
pub const DEFAULT_BUSY_LOAD: f64 = 0.9;

/// Settings of a [`ChatServer`](super::ChatServer): the socket layer's, the room
/// model's limits and the abuse policy. Start from [`ChatServerConfig::new`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ChatServerConfig {
    /// The `kcp-net` server settings (preset, threads, idle timeout, impairment).
    /// `max_sessions` is derived from [`max_clients`](Self::max_clients) at bind.
    pub net: ServerConfig,
    /// Limits of nicks, rooms, messages and history.
    pub rooms: RoomLimits,
    /// Most users at once; a hello beyond it gets `server-full` and is closed.
    pub max_clients: usize,
    /// Frames per second a client (one session) may send on average (keepalives are
    /// not counted).
    pub rate: f64,
    /// Frames a client (one session) may send in a burst.
    pub burst: u32,
    /// The longest delay the network may add to a client's frames without their
    /// arrival counting as a flood: frames a retransmission held back arrive together,
    /// and the session's bucket may hold `rate` x min(8 x RTO, `max_late`) tokens
    /// beyond `burst` for them (see [`late_slack`](crate::rate::late_slack)).
    pub max_late: Duration,
    /// Frames per second all sessions from one source address (an IPv4 address, an
    /// IPv6 /64) may send together on average. A client that opens a new conversation
    /// per burst draws from this budget whatever its conv. Larger than
    /// [`rate`](Self::rate), because an office behind one NAT address shares it.
    pub ip_rate: f64,
    /// Frames all sessions from one source address may send in a burst.
    pub ip_burst: u32,
    /// Abuse errors (bad frames, floods, over-long frames) tolerated per
    /// [`strike_window`](Self::strike_window) from one session; one more and the
    /// client is kicked.
    pub strikes: u32,
    /// Abuse errors tolerated per [`strike_window`](Self::strike_window) from all
    /// sessions of one source address; beyond it, each further abuse error kicks the
    /// session that made it, whichever conversation it is on.
    pub ip_strikes: u32,
    /// The window in which strikes count.
    pub strike_window: Duration,
    /// Admission control's first signal: while the event loop works more than this
    /// share of the time (outside its wait for events, over the last one to two
    /// seconds: [`SessionCtx::loop_busy`](kcp_net::SessionCtx::loop_busy)), a hello
    /// from a new user is refused with `server-busy`. A loop near its capacity still
    /// serves its users on time; the next users would start the queueing that the lag
    /// and the retransmissions show once it has hurt. `None`: never refuse for it.
    pub busy_load: Option<f64>,
    /// Admission control: while the event loop serves its timers later than this
    /// ([`SessionCtx::loop_lag`](kcp_net::SessionCtx::loop_lag)), a hello from a new
    /// user is refused with `server-busy` instead of slowing everyone down (a resumed
    /// user is let back in). `None`: never refuse.
    pub busy_lag: Option<Duration>,
    /// Admission control's second signal: while more than this share of what the
    /// event loop sends is retransmission (retransmitted segments per message queued
    /// over the last one to two seconds, read once 500 messages were queued:
    /// [`SessionCtx::retransmit_share`](kcp_net::SessionCtx::retransmit_share)), a
    /// hello from a new user is refused with `server-busy` too. A loop that reads
    /// its ACKs late retransmits segments that were not lost, and its loss grows
    /// while its timers still fire on time, so the lag alone misses it. Lossy client
    /// paths raise the share as well: keep the limit well above what their loss
    /// causes (a loss of p costs about p/(1-p) retransmissions per message). `None`:
    /// never refuse for it.
    pub busy_retransmits: Option<f64>,
    /// The wait a `server-busy` refusal asks for.
    pub busy_retry: Duration,
}

impl ChatServerConfig {
    /// Defaults for `preset`: flush on send and on input (chat is interactive, and
    /// prompt ACKs spare clients spurious retransmissions), 1,000 clients,
    /// 20 frames/s with bursts of 40 per session (plus up to 5 s of frames a
    /// retransmission delayed), 100 frames/s with bursts of 200 per
    /// source address, 5 strikes per 10 s per session and 20 per address, 30 s idle
    /// timeout; a client whose queue stays full for 10 s is closed as a slow consumer, and
    /// new users are refused as `server-busy` (retry in 5 s) while the loop is more than
    /// 200 ms behind or more than 10% of its sending is retransmission.
    pub fn new(preset: Preset) -> Self {
        let mut net = ServerConfig::new(preset);
        net.flush_on_send = true;
        net.flush_on_input = true;
        // A client that cannot take what its rooms say is told and let go, instead of
        // silently missing lines.
        net.slow_consumer_timeout = Some(Duration::from_secs(10));
        Self {
            net,
            rooms: RoomLimits::default(),
            max_clients: 1000,
            rate: 20.0,
            burst: 40,
            max_late: Duration::from_secs(5),
            ip_rate: 100.0,
            ip_burst: 200,
            strikes: 5,
            ip_strikes: 20,
            strike_window: Duration::from_secs(10),
            busy_load: Some(DEFAULT_BUSY_LOAD),
            busy_lag: Some(Duration::from_millis(200)),
            busy_retransmits: Some(DEFAULT_BUSY_RETRANSMITS),
            busy_retry: Duration::from_secs(5),
        }
    }

    /// Longest frame decoded: a maximal message with a maximal room name (4 bytes a
    /// character) and room for the encoding. Longer frames are refused undecoded.
    pub const fn max_frame(&self) -> usize {
        self.rooms.max_message + 4 * self.rooms.max_room_name + 4 * self.rooms.max_nick + 64
    }
}

impl Default for ChatServerConfig {
    fn default() -> Self {
        Self::new(Preset::Fast)
    }
}
