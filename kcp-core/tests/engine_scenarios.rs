//! Engine scenarios on a virtual clock, each read as a timeline. Every clock starts
//! 1,000 ms below `u32::MAX`, so each scenario also crosses the wrap.

mod common;

use common::{Lane, Pair, START, flush, segments, update};
use kcp_core::segment::{Command, HEADER_LEN, Header};
use kcp_core::{Config, InputError, Kcp, NoDelay, PollAt, RecvError, SendError, Sn, Timestamp};

const CONV: u32 = 0x1122_3344;

fn at(ms: u32) -> Timestamp {
    Timestamp::from_millis(START.wrapping_add(ms))
}

fn engine(config: Config) -> Kcp {
    Kcp::new(CONV, config).unwrap()
}

/// No congestion window, so data leaves at the first flush.
fn eager() -> Config {
    Config::default().with_nodelay(NoDelay::On, 10, 0, true)
}

fn push_sns(datagrams: &[Vec<u8>]) -> Vec<u32> {
    datagrams
        .iter()
        .flat_map(|d| segments(d))
        .filter(|h| h.cmd == Command::Push)
        .map(|h| h.sn.get())
        .collect()
}

fn datagram(headers: &[Header]) -> Vec<u8> {
    headers.iter().flat_map(|h| h.to_bytes()).collect()
}

const ACK: Header = Header {
    conv: CONV,
    cmd: Command::Ack,
    frg: 0,
    wnd: 128,
    ts: Timestamp::from_millis(0),
    sn: Sn::new(0),
    una: Sn::new(0),
    len: 0,
};

// ============================================================ messages and fragments

#[test]
fn message_boundaries_survive_loss_and_reordering() {
    let mss = Config::fast().mss();
    let sizes = [0, 1, 100, mss - 1, mss, mss + 1, 5000, 127 * mss, 3, 0];
    let mut pair = Pair::new(
        engine(Config::fast()),
        engine(Config::fast()),
        Lane::new(0.1, 20, 30),
        Lane::new(0.1, 20, 30),
        7,
    );
    for (i, &n) in sizes.iter().enumerate() {
        let message: Vec<u8> = (0..n).map(|j| (i * 7 + j) as u8).collect();
        assert_eq!(pair.a.send(&message), Ok(n));
    }
    pair.run_until(60_000, |p| p.at_b.len() == sizes.len());
    for (i, (&n, got)) in sizes.iter().zip(&pair.at_b).enumerate() {
        let expected: Vec<u8> = (0..n).map(|j| (i * 7 + j) as u8).collect();
        assert_eq!(got.as_ref(), &expected[..], "message {i}");
    }
}

#[test]
fn fragmentation_at_the_mss_edges() {
    let mut config = eager();
    config.snd_wnd = 256;
    let mss = config.mss();
    let mut a = engine(config);
    for n in [mss - 1, mss, mss + 1] {
        a.send(&vec![1; n]).unwrap();
    }
    let headers: Vec<Header> = flush(&mut a, at(0))
        .iter()
        .flat_map(|d| segments(d))
        .collect();
    let shape: Vec<(u8, u32)> = headers.iter().map(|h| (h.frg, h.len)).collect();
    let (mss32, one) = (mss as u32, 1);
    assert_eq!(shape, [(0, mss32 - 1), (0, mss32), (1, mss32), (0, one)]);
    assert_eq!(
        headers.iter().map(|h| h.sn.get()).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );

    // The largest message is 127 segments; one byte more is refused and queues nothing.
    assert_eq!(a.send(&vec![2; 127 * mss]), Ok(127 * mss));
    assert_eq!(
        a.send(&vec![2; 127 * mss + 1]),
        Err(SendError::TooLarge {
            fragments: 128,
            max: 127
        })
    );
    assert_eq!(a.wait_send(), 4 + 127);
    let frgs: Vec<u8> = flush(&mut a, at(10))
        .iter()
        .flat_map(|d| segments(d))
        .filter(|h| h.frg > 0 || h.sn.get() >= 4)
        .map(|h| h.frg)
        .collect();
    // The peer's initial window (128) lets sn 4..=127 go: the message's first 124 pieces.
    assert_eq!(frgs, (3..=126).rev().collect::<Vec<u8>>());
}

