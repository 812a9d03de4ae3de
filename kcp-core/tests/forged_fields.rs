//! Forged control fields: a segment no transmission of ours can have caused is refused
//! whole and counted, without changing the engine (timelines first, then properties);
//! genuine duplicates keep their ikcp behaviour; a forged zero window costs a round
//! trip, not a probe timer; one datagram cannot slide the receive window. Every clock
//! starts 1,000 ms below `u32::MAX`.

mod common;

use common::{Lane, Pair, START, flush};
use kcp_core::segment::{Command, Header};
use kcp_core::{Config, Kcp, NoDelay, Sn, Stats, Timestamp};
use proptest::prelude::*;

const CONV: u32 = 0x5EC0_0001;

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(START.wrapping_add(ms as u32))
}

/// No congestion window, so data leaves at the first flush.
fn eager() -> Config {
    Config::default().with_nodelay(NoDelay::On, 10, 0, true)
}

/// A sender with sn 0..4 in flight, all first sent at `at(0)`.
fn sender() -> Kcp {
    let mut a = Kcp::new(CONV, eager()).unwrap();
    for i in 0..4u8 {
        a.send(&[i; 100]).unwrap();
    }
    assert_eq!(flush(&mut a, at(0)).len(), 1);
    a
}

fn segment(cmd: Command, sn: u32, ts: Timestamp, una: u32, wnd: u16) -> Header {
    Header {
        conv: CONV,
        cmd,
        frg: 0,
        wnd,
        ts,
        sn: Sn::new(sn),
        una: Sn::new(una),
        len: 0,
    }
}

fn datagram(headers: &[Header]) -> Vec<u8> {
    headers.iter().flat_map(|h| h.to_bytes()).collect()
}

fn refusals(s: &Stats) -> u64 {
    s.refused_una + s.refused_ack + s.refused_rtt_sample
}

/// `after` behaves exactly as `before`: same flight, estimates and window, and the
/// same datagrams from every later flush (so no payload in flight was dropped).
#[track_caller]
fn assert_unchanged(after: &Kcp, before: &Kcp, now: i64) {
    let (mut a, mut b) = (after.clone(), before.clone());
    let key = |s: Stats| {
        (
            s.in_flight,
            s.rto,
            s.srtt,
            s.rttvar,
            s.remote_window,
            s.cwnd,
        )
    };
    assert_eq!(key(a.stats()), key(b.stats()));
    assert_eq!(a.wait_send(), b.wait_send());
    for ms in [now, now + 10, now + 300, now + 2_000, now + 20_000] {
        assert_eq!(
            flush(&mut a, at(ms)),
            flush(&mut b, at(ms)),
            "flush at {ms}"
        );
    }
}

/// Feeds `forged` to a fresh sender at `at(20)`; checks it was refused and changed
/// nothing; returns the stats.
#[track_caller]
fn refuse(forged: &[Header]) -> Stats {
    let before = sender();
    let mut a = before.clone();
    a.input(at(20), &datagram(forged)).unwrap();
    assert_unchanged(&a, &before, 20);
    let s = a.stats();
    assert_eq!(refusals(&s), forged.len() as u64);
    assert_eq!(s.datagrams_in, before.stats().datagrams_in + 1);
    s
}

// ============================================================ refusals, one by one

#[test]
fn una_beyond_snd_nxt_is_refused_whole() {
    // ikcp would drop all four segments in flight, unacknowledged, and take the window.
    for cmd in [
        Command::Ack,
        Command::Push,
        Command::WindowAsk,
        Command::WindowTell,
    ] {
        let s = refuse(&[segment(cmd, 1, at(0), 5, 0)]);
        assert_eq!(s.refused_una, 1, "{cmd:?}");
    }
    let s = refuse(&[segment(Command::WindowTell, 0, at(0), u32::MAX / 2, 7)]);
    assert_eq!((s.refused_una, s.remote_window), (1, 128));
}

