//! The secure mode on virtual time: a client's [`ClientHandshake`] and a server's
//! [`Responder`] and [`Conversation`]s joined by `kcp_core::sim` links with loss,
//! reordering and duplication; and property tests of the receive path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kcp_core::sim::{Link, LinkConfig};
use proptest::prelude::*;

use super::*;
use crate::config::{ConversationConfig, Preset, ServerConfig};
use crate::conversation::Conversation;
use crate::lifecycle::CloseReason;
use crate::secure::wire::Kind;

const CLIENT: &str = "127.0.0.1:40000";

fn ms(t0: Instant, t: u64) -> Instant {
    t0 + Duration::from_millis(t)
}

/// A server's side of one handshake, as the driver does it.
struct Server {
    responder: Responder,
    config: ConversationConfig,
    rekey: RekeyPolicy,
    handshakes: u64,
}

impl Server {
    fn new(
        identity: &ServerIdentity,
        policy: CookiePolicy,
        rekey: RekeyPolicy,
        t0: Instant,
    ) -> Self {
        Self {
            responder: Responder::new(Arc::new(identity.clone()), None, policy, t0),
            config: ServerConfig::new(Preset::Fast).conversation(),
            rekey,
            handshakes: 0,
        }
    }

    /// Answers an initiation: the reply, and the conversation if it made one.
    fn initiation(&mut self, now: Instant, msg: &[u8]) -> (Vec<u8>, Option<Conversation>) {
        let from: SocketAddr = CLIENT.parse().unwrap();
        let mut reply = Vec::new();
        match self.responder.screen(now, from, msg, false, &mut reply) {
            Screened::Valid { .. } => {}
            _ => return (reply, None),
        }
        let Accepted {
            established,
            response,
        } = self.responder.accept(msg, 42).unwrap();
        self.handshakes += 1;
        let conv = established.conv;
        let channel = SecureChannel::new(established, self.rekey, now);
        let unproven = Some((msg.len() as u64, response.len() as u64));
        let conversation =
            Conversation::secure(conv, self.config.clone(), channel, unproven, now).unwrap();
        (response.to_vec(), Some(conversation))
    }
}

fn client_security(identity: &ServerIdentity, rekey: RekeyPolicy) -> ClientSecurity {
    let mut security = ClientSecurity::new(identity.public());
    security.rekey = rekey;
    security.handshake_timeout = Duration::from_secs(20);
    security
}

fn hostile_link(seed: u64) -> Link {
    let mut config = LinkConfig::lossy(0.2, 20, 10);
    config.reorder = 0.1;
    config.reorder_ms = 15;
    config.duplicate = 0.05;
    Link::new(config, seed)
}

/// Runs a handshake with a new server (`policy`, both ends `rekey`) over the two
/// links; returns both conversations and the time.
fn handshake(
    t0: Instant,
    policy: CookiePolicy,
    rekey: RekeyPolicy,
    up: &mut Link,
    down: &mut Link,
) -> (Conversation, Conversation, u64) {
    let identity = ServerIdentity::generate().unwrap();
    let mut server = Server::new(&identity, policy, rekey, t0);
    let security = client_security(&identity, rekey);
    let config = ConversationConfig::new(Preset::Fast);
    let mut client = ClientHandshake::new(security, 9, config, t0).unwrap();
    let mut server_side: Option<Conversation> = None;
    let mut first_response: Vec<u8> = Vec::new();
    for t in 0..20_000 {
        let now = ms(t0, t);
        client.check_timeout(now).expect("the handshake completes");
        if let Some(initiation) = client.poll_transmit(now) {
            up.push(t, initiation);
        }
        while let Some(d) = up.pop_ready(t) {
            if let Some(conversation) = server_side.as_mut() {
                // The session exists: a repeated initiation gets the same response
                // (as the driver keeps it), a sealed datagram goes in.
                if d.len() == INITIATION_LEN {
                    down.push(t, &first_response);
                } else {
                    let _ = conversation.input(now, &d);
                }
                continue;
            }
            let (reply, conversation) = server.initiation(now, &d);
            if conversation.is_some() {
                first_response.clone_from(&reply);
                server_side = conversation;
            }
            if !reply.is_empty() {
                down.push(t, &reply);
            }
        }
        while let Some(d) = down.pop_ready(t) {
            // What a process of many clients on one socket routes by.
            assert_eq!(receiver_index(&d), Some(client.sender_index()));
            if let Some(conversation) = client.handle(now, &d).unwrap() {
                assert_eq!(conversation.local_index(), Some(client.sender_index()));
                return (conversation, server_side.expect("the server answered"), t);
            }
        }
    }
    panic!("no handshake in 20 virtual seconds");
}

