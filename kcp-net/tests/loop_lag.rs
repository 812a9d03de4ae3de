//! A loop that falls behind says so: a handler that holds the loop makes every timer
//! due meanwhile fire late, and the lateness shows in `SessionCtx::loop_lag` and the
//! loop's `loop_lag_us` gauge, then fades once the loop keeps up again.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use kcp_net::{EventHandler, KcpClient, KcpServer, SessionCtx};

/// `hold` blocks the loop for 300 ms; `lag?` answers the loop's lag in milliseconds.
#[derive(Clone)]
struct Laggard;

impl EventHandler for Laggard {
    fn on_message(&mut self, session: &mut SessionCtx<'_>, message: Bytes) {
        let reply = match &message[..] {
            b"hold" => {
                std::thread::sleep(Duration::from_millis(300));
                "held".to_owned()
            }
            _ => session.loop_lag().as_millis().to_string(),
        };
        let _ = session.send(reply.as_bytes());
    }
}

fn ask(client: &mut KcpClient, question: &[u8]) -> String {
    client.send(question).unwrap();
    let reply = client.recv(WAIT).unwrap().expect("a reply");
    String::from_utf8(reply.to_vec()).unwrap()
}

#[test]
fn a_held_loop_reports_its_lag_and_forgets_it_when_it_keeps_up() {
    let server = KcpServer::bind(localhost(), server_config(), Laggard).unwrap();
    let mut client = KcpClient::connect(server.local_addr(), client_config()).unwrap();
    let calm: u128 = ask(&mut client, b"lag?").parse().unwrap();
    assert!(calm < 250, "an idle loop is {calm} ms behind");
    // The session's timers (its interval flush, the held ACK) come due while the
    // handler sleeps, and fire 300 ms late.
    assert_eq!(ask(&mut client, b"hold"), "held");
    // The late timers fire on the loop's next turn (the sleep's own turn still runs on
    // the instant it started with).
    std::thread::sleep(Duration::from_millis(20));
    let behind: u128 = ask(&mut client, b"lag?").parse().unwrap();
    assert!(behind >= 250, "a loop held 300 ms reports {behind} ms");
    assert!(server.handle().stats().max_loop_lag() >= Duration::from_millis(250));
    // Two to three seconds later, keeping up, it no longer counts.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lag: u128 = ask(&mut client, b"lag?").parse().unwrap();
        if lag < 250 {
            break;
        }
        assert!(Instant::now() < deadline, "the lag never faded: {lag} ms");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.shutdown(Duration::ZERO).unwrap();
}