#[test]
fn ack_of_an_sn_never_sent_is_refused() {
    for sn in [4, 5, 1_000, u32::MAX / 2, u32::MAX] {
        let s = refuse(&[segment(Command::Ack, sn, at(0), 0, 0)]);
        assert_eq!(s.refused_ack, 1, "sn {sn}");
    }
}

#[test]
fn ack_echoing_a_time_in_the_future_is_refused() {
    // In flight, the right sn: but no transmission happened at 21 ms or later.
    let s = refuse(&[segment(Command::Ack, 1, at(21), 0, 128)]);
    assert_eq!((s.refused_rtt_sample, s.in_flight), (1, 4));
    let s = refuse(&[segment(Command::Ack, 1, at(1 << 30), 0, 128)]);
    assert_eq!(s.refused_rtt_sample, 1);
}

#[test]
fn ack_echoing_a_time_before_the_segment_was_sent_is_refused() {
    // A sample of 5 s (ikcp would take it: RTO 200 ms -> several seconds).
    let s = refuse(&[segment(Command::Ack, 1, at(-5_000), 0, 128)]);
    assert_eq!((s.refused_rtt_sample, s.rto), (1, 200));
    let s = refuse(&[segment(Command::Ack, 3, at(-1), 0, 128)]);
    assert_eq!(s.refused_rtt_sample, 1);
}

#[test]
fn a_forged_segment_is_refused_alone_and_its_datagram_still_applies() {
    let mut a = sender();
    let d = datagram(&[
        segment(Command::Ack, 9, at(0), 0, 0),
        segment(Command::Ack, 2, at(0), 0, 99),
        segment(Command::WindowTell, 0, at(0), 77, 0),
    ]);
    a.input(at(20), &d).unwrap();
    let s = a.stats();
    assert_eq!((s.refused_ack, s.refused_una), (1, 1));
    // The genuine ACK in the middle applied: its segment, its sample and its window.
    assert_eq!((s.in_flight, s.srtt, s.remote_window), (3, 20, 99));
}

// ============================================================ genuine duplicates

#[test]
fn genuine_duplicate_acks_keep_their_ikcp_samples() {
    let mut a = sender();
    let ack1 = datagram(&[segment(Command::Ack, 1, at(0), 0, 128)]);
    a.input(at(30), &ack1).unwrap();
    assert_eq!((a.stats().in_flight, a.stats().srtt), (3, 30));
    // The same ACK again (the link duplicated it): ikcp samples it again, so do we.
    a.input(at(60), &ack1).unwrap();
    let s = a.stats();
    assert_eq!(
        (s.in_flight, s.srtt, refusals(&s)),
        (3, (7 * 30 + 60) / 8, 0)
    );

    // sn 0 times out and is resent at 200 ms; the ACKs of both transmissions are
    // genuine, and so is one of any time in between (another retransmission's).
    assert_eq!(flush(&mut a, at(200)).len(), 1);
    for (ts, now) in [(0, 210), (200, 230), (150, 240)] {
        a.input(
            at(now),
            &datagram(&[segment(Command::Ack, 0, at(ts), 0, 128)]),
        )
        .unwrap();
    }
    let s = a.stats();
    assert_eq!(
        (refusals(&s), s.unverified_rtt_samples, s.in_flight),
        (0, 0, 2)
    );
    // ...but not one of after its latest transmission.
    let before = a.clone();
    a.input(
        at(250),
        &datagram(&[segment(Command::Ack, 0, at(201), 0, 128)]),
    )
    .unwrap();
    assert_eq!(a.stats().refused_rtt_sample, 1);
    assert_unchanged(&a, &before, 250);
}