#[test]
fn datagrams_pack_segments_up_to_the_mtu() {
    // Spec §9.5: a 3000-byte message at MTU 1400 leaves as 1400 + 1400 + 272 bytes.
    let mut a = engine(eager());
    a.send(&[9; 3000]).unwrap();
    let sizes: Vec<usize> = flush(&mut a, at(0)).iter().map(Vec::len).collect();
    assert_eq!(sizes, [1400, 1400, 272]);
}

#[test]
fn empty_message_is_delivered_as_an_empty_message() {
    let mut pair = Pair::new(
        engine(Config::fast()),
        engine(Config::fast()),
        Lane::new(0.0, 5, 0),
        Lane::new(0.0, 5, 0),
        1,
    );
    assert_eq!(pair.a.send(b""), Ok(0));
    assert_eq!(pair.a.wait_send(), 1);
    pair.run_until(1_000, |p| !p.at_b.is_empty());
    assert!(pair.at_b[0].is_empty());
}

#[test]
fn stream_mode_tops_up_the_last_queued_segment() {
    let mut config = eager();
    config.stream = true;
    let mss = config.mss();
    let mut a = engine(config.clone());
    assert_eq!(a.send(b""), Ok(0));
    assert_eq!(a.wait_send(), 0, "an empty stream send is a no-op");
    for _ in 0..3 {
        a.send(&[1; 10]).unwrap();
    }
    assert_eq!(a.wait_send(), 1);
    a.send(&vec![2; 2000]).unwrap();
    assert_eq!(a.wait_send(), 2);
    let dgrams = flush(&mut a, at(0));
    let lens: Vec<u32> = dgrams
        .iter()
        .flat_map(|d| segments(d))
        .map(|h| h.len)
        .collect();
    assert_eq!(lens, [mss as u32, (30 + 2000 - mss) as u32]);
    assert!(dgrams.iter().flat_map(|d| segments(d)).all(|h| h.frg == 0));

    // The receiver returns one segment per recv, whatever the sender's call sizes.
    let mut b = engine(config);
    for d in &dgrams {
        b.input(at(5), d).unwrap();
    }
    let mut small = [0u8; 100];
    assert_eq!(
        b.recv_into(&mut small),
        Err(RecvError::BufferTooSmall {
            needed: mss,
            capacity: 100
        })
    );
    assert_eq!(b.recv().unwrap().len(), mss);
    assert_eq!(b.recv().unwrap().len(), 30 + 2000 - mss);
    assert_eq!(b.recv(), None);
}

#[test]
fn stream_mode_returns_a_partial_count_when_the_rest_is_too_large() {
    let mut config = eager();
    config.stream = true;
    let mss = config.mss();
    let mut a = engine(config);
    a.send(&[0; 10]).unwrap();
    let huge = vec![1; 200 * mss];
    assert_eq!(a.send(&huge), Ok(mss - 10));
    let mut fresh = engine({
        let mut c = eager();
        c.stream = true;
        c
    });
    assert!(matches!(fresh.send(&huge), Err(SendError::TooLarge { .. })));
}

#[test]
fn sequence_numbers_and_clock_wrap_mid_transfer() {
    let mut config = Config::fast();
    config.initial_sn = u32::MAX - 100;
    let mut pair = Pair::new(
        engine(config.clone()),
        engine(config),
        Lane::new(0.1, 15, 10),
        Lane::new(0.1, 15, 10),
        5,
    );
    for i in 0..400u32 {
        pair.a
            .send(&i.to_le_bytes().repeat(i as usize % 700))
            .unwrap();
    }
    pair.run_until(120_000, |p| p.at_b.len() == 400);
    for (i, m) in pair.at_b.iter().enumerate() {
        assert_eq!(m.as_ref(), &(i as u32).to_le_bytes().repeat(i % 700)[..]);
    }
    assert!(pair.t > 1_000, "the clock crossed u32::MAX too");
}

// ============================================================ windows and backlog

#[test]
fn congestion_window_holds_back_the_first_flush() {
    // Spec §9.3: cwnd starts at 0, so the first flush only opens it to 1.
    let mut a = engine(Config::default());
    a.send(b"x").unwrap();
    assert!(update(&mut a, at(0)).is_empty());
    assert!(
        update(&mut a, at(50)).is_empty(),
        "not yet on the 100 ms grid"
    );
    assert_eq!(push_sns(&update(&mut a, at(100))), [0]);
}

