//! End to end through the real binary: a `kcp-chat server` process and interactive
//! `kcp-chat client` processes talking over loopback.

mod common;

use common::*;
use kcp_chat::protocol::{ClientFrame, ErrorCode, LeaveReason, ServerFrame};

#[test]
fn two_clients_chat_change_rooms_and_nicks_and_quit() {
    let server = Server::start(&[]);
    let mut alice = server.client("alice", &[]);
    alice.expect_text("--> alice joined lobby");
    let mut bob = server.client("bob", &[]);
    bob.expect_text("--> bob joined lobby");
    alice.expect_text("--> bob joined lobby");

    alice.type_line("hello bob");
    bob.expect(WAIT, |l| l.ends_with("[lobby] <alice> hello bob"));
    bob.type_line("/me waves");
    alice.expect(WAIT, |l| l.ends_with("[lobby] * bob waves"));

    bob.type_line("/join rust");
    bob.expect_text("--> bob joined rust");
    alice.type_line("/join #rust");
    bob.expect_text("--> alice joined rust");
    alice.type_line("in rust now");
    bob.expect(WAIT, |l| l.ends_with("[rust] <alice> in rust now"));

    bob.type_line("/nick robert");
    alice.expect_text("*** bob is now known as robert");
    alice.type_line("/who");
    alice.expect_text("*** in rust: alice, robert");
    alice.type_line("/rooms");
    alice.expect_text("*** rooms: lobby (2), rust (2)");

    bob.type_line("/leave");
    alice.expect_text("<-- robert left rust (left)");
    bob.expect_text("*** now talking in lobby");
    bob.type_line("back in the lobby");
    alice.expect(WAIT, |l| l.ends_with("[lobby] <robert> back in the lobby"));

    alice.type_line("/quit gone fishing");
    bob.expect_text("<-- alice left lobby (quit)");
    assert!(alice.wait_exit(WAIT).success());
    bob.close_stdin();
    assert!(bob.wait_exit(WAIT).success());
}

#[test]
fn client_in_a_pipe_says_everything_flushes_and_exits_zero() {
    let server = Server::start(&[]);
    let mut listener = server.chat("listener");
    join(&mut listener, "lobby");
    let input: String = (1..=30).map(|i| format!("line {i}\n")).collect();
    // 30 lines at once: more than the client's burst, so its pacing is exercised too.
    let output = server.run_client("piper", &[], input);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "exit {:?}: {stdout}",
        output.status
    );
    // It saw the echo of its own last line before quitting.
    assert!(stdout.contains("<piper> line 30"), "{stdout}");
    // And the server's goodbye.
    assert!(
        stdout.trim_end().ends_with("<-- piper left lobby (quit)"),
        "{stdout}"
    );
    for i in 1..=30 {
        expect_message(&mut listener, &format!("line {i}"));
    }
    expect_frame(
        &mut listener,
        |f| matches!(f, ServerFrame::Left { nick, .. } if nick == "piper"),
    );
}

#[test]
fn impaired_client_gets_through_a_lossy_link() {
    let server = Server::start(&[]);
    let mut listener = server.chat("listener");
    join(&mut listener, "lobby");
    let output = server.run_client(
        "lossy",
        &["--impair", "loss=0.3,delay=20ms,jitter=10ms,seed=3"],
        "one\ntwo\nthree\n",
    );
    assert!(output.status.success());
    for text in ["one", "two", "three"] {
        expect_message(&mut listener, text);
    }
}

#[test]
fn taken_nick_is_refused_and_another_can_be_chosen() {
    let server = Server::start(&[]);
    let mut holder = server.chat("alice");
    join(&mut holder, "lobby");
    let mut second = server.client("Alice", &[]);
    second.expect_text("!!! error (nick-taken)");
    second.expect_text("/nick NICK");
    second.type_line("/nick alice2");
    second.expect_text("*** welcome alice2");
    second.expect_text("--> alice2 joined lobby");
    second.type_line("made it");
    expect_message(&mut holder, "made it");
}