#[test]
fn an_ack_too_old_to_check_is_applied_without_its_sample() {
    // 400 segments sent and acknowledged: the send times of sn 0 are forgotten.
    let mut a = Kcp::new(CONV, eager()).unwrap();
    let mut now = 0;
    for round in 0..25u32 {
        for _ in 0..16 {
            a.send(b"x").unwrap();
        }
        flush(&mut a, at(now));
        now += 10;
        let una = (round + 1) * 16;
        let ack = datagram(&[segment(Command::Ack, una - 1, at(now - 10), una, 128)]);
        a.input(at(now), &ack).unwrap();
    }
    let before = a.clone();
    let old = datagram(&[segment(Command::Ack, 0, at(-30_000), 400, 50)]);
    a.input(at(now), &old).unwrap();
    let s = a.stats();
    assert_eq!((s.unverified_rtt_samples, refusals(&s)), (1, 0));
    // Applied as ikcp does (the window), but the RTO did not move.
    assert_eq!(
        (s.remote_window, s.rto, s.srtt),
        (50, before.stats().rto, before.stats().srtt)
    );
}

// ============================================================ zero windows

fn quiet_pair() -> Pair {
    let mut pair = Pair::new(
        Kcp::new(CONV, Config::fast()).unwrap(),
        Kcp::new(CONV, Config::fast()).unwrap(),
        Lane::new(0.0, 10, 0),
        Lane::new(0.0, 10, 0),
        5,
    );
    pair.a.send(b"before").unwrap();
    pair.run_until(500, |p| p.at_b.len() == 1 && p.a.wait_send() == 0);
    pair.run_until(400, |p| p.t > 300);
    pair
}

#[test]
fn a_forged_zero_window_stalls_the_sender_for_a_round_trip_not_a_probe_timer() {
    let mut pair = quiet_pair();
    // A datagram a blind attacker can build: our conv, a plausible una, wnd 0.
    let forged = datagram(&[segment(Command::WindowTell, 0, at(0), 1, 0)]);
    let now = pair.now();
    pair.a.input(now, &forged).unwrap();
    assert_eq!(pair.a.stats().remote_window, 0);
    assert_eq!(pair.a.stats().unconfirmed_zero_windows, 1);
    pair.a.send(b"after").unwrap();
    let sent_at = pair.t;
    // ikcp would wait for its probe timer, 7 s; we ask at once, B answers.
    pair.run_until(7_000, |p| p.at_b.len() == 2);
    assert!(
        pair.t - sent_at < 100,
        "delivered after {} ms",
        pair.t - sent_at
    );
    let (a, b) = (pair.a.stats(), pair.b.stats());
    assert_eq!((a.probes_sent, b.window_tells_sent), (1, 1));
}

#[test]
fn a_zero_window_that_acknowledges_data_waits_for_the_probe_timer_as_ikcp() {
    let mut a = sender();
    let closing = datagram(&[segment(Command::Ack, 3, at(0), 3, 0)]);
    a.input(at(20), &closing).unwrap();
    assert_eq!(a.stats().unconfirmed_zero_windows, 0);
    a.send(b"queued").unwrap();
    let probes = |a: &mut Kcp, ms| {
        flush(a, at(ms));
        a.stats().probes_sent
    };
    assert_eq!(probes(&mut a, 30), 0);
    assert_eq!(probes(&mut a, 7_029), 0);
    assert_eq!(
        probes(&mut a, 7_030),
        1,
        "the first WASK 7 s after the window closed"
    );
}

// ============================================================ receiving

#[test]
fn one_datagram_cannot_slide_the_receive_window() {
    let mut b = Kcp::new(CONV, eager()).unwrap();
    let rcv_wnd = b.config().rcv_wnd;
    // 2 x rcv_wnd consecutive data segments in one datagram: ikcp slides its window
    // as rcv_nxt moves and keeps them all (rcv_wnd ready, rcv_wnd held).
    let burst: Vec<u8> = (0..2 * rcv_wnd)
        .flat_map(|sn| {
            let mut h = segment(Command::Push, sn, at(0), 0, 128);
            h.len = 1;
            let mut d = h.to_bytes().to_vec();
            d.push(sn as u8);
            d
        })
        .collect();
    b.input(at(0), &burst).unwrap();
    let s = b.stats();
    assert_eq!((s.recv_queue, s.recv_buffer), (rcv_wnd, 0));
    assert_eq!(s.out_of_window, u64::from(rcv_wnd));
    // The segments beyond are not acknowledged either: the peer resends them.
    assert_eq!(s.acks_sent, 0);
    let acks = flush(&mut b, at(1))
        .iter()
        .map(|d| d.len() / 24)
        .sum::<usize>();
    assert_eq!(acks, rcv_wnd as usize);
}

