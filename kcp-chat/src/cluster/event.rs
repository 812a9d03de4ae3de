//! What a room's stream holds: one entry per message, join, leave or rename, as flat
//! field/value pairs, and the decoding of entries read back (a bad entry is an error
//! value, never a panic).

use std::collections::HashMap;

use crate::protocol::{LeaveReason, MessageKind};
use crate::room::UserId;

/// What happened in a room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    /// A line said or acted; `seq` is assigned by Redis when it is published.
    Message {
        text: String,
        kind: MessageKind,
        ts_ms: u64,
        seq: u64,
    },
    /// `nick` joined.
    Join,
    /// `nick` left.
    Leave { reason: LeaveReason },
    /// `old` is now known as `nick`.
    Nick { old: String },
}

/// One entry of a room's stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RoomEvent {
    /// The node the user is on.
    pub(crate) node: String,
    /// Which run of that node (user ids restart with each run); 0 in the entries
    /// written for a lost node.
    pub(crate) inc: u64,
    /// The user's id on that node (0 when the entry is written for a lost node).
    pub(crate) uid: UserId,
    /// Who: the sender, joiner, leaver or the new nick.
    pub(crate) nick: String,
    pub(crate) body: Body,
}

/// Why a stream entry was skipped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum EventError {
    #[error("field {0:?} is missing")]
    Missing(&'static str),
    #[error("field {field:?} has a bad value {value:?}")]
    Bad { field: &'static str, value: String },
}

pub(crate) const fn reason_name(reason: LeaveReason) -> &'static str {
    match reason {
        LeaveReason::Left => "left",
        LeaveReason::Quit => "quit",
        LeaveReason::Lost => "lost",
        LeaveReason::Kicked => "kicked",
        LeaveReason::Reconnected => "reconnected",
        LeaveReason::NodeLost => "node-lost",
    }
}

fn reason_of(name: &str) -> Option<LeaveReason> {
    Some(match name {
        "left" => LeaveReason::Left,
        "quit" => LeaveReason::Quit,
        "lost" => LeaveReason::Lost,
        "kicked" => LeaveReason::Kicked,
        "reconnected" => LeaveReason::Reconnected,
        "node-lost" => LeaveReason::NodeLost,
        _ => return None,
    })
}

impl RoomEvent {
    /// The entry's type letter: `m`essage, `j`oin, `l`eave, `n`ick.
    pub(crate) const fn kind_letter(&self) -> &'static str {
        match self.body {
            Body::Message { .. } => "m",
            Body::Join => "j",
            Body::Leave { .. } => "l",
            Body::Nick { .. } => "n",
        }
    }

    /// Every field/value pair of the entry (the publish script adds `s`, the
    /// sequence number, to messages).
    pub(crate) fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("t", self.kind_letter().to_owned()),
            ("node", self.node.clone()),
            ("inc", self.inc.to_string()),
            ("uid", self.uid.to_string()),
            ("nick", self.nick.clone()),
        ];
        fields.extend(self.extra_fields());
        fields
    }

    /// Whether the user is one of this run of this node.
    pub(crate) fn is_ours(&self, node: &str, inc: u64) -> bool {
        self.inc == inc && self.node == node
    }

    fn extra_fields(&self) -> Vec<(&'static str, String)> {
        match &self.body {
            Body::Message {
                text, kind, ts_ms, ..
            } => vec![
                ("x", text.clone()),
                (
                    "k",
                    match kind {
                        MessageKind::Say => "say",
                        MessageKind::Me => "me",
                    }
                    .to_owned(),
                ),
                ("ts", ts_ms.to_string()),
            ],
            Body::Join => Vec::new(),
            Body::Leave { reason } => vec![("r", reason_name(*reason).to_owned())],
            Body::Nick { old } => vec![("o", old.clone())],
        }
    }

    /// Decodes an entry's field/value pairs.
    pub(crate) fn decode(fields: &HashMap<String, String>) -> Result<Self, EventError> {
        let get = |name: &'static str| fields.get(name).ok_or(EventError::Missing(name));
        let number = |name: &'static str| -> Result<u64, EventError> {
            let value = get(name)?;
            value.parse().map_err(|_| EventError::Bad {
                field: name,
                value: value.clone(),
            })
        };
        let body = match get("t")?.as_str() {
            "m" => Body::Message {
                text: get("x")?.clone(),
                kind: match get("k")?.as_str() {
                    "say" => MessageKind::Say,
                    "me" => MessageKind::Me,
                    other => {
                        return Err(EventError::Bad {
                            field: "k",
                            value: other.to_owned(),
                        });
                    }
                },
                ts_ms: number("ts")?,
                seq: number("s")?,
            },
            "j" => Body::Join,
            "l" => {
                let name = get("r")?;
                Body::Leave {
                    reason: reason_of(name).ok_or_else(|| EventError::Bad {
                        field: "r",
                        value: name.clone(),
                    })?,
                }
            }
            "n" => Body::Nick {
                old: get("o")?.clone(),
            },
            other => {
                return Err(EventError::Bad {
                    field: "t",
                    value: other.to_owned(),
                });
            }
        };
        Ok(Self {
            node: get("node")?.clone(),
            inc: if fields.contains_key("inc") {
                number("inc")?
            } else {
                0
            },
            uid: number("uid")?,
            nick: get("nick")?.clone(),
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(event: &RoomEvent, seq: Option<u64>) -> HashMap<String, String> {
        let mut map: HashMap<String, String> = event
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        if let Some(seq) = seq {
            map.insert("s".into(), seq.to_string());
        }
        map
    }

    #[test]
    fn every_kind_round_trips() {
        let bodies = [
            Body::Message {
                text: "hi there".into(),
                kind: MessageKind::Me,
                ts_ms: 17,
                seq: 4,
            },
            Body::Join,
            Body::Leave {
                reason: LeaveReason::NodeLost,
            },
            Body::Nick { old: "al".into() },
        ];
        for body in bodies {
            let seq = match &body {
                Body::Message { seq, .. } => Some(*seq),
                _ => None,
            };
            let event = RoomEvent {
                node: "n1".into(),
                inc: 3,
                uid: 9,
                nick: "alice".into(),
                body,
            };
            assert_eq!(RoomEvent::decode(&fields(&event, seq)), Ok(event));
        }
    }

    #[test]
    fn bad_entries_are_errors() {
        let mut map = HashMap::new();
        assert_eq!(RoomEvent::decode(&map), Err(EventError::Missing("t")));
        map.insert("t".to_owned(), "z".to_owned());
        assert!(matches!(
            RoomEvent::decode(&map),
            Err(EventError::Bad { field: "t", .. })
        ));
        map.insert("t".to_owned(), "l".to_owned());
        map.insert("r".to_owned(), "bored".to_owned());
        assert!(matches!(
            RoomEvent::decode(&map),
            Err(EventError::Bad { field: "r", .. })
        ));
    }
}
