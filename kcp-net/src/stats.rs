//! Counters per session, per loop and per server.
//!
//! A loop counts into a plain [`LoopStats`] and publishes it to atomics once per turn,
//! so counting costs an add and readers on other threads see a snapshot at most one
//! turn old.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::error::Refused;
use crate::lifecycle::CloseReason;
use crate::secure::OpenError;

/// Defines a counter struct (plain `u64` fields, `accumulate`), and with
/// `/ AtomicName` also its atomic mirror with `publish`/`snapshot`.
macro_rules! counters {
    (
        $(#[$meta:meta])*
        pub struct $name:ident / $atomic:ident {
            $( $(#[$field_meta:meta])* $field:ident, )*
        }
    ) => {
        counters! {
            $(#[$meta])*
            pub struct $name {
                $( $(#[$field_meta])* $field, )*
            }
        }

        /// The atomic mirror a loop publishes to.
        #[derive(Debug, Default)]
        pub(crate) struct $atomic {
            $( $field: AtomicU64, )*
        }

        impl $atomic {
            pub(crate) fn publish(&self, stats: &$name) {
                $( self.$field.store(stats.$field, Relaxed); )*
            }

            pub(crate) fn snapshot(&self) -> $name {
                $name { $( $field: self.$field.load(Relaxed), )* }
            }
        }
    };
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* $field:ident, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct $name {
            $( $(#[$field_meta])* pub $field: u64, )*
        }

        impl $name {
            /// Adds every counter of `other` to `self`.
            pub fn accumulate(&mut self, other: &Self) {
                $( self.$field += other.$field; )*
            }
        }
    };
}

counters! {
    /// Counters of one event loop (one thread, one socket), since it started.
    ///
    /// Drop counters name why a received datagram was not given to a session; each
    /// received datagram lands in exactly one of `datagrams_in`'s outcomes: a session,
    /// a new session, or one `dropped_*` counter.
    pub struct LoopStats / AtomicLoopStats {
        /// Datagrams received from the socket.
        datagrams_in,
        /// Bytes received from the socket.
        bytes_in,
        /// Datagrams handed to the socket.
        datagrams_out,
        /// Bytes handed to the socket.
        bytes_out,
        /// Receive syscalls (one `recvmmsg` or one `recv_from`).
        recv_syscalls,
        /// Send syscalls (one `sendmmsg`, or one chunk of `send_to`s).
        send_syscalls,
        /// Returns from `poll`.
        wakeups,
        /// Session timers that fired.
        timer_fires,
        /// Datagrams that are not KCP (too short, unknown command, bad length).
        dropped_malformed,
        /// Datagrams longer than we accept (the engine's `mtu`, at least 1,500 bytes),
        /// dropped unread.
        dropped_truncated,
        /// Valid KCP for no existing session that cannot open one: wrong conv for a
        /// known peer, stragglers of a closed session, a first segment that is not the
        /// start of a conversation.
        dropped_unknown_session,
        /// Datagrams a session's engine rejected (wrong conv inside, too many fragments).
        dropped_rejected,
        /// Would have opened a session beyond `max_sessions`.
        dropped_session_limit,
        /// Would have opened a session beyond the new-session rate cap.
        dropped_rate_limited,
        /// Would have opened an unconfirmed session while the loop's pool was full of
        /// sessions younger than `unconfirmed.min_age`.
        dropped_unconfirmed_full,
        /// Data segments the server would have held out of order past
        /// `max_buffered_bytes`, left out of their datagrams (the rest of each is
        /// taken; the peer sends them again).
        dropped_memory_budget,
        /// Would have opened a session beyond `max_sessions_per_ip` for its source IP.
        dropped_ip_limit,
        /// Would have opened a session beyond `new_sessions_per_ip_per_sec` for its
        /// source IP.
        dropped_ip_rate,
        /// New sessions refused by the handler's `accept`, or while shutting down.
        dropped_refused,
        /// Outgoing datagrams dropped because the socket buffer was full.
        dropped_send_full,
        /// Outgoing datagrams the OS refused.
        send_errors,
        /// Outgoing datagrams dropped by the impaired-socket mode.
        dropped_impaired,
        /// Messages delivered to the handler.
        messages_in,
        /// Messages queued for sending.
        messages_out,
        /// Empty messages swallowed as keepalives.
        keepalives_in,
        /// Sends refused: queued-bytes limit or engine queue full.
        sends_refused,
        /// Retransmitted segments (timeout and fast), summed over sessions.
        retransmits,
        /// Commands received from other threads.
        commands,
        /// Sessions opened.
        sessions_opened,
        /// Sessions whose peer proved its address (acknowledged what we sent).
        sessions_confirmed,
        /// Sessions closed because their peer never proved its address.
        closed_unconfirmed,
        /// Unconfirmed sessions closed to make room for newer ones.
        evicted_unconfirmed,
        /// Datagrams held back from unconfirmed peers by the three-times rule.
        withheld_unconfirmed,
        /// Sessions currently open (a gauge, not a counter).
        sessions_active,
        /// How late the loop served its timers, at worst, over the last one to two
        /// seconds, in microseconds (a gauge: its scheduling delay, which every
        /// session's ACKs and retransmissions suffer too). In a server's `total`, the
        /// sum over loops: see [`ServerStats::max_loop_lag`].
        loop_lag_us,
        /// Retransmitted segments per 1,000 messages queued over the last one to two
        /// seconds (a gauge; 0 while fewer than 500 messages were queued): how much of
        /// its sending the loop does twice. It climbs when the loop reads ACKs late,
        /// before the lag does, and with lossy client paths. In a server's `total`,
        /// the sum over loops: see [`ServerStats::max_retransmit_share`].
        retransmit_permille,
        /// Per 1,000 of the wall clock, the time the loop spent working (outside its
        /// wait in `poll`, waiting for a core included) over the last one to two
        /// seconds (a gauge; 0 for a [`ServerDriver`](crate::ServerDriver) run by an
        /// application's own loop, which the driver cannot see wait). Near 1,000 the
        /// loop is at its capacity: a little more load puts it behind. In a server's
        /// `total`, the sum over loops: see [`ServerStats::max_busy_share`].
        loop_busy_permille,
        /// Sessions closed by idle timeout.
        closed_idle,
        /// Sessions closed because the engine reported a dead link (or the peer went
        /// silent past a peer timeout).
        closed_dead_link,
        /// Sessions closed by the application.
        closed_local,
        /// Sessions closed by shutdown.
        closed_shutdown,
        /// Sessions closed because a handler method panicked on them.
        closed_handler_panicked,
        /// Handler panics caught (each closes its session, or refuses the new one).
        handler_panics,
        /// Sessions closed because the peer said so (secure mode).
        closed_by_peer,
        /// Sessions closed because their peer could not keep up
        /// ([`CloseReason::SlowConsumer`]).
        closed_slow_consumer,
        /// Secure handshakes completed (a response sent for a new session).
        handshakes,
        /// Cookie replies sent: an initiation had to prove its address first.
        cookies_sent,
        /// Initiations refused: another protocol version.
        rejected_version,
        /// Initiations refused: mac1 wrong (the client pinned another key).
        rejected_wrong_key,
        /// Initiations refused: the Noise message did not decrypt (pre-shared keys
        /// differ).
        rejected_handshake,
        /// Initiations refused: session limits (a "server full" reject).
        rejected_full,
        /// Repeated initiations answered with the stored response (no new state).
        initiations_repeated,
        /// Sealed datagrams naming no session of this loop.
        dropped_unknown_index,
        /// Sealed datagrams whose seal did not verify.
        dropped_tampered,
        /// Sealed datagrams replayed or older than the replay window.
        dropped_replayed,
        /// Sealed datagrams dropped for another reason (unknown key epoch or kind).
        dropped_sealed_other,
        /// Secure sessions that moved to a new address.
        migrations,
        /// Sealed datagrams this loop's socket received for a session of another loop
        /// of the server (a client that moved to an address the kernel hashes here),
        /// handed to that loop.
        forwarded_out,
        /// Sealed datagrams other loops handed to this one.
        forwarded_in,
        /// Sealed datagrams for another loop dropped: too many already in flight
        /// between loops.
        dropped_forward_full,
    }
}

impl LoopStats {
    /// Counts a session closed for `reason` in its `closed_*` counter.
    pub fn count_close(&mut self, reason: CloseReason) {
        let counter = match reason {
            CloseReason::IdleTimeout => &mut self.closed_idle,
            CloseReason::DeadLink | CloseReason::PeerGone => &mut self.closed_dead_link,
            CloseReason::Local => &mut self.closed_local,
            CloseReason::Shutdown => &mut self.closed_shutdown,
            CloseReason::HandlerPanicked => &mut self.closed_handler_panicked,
            CloseReason::Unconfirmed => &mut self.closed_unconfirmed,
            CloseReason::Evicted => &mut self.evicted_unconfirmed,
            CloseReason::PeerClosed => &mut self.closed_by_peer,
            CloseReason::SlowConsumer => &mut self.closed_slow_consumer,
        };
        *counter += 1;
    }

    /// Counts a datagram a session's conversation refused ([`Refused`]): a seal that
    /// failed in `dropped_tampered`, `dropped_replayed`, `dropped_unknown_index` or
    /// `dropped_sealed_other`, anything else in `dropped_rejected`.
    pub fn count_refused(&mut self, refused: Refused) {
        let counter = match refused {
            Refused::Seal(OpenError::Tampered) => &mut self.dropped_tampered,
            Refused::Seal(OpenError::Replayed | OpenError::TooOld) => &mut self.dropped_replayed,
            Refused::Seal(OpenError::Foreign) => &mut self.dropped_unknown_index,
            Refused::Seal(_) => &mut self.dropped_sealed_other,
            _ => &mut self.dropped_rejected,
        };
        *counter += 1;
    }
}

counters! {
    /// Counters of one session (server side) or one client conversation, in addition
    /// to the engine's own [`kcp_core::Stats`].
    pub struct SessionCounters {
        /// Datagrams accepted by the engine.
        datagrams_in,
        /// Bytes of those datagrams.
        bytes_in,
        /// Datagrams the engine produced.
        datagrams_out,
        /// Bytes of those datagrams.
        bytes_out,
        /// Datagrams the engine rejected.
        rejected_in,
        /// Messages received (keepalives excluded).
        messages_in,
        /// Messages queued for sending (keepalives excluded).
        messages_out,
        /// Keepalives (empty messages) received and swallowed.
        keepalives_in,
        /// Keepalives sent.
        keepalives_out,
        /// Sends refused by a limit.
        sends_refused,
        /// Datagrams held back because they would have sent an unconfirmed peer more
        /// than three times what it sent us (they leave once it sends more or proves
        /// its address; beyond 64 KiB held they are dropped and retransmitted later).
        withheld,
        /// Data segments left out of received datagrams because the server's budget
        /// for data held out of order was spent ([`HoldBudget`](crate::HoldBudget)).
        dropped_over_budget,
    }
}

/// A snapshot of one session: our counters plus the engine's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStats {
    /// Counted by `kcp-net`.
    pub counters: SessionCounters,
    /// Counted by the engine (segments, retransmits, RTT, windows...).
    pub engine: kcp_core::Stats,
}

/// Every loop's counters and their sum, from [`ServerHandle::stats`](crate::ServerHandle::stats).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// The sum over all loops.
    pub total: LoopStats,
    /// One entry per loop, in loop order.
    pub loops: Vec<LoopStats>,
}

impl ServerStats {
    /// The worst [`loop_lag_us`](LoopStats::loop_lag_us) of any loop.
    pub fn max_loop_lag(&self) -> std::time::Duration {
        let us = self.loops.iter().map(|l| l.loop_lag_us).max().unwrap_or(0);
        std::time::Duration::from_micros(us)
    }

    /// The worst [`retransmit_permille`](LoopStats::retransmit_permille) of any
    /// loop, as a share (0.1 is 10%).
    pub fn max_retransmit_share(&self) -> f64 {
        let permille = self.loops.iter().map(|l| l.retransmit_permille).max();
        permille.unwrap_or(0) as f64 / 1000.0
    }

    /// The highest [`loop_busy_permille`](LoopStats::loop_busy_permille) of any
    /// loop, as a share (0.9 is 90%).
    pub fn max_busy_share(&self) -> f64 {
        let permille = self.loops.iter().map(|l| l.loop_busy_permille).max();
        permille.unwrap_or(0) as f64 / 1000.0
    }

    pub(crate) fn from_loops(loops: Vec<LoopStats>) -> Self {
        let mut total = LoopStats::default();
        for l in &loops {
            total.accumulate(l);
        }
        Self { total, loops }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_then_snapshot_round_trips_and_totals_add_up() {
        let atomic = AtomicLoopStats::default();
        let stats = LoopStats {
            datagrams_in: 3,
            closed_idle: 2,
            ..LoopStats::default()
        };
        atomic.publish(&stats);
        assert_eq!(atomic.snapshot(), stats);
        let server = ServerStats::from_loops(vec![stats, stats]);
        assert_eq!(server.total.datagrams_in, 6);
        assert_eq!(server.total.closed_idle, 4);
    }
}
