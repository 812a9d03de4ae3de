//! `Conversation::next_deadline` (and so `KcpClient::next_deadline`) is a fixed
//! instant: callers compare it with a reading of the clock they took a moment before,
//! and must still see passed work as due. On virtual time: no sleeps.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kcp_net::{Conversation, ConversationConfig, Preset};

const MS: Duration = Duration::from_millis(1);

#[test]
fn a_due_deadline_stays_put_until_the_conversation_is_driven() {
    let t0 = Instant::now();
    let config = ConversationConfig::new(Preset::Fast); // flush_on_send off
    let mut c = Conversation::new(1, config, t0).unwrap();
    c.send(t0, Bytes::from_static(b"late")).unwrap();
    // 30 ms pass without a drive: the 10 ms tick is overdue.
    let late = t0 + 30 * MS;
    let first = c.next_deadline(late).expect("a message waits");
    let second = c.next_deadline(late + 3 * MS).expect("a message waits");
    assert_eq!(first, second, "the deadline moved while nothing happened");
    assert!(
        first <= late,
        "due work must read as due to an earlier clock reading"
    );

    // Driving does the work and moves the deadline into the future.
    let mut wire = Vec::new();
    c.drive_to_vec(late, &mut wire);
    assert_eq!(wire.len(), 1, "the message left");
    let next = c.next_deadline(late).expect("waiting for the ACK");
    assert!(next > late, "a fresh deadline lies ahead");
}

#[test]
fn the_deadline_never_lands_before_the_engine_clock_turns() {
    let t0 = Instant::now();
    let mut c = Conversation::new(1, ConversationConfig::new(Preset::Fast), t0).unwrap();
    let now = t0 + Duration::from_micros(10_700);
    let mut wire = Vec::new();
    c.drive_to_vec(now, &mut wire); // the 10 ms tick, with nothing to send
    c.send(now, Bytes::from_static(b"x")).unwrap();
    let at = c.next_deadline(now).unwrap();
    // The engine's 10 ms grid: the first tick after 10.7 ms is 20 ms.
    assert_eq!(at, t0 + 20 * MS);
    c.drive_to_vec(at - Duration::from_nanos(1), &mut wire);
    assert!(wire.is_empty(), "nothing is due a nanosecond early");
    c.drive_to_vec(at, &mut wire);
    assert_eq!(wire.len(), 1);
}
