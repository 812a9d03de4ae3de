//! Encoding and decoding frames.

use bytes::Bytes;
use serde::Serialize;

use super::{ClientFrame, ServerFrame};

/// Why bytes are not a frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes are not the encoding of a frame of the expected kind.
    #[error("malformed frame: {0}")]
    Malformed(#[from] postcard::Error),
    /// The frame decoded but bytes were left after it.
    #[error("{0} bytes after the end of the frame")]
    TrailingBytes(usize),
    /// The frame is longer than the limit, so it was not decoded.
    #[error("frame of {len} bytes exceeds the limit of {limit}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
}

/// Encodes a frame (client or server) as one KCP message.
///
/// # Errors
/// Only if serialization fails, which for these types means out of memory.
pub fn encode<T: Serialize>(frame: &T) -> Result<Bytes, CodecError> {
    Ok(Bytes::from(postcard::to_stdvec(frame)?))
}

/// Decodes a message from a client; nothing may follow the frame.
///
/// # Errors
/// [`CodecError::Malformed`] or [`CodecError::TrailingBytes`].
pub fn decode_client(bytes: &[u8]) -> Result<ClientFrame, CodecError> {
    decode_exact(bytes)
}

/// Decodes a message from the server; nothing may follow the frame.
///
/// # Errors
/// [`CodecError::Malformed`] or [`CodecError::TrailingBytes`].
pub fn decode_server(bytes: &[u8]) -> Result<ServerFrame, CodecError> {
    decode_exact(bytes)
}

fn decode_exact<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (frame, rest) = postcard::take_from_bytes(bytes)?;
    if rest.is_empty() {
        Ok(frame)
    } else {
        Err(CodecError::TrailingBytes(rest.len()))
    }
}

/// If `bytes` start like a hello (variant 0), its protocol version, even when the rest
/// does not decode with our definition of `Hello`: how a server recognises a client
/// of another version and tells it so instead of calling it garbage.
pub fn peek_hello_version(bytes: &[u8]) -> Option<u16> {
    let (variant, rest): (u32, _) = postcard::take_from_bytes(bytes).ok()?;
    if variant != 0 {
        return None;
    }
    let (version, _): (u16, _) = postcard::take_from_bytes(rest).ok()?;
    Some(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ErrorCode, LeaveReason, MessageKind, PROTOCOL_VERSION, RoomInfo};

    fn client_frames() -> Vec<ClientFrame> {
        vec![
            ClientFrame::hello("alice"),
            ClientFrame::Hello {
                version: 7,
                nick: "bob".into(),
                resume: Some(u64::MAX),
            },
            ClientFrame::Join {
                room: "lobby".into(),
            },
            ClientFrame::Leave { room: "x".into() },
            ClientFrame::Say {
                room: "lobby".into(),
                text: "héllo ✓".into(),
            },
            ClientFrame::Me {
                room: "lobby".into(),
                text: "waves".into(),
            },
            ClientFrame::Nick { nick: "al".into() },
            ClientFrame::ListRooms,
            ClientFrame::ListUsers {
                room: "lobby".into(),
            },
            ClientFrame::Ping { nonce: 1 << 40 },
            ClientFrame::Quit {
                reason: String::new(),
            },
        ]
    }

    fn server_frames() -> Vec<ServerFrame> {
        let rooms = vec![RoomInfo {
            name: "lobby".into(),
            users: 3,
        }];
        vec![
            ServerFrame::Welcome {
                version: PROTOCOL_VERSION,
                id: 1,
                nick: "alice".into(),
                token: 99,
                rooms: rooms.clone(),
            },
            ServerFrame::Joined {
                room: "lobby".into(),
                nick: "bob".into(),
            },
            ServerFrame::Left {
                room: "lobby".into(),
                nick: "bob".into(),
                reason: LeaveReason::Kicked,
            },
            ServerFrame::Message {
                room: "lobby".into(),
                from: "bob".into(),
                text: "hi".into(),
                kind: MessageKind::Me,
                ts_ms: 1_700_000_000_000,
                seq: 12,
                history: true,
            },
            ServerFrame::NickChanged {
                old: "a".into(),
                new: "b".into(),
            },
            ServerFrame::Error {
                code: ErrorCode::NickTaken,
                text: "taken".into(),
            },
            ServerFrame::Rooms { rooms },
            ServerFrame::Users {
                room: "lobby".into(),
                nicks: vec!["a".into(), "b".into()],
            },
            ServerFrame::Pong { nonce: 5 },
            ServerFrame::Shutdown { text: "bye".into() },
        ]
    }

    #[test]
    fn every_frame_round_trips() {
        for frame in client_frames() {
            let bytes = encode(&frame).unwrap();
            assert_eq!(decode_client(&bytes).unwrap(), frame);
        }
        for frame in server_frames() {
            let bytes = encode(&frame).unwrap();
            assert_eq!(decode_server(&bytes).unwrap(), frame);
        }
    }

    #[test]
    fn wire_bytes_are_stable() {
        // Variant 3 (Say), room "a", text "hi": the layout other implementations rely on.
        let say = ClientFrame::Say {
            room: "a".into(),
            text: "hi".into(),
        };
        assert_eq!(&encode(&say).unwrap()[..], &[3, 1, b'a', 2, b'h', b'i']);
        // Hello: variant 0, version 1, nick "x", no resume token.
        assert_eq!(
            &encode(&ClientFrame::hello("x")).unwrap()[..],
            &[0, 1, 1, b'x', 0]
        );
        assert_eq!(
            &encode(&ServerFrame::Pong { nonce: 300 }).unwrap()[..],
            &[8, 0xac, 0x02]
        );
    }

    #[test]
    fn garbage_truncation_and_trailing_bytes_are_errors() {
        assert!(matches!(decode_client(&[]), Err(CodecError::Malformed(_))));
        assert!(matches!(
            decode_client(&[200]),
            Err(CodecError::Malformed(_))
        ));
        let bytes = encode(&ClientFrame::hello("alice")).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode_client(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = bytes.to_vec();
        long.push(0);
        assert!(matches!(
            decode_client(&long),
            Err(CodecError::TrailingBytes(1))
        ));
        // A string length pointing past the end must not allocate or panic.
        assert!(decode_client(&[3, 0xff, 0xff, 0xff, 0xff, 0x0f, b'a']).is_err());
        // Invalid UTF-8 in a string.
        assert!(decode_client(&[1, 2, 0xff, 0xfe]).is_err());
    }

    #[test]
    fn peek_reads_the_version_of_foreign_hellos() {
        let ours = encode(&ClientFrame::hello("alice")).unwrap();
        assert_eq!(peek_hello_version(&ours), Some(PROTOCOL_VERSION));
        // A future hello: version 9 followed by fields we do not know.
        assert_eq!(peek_hello_version(&[0, 9, 0xff, 0xff]), Some(9));
        assert_eq!(peek_hello_version(&[0, 0xac, 0x02]), Some(300));
        let say = encode(&ClientFrame::ListRooms).unwrap();
        assert_eq!(peek_hello_version(&say), None);
        assert_eq!(peek_hello_version(&[]), None);
    }
}