#[test]
fn send_window_limits_the_flight_and_the_queue_backs_up() {
    let mut config = eager();
    config.snd_wnd = 4;
    let mut a = engine(config);
    for i in 0..10u8 {
        a.send(&[i]).unwrap();
    }
    assert_eq!(push_sns(&flush(&mut a, at(0))), [0, 1, 2, 3]);
    assert_eq!(a.wait_send(), 10);
    assert_eq!((a.stats().in_flight, a.stats().send_queue), (4, 6));
    assert_eq!(a.stats().window_full_stalls, 1);
    // An ACK of sn 1 alone does not open the window: it counts from snd_una (0).
    let ack = datagram(&[Header {
        sn: Sn::new(1),
        ts: at(0),
        ..ACK
    }]);
    a.input(at(5), &ack).unwrap();
    assert_eq!(push_sns(&flush(&mut a, at(10))), Vec::<u32>::new());
    // UNA 2 does: two more leave.
    let una = datagram(&[Header {
        cmd: Command::WindowTell,
        una: Sn::new(2),
        ..ACK
    }]);
    a.input(at(15), &una).unwrap();
    assert_eq!(push_sns(&flush(&mut a, at(20))), [4, 5]);
}

#[test]
fn send_queue_is_bounded() {
    let mut config = eager();
    config.send_queue_limit = 3;
    let mut a = engine(config.clone());
    a.send(&vec![0; config.mss() * 2]).unwrap();
    assert_eq!(
        a.send(&vec![0; config.mss() * 2]),
        Err(SendError::QueueFull {
            queued: 2,
            needed: 2,
            limit: 3
        })
    );
    assert_eq!(a.send(b"fits"), Ok(4));
    assert_eq!(a.wait_send(), 3);
}

// ============================================================ retransmission timers

/// Times (ms from the start) at which `sn 0` is transmitted when nothing comes back.
fn transmit_times(config: Config, until: u32) -> Vec<u32> {
    let mut a = engine(config);
    a.send(b"lonely").unwrap();
    let mut times = Vec::new();
    for ms in 0..until {
        if push_sns(&update(&mut a, at(ms))).contains(&0) {
            times.push(ms);
        }
    }
    times
}

#[test]
fn rto_doubles_with_nodelay_off() {
    // rto 200, first timeout padded by rto/8 = 25 -> due at 225, sent on the 10 ms grid.
    let config = Config::default().with_nodelay(NoDelay::Off, 10, 0, true);
    assert_eq!(transmit_times(config, 3_100), [0, 230, 630, 1430, 3030]);
}

#[test]
fn rto_grows_by_half_with_nodelay_on() {
    // 200, then +100, +150, +225 (ms since the previous send, rounded up to the grid).
    let config = Config::default().with_nodelay(NoDelay::On, 10, 0, true);
    assert_eq!(transmit_times(config, 1_700), [0, 200, 500, 950, 1630]);
}

#[test]
fn rto_grows_linearly_with_nodelay_linear() {
    let config = Config::default().with_nodelay(NoDelay::Linear, 10, 0, true);
    assert_eq!(transmit_times(config, 1_500), [0, 200, 500, 900, 1400]);
}

#[test]
fn per_segment_rto_is_capped() {
    let mut config = Config::default().with_nodelay(NoDelay::Off, 10, 0, true);
    config.max_rto = 1_000;
    config.dead_link = 100;
    let times = transmit_times(config, 6_000);
    let gaps: Vec<u32> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(&gaps[..4], &[230, 400, 800, 1000]);
    assert!(gaps[3..].iter().all(|&g| g == 1000), "{gaps:?}");
}

#[test]
fn dead_link_after_the_configured_transmissions() {
    let mut config = eager();
    config.dead_link = 5;
    let mut a = engine(config);
    a.send(b"void").unwrap();
    let mut sends = 0;
    let mut ms = 0;
    while !a.is_dead() {
        sends += push_sns(&update(&mut a, at(ms))).len();
        ms += 1;
        assert!(ms < 60_000);
    }
    assert_eq!(sends, 5);
    // The engine keeps retransmitting; the host decides what to do.
    assert!(matches!(a.check(at(ms)), PollAt::At(_) | PollAt::Now));
}

