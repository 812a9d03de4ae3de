//! What the servers and the kernel saw over the sending phase: the in-process servers'
//! retransmissions, drops, refusals and loop lag, and the machine's UDP receive-buffer
//! drops, so a bench that loses or slows down says where.

use std::fs;

use serde::Serialize;

use crate::server::ChatStats;

/// The in-process servers' counters over the sending phase (summed over servers).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServerSide {
    /// Messages the servers queued to sessions.
    pub messages_out: u64,
    /// Segments the servers' sessions retransmitted (timeout and fast).
    pub retransmits: u64,
    /// Datagrams the servers received.
    pub datagrams_in: u64,
    /// Datagrams the servers sent.
    pub datagrams_out: u64,
    /// Loop turns (returns from `poll`).
    pub wakeups: u64,
    /// Receive syscalls.
    pub recv_syscalls: u64,
    /// Sends refused because a session's queue was full.
    pub sends_refused: u64,
    /// Outgoing datagrams dropped at a full socket buffer.
    pub dropped_send_full: u64,
    /// Sessions closed as slow consumers.
    pub slow_consumers: u64,
    /// Clients kicked for abuse.
    pub kicked: u64,
    /// Frames dropped by a rate limit.
    pub rate_limited: u64,
    /// Hellos refused as busy.
    pub refused_busy: u64,
    /// Of those, refused because the loop worked nearly all the time.
    pub refused_busy_load: u64,
    /// Of those, refused because too much of the loop's sending was retransmission.
    pub refused_busy_retransmits: u64,
    /// The worst loop lag seen while sending, milliseconds.
    pub max_loop_lag_ms: f64,
    /// The worst share of a loop's sending that was retransmission (over one to two
    /// seconds, the admission signal) seen while sending.
    pub max_retransmit_share: f64,
    /// The highest share of the time a loop worked (over one to two seconds, the
    /// first admission signal) seen while sending.
    pub max_busy_share: f64,
}

impl ServerSide {
    /// The counters of `stats` summed (lag: the worst).
    pub(crate) fn of(stats: &[ChatStats]) -> Self {
        let mut side = Self::default();
        for s in stats {
            let n = &s.net.total;
            side.messages_out += n.messages_out;
            side.retransmits += n.retransmits;
            side.datagrams_in += n.datagrams_in;
            side.datagrams_out += n.datagrams_out;
            side.wakeups += n.wakeups;
            side.recv_syscalls += n.recv_syscalls;
            side.sends_refused += n.sends_refused;
            side.dropped_send_full += n.dropped_send_full;
            side.slow_consumers += n.closed_slow_consumer;
            side.kicked += s.chat.kicked;
            side.rate_limited += s.chat.rate_limited;
            side.refused_busy += s.chat.refused_busy;
            side.refused_busy_load += s.chat.refused_busy_load;
            side.refused_busy_retransmits += s.chat.refused_busy_retransmits;
            side.max_loop_lag_ms = side
                .max_loop_lag_ms
                .max(s.net.max_loop_lag().as_secs_f64() * 1000.0);
            side.max_retransmit_share = side.max_retransmit_share.max(s.net.max_retransmit_share());
            side.max_busy_share = side.max_busy_share.max(s.net.max_busy_share());
        }
        side
    }

    /// What happened between `start` and `self` (lag: the worst of both).
    pub(crate) fn since(&self, start: &Self) -> Self {
        Self {
            messages_out: self.messages_out.saturating_sub(start.messages_out),
            retransmits: self.retransmits.saturating_sub(start.retransmits),
            datagrams_in: self.datagrams_in.saturating_sub(start.datagrams_in),
            datagrams_out: self.datagrams_out.saturating_sub(start.datagrams_out),
            wakeups: self.wakeups.saturating_sub(start.wakeups),
            recv_syscalls: self.recv_syscalls.saturating_sub(start.recv_syscalls),
            sends_refused: self.sends_refused.saturating_sub(start.sends_refused),
            dropped_send_full: self
                .dropped_send_full
                .saturating_sub(start.dropped_send_full),
            slow_consumers: self.slow_consumers.saturating_sub(start.slow_consumers),
            kicked: self.kicked.saturating_sub(start.kicked),
            rate_limited: self.rate_limited.saturating_sub(start.rate_limited),
            // Refusals happen while clients join, before the sending phase starts:
            // all of them count.
            refused_busy: self.refused_busy,
            refused_busy_load: self.refused_busy_load,
            refused_busy_retransmits: self.refused_busy_retransmits,
            max_loop_lag_ms: self.max_loop_lag_ms.max(start.max_loop_lag_ms),
            max_retransmit_share: self.max_retransmit_share.max(start.max_retransmit_share),
            max_busy_share: self.max_busy_share.max(start.max_busy_share),
        }
    }

    /// Retransmitted segments per message sent, in percent.
    pub fn retransmit_percent(&self) -> f64 {
        100.0 * self.retransmits as f64 / self.messages_out.max(1) as f64
    }
}

/// The machine's count of UDP datagrams the kernel dropped at a full socket receive
/// buffer (`RcvbufErrors` in `/proc/net/snmp`; every socket, not only ours). `None`
/// where it cannot be read.
pub(crate) fn udp_rcvbuf_errors() -> Option<u64> {
    parse_rcvbuf_errors(&fs::read_to_string("/proc/net/snmp").ok()?)
}

fn parse_rcvbuf_errors(snmp: &str) -> Option<u64> {
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let names = udp.next()?;
    let values = udp.next()?;
    let column = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(column)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rcvbuf_errors_are_read_by_column_name() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
                    Udp: 1367403 0 872 1368276 871 0\n\
                    UdpLite: InDatagrams RcvbufErrors\nUdpLite: 0 5\n";
        assert_eq!(parse_rcvbuf_errors(snmp), Some(871));
        assert_eq!(parse_rcvbuf_errors("Udp: A B\n"), None);
        assert_eq!(parse_rcvbuf_errors("Udp: RcvbufErrors\nUdp: x\n"), None);
    }
}
