//! A server's counters in the Prometheus text exposition format (version 0.0.4), as
//! `kcp-chat server --metrics ADDR` serves them.
//!
//! Every name starts with `kcp_chat_`. Counters end in `_total`; gauges (sessions,
//! users, rooms, the cluster's buffer) do not. Drops are one family labelled by
//! `cause`, closes one family labelled by `reason`, refused handshakes one family
//! labelled by `cause`. The socket layer's counters are the sum over the event loops;
//! the loop lag is a gauge per loop (`loop="0"`, ...).

use std::fmt::Write as _;
use std::time::Duration;

use kcp_net::LoopStats;

use super::ChatStats;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One metric family: a name, a type, a help line and its samples.
struct Family<'a> {
    name: &'a str,
    kind: &'a str,
    help: &'a str,
    /// `(label name, label value)` (or none) and the value of each sample, as text.
    samples: Vec<(Option<(&'a str, String)>, String)>,
}

impl Family<'_> {
    fn write(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP kcp_chat_{} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE kcp_chat_{} {}", self.name, self.kind);
        for (label, value) in &self.samples {
            match label {
                Some((key, label)) => {
                    let _ = writeln!(out, "kcp_chat_{}{{{key}=\"{label}\"}} {value}", self.name);
                }
                None => {
                    let _ = writeln!(out, "kcp_chat_{} {value}", self.name);
                }
            }
        }
    }
}

/// A family with one unlabelled sample.
fn one<'a>(name: &'a str, kind: &'a str, help: &'a str, value: u64) -> Family<'a> {
    Family {
        name,
        kind,
        help,
        samples: vec![(None, value.to_string())],
    }
}

/// A counter family labelled by `key`.
fn labelled<'a>(
    name: &'a str,
    help: &'a str,
    key: &'a str,
    samples: &[(&'a str, u64)],
) -> Family<'a> {
    Family {
        name,
        kind: "counter",
        help,
        samples: samples
            .iter()
            .map(|&(l, v)| (Some((key, l.to_owned())), v.to_string()))
            .collect(),
    }
}

/// The socket layer's families.
/// A gauge with one sample per event loop, labelled by its number.
fn per_loop<'a>(
    name: &'a str,
    help: &'a str,
    loops: &[LoopStats],
    value: impl Fn(&LoopStats) -> f64,
) -> Family<'a> {
    Family {
        name,
        kind: "gauge",
        help,
        samples: loops
            .iter()
            .enumerate()
            .map(|(i, l)| (Some(("loop", i.to_string())), value(l).to_string()))
            .collect(),
    }
}

