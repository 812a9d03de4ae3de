//! Messages larger than one KCP message, when both ends use this crate (opt-in).
//!
//! One KCP message has at most [`Kcp::MAX_FRAGMENTS`] segments (174,752 bytes at the
//! default MTU), whatever the windows. [`LargeSender`] cuts a larger message into
//! chunks, each one ordinary KCP message, and feeds them to the engine as its send
//! queue allows; [`Reassembler`] joins them again on the other side. KCP delivers
//! messages reliably and in order, so a chunk needs no offset: the first names the
//! message's total length, the others follow it.
//!
//! # Wire format (inside each KCP message)
//!
//! | chunk | bytes |
//! |---|---|
//! | first | `0xF1`, total length (`u32`, little endian), data |
//! | more  | `0xF2`, data (at least one byte) |
//!
//! A message of any size up to the limit is one first chunk and as many more chunks as
//! it takes; the message is complete when the data received reaches the total. The
//! engine must run in message mode (not [`Config::stream`]).
//!
//! # Bounds
//!
//! The receiver refuses a total above its [`Limits::max_message`] at the first chunk,
//! before allocating, and then drops that message's other chunks. It holds at most one
//! message being assembled, whose buffer grows with the data received (doubling, never
//! past the announced total): a peer can make it hold at most `max_message` bytes, and
//! only by sending them. No chunk header can make it panic.
//!
//! # Example
//!
//! ```
//! use core::convert::Infallible;
//! use bytes::Bytes;
//! use kcp_core::large::{LargeSender, Limits, Reassembler};
//! use kcp_core::{Config, Kcp, Timestamp};
//!
//! let limits = Limits::new(1 << 20).unwrap(); // messages up to 1 MiB
//! let (mut a, mut b) = (Kcp::new(9, Config::fast()).unwrap(), Kcp::new(9, Config::fast()).unwrap());
//! let (mut sender, mut receiver) = (LargeSender::new(limits), Reassembler::new(limits));
//! let message = Bytes::from(vec![7u8; 500_000]); // far above 127 segments
//! sender.send(message.clone()).unwrap();
//!
//! let mut now = Timestamp::from_millis(0);
//! let mut got = None;
//! while got.is_none() {
//!     sender.pump(&mut a).unwrap(); // as the send queue allows
//!     let mut wire = Vec::new();
//!     a.flush(now, |d| { wire.push(d.to_vec()); Ok::<_, Infallible>(()) }).unwrap();
//!     for d in wire.drain(..) { b.input(now, &d).unwrap(); }
//!     b.flush(now, |d| { wire.push(d.to_vec()); Ok::<_, Infallible>(()) }).unwrap();
//!     for d in wire.drain(..) { a.input(now, &d).unwrap(); }
//!     got = receiver.recv(&mut b).unwrap();
//!     now = now.add_millis(10);
//! }
//! assert_eq!(got, Some(message));
//! ```

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::SendError;
use crate::{Config, Kcp};

/// The tag of a message's first chunk.
const FIRST: u8 = 0xF1;
/// The tag of every later chunk.
const MORE: u8 = 0xF2;
/// Header bytes of a first chunk: tag and `u32` total.
const FIRST_HEADER: usize = 5;
/// Header bytes of a later chunk: the tag.
const MORE_HEADER: usize = 1;

/// Why a large message could not be sent or reassembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LargeError {
    /// A message (sent, or announced by a first chunk) is longer than the limit.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The message's length.
        len: u64,
        /// [`Limits::max_message`].
        max: usize,
    },
    /// A received chunk is empty, shorter than its header, or carries no data.
    #[error("chunk of {len} bytes is too short for its kind")]
    Truncated {
        /// The chunk's length.
        len: usize,
    },
    /// A received chunk starts with an unknown tag: the peer does not speak this
    /// format (or sent a plain KCP message).
    #[error("chunk tag {0:#04x} is neither 0xf1 nor 0xf2")]
    UnknownTag(u8),
    /// A first chunk arrived while a message was still incomplete (our sender never
    /// does that); both messages are dropped.
    #[error("a new message started {missing} bytes before the previous one was complete")]
    Interrupted {
        /// Bytes the dropped message still lacked.
        missing: u64,
    },
    /// A later chunk arrived with no message started (and none being skipped).
    #[error("a continuation chunk arrived outside any message")]
    Orphan,
    /// A chunk carries more data than its message's announced total; the message is
    /// dropped.
    #[error("chunk data runs {excess} bytes past the message's total of {total}")]
    Overrun {
        /// The announced total.
        total: u64,
        /// Bytes beyond it.
        excess: u64,
    },
    /// The engine runs in stream mode, which has no message boundaries.
    #[error("large messages need a message-mode engine, not stream mode")]
    StreamMode,
    /// The engine refused a chunk for a reason other than a full queue.
    #[error("the engine refused a chunk: {0}")]
    Send(SendError),
    /// [`Limits`] that cannot work.
    #[error("invalid limits: {0}")]
    Limits(&'static str),
}

