//! `KcpClient::next_deadline` is a fixed instant: callers compare it with a reading of
//! the clock they took a moment before, and must still see passed work as due.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::*;
use kcp_net::{KcpClient, KcpServer};

#[test]
fn a_due_deadline_stays_put_until_the_client_ticks() {
    let server = KcpServer::bind(localhost(), server_config(), Echo).unwrap();
    let mut config = client_config();
    config.flush_on_send = false; // the message waits for the engine's interval tick
    let mut client = KcpClient::connect(server.local_addr(), config).unwrap();
    client.send(b"late").unwrap();
    // Sleep through the 10 ms tick without ticking: the engine is now overdue.
    thread::sleep(Duration::from_millis(30));
    let before = Instant::now();
    let first = client.next_deadline().expect("a message waits");
    thread::sleep(Duration::from_millis(3));
    let second = client.next_deadline().expect("a message waits");
    assert_eq!(first, second, "the deadline moved while nothing happened");
    assert!(
        first <= before,
        "due work must read as due to an earlier clock reading"
    );

    // Ticking does the work; the echo comes back.
    client.tick().unwrap();
    assert_eq!(client.recv(WAIT).unwrap().as_deref(), Some(&b"late"[..]));
}
