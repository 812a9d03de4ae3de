//! The 24-byte segment header and its wire encoding (spec §1).

use alloc::vec::Vec;

use crate::error::InputError;
use crate::{Sn, Timestamp};

/// Size of a segment header on the wire (`IKCP_OVERHEAD`).
pub const HEADER_LEN: usize = 24;

/// The four KCP segment commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// `81`: a data segment (first transmission or retransmission).
    Push,
    /// `82`: acknowledges one `Push` by its `sn`, echoing its `ts`.
    Ack,
    /// `83`: window probe, "tell me your window".
    WindowAsk,
    /// `84`: window announcement, the answer to a probe or "my window reopened".
    WindowTell,
}

impl Command {
    /// The command byte on the wire.
    pub const fn to_byte(self) -> u8 {
        match self {
            Self::Push => 81,
            Self::Ack => 82,
            Self::WindowAsk => 83,
            Self::WindowTell => 84,
        }
    }

    /// Decodes a command byte; `None` for anything but 81..=84.
    pub const fn from_byte(b: u8) -> Option<Self> {
        match b {
            81 => Some(Self::Push),
            82 => Some(Self::Ack),
            83 => Some(Self::WindowAsk),
            84 => Some(Self::WindowTell),
            _ => None,
        }
    }
}

/// One segment header, decoded. Every value of this type is valid to emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Conversation id.
    pub conv: u32,
    /// What the segment is.
    pub cmd: Command,
    /// Message mode: fragments that follow this one in the same message; 0 in stream mode.
    pub frg: u8,
    /// The sender's free receive window, in segments.
    pub wnd: u16,
    /// `Push`: the sender's clock at this transmission. `Ack`: the echoed `ts`.
    pub ts: Timestamp,
    /// `Push`: sequence number. `Ack`: the sequence number acknowledged.
    pub sn: Sn,
    /// Every `sn` before this one has been received by the sender of this segment.
    pub una: Sn,
    /// Payload length in bytes.
    pub len: u32,
}

impl Header {
    /// A header for conversation `conv`, command `cmd` and sequence number `sn`, with
    /// every other field as on a fresh engine's first segment: `frg` 0, `wnd` 128 (the
    /// default receive window), `ts` 0, `una` 0 and `len` 0.
    ///
    /// For crafting datagrams in tests and tools; change any other field with struct
    /// update syntax, `Header { una, ..Header::new(conv, cmd, sn) }`, and add a payload
    /// with [`Header::encode`].
    pub const fn new(conv: u32, cmd: Command, sn: Sn) -> Self {
        Self {
            conv,
            cmd,
            frg: 0,
            wnd: 128,
            ts: Timestamp::from_millis(0),
            sn,
            una: Sn::new(0),
            len: 0,
        }
    }

