//! A cheap snapshot of an engine's counters and current estimates.

/// Counters since the engine was created, plus its current estimates.
/// Returned by [`Kcp::stats`](crate::Kcp::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Datagrams accepted by `input`.
    pub datagrams_in: u64,
    /// Datagrams rejected by `input` (any [`InputError`](crate::InputError)).
    pub datagrams_rejected: u64,
    /// Datagrams handed to the output sink.
    pub datagrams_out: u64,
    /// Segments in accepted datagrams.
    pub segments_in: u64,
    /// Segments emitted (data, acks and probes).
    pub segments_out: u64,
    /// Bytes of accepted datagrams.
    pub bytes_in: u64,
    /// Bytes of emitted datagrams.
    pub bytes_out: u64,
    /// Data segments sent for the first time.
    pub data_segments_sent: u64,
    /// Data segments retransmitted after their RTO expired.
    pub retransmits_timeout: u64,
    /// Data segments retransmitted by fast resend.
    pub retransmits_fast: u64,
    /// ACK segments sent.
    pub acks_sent: u64,
    /// Data segments received that were already received (below `rcv_nxt` or buffered).
    pub duplicates: u64,
    /// Data segments received beyond the receive window (dropped without an ACK).
    pub out_of_window: u64,
    /// ACKs not recorded because the ack list was at its bound.
    pub acks_dropped: u64,
    /// RTT samples taken: ACKs whose echoed `ts` is a time the segment was sent at
    /// (forged ones are refused, see `refused_rtt_sample`). A host may read a first
    /// sample as proof that the peer receives at its address.
    pub rtt_samples: u64,
    /// Segments refused whole because their `una` is beyond `snd_nxt`: they claim
    /// data we never sent was received.
    pub refused_una: u64,
    /// ACK segments refused whole because their `sn` was never sent.
    pub refused_ack: u64,
    /// ACK segments refused whole because their echoed `ts` is no time the segment
    /// was sent at: in the future, or outside its first and latest transmissions.
    pub refused_rtt_sample: u64,
    /// ACKs of segments acknowledged so long ago that their send times are forgotten:
    /// applied as ikcp does, but without an RTT sample.
    pub unverified_rtt_samples: u64,
    /// Zero windows from the peer that acknowledged none of our data, each answered
    /// with a window probe (WASK) at the next flush.
    pub unconfirmed_zero_windows: u64,
    /// Window probes (WASK) sent.
    pub probes_sent: u64,
    /// Window announcements (WINS) sent.
    pub window_tells_sent: u64,
    /// Flushes that left data queued because the window was full.
    pub window_full_stalls: u64,
    /// Messages delivered by `recv`/`recv_into`.
    pub messages_received: u64,
    /// Smoothed round-trip time in ms (0 before the first sample).
    pub srtt: u32,
    /// Round-trip time variation in ms.
    pub rttvar: u32,
    /// Current retransmission timeout in ms.
    pub rto: u32,
    /// Congestion window in segments.
    pub cwnd: u32,
    /// Slow-start threshold in segments.
    pub ssthresh: u32,
    /// The peer's last advertised free receive window.
    pub remote_window: u32,
    /// Segments in flight (sent, not yet acknowledged).
    pub in_flight: u32,
    /// Segments waiting in the send queue.
    pub send_queue: u32,
    /// Segments waiting to be read by the application.
    pub recv_queue: u32,
    /// Out-of-order segments held until the gap before them fills.
    pub recv_buffer: u32,
}