/// How large a message may be, and how it is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    max_message: usize,
    chunk_segments: usize,
}

impl Limits {
    /// Chunks of [`DEFAULT_CHUNK_SEGMENTS`](Self::DEFAULT_CHUNK_SEGMENTS) segments.
    pub const DEFAULT_CHUNK_SEGMENTS: usize = 32;

    /// Messages of up to `max_message` bytes (at most `u32::MAX`), in chunks of
    /// [`DEFAULT_CHUNK_SEGMENTS`](Self::DEFAULT_CHUNK_SEGMENTS) segments.
    ///
    /// # Errors
    /// [`LargeError::Limits`] if `max_message` exceeds `u32::MAX`.
    pub fn new(max_message: usize) -> Result<Self, LargeError> {
        Self::with_chunk_segments(max_message, Self::DEFAULT_CHUNK_SEGMENTS)
    }

    /// As [`new`](Self::new), with chunks of `chunk_segments` segments each (1 to
    /// [`Kcp::MAX_FRAGMENTS`]): smaller chunks interleave better with other messages
    /// on the same conversation, larger ones cost fewer headers.
    ///
    /// # Errors
    /// [`LargeError::Limits`] for a `max_message` above `u32::MAX` or a chunk size
    /// out of range.
    pub fn with_chunk_segments(
        max_message: usize,
        chunk_segments: usize,
    ) -> Result<Self, LargeError> {
        if u32::try_from(max_message).is_err() {
            return Err(LargeError::Limits("max_message must fit in a u32"));
        }
        if !(1..=Kcp::MAX_FRAGMENTS).contains(&chunk_segments) {
            return Err(LargeError::Limits("chunk_segments must be 1..=127"));
        }
        Ok(Self {
            max_message,
            chunk_segments,
        })
    }

    /// The longest message accepted, in bytes.
    pub const fn max_message(&self) -> usize {
        self.max_message
    }

    /// Segments per chunk.
    pub const fn chunk_segments(&self) -> usize {
        self.chunk_segments
    }

    /// Data bytes in one chunk for an engine with `config` (its current MTU), after a
    /// header of `header` bytes. At least 1 (the smallest MTU leaves 26 bytes a
    /// segment).
    fn chunk_data(&self, config: &Config, header: usize) -> usize {
        self.chunk_segments * config.mss() - header
    }
}

/// A message being cut into chunks.
#[derive(Debug)]
struct Outgoing {
    data: Bytes,
    /// Whether its first chunk went to the engine.
    started: bool,
}

/// The sending half: queues large messages and hands their chunks to a [`Kcp`] as its
/// send queue allows.
///
/// Call [`pump`](Self::pump) after [`send`](Self::send) and then regularly (each
/// frame, or whenever [`Kcp::wait_send`] falls), until [`is_empty`](Self::is_empty).
/// Chunks are cut when pumped, with the engine's MTU at that moment, so a live MTU
/// change ([`Kcp::set_mtu`]) applies to the rest of a message.
///
/// What it holds is bounded by what the application queues: each message is at most
/// [`Limits::max_message`]; gate sending on [`queued_bytes`](Self::queued_bytes).
#[derive(Debug)]
pub struct LargeSender {
    limits: Limits,
    queue: VecDeque<Outgoing>,
    queued_bytes: usize,
}

impl LargeSender {
    /// A sender with nothing queued.
    pub const fn new(limits: Limits) -> Self {
        Self {
            limits,
            queue: VecDeque::new(),
            queued_bytes: 0,
        }
    }