    /// One whole segment as wire bytes: this header with `len` set to
    /// `payload.len()`, followed by `payload`.
    ///
    /// Several segments concatenated make one datagram.
    ///
    /// ```
    /// use kcp_core::Sn;
    /// use kcp_core::segment::{Command, HEADER_LEN, Header};
    ///
    /// let datagram = Header::new(7, Command::Push, Sn::new(0)).encode(b"hi");
    /// assert_eq!(datagram.len(), HEADER_LEN + 2);
    /// let (header, payload) = Header::parse(&datagram).unwrap();
    /// assert_eq!((header.conv, header.len, payload), (7, 2, &b"hi"[..]));
    /// ```
    ///
    /// # Panics
    /// If `payload` is longer than `u32::MAX` bytes.
    pub fn encode(&self, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).expect("a payload of at most u32::MAX bytes");
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(&Self { len, ..*self }.to_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// Parses the header at the start of `buf` and checks that its payload is present.
    ///
    /// Returns the header and the payload (`len` bytes right after the header). The
    /// conversation id is not checked here; the engine does that.
    pub fn parse(buf: &[u8]) -> Result<(Self, &[u8]), InputError> {
        let Some(raw) = buf.first_chunk::<HEADER_LEN>() else {
            return Err(InputError::Truncated { len: buf.len() });
        };
        let len = u32_at(raw, 20);
        let available = buf.len() - HEADER_LEN;
        // `len` above i32::MAX is rejected by the reference as well (`(int)len < 0`).
        if len > i32::MAX as u32 || len as usize > available {
            return Err(InputError::BadLength {
                declared: len,
                available,
            });
        }
        let cmd = Command::from_byte(raw[4]).ok_or(InputError::UnknownCommand(raw[4]))?;
        let header = Self::from_raw(raw, cmd);
        Ok((header, &buf[HEADER_LEN..HEADER_LEN + len as usize]))
    }

    /// The header whose wire bytes are `raw`, its command byte already decoded as
    /// `cmd`. Nothing is checked.
    #[inline(always)]
    pub(crate) const fn from_raw(raw: &[u8; HEADER_LEN], cmd: Command) -> Self {
        Self {
            conv: u32_at(raw, 0),
            cmd,
            frg: raw[5],
            wnd: u16::from_le_bytes([raw[6], raw[7]]),
            ts: Timestamp::from_millis(u32_at(raw, 8)),
            sn: Sn::new(u32_at(raw, 12)),
            una: Sn::new(u32_at(raw, 16)),
            len: u32_at(raw, 20),
        }
    }

    /// Writes the 24 header bytes into `out`.
    ///
    /// # Panics
    /// If `out` is shorter than [`HEADER_LEN`].
    pub fn emit(&self, out: &mut [u8]) {
        let out = &mut out[..HEADER_LEN];
        out[0..4].copy_from_slice(&self.conv.to_le_bytes());
        out[4] = self.cmd.to_byte();
        out[5] = self.frg;
        out[6..8].copy_from_slice(&self.wnd.to_le_bytes());
        out[8..12].copy_from_slice(&self.ts.as_millis().to_le_bytes());
        out[12..16].copy_from_slice(&self.sn.get().to_le_bytes());
        out[16..20].copy_from_slice(&self.una.get().to_le_bytes());
        out[20..24].copy_from_slice(&self.len.to_le_bytes());
    }

    /// The header as 24 wire bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        self.emit(&mut out);
        out
    }
}

/// The little-endian `u32` at byte `i` of a header.
#[inline(always)]
pub(crate) const fn u32_at(raw: &[u8; HEADER_LEN], i: usize) -> u32 {
    u32::from_le_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]])
}

/// The conversation id of a datagram (its first four bytes, little-endian), or `None`
/// if it is too short to hold a segment header.
///
/// A server uses this to route a datagram to its session before handing it to
/// [`Kcp::input`](crate::Kcp::input).
pub fn conv_of(datagram: &[u8]) -> Option<u32> {
    if datagram.len() < HEADER_LEN {
        return None;
    }
    Some(u32::from_le_bytes([
        datagram[0],
        datagram[1],
        datagram[2],
        datagram[3],
    ]))
}

/// The segments of a datagram, in order: each header with the offset of its payload.
/// Stops at the first header that does not parse, and ignores fewer than
/// [`HEADER_LEN`] trailing bytes.
///
/// ```
/// use kcp_core::Sn;
/// use kcp_core::segment::{Command, Header, Segments};
///
/// let mut datagram = Header::new(7, Command::Ack, Sn::new(3)).encode(&[]);
/// datagram.extend(Header::new(7, Command::Push, Sn::new(9)).encode(b"hi"));
/// let walked: Vec<_> = Segments::new(&datagram).map(|(h, at)| (h.sn.get(), at)).collect();
/// assert_eq!(walked, [(3, 24), (9, 48)]);
/// ```
#[derive(Clone, Debug)]
pub struct Segments<'a> {
    datagram: &'a [u8],
    offset: usize,
}

impl<'a> Segments<'a> {
    /// The segments of `datagram`.
    pub const fn new(datagram: &'a [u8]) -> Self {
        Self {
            datagram,
            offset: 0,
        }
    }
}

