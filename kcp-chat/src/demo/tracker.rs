//! Which scripted message reached which bot, and how fast.
//!
//! Every message a bot says carries a tag `[bot#n]`. The sender records it (with the
//! bots that must receive it: the members of the room when it was said) before
//! sending; each receiver records the tag when the message reaches it. A message is
//! delivered when every expected bot got it exactly once.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use crate::latency::Latencies;

/// A tracked message's identity: (sending bot, its message number).
pub(crate) type Tag = (usize, u64);

/// Formats the tag appended to a message.
pub(crate) fn tag_text(tag: Tag) -> String {
    format!("[b{}#{}]", tag.0, tag.1)
}

/// Finds the tag at the end of a message text.
pub(crate) fn parse_tag(text: &str) -> Option<Tag> {
    let start = text.rfind("[b")?;
    let inner = text[start + 2..].strip_suffix(']')?;
    let (bot, n) = inner.split_once('#')?;
    Some((bot.parse().ok()?, n.parse().ok()?))
}

#[derive(Debug)]
struct Sent {
    at: Instant,
    expected: BTreeSet<usize>,
    got: BTreeSet<usize>,
}

/// Delivery counts of a finished run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deliveries {
    /// Messages said.
    pub sent: u64,
    /// Messages every expected bot received.
    pub delivered: u64,
    /// Messages some expected bot never received.
    pub lost: u64,
    /// (message, receiver) pairs expected.
    pub expected_deliveries: u64,
    /// (message, receiver) pairs that arrived.
    pub deliveries: u64,
    /// Arrivals of a message a bot already had.
    pub duplicates: u64,
    /// Arrivals at a bot that was not expected to get the message, or of a tag never
    /// sent.
    pub unexpected: u64,
}

/// The shared record of a run.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    sent: HashMap<Tag, Sent>,
    duplicates: u64,
    unexpected: u64,
    latencies: Latencies,
}

impl Tracker {
    /// Records a message about to be sent.
    pub(crate) fn sent(&mut self, tag: Tag, expected: BTreeSet<usize>, at: Instant) {
        self.sent.insert(
            tag,
            Sent {
                at,
                expected,
                got: BTreeSet::new(),
            },
        );
    }

    /// Records an arrival at bot `at_bot`.
    pub(crate) fn received(&mut self, tag: Tag, at_bot: usize, now: Instant) {
        let Some(sent) = self.sent.get_mut(&tag) else {
            self.unexpected += 1;
            return;
        };
        if !sent.expected.contains(&at_bot) {
            self.unexpected += 1;
        } else if sent.got.insert(at_bot) {
            self.latencies.push(now.saturating_duration_since(sent.at));
        } else {
            self.duplicates += 1;
        }
    }

    /// Deliveries still missing at one bot.
    pub(crate) fn missing_at(&self, bot: usize) -> u64 {
        self.sent
            .values()
            .filter(|s| s.expected.contains(&bot) && !s.got.contains(&bot))
            .count() as u64
    }

    pub(crate) fn latencies(&self) -> &Latencies {
        &self.latencies
    }

    pub(crate) fn deliveries(&self) -> Deliveries {
        let mut d = Deliveries {
            duplicates: self.duplicates,
            unexpected: self.unexpected,
            ..Deliveries::default()
        };
        for s in self.sent.values() {
            d.sent += 1;
            d.expected_deliveries += s.expected.len() as u64;
            d.deliveries += s.got.len() as u64;
            if s.expected.is_subset(&s.got) {
                d.delivered += 1;
            } else {
                d.lost += 1;
            }
        }
        d
    }

    /// Deliveries (arrived, expected) from a sender to a receiver that `between`
    /// accepts, e.g. on different nodes of a cluster.
    pub(crate) fn deliveries_between(&self, between: impl Fn(usize, usize) -> bool) -> (u64, u64) {
        let mut got = 0;
        let mut expected = 0;
        for (tag, s) in &self.sent {
            got += s.got.iter().filter(|r| between(tag.0, **r)).count() as u64;
            expected += s.expected.iter().filter(|r| between(tag.0, **r)).count() as u64;
        }
        (got, expected)
    }

    /// Some undelivered messages, for the report: `[b1#4] missing at 0, 2`.
    pub(crate) fn undelivered(&self, limit: usize) -> Vec<String> {
        let mut out: Vec<_> = self
            .sent
            .iter()
            .filter(|(_, s)| !s.expected.is_subset(&s.got))
            .map(|(tag, s)| {
                let missing: Vec<String> = s
                    .expected
                    .difference(&s.got)
                    .map(ToString::to_string)
                    .collect();
                (
                    *tag,
                    format!("{} missing at bots {}", tag_text(*tag), missing.join(", ")),
                )
            })
            .collect();
        out.sort();
        out.into_iter().take(limit).map(|(_, line)| line).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn tags_round_trip_and_junk_is_ignored() {
        let text = format!("hello {}", tag_text((3, 17)));
        assert_eq!(parse_tag(&text), Some((3, 17)));
        assert_eq!(parse_tag("no tag"), None);
        assert_eq!(parse_tag("[bx#1]"), None);
    }

    #[test]
    fn a_message_is_delivered_only_when_every_expected_bot_got_it_once() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        t.sent((0, 1), BTreeSet::from([0, 1, 2]), t0);
        t.sent((1, 1), BTreeSet::from([0, 1]), t0);
        for bot in [0, 1, 2] {
            t.received((0, 1), bot, t0 + Duration::from_millis(10));
        }
        t.received((0, 1), 2, t0); // duplicate
        t.received((1, 1), 0, t0);
        t.received((1, 1), 2, t0); // not in that room
        t.received((9, 9), 0, t0); // never sent
        assert_eq!(t.missing_at(1), 1);
        assert_eq!(t.missing_at(2), 0);
        let d = t.deliveries();
        assert_eq!((d.sent, d.delivered, d.lost), (2, 1, 1));
        assert_eq!((d.expected_deliveries, d.deliveries), (5, 4));
        assert_eq!((d.duplicates, d.unexpected), (1, 2));
        assert_eq!(
            t.undelivered(5),
            vec!["[b1#1] missing at bots 1".to_owned()]
        );
        assert_eq!(t.latencies().summary().max, Duration::from_millis(10));
        // Bots 0 and 2 on one node, bot 1 on another.
        assert_eq!(t.deliveries_between(|a, b| a % 2 != b % 2), (2, 2));
    }
}
