//! The body of the `input` fuzz target, shared with the regression test that replays
//! saved crashes on stable (`kcp-core/tests/fuzz_regressions.rs`).
//!
//! The fuzzer's bytes are a script: the first byte picks a configuration, the rest is
//! cut into datagrams (a length byte, then that many bytes). Each datagram goes to an
//! engine that has data in flight and data received; between datagrams the engine is
//! flushed and drained. Invariants checked after every step: no panic, a rejected
//! datagram changes nothing observable, memory stays within the configured windows.

use core::convert::Infallible;

use kcp_core::{Config, Kcp, PollAt, Stats, Timestamp};

const CONV: u32 = 0x0BAD_CAFE;

/// What a caller can observe of the engine without changing it: its counters and
/// estimates, what waits to be sent, the next message's size and when it wants an
/// update.
fn observable(kcp: &Kcp, now: Timestamp) -> (Stats, usize, Option<usize>, PollAt) {
    (
        kcp.stats(),
        kcp.wait_send(),
        kcp.peek_size(),
        kcp.check(now),
    )
}

/// Runs one fuzz case. Panics (the fuzzer's "crash") if an invariant breaks.
pub(crate) fn run(data: &[u8]) {
    let Some((&mode, mut script)) = data.split_first() else {
        return;
    };
    let mut config = match mode % 3 {
        0 => Config::default(),
        1 => Config::normal(),
        _ => Config::fast(),
    };
    config.stream = mode & 0x80 != 0;
    let rcv_wnd = config.rcv_wnd;
    let snd_wnd = config.snd_wnd;
    let mtu = config.mtu;
    let mut kcp = Kcp::new(CONV, config).expect("presets are valid");
    let mut now = Timestamp::from_millis(u32::MAX - 2_000);
    for i in 0..8u8 {
        kcp.send(&[i; 700]).expect("small messages fit");
    }
    let mut sink = |d: &[u8]| {
        assert!(d.len() <= mtu, "datagram of {} bytes over the MTU", d.len());
        Ok::<_, Infallible>(())
    };
    kcp.update(now, &mut sink).expect("infallible");

    while let Some((&len, rest)) = script.split_first() {
        let take = usize::from(len).min(rest.len());
        let (datagram, rest) = rest.split_at(take);
        script = rest;
        // Give most datagrams our conversation id so they reach the segment logic.
        let mut datagram = datagram.to_vec();
        if len & 1 == 0 && datagram.len() >= 4 {
            datagram[..4].copy_from_slice(&CONV.to_le_bytes());
        }
        // What a rejection must leave as it was. A snapshot, not a clone of the engine:
        // cloning every window before every datagram cost most of the run time
        // (~1,800 execs/s), and the check compared only these values anyway.
        let before = observable(&kcp, now);
        if kcp.input(now, &datagram).is_err() {
            let mut after = observable(&kcp, now);
            after.0.datagrams_rejected -= 1;
            assert_eq!(after, before, "a rejected datagram changed state");
        }
        let s = kcp.stats();
        assert!(s.recv_queue <= rcv_wnd && s.recv_buffer <= rcv_wnd);
        assert!(s.in_flight <= snd_wnd);
        while let Some(message) = kcp.recv() {
            assert!(message.len() <= 127 * 65_535);
        }
        now = now.add_millis(u32::from(len % 64));
        kcp.update(now, &mut sink).expect("infallible");
        let _ = kcp.check(now);
    }
}
