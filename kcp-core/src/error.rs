//! Typed errors, one enum per operation.

/// Why [`Kcp::input`](crate::Kcp::input) rejected a datagram. The datagram is rejected
/// whole: an `Err` means no segment of it was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// Fewer bytes than one 24-byte segment header.
    #[error("datagram of {len} bytes is shorter than the 24-byte segment header")]
    Truncated {
        /// The datagram's length.
        len: usize,
    },
    /// A segment names another conversation.
    #[error("segment for conversation {got:#010x}, expected {expected:#010x}")]
    ConvMismatch {
        /// Our conversation id.
        expected: u32,
        /// The id in the segment.
        got: u32,
    },
    /// The command byte is not one of 81..=84.
    #[error("unknown command byte {0}")]
    UnknownCommand(u8),
    /// A segment's `len` runs past the end of the datagram.
    #[error("segment declares {declared} payload bytes, {available} remain")]
    BadLength {
        /// The `len` field.
        declared: u32,
        /// Bytes left in the datagram after the header.
        available: usize,
    },
    /// A data segment claims more fragments than the receive window can ever hold, so
    /// its message could never be reassembled (spec pitfalls 5 and 6).
    #[error("segment claims {frg} following fragments; the receive window holds {rcv_wnd}")]
    FragmentOverflow {
        /// The `frg` field.
        frg: u8,
        /// Our receive window, in segments.
        rcv_wnd: u32,
    },
}

/// Why [`Kcp::send`](crate::Kcp::send) refused a message. Nothing was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The message needs more fragments (segments of `mtu - 24` bytes) than one KCP
    /// message may have: [`Kcp::MAX_FRAGMENTS`](crate::Kcp::MAX_FRAGMENTS), 127. The
    /// limit is ikcp's (`IKCP_WND_RCV - 1`, fixed at build time) and holds whatever the
    /// windows are: a larger window does not raise it. Split larger messages, for
    /// instance with [`large`](crate::large) when both ends use this crate.
    #[error(
        "message needs {fragments} fragments; a KCP message has at most {max}, whatever the windows"
    )]
    TooLarge {
        /// Fragments the message would need.
        fragments: usize,
        /// The most a message may have ([`Kcp::MAX_FRAGMENTS`](crate::Kcp::MAX_FRAGMENTS)).
        max: usize,
    },
    /// The send queue is at its limit ([`Config::send_queue_limit`](crate::Config::send_queue_limit));
    /// wait for [`Kcp::wait_send`](crate::Kcp::wait_send) to fall.
    #[error("send queue holds {queued} segments; the message needs {needed} more, limit {limit}")]
    QueueFull {
        /// Segments already queued.
        queued: usize,
        /// Segments the message needs.
        needed: usize,
        /// The configured limit.
        limit: usize,
    },
}

/// Why [`Kcp::recv_into`](crate::Kcp::recv_into) could not deliver the next message.
/// The message stays queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The buffer is smaller than the next message.
    #[error("next message is {needed} bytes, buffer holds {capacity}")]
    BufferTooSmall {
        /// Size of the next message.
        needed: usize,
        /// Size of the buffer given.
        capacity: usize,
    },
}

/// A [`Config`](crate::Config) value that cannot work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `mtu` outside 50..=65535 (the header needs 24 bytes and the reference's floor is 50).
    #[error("mtu {0} is outside 50..=65535")]
    Mtu(usize),
    /// `interval` outside 10..=5000 ms (the reference clamps silently; we refuse).
    #[error("interval {0} ms is outside 10..=5000")]
    Interval(u32),
    /// `snd_wnd` outside 1..=65535.
    #[error("send window {0} is outside 1..=65535")]
    SendWindow(u32),
    /// `rcv_wnd` outside 128..=65535 (128 is the reference's floor, 65535 what the
    /// 16-bit `wnd` field can advertise).
    #[error("receive window {0} is outside 128..=65535")]
    ReceiveWindow(u32),
    /// `min_rto` outside 1..=60000 ms.
    #[error("minimum RTO {0} ms is outside 1..=60000")]
    MinRto(u32),
    /// `max_rto` below `min_rto` or at/above 2^30 ms (the wrapping clock's limit).
    #[error("maximum per-segment RTO {0} ms must lie in min_rto..2^30")]
    MaxRto(u32),
    /// `dead_link` of 0.
    #[error("dead_link must be at least 1 transmission")]
    DeadLink,
    /// `send_queue_limit` of 0.
    #[error("send_queue_limit must be at least 1 segment")]
    SendQueueLimit,
    /// A live engine was asked to change a setting both peers fixed at the start
    /// ([`Kcp::reconfigure`](crate::Kcp::reconfigure)): `stream` or `initial_sn`.
    #[error("{0} cannot change on a live engine")]
    Fixed(&'static str),
}
