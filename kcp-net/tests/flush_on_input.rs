//! `flush_on_input`: ACKs for messages that wait for the application are held back
//! for its reply, but for a millisecond at most. On virtual time through
//! `kcp_core::sim` links.

mod common;

use common::virtual_link::{End, VirtualPair};
use kcp_core::sim::LinkConfig;
use kcp_net::{ConversationConfig, Preset};

fn pair() -> VirtualPair {
    let mut client = ConversationConfig::new(Preset::Fast);
    client.flush_on_send = true;
    client.flush_on_input = true;
    // A 5 s update grid: no drive of this test lands on it, so the only flushes are
    // the ones under test (sends and owed ACKs).
    client.engine.interval = 5000;
    let mut server = ConversationConfig::new(Preset::Fast);
    server.flush_on_send = true;
    let link = LinkConfig::lossy(0.0, 5, 0);
    let mut pair = VirtualPair::new(client, server, link.clone(), link, 7);
    pair.server.echo = true;
    pair
}

/// Steps until a message waits at the client; returns the ms, and the client's
/// datagrams out just before that step.
fn until_an_echo_waits(pair: &mut VirtualPair) -> (u64, u64) {
    loop {
        let before = pair.client.conversation.counters().datagrams_out;
        pair.step();
        if pair.client.conversation.has_message() || !pair.client.received.is_empty() {
            return (pair.ms, before);
        }
        assert!(pair.ms < 500, "no echo in 500 virtual ms");
    }
}

#[test]
fn acks_held_for_waiting_messages_leave_a_millisecond_later() {
    let mut pair = pair();
    pair.client.reads = false; // the application is busy elsewhere
    pair.send(End::Client, b"one");
    pair.send(End::Client, b"two");
    let (arrived, before) = until_an_echo_waits(&mut pair);
    assert_eq!(
        pair.client.conversation.counters().datagrams_out,
        before,
        "the ACKs were held while the echoes wait"
    );
    let deadline = pair.client.conversation.next_deadline(pair.now()).unwrap();
    assert!(deadline <= pair.at(arrived + 1), "asked for {deadline:?}");

    // A millisecond later they leave even though nobody read.
    pair.step();
    assert!(
        pair.client.conversation.counters().datagrams_out > before,
        "the held ACKs left a millisecond later"
    );
    assert!(
        pair.client.conversation.has_message(),
        "the messages stay for the application"
    );

    // The server sees its echoes acknowledged.
    pair.run_until(arrived + 20);
    assert_eq!(pair.server.conversation.queued_bytes(), 0);
    assert_eq!(
        pair.client.conversation.recv().as_deref(),
        Some(&b"one"[..])
    );
    assert_eq!(
        pair.client.conversation.recv().as_deref(),
        Some(&b"two"[..])
    );
}

#[test]
fn a_reader_sends_its_acks_the_millisecond_it_reads() {
    let mut pair = pair();
    pair.send(End::Client, b"ping");
    let (arrived, before) = until_an_echo_waits(&mut pair);
    assert_eq!(&pair.client.received[0].1[..], b"ping");
    assert!(
        pair.client.conversation.counters().datagrams_out > before,
        "the ACK left the ms the echo was read, at {arrived}"
    );
    pair.run_until(arrived + 5);
    assert_eq!(
        pair.server.conversation.queued_bytes(),
        0,
        "acknowledged at once"
    );
}
