//! Cluster mode end to end on loopback: a `redis-server` of the test's own (a free
//! port on 127.0.0.1, nothing kept on disk unless the test needs a restart to keep
//! it), chat nodes in this process or as `kcp-chat server` child processes, and
//! library clients. If redis-server cannot start, the test fails and says why.

mod common;

use std::time::{Duration, Instant};

use common::*;
use kcp_chat::client::ChatClient;
use kcp_chat::cluster::ClusterConfig;
use kcp_chat::cluster::redis_server::{RedisOptions, RedisServer};
use kcp_chat::protocol::{ErrorCode, LeaveReason, ServerFrame};
use kcp_chat::server::{ChatServer, ChatServerConfig};
use kcp_net::Preset;

#[track_caller]
fn redis(options: RedisOptions) -> RedisServer {
    RedisServer::start_with(options)
        .unwrap_or_else(|e| panic!("the cluster tests need a redis-server of their own: {e}"))
}

/// A node in this process.
fn node(redis: &RedisServer, id: &str, tweak: impl FnOnce(&mut ClusterConfig)) -> ChatServer {
    let mut cluster = ClusterConfig::new(redis.url(), id);
    tweak(&mut cluster);
    ChatServer::bind_cluster(
        "127.0.0.1:0".parse().unwrap(),
        ChatServerConfig::new(Preset::Fast),
        cluster,
    )
    .expect("starting a cluster node")
}

/// A Redis and two nodes, `n1` and `n2`, with the default settings.
#[track_caller]
fn two_nodes(options: RedisOptions) -> (RedisServer, ChatServer, ChatServer) {
    let redis = redis(options);
    let n1 = node(&redis, "n1", |_| {});
    let n2 = node(&redis, "n2", |_| {});
    (redis, n1, n2)
}

fn chat(server: &ChatServer, nick: &str) -> ChatClient {
    ChatClient::connect(server.local_addr(), nick, client_config()).expect("connecting")
}

/// The next `n` live messages of `chat` as (from, text, seq), within [`WAIT`];
/// everything else is skipped. Panics with what it saw if they do not come.
#[track_caller]
fn messages(chat: &mut ChatClient, n: usize) -> Vec<(String, String, u64)> {
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    let mut other = Vec::new();
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} messages within {WAIT:?}: {got:?}; other frames {other:?}",
            got.len()
        );
        match chat.recv(Duration::from_millis(50)).expect("receiving") {
            Some(ServerFrame::Message {
                from,
                text,
                seq,
                history: false,
                ..
            }) => got.push((from, text, seq)),
            Some(frame) => other.push(frame),
            None => {}
        }
    }
    got
}

/// Nothing more arrives for `window` but frames `allowed` accepts.
#[track_caller]
fn quiet(chat: &mut ChatClient, window: Duration, allowed: impl Fn(&ServerFrame) -> bool) {
    let deadline = Instant::now() + window;
    while Instant::now() < deadline {
        if let Some(frame) = chat.recv(Duration::from_millis(20)).expect("receiving") {
            assert!(allowed(&frame), "unexpected {frame:?}");
        }
    }
}

/// Waits for an error frame, which must have `code`.
#[track_caller]
fn expect_error(chat: &mut ChatClient, code: ErrorCode) -> String {
    match expect_frame(chat, |f| matches!(f, ServerFrame::Error { .. })) {
        ServerFrame::Error { code: got, text } if got == code => text,
        other => panic!("expected a {code} error, got {other:?}"),
    }
}