#[test]
fn fast_resend_after_exactly_resend_skips() {
    let mut config = eager();
    config.fast_resend = 2;
    let mut a = engine(config);
    for i in 0..4u8 {
        a.send(&[i]).unwrap();
    }
    assert_eq!(push_sns(&update(&mut a, at(0))), [0, 1, 2, 3]);
    // sn 0 is lost. One datagram acking sn 1 and 2 counts as one skip (§7).
    let acks = datagram(&[
        Header {
            sn: Sn::new(1),
            ts: at(0),
            ..ACK
        },
        Header {
            sn: Sn::new(2),
            ts: at(0),
            ..ACK
        },
    ]);
    a.input(at(12), &acks).unwrap();
    assert_eq!(push_sns(&update(&mut a, at(20))), Vec::<u32>::new());
    // The second skip triggers the fast retransmission, long before the 200 ms RTO.
    let ack3 = datagram(&[Header {
        sn: Sn::new(3),
        ts: at(0),
        ..ACK
    }]);
    a.input(at(25), &ack3).unwrap();
    assert_eq!(push_sns(&update(&mut a, at(30))), [0]);
    assert_eq!(a.stats().retransmits_fast, 1);
    assert_eq!(a.stats().retransmits_timeout, 0);
}

#[test]
fn fast_resend_respects_the_fast_limit() {
    let mut config = eager();
    config.fast_resend = 1;
    config.fast_limit = 2;
    // Each ACK below echoes the only transmission of its segment (at 0), older than
    // sn 0's retransmissions: without conserve every such ACK still counts.
    config.fastack_conserve = false;
    let mut a = engine(config);
    a.send(b"a").unwrap();
    a.send(b"b").unwrap();
    a.send(b"c").unwrap();
    a.send(b"d").unwrap();
    assert_eq!(push_sns(&update(&mut a, at(0))), [0, 1, 2, 3]);
    let mut fast = Vec::new();
    for (k, sn) in (1..=3u32).enumerate() {
        let t = 10 * (k as u32 + 1);
        let ack = datagram(&[Header {
            sn: Sn::new(sn),
            ts: at(0),
            ..ACK
        }]);
        a.input(at(t), &ack).unwrap();
        fast.push(push_sns(&update(&mut a, at(t))).contains(&0));
    }
    // Sent once, fast-resent at xmit 1 and 2; at xmit 3 > limit 2 only the timer may.
    assert_eq!(fast, [true, true, false]);
}

// ============================================================ window probing

#[test]
fn zero_window_is_probed_and_recovers() {
    let mut config = Config::fast();
    config.snd_wnd = 256;
    let mut pair = Pair::new(
        engine(config.clone()),
        engine(config),
        Lane::new(0.0, 10, 0),
        Lane::new(0.0, 10, 0),
        3,
    );
    pair.read_b = false;
    for i in 0..200u32 {
        pair.a.send(&i.to_le_bytes()).unwrap();
    }
    pair.run_until(5_000, |p| p.a.stats().remote_window == 0);
    assert_eq!(pair.b.stats().recv_queue, 128);
    // The first WASK leaves 7 s after the zero window was seen, and B answers it.
    let zero_at = pair.t;
    pair.run_until(8_000, |p| p.a.stats().probes_sent == 1);
    assert!(
        (6_900..7_100).contains(&(pair.t - zero_at)),
        "{}",
        pair.t - zero_at
    );
    pair.run_until(100, |p| p.b.stats().window_tells_sent == 1);
    // The application reads again: B announces the reopened window at once.
    pair.read_b = true;
    pair.run_until(2_000, |p| p.at_b.len() == 200);
    let got: Vec<u32> = pair
        .at_b
        .iter()
        .map(|m| u32::from_le_bytes(m[..].try_into().unwrap()))
        .collect();
    assert_eq!(got, (0..200).collect::<Vec<_>>());
    assert!(pair.b.stats().window_tells_sent >= 2);
    // The zero window came with ACKs of A's data: no early probe, as in ikcp.
    assert_eq!(pair.a.stats().unconfirmed_zero_windows, 0);
}

