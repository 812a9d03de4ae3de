//! Work posted to the event loops from other threads: sends, broadcasts, counters;
//! and handle calls made from inside a handler.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use kcp_net::{EventHandler, KcpClient, KcpServer, NetError, SessionCtx, SessionKey};

#[test]
fn another_thread_sends_to_a_session_in_order() {
    let (server, events) = {
        let mut config = server_config();
        config.threads = 2;
        let (tx, rx) = mpsc::channel();
        let handler = Reporter {
            events: tx,
            echo: false,
        };
        (KcpServer::bind(localhost(), config, handler).unwrap(), rx)
    };
    let mut client = KcpClient::connect(server.local_addr(), client_config()).unwrap();
    client.send(b"hello").unwrap();
    // Drive the client until the server saw it.
    let key = loop {
        assert_eq!(client.recv(Duration::from_millis(5)).unwrap(), None);
        if let Ok(Event::Opened(key, ..)) = events.try_recv() {
            break key;
        }
    };
    let handle = server.handle();
    let sender = thread::spawn(move || {
        for i in 0..200 {
            handle.send(key, payload(1, i, 300)).unwrap();
        }
    });
    for i in 0..200 {
        let message = client
            .recv(WAIT)
            .unwrap()
            .expect("message from the other thread");
        assert_eq!(message[..], payload(1, i, 300)[..], "message {i}");
    }
    sender.join().unwrap();
    let stats = server.handle().session_stats(key).unwrap();
    assert_eq!(stats.counters.messages_out, 200);
    assert_eq!(stats.counters.messages_in, 1);
    let total = server.shutdown(Duration::from_secs(1)).unwrap().total;
    assert!(
        total.commands >= 201,
        "200 sends and a stats request: {total:?}"
    );
}

#[test]
fn broadcast_reaches_every_session_on_every_loop() {
    let mut config = server_config();
    config.threads = 2;
    let (tx, events) = mpsc::channel();
    let handler = Reporter {
        events: tx,
        echo: false,
    };
    let server = KcpServer::bind(localhost(), config, handler).unwrap();
    let mut clients: Vec<KcpClient> = (0..12)
        .map(|_| KcpClient::connect(server.local_addr(), client_config()).unwrap())
        .collect();
    for c in &mut clients {
        c.send(b"join").unwrap();
    }
    let mut opened = 0;
    while opened < clients.len() {
        for c in &mut clients {
            c.tick().unwrap();
        }
        if let Ok(Event::Opened(..)) = events.recv_timeout(Duration::from_millis(5)) {
            opened += 1;
        }
    }
    let handle = server.handle();
    let reached = thread::spawn(move || handle.broadcast(&b"to everyone"[..]).unwrap())
        .join()
        .unwrap();
    assert_eq!(reached, 12);
    for c in &mut clients {
        let message = c.recv(WAIT).unwrap().expect("broadcast arrives");
        assert_eq!(&message[..], b"to everyone");
    }
    let stats = server.shutdown(Duration::from_secs(1)).unwrap();
    assert_eq!(stats.total.messages_out, 12);
}

#[test]
fn send_to_many_queues_to_the_listed_sessions_with_one_command_per_loop() {
    // One loop, so that the command count at the end is exact.
    let (tx, events) = mpsc::channel();
    let handler = Reporter {
        events: tx,
        echo: false,
    };
    let server = KcpServer::bind(localhost(), server_config(), handler).unwrap();
    let handle = server.handle();
    let mut clients: Vec<KcpClient> = (0..4)
        .map(|_| KcpClient::connect(server.local_addr(), client_config()).unwrap())
        .collect();
    for c in &mut clients {
        c.send(b"join").unwrap();
    }
    let mut keys = HashMap::new(); // conv -> key
    while keys.len() < clients.len() {
        for c in &mut clients {
            c.tick().unwrap();
        }
        if let Ok(Event::Opened(key, _, conv)) = events.recv_timeout(Duration::from_millis(5)) {
            keys.insert(conv, key);
        }
    }
    let key = |c: &KcpClient| keys[&c.conv()];
    // Client 3's session goes away first: its stale key is refused.
    assert!(clients[3].wait_acknowledged(WAIT).unwrap());
    handle.close(key(&clients[3])).unwrap();
    expect_closed(&events);

    let listed = [key(&clients[0]), key(&clients[1]), key(&clients[3])];
    let accepted = handle
        .send_to_many(listed, Bytes::from_static(b"news"))
        .unwrap();
    assert_eq!(accepted, 2);
    for c in &mut clients[..2] {
        let message = c.recv(WAIT).unwrap().expect("the message arrives");
        assert_eq!(&message[..], b"news");
    }
    assert_eq!(handle.send_to_many([], &b"nobody"[..]).unwrap(), 0);
    for c in &mut clients[..3] {
        assert!(c.wait_acknowledged(WAIT).unwrap());
    }
    let stats = server.shutdown(Duration::from_secs(1)).unwrap().total;
    assert_eq!((stats.messages_out, stats.sends_refused), (2, 1));
    assert_eq!(
        stats.commands, 3,
        "close, one send_to_many, shutdown: {stats:?}"
    );
    assert!(!clients[2].has_message(), "an unlisted session got nothing");
}

