//! `Kcp::last_heard` / `Kcp::silent_for`: how long the peer has said nothing that the
//! engine accepted, on a virtual clock that crosses the 32-bit wrap.

mod common;

use common::{START, flush, update};
use kcp_core::segment::{Command, Header};
use kcp_core::{Config, Kcp, Sn, Timestamp};

const CONV: u32 = 0x5151_0001;

fn at(ms: u32) -> Timestamp {
    Timestamp::from_millis(START.wrapping_add(ms))
}

fn pair() -> (Kcp, Kcp) {
    (
        Kcp::new(CONV, Config::fast()).unwrap(),
        Kcp::new(CONV, Config::fast()).unwrap(),
    )
}

#[test]
fn silence_counts_from_the_first_update_until_the_peer_is_heard() {
    let (mut a, mut b) = pair();
    assert_eq!(a.silent_for(at(0)), 0, "nothing started yet");
    assert!(update(&mut a, at(0)).is_empty());
    assert_eq!(a.silent_for(at(2_500)), 2_500);
    assert_eq!(a.last_heard(), None);

    // b says something at 3 s (crossing the wrap): a hears it.
    b.send(b"hi").unwrap();
    for d in flush(&mut b, at(3_000)) {
        a.input(at(3_000), &d).unwrap();
    }
    assert_eq!(a.last_heard(), Some(at(3_000)));
    assert_eq!(a.silent_for(at(3_000)), 0);
    assert_eq!(a.silent_for(at(13_000)), 10_000);
    assert_eq!(
        a.silent_for(at(2_000)),
        0,
        "a `now` before the last input reads 0"
    );
}

#[test]
fn rejected_and_refused_datagrams_do_not_count_as_hearing_the_peer() {
    let (mut a, mut b) = pair();
    b.send(b"hi").unwrap();
    let genuine = flush(&mut b, at(0));
    a.input(at(0), &genuine[0]).unwrap();
    assert_eq!(a.last_heard(), Some(at(0)));

    // Another conversation: rejected whole.
    let mut foreign = genuine[0].clone();
    foreign[..4].copy_from_slice(&(CONV + 1).to_le_bytes());
    assert!(a.input(at(5_000), &foreign).is_err());
    // Valid bytes, but an ACK of a segment a never sent: refused segment by segment.
    let forged_ack = Header {
        conv: CONV,
        cmd: Command::Ack,
        frg: 0,
        wnd: 128,
        ts: at(4_000),
        sn: Sn::new(77),
        una: Sn::new(0),
        len: 0,
    }
    .to_bytes();
    a.input(at(6_000), &forged_ack).unwrap();
    assert_eq!(a.stats().refused_ack, 1);
    assert_eq!(a.last_heard(), Some(at(0)));
    assert_eq!(a.silent_for(at(10_000)), 10_000);

    // The peer's retransmission is a segment a applies (a duplicate, acknowledged).
    a.input(at(7_000), &genuine[0]).unwrap();
    assert_eq!(a.silent_for(at(10_000)), 3_000);
}
