//! How the client shows server frames: one line of text each.

use crate::protocol::{LeaveReason, MessageKind, RoomInfo, ServerFrame};

/// `HH:MM:SS` (UTC) of a server timestamp.
pub fn clock(ts_ms: u64) -> String {
    let secs = ts_ms / 1000 % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

fn rooms(list: &[RoomInfo]) -> String {
    if list.is_empty() {
        return "(none)".into();
    }
    list.iter()
        .map(|r| format!("{} ({})", r.name, r.users))
        .collect::<Vec<_>>()
        .join(", ")
}

const fn reason(reason: LeaveReason) -> &'static str {
    match reason {
        LeaveReason::Left => "left",
        LeaveReason::Quit => "quit",
        LeaveReason::Lost => "connection lost",
        LeaveReason::Kicked => "kicked",
        LeaveReason::Reconnected => "reconnected",
        LeaveReason::NodeLost => "node lost",
    }
}

/// The line to show for a frame. `Pong` has none (the client shows the round trip).
pub fn render(frame: &ServerFrame) -> Option<String> {
    Some(match frame {
        ServerFrame::Welcome {
            id,
            nick,
            rooms: list,
            ..
        } => format!("*** welcome {nick} (user {id}); rooms: {}", rooms(list)),
        ServerFrame::Joined { room, nick } => format!("--> {nick} joined {room}"),
        ServerFrame::Left {
            room,
            nick,
            reason: why,
        } => format!("<-- {nick} left {room} ({})", reason(*why)),
        ServerFrame::Message {
            room,
            from,
            text,
            kind,
            ts_ms,
            history,
            ..
        } => {
            let time = clock(*ts_ms);
            let old = if *history { " (earlier)" } else { "" };
            match kind {
                MessageKind::Say => format!("{time} [{room}]{old} <{from}> {text}"),
                MessageKind::Me => format!("{time} [{room}]{old} * {from} {text}"),
            }
        }
        ServerFrame::NickChanged { old, new } => format!("*** {old} is now known as {new}"),
        ServerFrame::Error { code, text } => format!("!!! error ({code}): {text}"),
        ServerFrame::Rooms { rooms: list } => format!("*** rooms: {}", rooms(list)),
        ServerFrame::Users { room, nicks } => format!("*** in {room}: {}", nicks.join(", ")),
        ServerFrame::Pong { .. } => return None,
        ServerFrame::Shutdown { text } => format!("*** server shutting down: {text}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorCode;

    #[test]
    fn lines_read_like_a_chat() {
        let message = ServerFrame::Message {
            room: "lobby".into(),
            from: "bob".into(),
            text: "hi".into(),
            kind: MessageKind::Say,
            ts_ms: 3_600_000 + 61_000,
            seq: 1,
            history: false,
        };
        assert_eq!(render(&message).unwrap(), "01:01:01 [lobby] <bob> hi");
        let error = ServerFrame::Error {
            code: ErrorCode::NickTaken,
            text: "nick \"bob\" is taken".into(),
        };
        assert_eq!(
            render(&error).unwrap(),
            "!!! error (nick-taken): nick \"bob\" is taken"
        );
        let left = ServerFrame::Left {
            room: "lobby".into(),
            nick: "bob".into(),
            reason: LeaveReason::Quit,
        };
        assert_eq!(render(&left).unwrap(), "<-- bob left lobby (quit)");
        assert_eq!(render(&ServerFrame::Pong { nonce: 1 }), None);
    }
}