/// Sends every message to every session opened so far with one `send_to_many` from
/// inside the loop, and reports what the call returned.
#[derive(Clone)]
struct Fanout {
    keys: Arc<Mutex<Vec<SessionKey>>>,
    returned: mpsc::Sender<Result<usize, NetError>>,
}

impl EventHandler for Fanout {
    fn on_open(&mut self, session: &mut SessionCtx<'_>) {
        self.keys.lock().unwrap().push(session.key());
    }

    fn on_message(&mut self, session: &mut SessionCtx<'_>, message: Bytes) {
        let keys = self.keys.lock().unwrap().clone();
        let _ = self
            .returned
            .send(session.handle().send_to_many(keys, message));
    }
}

#[test]
fn a_handler_sends_to_many_sessions_across_loops_without_waiting() {
    let (returned_tx, returned) = mpsc::channel();
    let handler = Fanout {
        keys: Arc::default(),
        returned: returned_tx,
    };
    let mut config = server_config();
    config.threads = 2;
    let server = KcpServer::bind(localhost(), config, handler).unwrap();
    let mut a = KcpClient::connect(server.local_addr(), client_config()).unwrap();
    a.send(b"from a").unwrap();
    assert_eq!(&a.recv(WAIT).unwrap().unwrap()[..], b"from a");
    // On a loop thread the call posts and returns how many keys it posted.
    assert_eq!(returned.recv_timeout(WAIT).unwrap().unwrap(), 1);
    let mut b = KcpClient::connect(server.local_addr(), client_config()).unwrap();
    b.send(b"from b").unwrap();
    assert_eq!(&b.recv(WAIT).unwrap().unwrap()[..], b"from b");
    assert_eq!(&a.recv(WAIT).unwrap().unwrap()[..], b"from b");
    assert_eq!(returned.recv_timeout(WAIT).unwrap().unwrap(), 2);
    let stats = server.shutdown(Duration::from_secs(1)).unwrap().total;
    assert_eq!(stats.messages_out, 3);
}

/// Relays every message to the session named by its first byte (an index into the
/// list of sessions opened so far), using the handle from inside the loop.
#[derive(Clone)]
struct Relay {
    keys: Arc<Mutex<Vec<SessionKey>>>,
    answers: mpsc::Sender<Result<(), String>>,
}

impl EventHandler for Relay {
    fn on_open(&mut self, session: &mut SessionCtx<'_>) {
        self.keys.lock().unwrap().push(session.key());
    }

    fn on_message(&mut self, session: &mut SessionCtx<'_>, message: Bytes) {
        let target = self.keys.lock().unwrap()[usize::from(message[0])];
        // Posting from a loop thread never waits (so it cannot deadlock) ...
        session.handle().send(target, message.slice(1..)).unwrap();
        // ... and calls that must wait for an answer refuse to.
        let waited = session.handle().session_stats(target);
        let _ = self.answers.send(match waited {
            Err(NetError::OnLoopThread) => Ok(()),
            other => Err(format!("{other:?}")),
        });
    }
}

#[test]
fn a_handler_posts_to_other_sessions_without_waiting() {
    let (answers_tx, answers) = mpsc::channel();
    let handler = Relay {
        keys: Default::default(),
        answers: answers_tx,
    };
    let mut config = server_config();
    config.threads = 2;
    let server = KcpServer::bind(localhost(), config, handler).unwrap();
    let mut a = KcpClient::connect(server.local_addr(), client_config()).unwrap();
    a.send(&[0, b'a']).unwrap(); // session 0 relays to itself: opens it
    assert_eq!(&a.recv(WAIT).unwrap().unwrap()[..], b"a");
    let mut b = KcpClient::connect(server.local_addr(), client_config()).unwrap();
    b.send(&[0, b'b']).unwrap(); // from session 1 to session 0
    assert_eq!(&a.recv(WAIT).unwrap().unwrap()[..], b"b");
    a.send(b"\x01from a").unwrap();
    assert_eq!(&b.recv(WAIT).unwrap().unwrap()[..], b"from a");
    for _ in 0..3 {
        assert_eq!(answers.recv_timeout(WAIT).unwrap(), Ok(()));
    }
    server.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn handles_outlive_the_server_and_say_so() {
    let server = KcpServer::bind(localhost(), server_config(), Echo).unwrap();
    let handle = server.handle();
    let mut client = KcpClient::connect(server.local_addr(), client_config()).unwrap();
    echo_once(&mut client, b"hi");
    let key = handle.sessions().unwrap()[0].key;
    server.shutdown(Duration::ZERO).unwrap();
    assert!(matches!(
        handle.send(key, &b"x"[..]),
        Err(NetError::Shutdown)
    ));
    assert!(matches!(
        handle.broadcast(&b"x"[..]),
        Err(NetError::Shutdown)
    ));
    assert!(matches!(
        handle.send_to_many([key], &b"x"[..]),
        Err(NetError::Shutdown)
    ));
    assert!(matches!(handle.sessions(), Err(NetError::Shutdown)));
    assert_eq!(handle.session_count(), 0);
}