// ============================================================ input validation

fn established() -> (Kcp, Vec<Vec<u8>>) {
    let mut a = engine(eager());
    a.send(b"one").unwrap();
    a.send(b"two").unwrap();
    let out = flush(&mut a, at(0));
    (a, out)
}

#[track_caller]
fn assert_rejected_without_effect(bad: &[u8], expected: InputError) {
    let (mut a, _) = established();
    let before = a.clone();
    assert_eq!(a.input(at(5), bad), Err(expected));
    let mut stats = a.stats();
    stats.datagrams_rejected -= 1;
    assert_eq!(stats, before.stats());
    // Same future: both emit the same datagrams from here on.
    let mut before = before;
    for ms in [10, 300, 1_000] {
        assert_eq!(flush(&mut a, at(ms)), flush(&mut before, at(ms)));
    }
}

#[test]
fn every_rejection_path_leaves_the_engine_untouched() {
    let ack1 = Header {
        sn: Sn::new(0),
        ts: at(0),
        una: Sn::new(1),
        ..ACK
    };
    let good = ack1.to_bytes();
    assert_rejected_without_effect(&good[..23], InputError::Truncated { len: 23 });
    assert_rejected_without_effect(&[], InputError::Truncated { len: 0 });

    // A valid ACK followed by a segment of another conversation: nothing is applied,
    // not even the ACK before it.
    let mut foreign = good.to_vec();
    foreign.extend(Header { conv: 99, ..ack1 }.to_bytes());
    assert_rejected_without_effect(
        &foreign,
        InputError::ConvMismatch {
            expected: CONV,
            got: 99,
        },
    );

    let mut unknown = good.to_vec();
    let mut bad = ack1.to_bytes();
    bad[4] = 85;
    unknown.extend(bad);
    assert_rejected_without_effect(&unknown, InputError::UnknownCommand(85));

    let mut short = good.to_vec();
    short.extend(
        Header {
            cmd: Command::Push,
            len: 50,
            ..ack1
        }
        .to_bytes(),
    );
    short.extend([0; 10]);
    assert_rejected_without_effect(
        &short,
        InputError::BadLength {
            declared: 50,
            available: 10,
        },
    );

    let mut frg = good.to_vec();
    frg.extend(
        Header {
            cmd: Command::Push,
            frg: 200,
            ..ack1
        }
        .to_bytes(),
    );
    assert_rejected_without_effect(
        &frg,
        InputError::FragmentOverflow {
            frg: 200,
            rcv_wnd: 128,
        },
    );
}

#[test]
fn trailing_bytes_shorter_than_a_header_are_ignored() {
    let (mut a, _) = established();
    let mut d = Header {
        sn: Sn::new(0),
        ts: at(0),
        ..ACK
    }
    .to_bytes()
    .to_vec();
    d.extend([0xee; 10]);
    assert_eq!(a.input(at(5), &d), Ok(()));
    assert_eq!(a.stats().in_flight, 1);
}

#[test]
fn hostile_fields_are_bounded() {
    let mut b = engine(Config::fast());
    let push = |sn: u32, frg: u8, payload: &[u8]| {
        let mut d = Header {
            cmd: Command::Push,
            sn: Sn::new(sn),
            frg,
            len: payload.len() as u32,
            ..ACK
        }
        .to_bytes()
        .to_vec();
        d.extend_from_slice(payload);
        d
    };
    // Far outside the window: dropped without an ACK.
    b.input(at(0), &push(1 << 30, 0, b"x")).unwrap();
    assert_eq!(b.stats().out_of_window, 1);
    assert_eq!(b.check(at(0)), PollAt::Idle);
    // una far ahead of anything we sent, window 0: harmless.
    let weird = Header {
        cmd: Command::WindowTell,
        una: Sn::new(12345),
        wnd: 0,
        ..ACK
    };
    b.input(at(0), &weird.to_bytes()).unwrap();
    assert_eq!(b.wait_send(), 0);
    // A flood of duplicates cannot grow the ack list beyond its bound.
    for _ in 0..10_000 {
        b.input(at(1), &push(0, 0, b"d")).unwrap();
    }
    assert_eq!(b.stats().acks_dropped, 10_000 - 4 * 128);
    let acks: usize = flush(&mut b, at(2)).iter().map(|d| segments(d).len()).sum();
    assert_eq!(acks, 4 * 128);
    assert_eq!(b.recv().unwrap().as_ref(), b"d");
    assert_eq!(b.recv(), None);
}