/// Carries datagrams both ways from `from` to `until` ms; returns the messages `b`
/// received (taken as they come, as an application does).
fn run(
    t0: Instant,
    from: u64,
    until: u64,
    a: &mut Conversation,
    b: &mut Conversation,
    up: &mut Link,
    down: &mut Link,
) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut received = Vec::new();
    for t in from..until {
        let now = ms(t0, t);
        a.drive_to_vec(now, &mut out);
        for d in out.drain(..) {
            up.push(t, &d);
        }
        b.drive_to_vec(now, &mut out);
        for d in out.drain(..) {
            down.push(t, &d);
        }
        while let Some(d) = up.pop_ready(t) {
            let _ = b.input(now, &d);
        }
        while let Some(d) = down.pop_ready(t) {
            let _ = a.input(now, &d);
        }
        while let Some(m) = b.recv() {
            received.push(m);
        }
    }
    received
}

#[test]
fn a_handshake_then_a_transfer_with_rekeys_through_loss_reorder_and_duplication() {
    let t0 = Instant::now();
    let rekey = RekeyPolicy {
        after_bytes: 20_000,
        after: Duration::from_secs(3600),
    };
    let policy = CookiePolicy::Never;
    let (mut up, mut down) = (hostile_link(1), hostile_link(2));
    // The first two initiations are lost.
    up.drop_next(2);
    let (mut client, mut session, t) = handshake(t0, policy, rekey, &mut up, &mut down);
    assert!(
        !session.is_address_proven(),
        "until the client's first sealed datagram"
    );
    let messages: Vec<Bytes> = (0..300u32)
        .map(|i| Bytes::from(i.to_le_bytes().repeat(50)))
        .collect();
    for m in &messages {
        client.send(ms(t0, t), m.clone()).unwrap();
    }
    let got = run(
        t0,
        t,
        t + 30_000,
        &mut client,
        &mut session,
        &mut up,
        &mut down,
    );
    assert_eq!(
        got.len(),
        messages.len(),
        "server {:?} {:?}\nclient {:?} {:?}",
        session.secure_counters(),
        session.stats().counters,
        client.secure_counters(),
        client.stats().counters
    );
    assert!(got == messages, "everything, once, in order");
    assert!(session.is_address_proven());
    let c = client.secure_counters().unwrap();
    let s = session.secure_counters().unwrap();
    assert!(c.rekeys_sent >= 3, "{c:?}");
    assert_eq!(s.rekeys_received, c.rekeys_sent, "{s:?}");
    assert!(s.replayed > 0, "the link duplicated datagrams: {s:?}");
    assert_eq!(s.tampered, 0);
}

#[test]
fn a_close_reaches_the_peer_through_a_lossy_link() {
    let t0 = Instant::now();
    let rekey = RekeyPolicy::default();
    let policy = CookiePolicy::Always;
    let (mut up, mut down) = (hostile_link(3), hostile_link(4));
    let (mut client, mut session, t) = handshake(t0, policy, rekey, &mut up, &mut down);
    client
        .send(ms(t0, t), Bytes::from_static(b"bye soon"))
        .unwrap();
    let got = run(
        t0,
        t,
        t + 2_000,
        &mut client,
        &mut session,
        &mut up,
        &mut down,
    );
    assert_eq!(got, [Bytes::from_static(b"bye soon")]);
    session.announce_close(CloseReason::Shutdown, "going down");
    // Sent twice; one of them gets through a 20% loss link (the seed is fixed).
    run(
        t0,
        t + 2_000,
        t + 2_100,
        &mut client,
        &mut session,
        &mut up,
        &mut down,
    );
    assert_eq!(
        client.poll_close(ms(t0, t + 2_100)),
        Some(CloseReason::PeerClosed)
    );
    let close = client.peer_close().unwrap();
    assert_eq!(
        (close.reason, close.text.as_str()),
        (Some(CloseReason::Shutdown), "going down")
    );
}

#[test]
fn a_move_to_a_new_address_is_budgeted_until_the_path_answers() {
    let t0 = Instant::now();
    let rekey = RekeyPolicy::default();
    let policy = CookiePolicy::Never;
    let (mut up, mut down) = (
        Link::new(LinkConfig::lossy(0.0, 5, 0), 5),
        Link::new(LinkConfig::lossy(0.0, 5, 0), 6),
    );
    let (mut client, mut session, t) = handshake(t0, policy, rekey, &mut up, &mut down);
    run(
        t0,
        t,
        t + 100,
        &mut client,
        &mut session,
        &mut up,
        &mut down,
    );
    assert!(session.is_address_proven());
    // The client "moves": its next datagram is offered as from a new address.
    let now = ms(t0, t + 100);
    client
        .send(now, Bytes::from_static(b"from elsewhere"))
        .unwrap();
    let mut out = Vec::new();
    client.flush_to_vec(now, &mut out);
    let moved = out.pop().unwrap();
    // A replay of an old datagram never moves it.
    assert!(session.input_from_new_address(now, &moved).unwrap());
    assert!(!session.is_address_proven());
    assert!(
        session.input_from_new_address(now, &moved).is_err(),
        "replayed"
    );
    // A big reply is held to 3x what the new address sent until it answers the challenge.
    session.send(now, Bytes::from(vec![1; 50_000])).unwrap();
    let mut reply = Vec::new();
    session.flush_to_vec(now, &mut reply);
    let sent: usize = reply.iter().map(Vec::len).sum();
    assert!(
        sent <= 3 * moved.len(),
        "{sent} bytes for {} received",
        moved.len()
    );
    // The client answers the challenge (and acknowledges); the path is proven.
    for d in &reply {
        let _ = client.input(now, d);
    }
    client.flush_to_vec(now, &mut out);
    // (The driver has moved the session: these come from its current address.)
    for d in out.drain(..) {
        let _ = session.input(now, &d);
    }
    assert!(session.is_address_proven());
}

