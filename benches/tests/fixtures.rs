//! The per-operation fixtures put every implementation in the state their names
//! promise, and the latency setups behave identically for ours and C.

use benches::engine::{CRef, Engine, KcpCrate, Ours, OursCopying, Wake};
use benches::latency::{self, Setup};
use benches::micro::{AckInput, FLIGHT, MESSAGE, SendFlush, idle};

fn fixtures<E: Engine>() {
    let mut ack = AckInput::<E>::new();
    assert_eq!(ack.sender.wait_send(), FLIGHT);
    ack.run();
    assert_eq!(
        ack.sender.wait_send(),
        FLIGHT - 1,
        "{}: the ACK removed one",
        E::NAME
    );

    let mut sf = SendFlush::<E>::new();
    assert_eq!(sf.engine.wait_send(), 0, "{}: nothing in flight", E::NAME);
    sf.run();
    assert_eq!(
        sf.emitted,
        MESSAGE.len() + 24,
        "{}: one segment went out",
        E::NAME
    );

    let (engine, now) = idle::<E>();
    assert_eq!(engine.wait_send(), 0);
    match engine.check(now) {
        Wake::Idle => assert!(E::NAME.starts_with("ours"), "only ours can say idle"),
        Wake::At(t) => assert!(t.wrapping_sub(now) <= 10, "{}: {t} vs {now}", E::NAME),
    }
}

#[test]
fn fixtures_hold_for_every_implementation() {
    fixtures::<Ours>();
    fixtures::<OursCopying>();
    fixtures::<CRef>();
    fixtures::<KcpCrate>();
}

#[test]
fn latency_setups_match_c_on_a_few_seeds() {
    for setup in Setup::ALL {
        for (loss, seed) in [(5, 0), (20, 3)] {
            let ours = latency::run_ours(setup, loss, seed);
            let c = latency::run_c(setup, loss, seed);
            assert_eq!(ours, c, "{} at {loss}%, seed {seed}", setup.name());
        }
    }
    let summary = latency::Summary::of(&[latency::run_ours(Setup::TcpLike, 10, 1)]).unwrap();
    assert_eq!((summary.finished, summary.stalled), (1, 0));
    assert!(summary.avg_rtt >= 60.0 && f64::from(summary.max_rtt) >= summary.avg_rtt);
}