#[test]
fn datagram_wire_layout_matches_the_reference_capture() {
    // Spec §1's captured PUSH: conv 0x11223344, frg 0, wnd 128, ts 360, sn 18, una 0, 95 bytes.
    let mut a = engine(Config::default().with_nodelay(NoDelay::Off, 10, 0, true));
    for _ in 0..19 {
        a.send(&[0x5a; 95]).unwrap();
    }
    let out = flush(&mut a, Timestamp::from_millis(360));
    let last = out.last().unwrap();
    let tail = &last[last.len() - HEADER_LEN - 95..last.len() - 95];
    assert_eq!(
        tail,
        [
            0x44, 0x33, 0x22, 0x11, 0x51, 0x00, 0x80, 0x00, 0x68, 0x01, 0x00, 0x00, 0x12, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x5f, 0x00, 0x00, 0x00
        ]
    );
}

// ============================================================ check and idleness

#[test]
fn check_says_idle_only_when_nothing_is_owed() {
    let mut a = engine(Config::fast());
    let mut b = engine(Config::fast());
    assert_eq!(a.check(at(0)), PollAt::Idle);
    a.send(b"ping").unwrap();
    assert_eq!(a.check(at(0)), PollAt::Now, "never updated: now");
    let out = update(&mut a, at(0));
    // Nothing owed but the retransmission timer (fast: rto 200, no padding).
    assert_eq!(a.check(at(3)), PollAt::At(at(200)));
    for d in &out {
        b.input(at(5), d).unwrap();
    }
    assert_eq!(b.check(at(5)), PollAt::Now, "an ACK is owed");
    let back = update(&mut b, at(5));
    assert_eq!(b.check(at(6)), PollAt::Idle, "ACK sent, nothing in flight");
    for d in &back {
        a.input(at(8), d).unwrap();
    }
    assert_eq!(a.check(at(8)), PollAt::Idle);
    assert_eq!(b.recv().unwrap().as_ref(), b"ping");
}

#[test]
fn check_skips_to_the_retransmission_deadline() {
    let mut a = engine(Config::default().with_nodelay(NoDelay::On, 10, 0, true));
    a.send(b"x").unwrap();
    update(&mut a, at(0));
    // rto 200 and nothing else pending: no wake-up before the grid point at 200.
    assert_eq!(a.check(at(1)), PollAt::At(at(200)));
    assert_eq!(a.check(at(199)), PollAt::At(at(200)));
    assert_eq!(a.check(at(200)), PollAt::Now);
    assert_eq!(push_sns(&update(&mut a, at(200))), [0]);
    // The grid stays aligned: next deadline 200 + 300 (rto x1.5).
    assert_eq!(a.check(at(201)), PollAt::At(at(500)));
}

#[test]
fn a_check_driven_host_moves_data_with_few_wakeups() {
    let mut pair = Pair::new(
        engine(Config::fast()),
        engine(Config::fast()),
        Lane::new(0.1, 25, 10),
        Lane::new(0.1, 25, 10),
        11,
    );
    for i in 0..50u32 {
        pair.a.send(&i.to_le_bytes().repeat(100)).unwrap();
    }
    // Step only when an engine asks for it or a datagram arrives.
    let mut wakeups = 0;
    while pair.at_b.len() < 50 {
        wakeups += 1;
        assert!(wakeups < 5_000);
        let now = pair.now();
        let due = |p: PollAt| match p {
            PollAt::Now => true,
            PollAt::At(t) => now.has_reached(t),
            PollAt::Idle => false,
        };
        if due(pair.a.check(now)) || due(pair.b.check(now)) || pair.a_to_b.in_transit() > 0 {
            pair.step();
        } else {
            pair.t += 1;
        }
    }
    pair.run_until(5_000, |p| {
        p.a.check(p.now()) == PollAt::Idle && p.b.check(p.now()) == PollAt::Idle
    });
}