fn net(n: &LoopStats) -> Vec<Family<'static>> {
    let counter = |name, help, value| one(name, "counter", help, value);
    vec![
        counter(
            "datagrams_in_total",
            "Datagrams received from the socket.",
            n.datagrams_in,
        ),
        counter(
            "datagrams_out_total",
            "Datagrams handed to the socket.",
            n.datagrams_out,
        ),
        counter(
            "bytes_in_total",
            "Bytes received from the socket.",
            n.bytes_in,
        ),
        counter(
            "bytes_out_total",
            "Bytes handed to the socket.",
            n.bytes_out,
        ),
        counter(
            "retransmits_total",
            "Segments retransmitted (timeout and fast), summed over sessions.",
            n.retransmits,
        ),
        counter(
            "recv_syscalls_total",
            "Receive system calls.",
            n.recv_syscalls,
        ),
        counter("send_syscalls_total", "Send system calls.", n.send_syscalls),
        counter(
            "send_errors_total",
            "Outgoing datagrams the OS refused.",
            n.send_errors,
        ),
        counter("loop_wakeups_total", "Event loop wakeups.", n.wakeups),
        counter(
            "timer_fires_total",
            "Session timers that fired.",
            n.timer_fires,
        ),
        counter(
            "sessions_opened_total",
            "Sessions opened.",
            n.sessions_opened,
        ),
        counter(
            "sessions_confirmed_total",
            "Sessions whose peer proved its address.",
            n.sessions_confirmed,
        ),
        counter(
            "keepalives_in_total",
            "Empty messages swallowed as keepalives.",
            n.keepalives_in,
        ),
        counter(
            "sends_refused_total",
            "Sends refused by the queued-bytes limit or a full engine queue.",
            n.sends_refused,
        ),
        counter(
            "withheld_unconfirmed_total",
            "Datagrams held back from unconfirmed peers by the three-times rule.",
            n.withheld_unconfirmed,
        ),
        counter(
            "handler_panics_total",
            "Handler panics caught.",
            n.handler_panics,
        ),
        counter(
            "handshakes_total",
            "Secure handshakes completed.",
            n.handshakes,
        ),
        counter(
            "cookies_sent_total",
            "Cookie replies sent to initiations that had to prove their address.",
            n.cookies_sent,
        ),
        counter(
            "migrations_total",
            "Secure sessions that moved to a new address.",
            n.migrations,
        ),
        counter(
            "datagrams_forwarded_total",
            "Sealed datagrams one event loop handed to the loop holding their session (a client that moved to an address hashed to another loop).",
            n.forwarded_out,
        ),
        counter(
            "datagrams_forwarded_in_total",
            "Sealed datagrams an event loop took from another loop for one of its sessions.",
            n.forwarded_in,
        ),
        labelled(
            "datagrams_dropped_total",
            "Datagrams dropped, by cause.",
            "cause",
            &[
                ("malformed", n.dropped_malformed),
                ("truncated", n.dropped_truncated),
                ("unknown_session", n.dropped_unknown_session),
                ("rejected", n.dropped_rejected),
                ("session_limit", n.dropped_session_limit),
                ("rate_limited", n.dropped_rate_limited),
                ("unconfirmed_full", n.dropped_unconfirmed_full),
                ("memory_budget", n.dropped_memory_budget),
                ("ip_limit", n.dropped_ip_limit),
                ("ip_rate", n.dropped_ip_rate),
                ("refused", n.dropped_refused),
                ("send_full", n.dropped_send_full),
                ("impaired", n.dropped_impaired),
                ("unknown_index", n.dropped_unknown_index),
                ("tampered", n.dropped_tampered),
                ("replayed", n.dropped_replayed),
                ("sealed_other", n.dropped_sealed_other),
                ("forward_full", n.dropped_forward_full),
            ],
        ),
        labelled(
            "sessions_closed_total",
            "Sessions closed, by reason.",
            "reason",
            &[
                ("idle", n.closed_idle),
                ("dead_link", n.closed_dead_link),
                ("local", n.closed_local),
                ("shutdown", n.closed_shutdown),
                ("handler_panicked", n.closed_handler_panicked),
                ("by_peer", n.closed_by_peer),
                ("unconfirmed", n.closed_unconfirmed),
                ("evicted", n.evicted_unconfirmed),
                ("slow_consumer", n.closed_slow_consumer),
            ],
        ),
        labelled(
            "handshakes_rejected_total",
            "Secure initiations refused, by cause.",
            "cause",
            &[
                ("version", n.rejected_version),
                ("wrong_key", n.rejected_wrong_key),
                ("handshake", n.rejected_handshake),
                ("full", n.rejected_full),
            ],
        ),
    ]
}