// ============================================================ properties

/// A field that makes a segment impossible.
#[derive(Clone, Copy, Debug)]
enum Flaw {
    UnaBeyondNxt,
    SnNeverSent,
    TsInTheFuture,
    TsBeforeFirstSent,
}

fn forged_segment() -> impl Strategy<Value = Header> {
    (
        prop_oneof![
            Just(Flaw::UnaBeyondNxt),
            Just(Flaw::SnNeverSent),
            Just(Flaw::TsInTheFuture),
            Just(Flaw::TsBeforeFirstSent),
        ],
        81u8..=84,
        any::<u16>(),
        any::<u32>(),
        0u32..4,
        1u32..(1 << 31),
    )
        .prop_map(|(flaw, cmd, wnd, any32, in_flight, beyond)| {
            let cmd = Command::from_byte(cmd).unwrap();
            let ack = |sn, ts| segment(Command::Ack, sn, ts, 0, wnd);
            match flaw {
                // Segments are refused before their command is looked at.
                Flaw::UnaBeyondNxt => segment(
                    cmd,
                    any32,
                    at(i64::from(any32)),
                    4u32.wrapping_add(beyond),
                    wnd,
                ),
                Flaw::SnNeverSent => ack(4u32.wrapping_add(beyond), at(i64::from(any32 % 20))),
                Flaw::TsInTheFuture => ack(in_flight, at(21 + i64::from(beyond % (1 << 30)))),
                Flaw::TsBeforeFirstSent => ack(in_flight, at(-1 - i64::from(beyond % (1 << 30)))),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x6b63_7033),
        ..ProptestConfig::default()
    })]

    /// Datagrams of forged segments with our conv never move `snd_una`, never drop
    /// data in flight, never change the RTO or the peer's window: the engine's future
    /// is the same datagram for datagram, and every segment is counted as refused.
    #[test]
    fn forged_fields_never_move_una_drop_flight_data_or_change_the_rto(
        datagrams in proptest::collection::vec(
            proptest::collection::vec(forged_segment(), 1..6), 1..8),
    ) {
        let before = sender();
        let mut a = before.clone();
        let mut segments = 0;
        for d in &datagrams {
            prop_assert!(a.input(at(20), &datagram(d)).is_ok());
            segments += d.len() as u64;
        }
        prop_assert_eq!(refusals(&a.stats()), segments);
        assert_unchanged(&a, &before, 20);
    }

    /// Honest peers over lossy, reordering links are never refused: every refusal
    /// rule admits all the traffic ikcp produces.
    #[test]
    fn genuine_traffic_is_never_refused(
        loss in 0.0f64..0.3,
        delay in 1u64..60,
        jitter in 0u64..80,
        seed in any::<u64>(),
    ) {
        let mut pair = Pair::new(
            Kcp::new(CONV, Config::fast()).unwrap(),
            Kcp::new(CONV, Config::normal()).unwrap(),
            Lane::new(loss, delay, jitter),
            Lane::new(loss, delay, jitter),
            seed,
        );
        for i in 0..60u32 {
            pair.a.send(&i.to_le_bytes().repeat(1 + i as usize * 20)).unwrap();
            pair.b.send(&i.to_le_bytes()).unwrap();
        }
        pair.run_until(300_000, |p| p.at_b.len() == 60 && p.at_a.len() == 60);
        for s in [pair.a.stats(), pair.b.stats()] {
            prop_assert_eq!(refusals(&s), 0);
            prop_assert_eq!(s.unconfirmed_zero_windows, 0);
        }
    }
}
