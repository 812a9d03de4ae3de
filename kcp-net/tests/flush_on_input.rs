//! `ClientConfig::flush_on_input`: ACKs for messages that wait in the client's inbox
//! are held back for the application's reply, but for a millisecond at most.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::*;
use kcp_net::{KcpClient, KcpServer};

#[test]
fn acks_held_for_the_inbox_leave_at_the_next_tick_a_millisecond_later() {
    let server = KcpServer::bind(localhost(), server_config(), Echo).unwrap();
    let mut config = client_config();
    config.flush_on_input = true;
    // A 5 s update grid: no tick of this test lands on it, so the only flushes are the
    // ones under test (sends and owed ACKs).
    config.engine.interval = 5000;
    let mut client = KcpClient::connect(server.local_addr(), config).unwrap();
    client.send(b"one").unwrap();
    client.send(b"two").unwrap();

    // Tick until both echoes wait in the inbox: the tick that read the last one held
    // its ACKs back, since messages wait, and asks to be called again within 1 ms.
    let deadline = Instant::now() + WAIT;
    let read_at = loop {
        client.tick().unwrap();
        let now = Instant::now();
        if client.pending() == 2 {
            break now;
        }
        assert!(now < deadline, "no echoes in time");
        thread::sleep(Duration::from_micros(200));
    };
    let asked = client
        .next_deadline()
        .expect("a deadline while ACKs are owed");
    assert!(
        asked <= read_at + Duration::from_millis(1),
        "asked for {:?} after the read",
        asked.saturating_duration_since(read_at)
    );

    // A tick past that point sends them even though nobody drained the inbox.
    thread::sleep(Duration::from_millis(2));
    let before = client.stats().counters.datagrams_out;
    client.tick().unwrap();
    assert!(
        client.stats().counters.datagrams_out > before,
        "no ACK left"
    );
    assert_eq!(client.pending(), 2, "the messages stay for the application");

    // The server sees its echoes acknowledged.
    let handle = server.handle();
    let key = handle.sessions().unwrap()[0].key;
    let deadline = Instant::now() + WAIT;
    while handle.session_stats(key).unwrap().engine.in_flight > 0 {
        assert!(Instant::now() < deadline, "echoes never acknowledged");
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(client.try_recv().unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(client.try_recv().unwrap().as_deref(), Some(&b"two"[..]));
}