/// Says hello as `nick` on `server` until it is welcomed (the nick is freed), within
/// [`WAIT`].
#[track_caller]
fn welcomed_eventually(server: &ChatServer, nick: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut again = chat(server, nick);
        let answer = expect_frame(&mut again, |f| {
            matches!(f, ServerFrame::Welcome { .. } | ServerFrame::Error { .. })
        });
        if matches!(answer, ServerFrame::Welcome { .. }) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{nick} was never freed: {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn texts(list: &[(String, String, u64)], from: &str) -> Vec<String> {
    list.iter()
        .filter(|(f, _, _)| f == from)
        .map(|(_, t, _)| t.clone())
        .collect()
}

#[test]
fn lines_cross_nodes_once_and_in_one_order() {
    let (_redis, n1, n2) = two_nodes(RedisOptions::default());
    let mut alice = chat(&n1, "alice");
    join(&mut alice, "room");
    let mut bob = chat(&n2, "bob");
    join(&mut bob, "room");
    expect_frame(
        &mut alice,
        |f| matches!(f, ServerFrame::Joined { nick, .. } if nick == "bob"),
    );
    // Both say at once, without waiting: the room's order is Redis's.
    for i in 1..=15 {
        alice.say("room", &format!("a{i}")).unwrap();
        bob.say("room", &format!("b{i}")).unwrap();
    }
    let at_alice = messages(&mut alice, 30);
    let at_bob = messages(&mut bob, 30);
    assert_eq!(at_alice, at_bob, "both nodes deliver the room's one order");
    let seqs: Vec<u64> = at_alice.iter().map(|m| m.2).collect();
    assert_eq!(
        seqs,
        (1..=30).collect::<Vec<_>>(),
        "seq counts the room's lines"
    );
    let said = |p: &str| (1..=15).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
    assert_eq!(texts(&at_alice, "alice"), said("a"));
    assert_eq!(texts(&at_alice, "bob"), said("b"));
    // Once: nothing more comes.
    quiet(&mut bob, Duration::from_millis(300), |f| {
        !matches!(f, ServerFrame::Message { .. })
    });
    // /who and /rooms see both nodes.
    alice
        .send(&kcp_chat::protocol::ClientFrame::ListUsers {
            room: "room".into(),
        })
        .unwrap();
    let who = expect_frame(&mut alice, |f| matches!(f, ServerFrame::Users { .. }));
    assert!(
        matches!(&who, ServerFrame::Users { nicks, .. } if *nicks == ["alice", "bob"]),
        "{who:?}"
    );
    bob.send(&kcp_chat::protocol::ClientFrame::ListRooms)
        .unwrap();
    let rooms = expect_frame(&mut bob, |f| matches!(f, ServerFrame::Rooms { .. }));
    let ServerFrame::Rooms { rooms } = rooms else {
        unreachable!()
    };
    assert!(
        rooms.iter().any(|r| r.name == "room" && r.users == 2),
        "{rooms:?}"
    );
    // A clean quit on one node is seen on the other.
    assert!(bob.quit("bye", WAIT).unwrap());
    let left = expect_frame(&mut alice, |f| matches!(f, ServerFrame::Left { .. }));
    assert!(
        matches!(&left, ServerFrame::Left { nick, reason: LeaveReason::Quit, .. } if nick == "bob"),
        "{left:?}"
    );
}

#[test]
fn a_nick_is_unique_across_nodes() {
    let (_redis, n1, n2) = two_nodes(RedisOptions::default());
    let mut alice = chat(&n1, "alice");
    expect_frame(&mut alice, |f| matches!(f, ServerFrame::Welcome { .. }));
    let mut clash = chat(&n2, "ALICE");
    expect_error(&mut clash, ErrorCode::NickTaken);
    // The refused session may try another nick.
    clash.hello("carol").unwrap();
    expect_frame(
        &mut clash,
        |f| matches!(f, ServerFrame::Welcome { nick, .. } if nick == "carol"),
    );
    // A rename onto a nick held on the other node is refused too.
    clash
        .send(&kcp_chat::protocol::ClientFrame::Nick {
            nick: "Alice".into(),
        })
        .unwrap();
    expect_error(&mut clash, ErrorCode::NickTaken);
    // Once alice quits, her nick is free everywhere.
    assert!(alice.quit("bye", WAIT).unwrap());
    welcomed_eventually(&n2, "alice");
}

#[test]
fn history_said_on_one_node_is_replayed_on_the_other() {
    let (_redis, n1, n2) = two_nodes(RedisOptions::default());
    let mut alice = chat(&n1, "alice");
    join(&mut alice, "news");
    for i in 1..=3 {
        alice.say("news", &format!("item {i}")).unwrap();
    }
    messages(&mut alice, 3);
    let mut bob = chat(&n2, "bob");
    join(&mut bob, "news");
    let mut replay = Vec::new();
    while replay.len() < 3 {
        match expect_frame(&mut bob, |f| matches!(f, ServerFrame::Message { .. })) {
            ServerFrame::Message {
                text,
                history: true,
                seq,
                ..
            } => replay.push((text, seq)),
            other => panic!("a live message before the history: {other:?}"),
        }
    }
    assert_eq!(
        replay,
        vec![
            ("item 1".into(), 1),
            ("item 2".into(), 2),
            ("item 3".into(), 3)
        ]
    );
    // And the room goes on from there for both.
    bob.say("news", "thanks").unwrap();
    assert_eq!(messages(&mut alice, 1)[0].1, "thanks");
    assert_eq!(messages(&mut bob, 1)[0].2, 4);
}

#[test]
fn a_killed_node_is_announced_lost_within_the_ttl() {
    let redis = redis(RedisOptions::default());
    let ttl = Duration::from_secs(1);
    let n1 = node(&redis, "n1", |c| c.presence_ttl = ttl);
    // Node 2 is a real process, killed with SIGKILL: no cleanup at all.
    let url = redis.url();
    let mut n2 = Server::start(&["--cluster", &url, "--node-id", "n2", "--presence-ttl", "1s"]);
    let mut bob = n2.chat("bob");
    join(&mut bob, "lobby");
    let mut alice = chat(&n1, "alice");
    join(&mut alice, "lobby");
    bob.say("lobby", "still here").unwrap();
    assert_eq!(messages(&mut alice, 1)[0].1, "still here");
    n2.proc.kill();
    let killed = Instant::now();
    let left = expect_frame(&mut alice, |f| matches!(f, ServerFrame::Left { .. }));
    let after = killed.elapsed();
    assert!(
        matches!(&left, ServerFrame::Left { nick, reason: LeaveReason::NodeLost, .. } if nick == "bob"),
        "{left:?}"
    );
    // By design at most the TTL (liveness ¾ of it, looked at every ¼); the margin is
    // for a loaded 2-core CI machine's scheduling, not for the design (0.99 s here).
    assert!(
        after <= ttl + Duration::from_secs(1),
        "noticed after {after:?}"
    );
    eprintln!("node 2 announced lost {after:?} after SIGKILL (presence TTL {ttl:?})");
    alice
        .send(&kcp_chat::protocol::ClientFrame::ListUsers {
            room: "lobby".into(),
        })
        .unwrap();
    let who = expect_frame(&mut alice, |f| matches!(f, ServerFrame::Users { .. }));
    assert!(
        matches!(&who, ServerFrame::Users { nicks, .. } if *nicks == ["alice"]),
        "{who:?}"
    );
    // The nick frees itself within the TTL too.
    welcomed_eventually(&n1, "bob");
}

#[test]
fn a_killed_node_started_again_clears_what_its_last_run_left() {
    let redis = redis(RedisOptions::default());
    let n1 = node(&redis, "n1", |_| {});
    let url = redis.url();
    let args = ["--cluster", url.as_str(), "--node-id", "n2"];
    let mut n2 = Server::start(&args);
    let mut bob = n2.chat("bob");
    join(&mut bob, "lobby");
    let mut alice = chat(&n1, "alice");
    join(&mut alice, "lobby");
    // Killed, and back under the same id long before its 15 s presence expires.
    n2.proc.kill();
    let _n2 = Server::start(&args);
    let left = expect_frame(&mut alice, |f| matches!(f, ServerFrame::Left { .. }));
    assert!(
        matches!(&left, ServerFrame::Left { nick, reason: LeaveReason::NodeLost, .. } if nick == "bob"),
        "{left:?}"
    );
}

#[test]
fn a_redis_restart_loses_no_acknowledged_line() {
    // Redis writes every command to its append-only file before answering, so what
    // it acknowledged survives the restart; what it never got waits in the nodes.
    let (mut redis, n1, n2) = two_nodes(RedisOptions::durable());
    let mut alice = chat(&n1, "alice");
    join(&mut alice, "room");
    let mut bob = chat(&n2, "bob");
    join(&mut bob, "room");
    let say = |alice: &mut ChatClient, range: std::ops::RangeInclusive<u32>| {
        for i in range {
            alice.say("room", &format!("line {i}")).unwrap();
        }
        // Acknowledged by the node: from here, losing one would be on us.
        assert!(alice.wait_acknowledged(WAIT).unwrap());
    };
    say(&mut alice, 1..=10);
    redis.kill();
    say(&mut alice, 11..=20);
    std::thread::sleep(Duration::from_millis(500));
    redis.restart().expect("restarting redis-server");
    say(&mut alice, 21..=30);
    let want: Vec<String> = (1..=30).map(|i| format!("line {i}")).collect();
    let at_bob = messages(&mut bob, 30);
    assert_eq!(texts(&at_bob, "alice"), want);
    let at_alice = messages(&mut alice, 30);
    assert_eq!(at_alice, at_bob);
    quiet(&mut bob, Duration::from_millis(300), |f| {
        !matches!(f, ServerFrame::Message { .. })
    });
    let stats = n1.stats().cluster.expect("a cluster node");
    assert!(stats.connected && stats.reconnects >= 1, "{stats:?}");
    assert_eq!(stats.buffered, 0, "{stats:?}");
}

#[test]
fn lines_beyond_the_outage_buffer_are_refused_visibly() {
    let mut redis = redis(RedisOptions::default());
    let n1 = node(&redis, "n1", |c| c.buffer = 5);
    let mut alice = chat(&n1, "alice");
    join(&mut alice, "room");
    redis.kill();
    for i in 1..=8 {
        alice.say("room", &format!("line {i}")).unwrap();
    }
    for _ in 0..3 {
        let text = expect_error(&mut alice, ErrorCode::Unavailable);
        assert!(text.contains("not sent"), "{text}");
    }
    // A hello cannot claim its nick while Redis is away: refused, not left waiting.
    let mut late = chat(&n1, "late");
    expect_error(&mut late, ErrorCode::Unavailable);
    redis.restart().expect("restarting redis-server");
    let back: Vec<String> = messages(&mut alice, 5).into_iter().map(|m| m.1).collect();
    assert_eq!(
        back,
        (1..=5).map(|i| format!("line {i}")).collect::<Vec<_>>()
    );
    let stats = n1.stats().cluster.expect("a cluster node");
    assert!(stats.refused >= 4, "{stats:?}");
}

#[test]
fn the_demo_runs_two_nodes_and_counts_cross_node_deliveries() {
    let output = assert_cmd::Command::new(env!("CARGO_BIN_EXE_kcp-chat"))
        .args([
            "demo",
            "--nodes",
            "2",
            "--bots",
            "4",
            "--duration",
            "2s",
            "--quiet",
        ])
        .timeout(Duration::from_secs(40))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("2 cluster nodes on"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains("cross-node deliveries arrived"))
        .unwrap_or_else(|| panic!("no cluster line: {stdout}"));
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        numbers.len() >= 3 && numbers[1] > 0 && numbers[1] == numbers[2],
        "{line}"
    );
    assert!(stdout.contains("PASS"), "{stdout}");
}

#[test]
fn the_bench_spreads_clients_over_the_nodes_it_is_given() {
    let redis = redis(RedisOptions::default());
    let n1 = node(&redis, "n1", |_| {});
    let url = redis.url();
    // A real second process, so the bench finds its CPU by its UDP port.
    // Raw KCP, as the in-process node n1 speaks.
    let n2 = Server::start(&[
        "--raw",
        "--cluster",
        &url,
        "--node-id",
        "n2",
        "--max-sessions-per-ip",
        "100000",
        "--ip-rate",
        "100000",
        "--ip-burst",
        "100000",
    ]);
    let output = assert_cmd::Command::new(env!("CARGO_BIN_EXE_kcp-chat"))
        .args([
            "bench",
            "--raw",
            "--clients",
            "12",
            "--rate",
            "4",
            "--duration",
            "1s",
        ])
        .args(["--room-size", "6", "--json", "--no-progress"])
        .args(["--server", &n1.local_addr().to_string()])
        .args(["--server", &n2.addr.to_string()])
        .timeout(Duration::from_secs(40))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(report["nodes"], 2);
    assert_eq!(report["clients_ok"], 12);
    assert_eq!(report["lost"], 0);
    assert_eq!(report["duplicates"], 0);
    assert_eq!(report["delivered"], report["expected"]);
    // Half of every room is on the other node.
    let cross = report["cross_node_latency_ms"]["count"].as_u64().unwrap();
    let all = report["latency_ms"]["count"].as_u64().unwrap();
    assert!(
        cross * 2 == all,
        "{cross} of {all} deliveries crossed nodes"
    );
}