#[test]
fn over_long_line_gets_an_error_and_the_client_carries_on() {
    let server = Server::start(&["--max-message", "100"]);
    let mut listener = server.chat("listener");
    join(&mut listener, "lobby");
    let long = "x".repeat(101);
    let output = server.run_client(
        "verbose",
        &[],
        format!("{long}\n{}\nshort\n", "y".repeat(5000)),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert_eq!(
        stdout.matches("!!! error (too-long)").count(),
        2,
        "{stdout}"
    );
    expect_message(&mut listener, "short");
}

#[test]
fn history_is_replayed_to_whoever_joins() {
    let server = Server::start(&["--history", "3"]);
    let mut alice = server.chat("alice");
    join(&mut alice, "news");
    for i in 1..=5 {
        alice.say("news", &format!("item {i}")).unwrap();
    }
    expect_message(&mut alice, "item 5");
    let mut bob = server.client("bob", &["--room", "news"]);
    bob.expect_text("--> bob joined news");
    for i in 3..=5 {
        bob.expect(WAIT, |l| {
            l.ends_with(&format!("[news] (earlier) <alice> item {i}"))
        });
    }
    alice.say("news", "fresh").unwrap();
    bob.expect(WAIT, |l| l.ends_with("[news] <alice> fresh"));
    assert!(
        !bob.seen.iter().any(|l| l.contains("item 2")),
        "{:#?}",
        bob.seen
    );
}

#[test]
fn sigint_tells_the_clients_and_the_server_exits_cleanly() {
    let mut server = Server::start(&[]);
    let mut alice = server.client("alice", &[]);
    alice.expect_text("--> alice joined lobby");
    server.proc.signal(libc::SIGINT);
    alice.expect_text("*** server shutting down: stopped by a signal");
    assert!(alice.wait_exit(WAIT).success());
    assert!(server.proc.wait_exit(WAIT).success());
    let rest = server.proc.rest();
    assert!(rest.iter().any(|l| l.starts_with("final ")), "{rest:#?}");
}

#[test]
fn sigterm_stops_the_server_cleanly_too() {
    let mut server = Server::start(&["--stats-every", "100ms"]);
    let mut bob = server.chat("bob");
    join(&mut bob, "lobby");
    server
        .proc
        .expect(WAIT, |l| l.starts_with("stats sessions 1 users 1 rooms 1"));
    server.proc.signal(libc::SIGTERM);
    expect_frame(&mut bob, |f| matches!(f, ServerFrame::Shutdown { .. }));
    assert!(server.proc.wait_exit(WAIT).success());
}

#[test]
fn client_reconnects_to_a_restarted_server_and_rejoins() {
    let mut first = Server::start(&[]);
    let addr = first.addr.to_string();
    let mut alice = first.client("alice", &["--keepalive", "200ms", "--server-timeout", "1s"]);
    alice.type_line("/join ops");
    alice.expect_text("--> alice joined ops");
    first.proc.kill();
    alice.expect_text("server not responding, reconnecting");
    // A new server on the same port: the client's next hello gets through.
    let second = Server::restart(&first, &["--listen", &addr]);
    alice.expect_text("*** welcome alice");
    alice.expect_text("--> alice joined ops");
    let mut bob = second.chat("bob");
    join(&mut bob, "ops");
    alice.type_line("still here");
    expect_message(&mut bob, "still here");
    bob.send(&ClientFrame::ListUsers { room: "ops".into() })
        .unwrap();
    expect_frame(
        &mut bob,
        |f| matches!(f, ServerFrame::Users { nicks, .. } if nicks == &["alice", "bob"]),
    );
}

#[test]
fn broadcast_crosses_event_loop_threads_in_one_order() {
    let server = Server::start(&["--threads", "2"]);
    let mut clients: Vec<_> = (0..8).map(|i| server.chat(&format!("user{i}"))).collect();
    for c in &mut clients {
        join(c, "lobby");
    }
    for round in 0..3 {
        for (i, c) in clients.iter_mut().enumerate() {
            c.say("lobby", &format!("r{round} from {i}")).unwrap();
        }
    }
    // Every member sees all 24 messages, numbered 1..=24 in the same order, whichever
    // loop each sender's session is on.
    let mut orders = Vec::new();
    for c in &mut clients {
        let mut order = Vec::new();
        while order.len() < 24 {
            if let ServerFrame::Message { seq, text, .. } =
                expect_frame(c, |f| matches!(f, ServerFrame::Message { .. }))
            {
                assert_eq!(seq, order.len() as u64 + 1, "gap or reorder before {text}");
                order.push(text);
            }
        }
        orders.push(order);
    }
    assert!(orders.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn a_reconnecting_client_takes_its_nick_back_with_its_resume_token() {
    let server = Server::start(&[]);
    let mut bob = server.chat("bob");
    join(&mut bob, "ops");
    let mut alice = server.chat("alice");
    join(&mut alice, "ops");
    expect_frame(
        &mut bob,
        |f| matches!(f, ServerFrame::Joined { nick, .. } if nick == "alice"),
    );
    // A new conversation while the old session still holds the nick: the token proves
    // it is the same user, the old session is dropped and the rooms are rejoined.
    alice.reconnect().unwrap();
    expect_frame(
        &mut alice,
        |f| matches!(f, ServerFrame::Welcome { nick, .. } if nick == "alice"),
    );
    expect_frame(
        &mut alice,
        |f| matches!(f, ServerFrame::Joined { room, nick } if room == "ops" && nick == "alice"),
    );
    expect_frame(
        &mut bob,
        |f| matches!(f, ServerFrame::Left { nick, reason: LeaveReason::Reconnected, .. } if nick == "alice"),
    );
    expect_frame(
        &mut bob,
        |f| matches!(f, ServerFrame::Joined { nick, .. } if nick == "alice"),
    );
    // Someone else cannot take the nick without the token.
    let mut eve = server.chat("alice");
    let refused = expect_frame(&mut eve, |f| matches!(f, ServerFrame::Error { .. }));
    assert!(matches!(
        refused,
        ServerFrame::Error {
            code: ErrorCode::NickTaken,
            ..
        }
    ));
    alice.say("ops", "back").unwrap();
    expect_message(&mut bob, "back");
}

/// A client that vanishes without a word (killed) is closed by the server's idle
/// timeout, and the room hears it was lost: the server tells the others from its
/// `on_close`, through the handle the close context carries.
#[test]
fn a_vanished_client_is_reported_lost_to_its_room() {
    // Keepalives every 500 ms keep a live client well inside the 3 s idle timeout.
    let server = Server::start(&["--idle-timeout", "3s"]);
    let mut alice = server.client("alice", &["--keepalive", "500ms"]);
    alice.expect_text("--> alice joined lobby");
    let mut bob = server.client("bob", &["--keepalive", "500ms"]);
    bob.expect_text("--> bob joined lobby");
    alice.expect_text("--> bob joined lobby");

    bob.kill();
    alice.expect_text("<-- bob left lobby (connection lost)");
    alice.type_line("/who");
    alice.expect_text("*** in lobby: alice");
}

/// Lines typed while the server restarts are not lost: those the dead conversation
/// swallowed and those typed while the client reconnects wait, and once a new server
/// on the same port welcomes the client they are all said, in the order typed.
#[test]
fn lines_typed_while_the_server_restarts_are_sent_after_the_reconnect() {
    // Raw KCP: a secure client's reconnect attempts block it for their handshake
    // timeout each (1 s), which would pace the typed lines below; the ordering and
    // nothing-lost rules under test are the same in both modes.
    let mut first = Server::start(&["--raw"]);
    let addr = first.addr.to_string();
    let mut alice = first.client(
        "alice",
        &["--raw", "--keepalive", "200ms", "--server-timeout", "1s"],
    );
    alice.expect_text("--> alice joined lobby");
    first.proc.kill();
    let typed: Vec<String> = (1..=12).map(|i| format!("typed {i}")).collect();
    // These go into the dead conversation before the client notices...
    for line in &typed[..6] {
        alice.type_line(line);
    }
    alice.expect_text("server not responding, reconnecting");
    // ... and these are typed while it reconnects.
    for line in &typed[6..] {
        alice.type_line(line);
    }
    alice.expect_text("12 lines queued, will send on reconnect");
    // The history replays to the listener whatever alice said before it joined.
    let second = Server::restart(&first, &["--raw", "--listen", &addr, "--history", "50"]);
    alice.expect_text("*** reconnected: sending 12 lines");
    let mut listener = second.chat("listener");
    join(&mut listener, "lobby");
    let mut said = Vec::new();
    while said.last() != typed.last() {
        if let ServerFrame::Message { from, text, .. } =
            expect_frame(&mut listener, |f| matches!(f, ServerFrame::Message { .. }))
            && from == "alice"
        {
            said.push(text);
        }
    }
    assert_eq!(said, typed);
    alice.close_stdin();
    assert!(alice.wait_exit(WAIT).success());
    assert!(
        !alice.seen.iter().any(|l| l.contains("not sent")),
        "{:#?}",
        alice.seen
    );
}

/// The offline queue is bounded, and reconnecting gives up: every line that cannot be
/// sent is reported, none is dropped without a word.
#[test]
fn lines_beyond_the_offline_queue_or_when_giving_up_are_reported_not_sent() {
    let mut server = Server::start(&[]);
    let mut alice = server.client(
        "alice",
        &[
            "--keepalive",
            "200ms",
            "--server-timeout",
            "1s",
            "--offline-queue",
            "2",
            "--give-up-after",
            "3s",
        ],
    );
    alice.expect_text("--> alice joined lobby");
    server.proc.kill();
    alice.expect_text("server not responding, reconnecting");
    for line in ["one", "two", "three", "four"] {
        alice.type_line(line);
    }
    alice.expect_text("*** 2 lines queued, will send on reconnect");
    alice.expect_text("!!! line not sent: three");
    alice.expect_text("!!! line not sent: four");
    alice.expect_text("*** giving up");
    alice.expect_text("!!! line not sent: one");
    alice.expect_text("!!! line not sent: two");
    assert_eq!(alice.wait_exit(WAIT).code(), Some(3));
}

/// The library client keeps what the server has not acknowledged, and a reconnect
/// hands it back for the caller to send again.
#[test]
fn a_reconnect_hands_back_the_frames_a_dead_conversation_may_not_have_delivered() {
    // Raw KCP: its reconnect starts a new conversation without the server (a secure
    // one needs the server to answer its handshake).
    let mut server = Server::start(&["--raw"]);
    let mut config = server.client_config();
    config.server_timeout = std::time::Duration::from_millis(500);
    let mut alice = kcp_chat::client::ChatClient::connect(server.addr, "alice", config).unwrap();
    join(&mut alice, "lobby");
    alice.say("lobby", "heard").unwrap();
    expect_message(&mut alice, "heard");
    assert!(alice.wait_acknowledged(WAIT).unwrap());
    assert_eq!(alice.unacknowledged().len(), 0);
    server.proc.kill();
    let lost: Vec<ClientFrame> = (1..=3)
        .map(|i| ClientFrame::Say {
            room: "lobby".into(),
            text: format!("unheard {i}"),
        })
        .collect();
    for frame in &lost {
        alice.send(frame).unwrap();
    }
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the link never failed"
        );
        match alice.recv(std::time::Duration::from_millis(50)) {
            Err(e) if e.is_link_failure() => break,
            other => drop(other.unwrap()),
        }
    }
    assert_eq!(alice.reconnect().unwrap(), lost);
    assert_eq!(alice.unacknowledged().len(), 0);
}