#[test]
fn sealed_datagrams_name_their_receiver_and_initiations_name_none() {
    let t0 = Instant::now();
    let (mut up, mut down) = (
        Link::new(LinkConfig::lossy(0.0, 1, 0), 3),
        Link::new(LinkConfig::lossy(0.0, 1, 0), 4),
    );
    let (mut client, mut server, _) = handshake(
        t0,
        CookiePolicy::Always,
        RekeyPolicy::default(),
        &mut up,
        &mut down,
    );
    let mut out = Vec::new();
    server.send(t0, Bytes::from_static(b"down")).unwrap();
    server.flush_to_vec(t0, &mut out);
    client.send(t0, Bytes::from_static(b"up")).unwrap();
    let mut up_out = Vec::new();
    client.flush_to_vec(t0, &mut up_out);
    assert!(!out.is_empty() && !up_out.is_empty());
    for d in &out {
        assert_eq!(receiver_index(d), client.local_index());
    }
    for d in &up_out {
        assert_eq!(receiver_index(d), server.local_index());
    }
    let security = client_security(&ServerIdentity::generate().unwrap(), RekeyPolicy::default());
    let config = ConversationConfig::new(Preset::Fast);
    let mut fresh = ClientHandshake::new(security, 5, config, t0).unwrap();
    let initiation = fresh.poll_transmit(t0).unwrap().to_vec();
    assert_eq!(receiver_index(&initiation), None);
    assert_eq!(receiver_index(&[]), None);
    assert_eq!(
        receiver_index(&[Kind::Transport as u8, 0, 1]),
        None,
        "too short"
    );
}

/// A server conversation and a valid datagram for it.
fn established(t0: Instant) -> (Conversation, Conversation, Vec<u8>) {
    let rekey = RekeyPolicy::default();
    let policy = CookiePolicy::Never;
    let (mut up, mut down) = (
        Link::new(LinkConfig::lossy(0.0, 1, 0), 7),
        Link::new(LinkConfig::lossy(0.0, 1, 0), 8),
    );
    let (mut client, session, _) = handshake(t0, policy, rekey, &mut up, &mut down);
    client.send(t0, Bytes::from_static(b"valid")).unwrap();
    let mut out = Vec::new();
    client.flush_to_vec(t0, &mut out);
    (client, session, out.pop().unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random bytes, and a valid datagram with bytes changed, cut or extended: none is
    /// accepted, and none changes anything but the rejection counter.
    #[test]
    fn nothing_but_an_authentic_fresh_datagram_changes_state(
        noise in proptest::collection::vec(any::<u8>(), 0..1500),
        flips in proptest::collection::vec((any::<usize>(), 1u8..), 1..4),
        cut in any::<usize>(),
    ) {
        let t0 = Instant::now();
        let (_client, mut session, valid) = established(t0);
        let before = (session.stats(), session.secure_counters().unwrap().opened, session.engine().rcv_nxt(), session.is_address_proven());
        let mut forged = vec![noise.clone()];
        let mut flipped = valid.clone();
        for (at, x) in &flips {
            let i = at % flipped.len();
            flipped[i] ^= x;
        }
        forged.push(flipped);
        forged.push(valid[..cut % valid.len()].to_vec());
        let mut longer = valid.clone();
        longer.extend_from_slice(&noise);
        if !noise.is_empty() { forged.push(longer); }
        for d in &forged {
            prop_assert!(session.input(t0, d).is_err());
            prop_assert!(session.input_from_new_address(t0, d).is_err());
        }
        let after = (session.stats(), session.secure_counters().unwrap().opened, session.engine().rcv_nxt(), session.is_address_proven());
        prop_assert_eq!(before.1, after.1);
        prop_assert_eq!(before.2, after.2);
        prop_assert_eq!(before.3, after.3);
        prop_assert_eq!(before.0.counters.datagrams_in, after.0.counters.datagrams_in);
        // The valid one still opens once, then is a replay.
        prop_assert!(session.input(t0, &valid).is_ok());
        prop_assert!(session.input(t0, &valid).is_err());
    }
}