impl Iterator for Segments<'_> {
    type Item = (Header, usize);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.datagram.get(self.offset..)?;
        let (header, payload) = Header::parse(rest).ok()?;
        let start = self.offset + HEADER_LEN;
        self.offset = start + payload.len();
        Some((header, start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A datagram captured from the C reference (spec §1): PUSH, conv 0x11223344,
    /// wnd 128, ts 360, sn 18, una 0, 95 payload bytes.
    const GOLDEN: [u8; 24] = [
        0x44, 0x33, 0x22, 0x11, 0x51, 0x00, 0x80, 0x00, 0x68, 0x01, 0x00, 0x00, 0x12, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x5f, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn golden_header_decodes_field_by_field() {
        let mut dgram = GOLDEN.to_vec();
        dgram.extend(core::iter::repeat_n(0xab, 95));
        let (h, payload) = Header::parse(&dgram).unwrap();
        assert_eq!(h.conv, 0x1122_3344);
        assert_eq!(h.cmd, Command::Push);
        assert_eq!(h.frg, 0);
        assert_eq!(h.wnd, 128);
        assert_eq!(h.ts, Timestamp::from_millis(360));
        assert_eq!(h.sn, Sn::new(18));
        assert_eq!(h.una, Sn::new(0));
        assert_eq!(h.len, 95);
        assert_eq!(payload.len(), 95);
        assert_eq!(h.to_bytes(), GOLDEN);
    }

    #[test]
    fn encode_writes_header_then_payload() {
        let datagram = Header::new(0x0102_0304, Command::Push, Sn::new(5)).encode(b"hi");
        #[rustfmt::skip]
        let expected = [
            0x04, 0x03, 0x02, 0x01, // conv
            0x51, 0x00,             // cmd Push, frg 0
            0x80, 0x00,             // wnd 128
            0x00, 0x00, 0x00, 0x00, // ts 0
            0x05, 0x00, 0x00, 0x00, // sn 5
            0x00, 0x00, 0x00, 0x00, // una 0
            0x02, 0x00, 0x00, 0x00, // len 2
            b'h', b'i',
        ];
        assert_eq!(datagram, expected);

        // The captured reference datagram, rebuilt; `len` comes from the payload.
        let header = Header {
            ts: Timestamp::from_millis(360),
            len: 7,
            ..Header::new(0x1122_3344, Command::Push, Sn::new(18))
        };
        let datagram = header.encode(&[0xab; 95]);
        assert_eq!(datagram[..HEADER_LEN], GOLDEN);
        assert_eq!(datagram[HEADER_LEN..], [0xab; 95]);
        assert_eq!(
            Header::new(9, Command::Ack, Sn::new(1)).encode(&[]),
            Header::new(9, Command::Ack, Sn::new(1)).to_bytes()
        );
    }

    #[test]
    fn round_trip_of_every_command() {
        for cmd in [
            Command::Push,
            Command::Ack,
            Command::WindowAsk,
            Command::WindowTell,
        ] {
            let h = Header {
                conv: u32::MAX,
                cmd,
                frg: 200,
                wnd: 65535,
                ts: Timestamp::from_millis(u32::MAX - 1),
                sn: Sn::new(0x8000_0000),
                una: Sn::new(7),
                len: 0,
            };
            let bytes = h.to_bytes();
            assert_eq!(Header::parse(&bytes).unwrap(), (h, &[][..]));
            assert_eq!(Command::from_byte(cmd.to_byte()), Some(cmd));
        }
    }

    #[test]
    fn rejects_short_bad_length_and_unknown_command() {
        assert_eq!(
            Header::parse(&GOLDEN[..23]),
            Err(InputError::Truncated { len: 23 })
        );
        // len says 95 but no payload follows.
        assert_eq!(
            Header::parse(&GOLDEN),
            Err(InputError::BadLength {
                declared: 95,
                available: 0
            })
        );
        let mut bad = GOLDEN;
        bad[20..24].copy_from_slice(&0u32.to_le_bytes());
        bad[4] = 80;
        assert_eq!(Header::parse(&bad), Err(InputError::UnknownCommand(80)));
        let mut huge = GOLDEN;
        huge[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Header::parse(&huge),
            Err(InputError::BadLength { .. })
        ));
    }

    #[test]
    fn conv_of_reads_the_first_four_bytes() {
        assert_eq!(conv_of(&GOLDEN), Some(0x1122_3344));
        assert_eq!(conv_of(&GOLDEN[..10]), None);
    }
}
