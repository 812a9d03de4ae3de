//! The chat server keeps serving after the readers of its stdout and stderr went
//! away (`kcp-chat server 2>&1 | head`): writes to them fail with `EPIPE`, and
//! neither the main thread nor an event loop may die of it.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use common::*;
use kcp_chat::client::ChatClient;

#[test]
fn the_server_keeps_serving_after_its_stdout_and_stderr_readers_close() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kcp-chat"))
        // Raw KCP: this test is about pipes, not keys.
        .args([
            "server",
            "--raw",
            "--listen",
            "127.0.0.1:0",
            "--stats-every",
            "20ms",
        ])
        // Every session and drop is logged from the loop threads at debug level.
        .args(["--log", "debug"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting kcp-chat server");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("the first line");
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening ")
        .expect("a listening line")
        .parse()
        .expect("an address");
    // The readers go away, as `head` does after its lines.
    drop(stdout);
    drop(child.stderr.take());

    let chat = |nick: &str| ChatClient::connect(addr, nick, client_config()).expect("connecting");
    for round in 0..3 {
        let mut alice = chat(&format!("alice{round}"));
        let mut bob = chat(&format!("bob{round}"));
        join(&mut alice, "lobby");
        join(&mut bob, "lobby");
        let text = format!("still there? {round}");
        alice.say("lobby", &text).expect("saying");
        expect_message(&mut bob, &text);
        assert!(alice.quit("done", WAIT).expect("quitting"));
        assert!(bob.quit("done", WAIT).expect("quitting"));
    }
    assert!(
        child.try_wait().expect("polling the server").is_none(),
        "the server exited"
    );
    let _ = child.kill();
    let _ = child.wait();
}