/// `stats` in the Prometheus text format.
pub fn render(stats: &ChatStats) -> String {
    let c = &stats.chat;
    let gauge = |name, help, value: usize| one(name, "gauge", help, value as u64);
    let counter = |name, help, value| one(name, "counter", help, value);
    let mut families = vec![
        gauge(
            "sessions",
            "Sessions open (welcomed or not).",
            stats.sessions,
        ),
        gauge("users", "Users welcomed and present.", stats.users),
        gauge("rooms", "Rooms that exist.", stats.rooms),
        counter("users_welcomed_total", "Users welcomed.", c.welcomed),
        counter(
            "frames_in_total",
            "Chat frames received (keepalives excluded).",
            c.frames_in,
        ),
        counter(
            "frames_out_total",
            "Chat frames queued to sessions (each copy of a broadcast).",
            c.frames_out,
        ),
        counter("messages_total", "Chat messages posted.", c.messages),
        counter("error_frames_total", "Error frames sent.", c.errors),
        counter(
            "bad_frames_total",
            "Frames that did not decode.",
            c.bad_frames,
        ),
        labelled(
            "frames_rate_limited_total",
            "Frames dropped by a rate limit, by the limit.",
            "limit",
            &[
                ("session", c.rate_limited.saturating_sub(c.ip_rate_limited)),
                ("address", c.ip_rate_limited),
            ],
        ),
        counter("kicked_total", "Clients disconnected for abuse.", c.kicked),
        labelled(
            "refused_busy_total",
            "Hellos refused as server-busy (admission control), by the signal that fired.",
            "signal",
            &[
                ("loop_load", c.refused_busy_load),
                (
                    "loop_lag",
                    c.refused_busy
                        .saturating_sub(c.refused_busy_load + c.refused_busy_retransmits),
                ),
                ("retransmits", c.refused_busy_retransmits),
            ],
        ),
    ];
    families.extend(net(&stats.net.total));
    families.extend([
        per_loop(
            "loop_lag_seconds",
            "How late each event loop served its timers, at worst, over the last one to two seconds.",
            &stats.net.loops,
            |l| Duration::from_micros(l.loop_lag_us).as_secs_f64(),
        ),
        per_loop(
            "loop_retransmit_share",
            "Retransmitted segments per message each event loop sent over the last one to two seconds.",
            &stats.net.loops,
            |l| l.retransmit_permille as f64 / 1000.0,
        ),
        per_loop(
            "loop_busy_share",
            "The share of the wall clock each event loop spent working (outside its wait for events) over the last one to two seconds.",
            &stats.net.loops,
            |l| l.loop_busy_permille as f64 / 1000.0,
        ),
    ]);
    if let Some(cl) = &stats.cluster {
        families.extend([
            one(
                "cluster_connected",
                "gauge",
                "1 while the connection to Redis is up.",
                u64::from(cl.connected),
            ),
            counter("cluster_published_total", "Events published.", cl.published),
            counter(
                "cluster_pipelines_total",
                "Redis pipelines sent.",
                cl.pipelines,
            ),
            counter(
                "cluster_entries_read_total",
                "Stream entries read and delivered.",
                cl.entries_read,
            ),
            counter(
                "cluster_bad_entries_total",
                "Stream entries that did not decode.",
                cl.bad_entries,
            ),
            counter(
                "cluster_refused_total",
                "Requests refused while Redis was unreachable or the buffer full.",
                cl.refused,
            ),
            one(
                "cluster_buffered",
                "gauge",
                "Events waiting for Redis.",
                cl.buffered,
            ),
            counter(
                "cluster_reconnects_total",
                "Reconnections to Redis.",
                cl.reconnects,
            ),
            counter(
                "cluster_nodes_reaped_total",
                "Other nodes declared lost.",
                cl.nodes_reaped,
            ),
            counter(
                "cluster_nick_conflicts_total",
                "Nick claims refused because another node holds the nick.",
                cl.nick_conflicts,
            ),
        ]);
    }
    let mut out = String::new();
    for family in &families {
        family.write(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use kcp_net::ServerStats;

    use super::*;
    use crate::server::ChatCounters;

    fn stats() -> ChatStats {
        let mut net = ServerStats::default();
        net.total.datagrams_in = 7;
        net.total.dropped_tampered = 2;
        net.total.closed_idle = 1;
        let mut busy = LoopStats::default();
        busy.loop_lag_us = 2_500;
        busy.retransmit_permille = 180;
        busy.loop_busy_permille = 930;
        net.loops = vec![LoopStats::default(), busy];
        ChatStats {
            sessions: 3,
            users: 2,
            rooms: 1,
            chat: ChatCounters {
                messages: 5,
                rate_limited: 4,
                ip_rate_limited: 1,
                refused_busy: 4,
                refused_busy_load: 1,
                refused_busy_retransmits: 2,
                ..ChatCounters::default()
            },
            net,
            cluster: None,
        }
    }

    #[test]
    fn every_family_is_declared_once_and_every_sample_parses() {
        let text = render(&stats());
        let mut declared = HashSet::new();
        let mut typed = HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                assert!(declared.insert(name.to_owned()), "{name} twice");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(matches!(kind, "counter" | "gauge"), "{line}");
                assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
                typed.insert(name.to_owned());
            } else {
                let (series, value) = line.rsplit_once(' ').unwrap();
                value.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
                let name = series.split('{').next().unwrap();
                assert!(typed.contains(name), "{name} has no TYPE line");
            }
        }
        assert_eq!(declared, typed);
    }

    #[test]
    fn every_socket_counter_is_served() {
        // The LoopStats fields `net` serves: all but `sessions_active`, which
        // `kcp_chat_sessions` already counts. A field kcp-net adds fails this until
        // `net` serves it (and this count is raised).
        const SERVED: usize = 59;
        let fields = format!("{:?}", LoopStats::default()).matches(": 0").count();
        assert_eq!(fields, SERVED + 1, "LoopStats changed: serve the new field");
    }

    #[test]
    fn the_values_are_the_counters() {
        let text = render(&stats());
        for sample in [
            "kcp_chat_sessions 3",
            "kcp_chat_users 2",
            "kcp_chat_rooms 1",
            "kcp_chat_messages_total 5",
            "kcp_chat_frames_rate_limited_total{limit=\"session\"} 3",
            "kcp_chat_frames_rate_limited_total{limit=\"address\"} 1",
            "kcp_chat_datagrams_in_total 7",
            "kcp_chat_datagrams_dropped_total{cause=\"tampered\"} 2",
            "kcp_chat_sessions_closed_total{reason=\"idle\"} 1",
            "kcp_chat_loop_lag_seconds{loop=\"0\"} 0",
            "kcp_chat_loop_lag_seconds{loop=\"1\"} 0.0025",
            "kcp_chat_loop_retransmit_share{loop=\"1\"} 0.18",
            "kcp_chat_loop_busy_share{loop=\"1\"} 0.93",
            "kcp_chat_refused_busy_total{signal=\"loop_load\"} 1",
            "kcp_chat_refused_busy_total{signal=\"retransmits\"} 2",
            "kcp_chat_refused_busy_total{signal=\"loop_lag\"} 1",
        ] {
            assert!(text.lines().any(|l| l == sample), "{sample} in\n{text}");
        }
        assert!(
            !text.contains("cluster"),
            "a single node has no cluster family"
        );
    }
}