    /// Queues `message` (zero-copy; chunks are copied from it when pumped).
    ///
    /// # Errors
    /// [`LargeError::TooLarge`] above [`Limits::max_message`]; nothing is queued.
    pub fn send(&mut self, message: Bytes) -> Result<(), LargeError> {
        if message.len() > self.limits.max_message {
            return Err(LargeError::TooLarge {
                len: message.len() as u64,
                max: self.limits.max_message,
            });
        }
        self.queued_bytes += message.len();
        self.queue.push_back(Outgoing {
            data: message,
            started: false,
        });
        Ok(())
    }

    /// Hands chunks to `kcp` until its send queue is full
    /// ([`SendError::QueueFull`], not an error here) or nothing is left. Returns the
    /// chunks handed over.
    ///
    /// # Errors
    /// [`LargeError::StreamMode`] for a stream-mode engine; [`LargeError::Send`] if
    /// the engine refused a chunk otherwise, for instance an empty send queue whose
    /// [`Config::send_queue_limit`] is below [`Limits::chunk_segments`] (the chunk
    /// stays queued).
    pub fn pump(&mut self, kcp: &mut Kcp) -> Result<usize, LargeError> {
        if kcp.config().stream {
            return Err(LargeError::StreamMode);
        }
        let mut chunks = 0;
        while let Some(out) = self.queue.front_mut() {
            let header = if out.started {
                MORE_HEADER
            } else {
                FIRST_HEADER
            };
            let take = out
                .data
                .len()
                .min(self.limits.chunk_data(kcp.config(), header));
            let mut chunk = BytesMut::with_capacity(header + take);
            if out.started {
                chunk.put_u8(MORE);
            } else {
                chunk.put_u8(FIRST);
                // `send` bounded the length by `max_message`, which fits a u32.
                chunk.put_u32_le(out.data.len() as u32);
            }
            chunk.extend_from_slice(&out.data[..take]);
            match kcp.send_bytes(chunk.freeze()) {
                Ok(_) => {}
                // Full for now: the engine takes more as its flight drains.
                Err(SendError::QueueFull { queued, .. }) if queued > 0 => break,
                // Refused by an empty queue, a chunk can never fit: say so, not stall.
                Err(e) => return Err(LargeError::Send(e)),
            }
            chunks += 1;
            out.started = true;
            let _ = out.data.split_to(take);
            self.queued_bytes -= take;
            if out.data.is_empty() {
                self.queue.pop_front();
            }
        }
        Ok(chunks)
    }

