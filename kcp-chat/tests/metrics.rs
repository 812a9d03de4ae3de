//! What an operator can read from a running server: `--metrics` (Prometheus text
//! over HTTP on loopback) and SIGUSR1 (the counters on stderr).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

/// `GET path` on `addr`: the status line and the body.
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).expect("connecting");
    stream.set_read_timeout(Some(WAIT)).expect("a read timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("a request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("a response");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

/// Scrapes until `sample` (a whole line) appears: counters are published once per
/// event loop turn.
#[track_caller]
fn scrape_until(addr: SocketAddr, sample: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = get(addr, "/metrics");
        assert!(status.contains("200"), "{status}");
        if body.lines().any(|l| l == sample) {
            return body;
        }
        assert!(Instant::now() < deadline, "no {sample} in\n{body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn metrics_are_served_in_the_prometheus_text_format() {
    let mut server = Server::start(&["--metrics", "127.0.0.1:0"]);
    let line = server.proc.expect(WAIT, |l| l.starts_with("metrics "));
    let addr: SocketAddr = line
        .trim_start_matches("metrics http://")
        .trim_end_matches("/metrics")
        .parse()
        .expect("the metrics address");
    assert!(addr.ip().is_loopback());
    let mut alice = server.chat("alice");
    join(&mut alice, "lobby");
    alice.say("lobby", "counted").unwrap();
    expect_message(&mut alice, "counted");
    let body = scrape_until(addr, "kcp_chat_messages_total 1");
    for sample in [
        "kcp_chat_users 1",
        "kcp_chat_rooms 1",
        "kcp_chat_sessions 1",
    ] {
        assert!(body.lines().any(|l| l == sample), "{sample} in\n{body}");
    }
    assert!(
        body.contains("# TYPE kcp_chat_datagrams_in_total counter"),
        "{body}"
    );
    assert!(body.contains("kcp_chat_datagrams_dropped_total{cause=\"tampered\"} 0"));
    let datagrams_in: u64 = body
        .lines()
        .find_map(|l| l.strip_prefix("kcp_chat_datagrams_in_total "))
        .and_then(|v| v.parse().ok())
        .expect("a datagrams_in sample");
    assert!(datagrams_in > 0);
    let (status, _) = get(addr, "/other");
    assert!(status.contains("404"), "{status}");
}

#[test]
fn sigusr1_prints_the_counters_and_the_server_goes_on() {
    let mut server = Server::start(&[]);
    let mut alice = server.chat("alice");
    join(&mut alice, "lobby");
    server.proc.signal(libc::SIGUSR1);
    let line = server.proc.expect_stderr(WAIT, |l| l.starts_with("stats "));
    assert!(line.contains("sessions 1 users 1 rooms 1"), "{line}");
    // Still serving: a new client chats, and a second SIGUSR1 prints again.
    let mut bob = server.chat("bob");
    join(&mut bob, "lobby");
    bob.say("lobby", "still here").unwrap();
    expect_message(&mut alice, "still here");
    server.proc.signal(libc::SIGUSR1);
    let line = server.proc.expect_stderr(WAIT, |l| l.starts_with("stats "));
    assert!(line.contains("users 2"), "{line}");
    // SIGTERM still stops it cleanly.
    server.proc.signal(libc::SIGTERM);
    assert!(server.proc.wait_exit(WAIT).success());
    assert!(server.proc.rest().iter().any(|l| l.starts_with("final ")));
}