    /// Message bytes not yet handed to the engine.
    pub const fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Whether every queued message went to the engine in full.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// The receiving half's state between chunks.
#[derive(Debug)]
enum Assembly {
    /// Between messages.
    Idle,
    /// A message of `total` bytes, `data` received so far.
    Open { total: u64, data: Vec<u8> },
    /// A refused message's later chunks are dropped until the next first chunk.
    Skipping,
}

/// The receiving half: joins the chunks of a [`LargeSender`] into messages, within
/// [`Limits::max_message`] (see the module's *Bounds*).
///
/// After an error the reassembler carries on with the next chunk: a refused message's
/// remaining chunks are dropped quietly, and the next first chunk starts afresh.
#[derive(Debug)]
pub struct Reassembler {
    limits: Limits,
    state: Assembly,
}

impl Reassembler {
    /// A reassembler between messages.
    pub const fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: Assembly::Idle,
        }
    }

    /// Takes messages from `kcp` until a large message is complete, and returns it;
    /// `Ok(None)` once the engine has no complete message left.
    ///
    /// # Errors
    /// What [`push`](Self::push) returns for a chunk (which is consumed); call again
    /// to go on.
    pub fn recv(&mut self, kcp: &mut Kcp) -> Result<Option<Bytes>, LargeError> {
        while let Some(chunk) = kcp.recv() {
            if let Some(message) = self.push(&chunk)? {
                return Ok(Some(message));
            }
        }
        Ok(None)
    }

    /// Feeds one received KCP message (a chunk); returns the large message it
    /// completes, if any.
    ///
    /// # Errors
    /// [`LargeError::TooLarge`], [`Truncated`](LargeError::Truncated),
    /// [`UnknownTag`](LargeError::UnknownTag),
    /// [`Interrupted`](LargeError::Interrupted), [`Orphan`](LargeError::Orphan) or
    /// [`Overrun`](LargeError::Overrun): the chunk is dropped, and with it the message
    /// it belongs to (`Interrupted`: also the message it interrupted).
    pub fn push(&mut self, chunk: &[u8]) -> Result<Option<Bytes>, LargeError> {
        let result = self.take(chunk);
        if result.is_err() && matches!(self.state, Assembly::Open { .. }) {
            self.state = Assembly::Skipping;
        }
        result
    }

    /// [`push`](Self::push) before an error's clean-up.
    fn take(&mut self, chunk: &[u8]) -> Result<Option<Bytes>, LargeError> {
        let truncated = LargeError::Truncated { len: chunk.len() };
        match chunk.first() {
            Some(&FIRST) => {
                let total = chunk
                    .get(1..FIRST_HEADER)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_le_bytes)
                    .ok_or(truncated)?;
                self.first(u64::from(total), &chunk[FIRST_HEADER..])
            }
            Some(&MORE) if chunk.len() > MORE_HEADER => self.more(&chunk[MORE_HEADER..]),
            Some(&MORE) | None => Err(truncated),
            Some(&tag) => Err(LargeError::UnknownTag(tag)),
        }
    }

    /// Bytes of the incomplete message held.
    pub fn buffered(&self) -> usize {
        match &self.state {
            Assembly::Open { data, .. } => data.len(),
            Assembly::Idle | Assembly::Skipping => 0,
        }
    }

    /// A first chunk announcing `total` bytes, carrying `data`.
    fn first(&mut self, total: u64, data: &[u8]) -> Result<Option<Bytes>, LargeError> {
        if let Assembly::Open { total, data } = &self.state {
            // Our sender never starts a message before the last one is complete.
            let missing = *total - data.len() as u64;
            self.state = Assembly::Skipping;
            return Err(LargeError::Interrupted { missing });
        }
        let max = self.limits.max_message;
        if total > max as u64 {
            self.state = Assembly::Skipping;
            return Err(LargeError::TooLarge { len: total, max });
        }
        self.state = Assembly::Open {
            total,
            data: Vec::new(),
        };
        self.more(data)
    }

    /// Data for the open message.
    fn more(&mut self, chunk: &[u8]) -> Result<Option<Bytes>, LargeError> {
        let (total, data) = match &mut self.state {
            Assembly::Open { total, data } => (*total, data),
            Assembly::Skipping => return Ok(None),
            Assembly::Idle => return Err(LargeError::Orphan),
        };
        let held = data.len() as u64;
        let after = held + chunk.len() as u64;
        if after > total {
            self.state = Assembly::Skipping;
            return Err(LargeError::Overrun {
                total,
                excess: after - total,
            });
        }
        // Grow by doubling, never past the announced total (at most `max_message`).
        let needed = data.len() + chunk.len();
        if data.capacity() < needed {
            let target = (2 * data.capacity()).max(needed).min(total as usize);
            data.reserve_exact(target - data.len());
        }
        data.extend_from_slice(chunk);
        if after < total {
            return Ok(None);
        }
        let Assembly::Open { data, .. } = core::mem::replace(&mut self.state, Assembly::Idle)
        else {
            return Ok(None);
        };
        Ok(Some(Bytes::from(data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn first(total: u32, data: &[u8]) -> Vec<u8> {
        let mut c = vec![FIRST];
        c.extend_from_slice(&total.to_le_bytes());
        c.extend_from_slice(data);
        c
    }

    fn more(data: &[u8]) -> Vec<u8> {
        let mut c = vec![MORE];
        c.extend_from_slice(data);
        c
    }

    #[test]
    fn limits_are_checked() {
        assert!(Limits::new(u32::MAX as usize).is_ok());
        assert!(Limits::with_chunk_segments(10, 0).is_err());
        assert!(Limits::with_chunk_segments(10, 128).is_err());
        #[cfg(target_pointer_width = "64")]
        assert!(Limits::new(u32::MAX as usize + 1).is_err());
    }

    #[test]
    fn chunks_join_in_order_and_empty_messages_work() {
        let mut r = Reassembler::new(Limits::new(10).unwrap());
        assert_eq!(r.push(&first(0, b"")), Ok(Some(Bytes::new())));
        assert_eq!(r.push(&first(10, b"0123")), Ok(None));
        assert_eq!(r.buffered(), 4);
        assert_eq!(r.push(&more(b"456")), Ok(None));
        assert_eq!(r.push(&more(b"789")).unwrap().unwrap(), &b"0123456789"[..]);
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn hostile_chunks_are_refused_without_allocating_past_the_limit() {
        let mut r = Reassembler::new(Limits::new(1_000).unwrap());
        // Announces 4 GiB: refused before any allocation; its followers are dropped.
        assert_eq!(
            r.push(&first(u32::MAX, b"x")),
            Err(LargeError::TooLarge {
                len: u64::from(u32::MAX),
                max: 1_000
            })
        );
        assert_eq!(r.push(&more(b"yyyy")), Ok(None));
        assert_eq!(r.buffered(), 0);
        // Headers too short for their kind, unknown tags, orphans.
        for bad in [&[][..], &[FIRST], &[FIRST, 1, 0, 0], &[MORE]] {
            assert_eq!(r.push(bad), Err(LargeError::Truncated { len: bad.len() }));
        }
        assert_eq!(r.push(b"hello"), Err(LargeError::UnknownTag(b'h')));
        let mut r = Reassembler::new(Limits::new(1_000).unwrap());
        assert_eq!(r.push(&more(b"z")), Err(LargeError::Orphan));
        // More data than announced.
        assert_eq!(
            r.push(&first(3, b"abcd")),
            Err(LargeError::Overrun {
                total: 3,
                excess: 1
            })
        );
        assert_eq!(r.push(&first(3, b"ab")), Ok(None));
        assert_eq!(
            r.push(&more(b"cd")),
            Err(LargeError::Overrun {
                total: 3,
                excess: 1
            })
        );
        // A new first chunk before the last message completed: both dropped.
        assert_eq!(r.push(&first(5, b"ab")), Ok(None));
        assert_eq!(
            r.push(&first(2, b"xy")),
            Err(LargeError::Interrupted { missing: 3 })
        );
        assert_eq!(r.push(&more(b"q")), Ok(None), "skipped quietly");
        assert_eq!(r.push(&first(1, b"k")).unwrap().unwrap(), &b"k"[..]);
    }

    #[test]
    fn the_buffer_never_outgrows_the_announced_total() {
        let mut r = Reassembler::new(Limits::new(1_000).unwrap());
        r.push(&first(1_000, &[1; 600])).unwrap();
        r.push(&more(&[2; 399])).unwrap();
        let Assembly::Open { data, .. } = &r.state else {
            panic!("open");
        };
        assert_eq!(data.capacity(), 1_000);
        assert_eq!(r.push(&more(&[3])).unwrap().unwrap().len(), 1_000);
    }

    #[test]
    fn the_sender_refuses_oversize_and_stream_mode() {
        let mut s = LargeSender::new(Limits::new(100).unwrap());
        assert_eq!(
            s.send(Bytes::from(vec![0; 101])),
            Err(LargeError::TooLarge { len: 101, max: 100 })
        );
        assert!(s.is_empty());
        let mut config = Config::fast();
        config.stream = true;
        let mut kcp = Kcp::new(1, config).unwrap();
        s.send(Bytes::from_static(b"hi")).unwrap();
        assert_eq!(s.pump(&mut kcp), Err(LargeError::StreamMode));
    }

    #[test]
    fn the_sender_stops_at_a_full_queue_and_resumes() {
        let mut config = Config::fast();
        config.send_queue_limit = 40;
        let mut kcp = Kcp::new(1, config).unwrap();
        let limits = Limits::with_chunk_segments(1 << 20, 16).unwrap();
        let mut s = LargeSender::new(limits);
        s.send(Bytes::from(vec![5; 100_000])).unwrap();
        // 16-segment chunks: two fit a queue of 40 segments.
        assert_eq!(s.pump(&mut kcp), Ok(2));
        assert_eq!(kcp.wait_send(), 32);
        // Data per chunk: 16 segments less the 5-byte first or 1-byte later header.
        assert_eq!(
            s.queued_bytes(),
            100_000 - (16 * 1376 - 5) - (16 * 1376 - 1)
        );
        assert!(!s.is_empty());
        assert_eq!(s.pump(&mut kcp), Ok(0), "still full");

        // A queue that can never hold one chunk is an error, not a silent stall.
        let mut config = Config::fast();
        config.send_queue_limit = 8;
        let mut small = Kcp::new(1, config).unwrap();
        assert!(matches!(
            s.pump(&mut small),
            Err(LargeError::Send(SendError::QueueFull { queued: 0, .. }))
        ));
    }
}
