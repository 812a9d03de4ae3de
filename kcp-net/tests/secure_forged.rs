//! The attacks of issue 15 against the secure wire mode, on loopback with forged
//! source addresses (see `common/forge.rs`: a raw socket, so root or `CAP_NET_RAW`;
//! only 127.0.0.0/8): datagrams forged with a victim's address and receiver index,
//! a blind sweep of random datagrams, and a flood of spoofed initiations. The
//! raw-mode versions of these attacks are in `forged.rs`.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use common::forge::*;
use common::*;
use kcp_net::secure::{
    ClientHandshake, ClientSecurity, CookiePolicy, ServerIdentity, ServerSecurity,
};
use kcp_net::{KcpClient, KcpServer, LoopStats, Preset, ServerConfig};

/// A secure echo server that reports its events, with `policy` for cookies; the
/// shipped limits otherwise (flush on send, as the other socket tests).
fn secure_server(policy: CookiePolicy) -> (KcpServer, ServerIdentity, Receiver<Event>) {
    let identity = ServerIdentity::generate().unwrap();
    let mut security = ServerSecurity::new(identity.clone());
    security.cookies = policy;
    let mut config = ServerConfig::new(Preset::Fast);
    config.flush_on_send = true;
    config.secure = Some(security);
    let (server, events) = reporting_server(config);
    (server, identity, events)
}

/// A secure client of `identity`'s server from 127.0.0.1, so that forgeries (from
/// other 127.x addresses) are told apart from it.
fn victim(server: &KcpServer, identity: &ServerIdentity) -> KcpClient {
    let mut config = client_config();
    config.bind = Some("127.0.0.1:0".parse().unwrap());
    config.secure = Some(ClientSecurity::new(identity.public()));
    KcpClient::connect(server.local_addr(), config).unwrap()
}

/// The server's counters once they have stopped moving for 100 ms (they are
/// published per loop turn), with `client` kept alive meanwhile and `also` run at
/// each step.
#[track_caller]
fn settled(server: &KcpServer, client: &mut KcpClient, mut also: impl FnMut()) -> LoopStats {
    let deadline = Instant::now() + WAIT;
    let mut total = server.handle().stats().total;
    let mut stable_since = Instant::now();
    while stable_since.elapsed() < Duration::from_millis(100) {
        assert!(Instant::now() < deadline, "the server never settled");
        also();
        client.tick().unwrap();
        thread::sleep(Duration::from_millis(5));
        let now = server.handle().stats().total;
        if now.datagrams_in != total.datagrams_in || now.datagrams_out != total.datagrams_out {
            stable_since = Instant::now();
        }
        total = now;
    }
    total
}

/// Every way a datagram can be dropped or refused without a session: a datagram
/// that made no state is counted in exactly one of them.
fn counted_drops(s: &LoopStats) -> u64 {
    s.dropped_malformed
        + s.dropped_truncated
        + s.dropped_unknown_index
        + s.dropped_tampered
        + s.dropped_replayed
        + s.dropped_sealed_other
        + s.rejected_version
        + s.rejected_wrong_key
        + s.rejected_handshake
        + s.cookies_sent
}

// ------------------------------------------------------------------- 1. a forged line

/// Offsets in a transport datagram (docs/secure-protocol.md): kind, key epoch,
/// receiver index (4), counter (8), then the sealed body and its tag.
const RECEIVER: usize = 2;
const COUNTER: usize = 6;
const TRANSPORT_HEADER: usize = 14;

#[test]
fn a_line_forged_with_the_victims_address_and_index_is_dropped_and_her_next_line_arrives() {
    let _serial = serial();
    let (server, identity, events) = secure_server(CookiePolicy::UnderLoad);
    let server_addr = v4(server.local_addr());
    let mut alice = victim(&server, &identity);
    let alice_addr = v4(alice.local_addr().unwrap());
    echo_once(&mut alice, b"<alice> hi all");
    let (key, peer, _) = expect_opened(&events);
    assert_eq!(v4(peer), alice_addr);

    // An on-path attacker records one of alice's lines as it goes by: her address,
    // the server's index for her session, a counter, the sealed line.
    let mut sniffer = Sniffer::new();
    alice.send(b"<alice> one more line").unwrap();
    let sealed = sniffer
        .next_between(alice_addr, server_addr, Instant::now() + WAIT)
        .expect("alice's line seen on the wire");
    drop(sniffer);
    assert_eq!(sealed[0], 5, "a transport datagram");
    assert!(
        !sealed.windows(8).any(|w| w == b"one more"),
        "the line is sealed"
    );
    assert_eq!(
        &alice.recv(WAIT).unwrap().expect("the echo")[..],
        b"<alice> one more line"
    );
    let before = settled(&server, &mut alice, || {});

    let mut forger = Forger::new();
    let mut rng = Rng(0x5eed_0015);
    let mut forged = Vec::new();
    // The recorded datagram again (a replay), from her address and from another.
    forged.push((alice_addr, sealed.clone()));
    forged.push((
        SocketAddrV4::new(Ipv4Addr::new(127, 2, 0, 1), 40_000),
        sealed.clone(),
    ));
    // Her index with a line of the attacker's: the recorded datagram with its sealed
    // body changed, with a later counter, and random bytes of the same length.
    let mut body = sealed.clone();
    let last = body.len() - 1;
    body[TRANSPORT_HEADER + 1] ^= 0x20;
    body[last] ^= 1;
    forged.push((alice_addr, body));
    let mut later = sealed.clone();
    let counter = u64::from_le_bytes(later[COUNTER..COUNTER + 8].try_into().unwrap());
    later[COUNTER..COUNTER + 8].copy_from_slice(&(counter + 100).to_le_bytes());
    forged.push((alice_addr, later));
    let mut random: Vec<u8> = (0..sealed.len()).map(|_| rng.u32() as u8).collect();
    random[..RECEIVER + 4].copy_from_slice(&sealed[..RECEIVER + 4]);
    forged.push((alice_addr, random));
    // A raw KCP line, as the raw-mode attack sent it.
    forged.push((
        alice_addr,
        b"\x2a\x00\x00\x00\x51\x00\x80\x00<mallory as alice>".to_vec(),
    ));
    for (from, datagram) in &forged {
        assert!(forger.send(*from, server_addr, datagram), "forged");
    }
    let after = settled(&server, &mut alice, || {});
    let forged_count = forged.len() as u64;
    assert_eq!(
        after.datagrams_in - before.datagrams_in,
        forged_count,
        "every forgery reached the server (and nothing else): {after:?}"
    );
    // The two copies and the changed body (its counter was seen already: the window
    // refuses it before any decryption) are replays; the later counter and the
    // random bytes do not verify.
    assert_eq!(
        after.dropped_replayed - before.dropped_replayed,
        3,
        "{after:?}"
    );
    assert_eq!(
        after.dropped_tampered - before.dropped_tampered,
        2,
        "{after:?}"
    );
    assert_eq!(
        after.dropped_malformed - before.dropped_malformed,
        1,
        "{after:?}"
    );
    assert_eq!(counted_drops(&after) - counted_drops(&before), forged_count);
    assert_eq!(
        after.messages_in, before.messages_in,
        "no forged line arrived"
    );
    assert_eq!(
        after.migrations, 0,
        "a replay from elsewhere moved the session"
    );

    // Her next line arrives, on the same session, and the server only ever had hers.
    echo_once(&mut alice, b"<alice> still me");
    let lines: Vec<_> = events
        .try_iter()
        .filter_map(|e| match e {
            Event::Message(k, m) => Some((k, m)),
            _ => None,
        })
        .collect();
    let texts: Vec<&[u8]> = lines.iter().map(|(_, m)| &m[..]).collect();
    assert_eq!(
        texts,
        [
            &b"<alice> hi all"[..],
            b"<alice> one more line",
            b"<alice> still me"
        ]
    );
    assert!(lines.iter().all(|(k, _)| *k == key));
    server.shutdown(Duration::ZERO).unwrap();
}

// ------------------------------------------------------------------- 2. a blind sweep

const SWEEP: usize = 5_000;

#[test]
fn a_blind_sweep_of_random_datagrams_makes_no_state_and_is_only_counted() {
    let _serial = serial();
    let (server, identity, _events) = secure_server(CookiePolicy::UnderLoad);
    let server_addr = v4(server.local_addr());
    let mut client = victim(&server, &identity);
    echo_once(&mut client, b"before the sweep");
    let before = settled(&server, &mut client, || {});

    // Random datagrams from random 127.2.x.y sources: every first byte (each kind of
    // secure datagram among them), random receiver indices, every length up to a
    // full initiation.
    let mut forger = Forger::new();
    let mut rng = Rng(0x5eed_0016);
    let mut sent = 0u64;
    for i in 0..SWEEP {
        let len = match i % 4 {
            0 => 1200,
            1 => (rng.u32() % 64) as usize,
            _ => (rng.u32() % 1400) as usize,
        };
        let mut datagram: Vec<u8> = (0..len).map(|_| rng.u32() as u8).collect();
        if let Some(kind) = datagram.first_mut() {
            *kind = if i % 2 == 0 {
                1 + (i / 2 % 5) as u8
            } else {
                *kind
            };
        }
        let from = SocketAddrV4::new(
            Ipv4Addr::new(127, 2, 1 + (i / 250 % 250) as u8, 1 + (i % 250) as u8),
            1024 + (rng.u32() % 60_000) as u16,
        );
        if forger.send(from, server_addr, &datagram) {
            sent += 1;
        } else {
            thread::yield_now();
        }
    }
    let after = settled(&server, &mut client, || {});
    let read = after.datagrams_in - before.datagrams_in;
    eprintln!("blind sweep: {sent} sent, {read} read by the server; {after:?}");
    assert!(
        read > SWEEP as u64 / 2,
        "most of the sweep reached the server"
    );
    assert_eq!(after.sessions_opened, 1, "{after:?}");
    assert_eq!(after.handshakes, 1, "{after:?}");
    assert_eq!(server.handle().session_count(), 1);
    assert_eq!(
        counted_drops(&after) - counted_drops(&before),
        read,
        "every datagram of the sweep counted under a cause: {after:?}"
    );
    let replies = after.bytes_out - before.bytes_out;
    let swept = after.bytes_in - before.bytes_in;
    assert!(
        replies <= swept,
        "{replies} bytes answered for {swept} bytes of sweep"
    );
    echo_once(&mut client, b"after the sweep");
    server.shutdown(Duration::ZERO).unwrap();
}

// ------------------------------------------------------------------- 3. an initiation flood

const FLOOD: usize = 20_000;
/// Distinct initiations in the flood (each costs the forger a Diffie-Hellman), sent
/// round robin from ever new addresses.
const DISTINCT: usize = 64;
/// Every `LISTENED_EVERY`th initiation comes from one of the listened addresses.
const LISTENED_EVERY: usize = 50;
const LISTENERS: u8 = 8;
/// The flood pauses 1 ms after every `PACE_EVERY` initiations (at most ~75 MB/s).
const PACE_EVERY: usize = 64;

/// Valid initiations (their mac1 verifies, as a real client's would) to the server
/// whose key is `identity`'s.
fn initiations(identity: &ServerIdentity) -> Vec<Vec<u8>> {
    let now = Instant::now();
    (0..DISTINCT as u32)
        .map(|conv| {
            let security = ClientSecurity::new(identity.public());
            let config = client_config().conversation();
            let mut handshake = ClientHandshake::new(security, conv + 1, config, now).unwrap();
            handshake
                .poll_transmit(now)
                .expect("an initiation")
                .to_vec()
        })
        .collect()
}

/// Floods a server with cookies under `policy` with spoofed initiations while a real
/// client connects, checks what holds under every policy (no amplification, every
/// initiation accounted for, the real client in within 1 s and served) and returns
/// the server's settled counters.
fn initiation_flood(policy: CookiePolicy) -> LoopStats {
    let _serial = serial();
    let (server, identity, _events) = secure_server(policy);
    let server_addr = v4(server.local_addr());
    let initiations = initiations(&identity);
    let (sockets, listened): (Vec<UdpSocket>, Vec<SocketAddrV4>) = (1..=LISTENERS)
        .map(|i| listener(Ipv4Addr::new(127, 3, 0, i)))
        .unzip();
    let (progress_tx, progress) = mpsc::channel();
    let flooder = {
        let listened = listened.clone();
        thread::spawn(move || {
            let flood = Flood {
                server: server_addr,
                count: FLOOD,
                network: 3,
                listened: &listened,
                listened_every: LISTENED_EVERY,
                pace_every: Some(PACE_EVERY),
                seed: 0x5eed_0017,
            };
            flood.run(&progress_tx, |i, _| initiations[i % DISTINCT].clone())
        })
    };
    progress
        .recv_timeout(WAIT)
        .expect("the flood got a quarter through");

    // A real client connects in the middle of the flood, within 1 s (a generous
    // bound for a handshake on loopback, even with a cookie round trip).
    let connect_start = Instant::now();
    let mut client = victim(&server, &identity);
    let connect_time = connect_start.elapsed();
    echo_once(&mut client, b"a real client");
    let flooded = flooder.join().expect("the flood thread");
    eprintln!(
        "initiation flood ({policy:?}): {} initiations sent ({} refused by the kernel); \
         the real client connected in {connect_time:?}",
        flooded.datagrams, flooded.refused
    );
    assert!(
        connect_time < Duration::from_secs(1),
        "the real client took {connect_time:?} to connect under the flood"
    );

    let mut received = vec![0; sockets.len()];
    let total = settled(&server, &mut client, || {
        for (socket, received) in sockets.iter().zip(&mut received) {
            *received += drain_until(socket, Instant::now());
        }
    });
    let client_stats = client.stats().counters;
    let spoofed_in = total.bytes_in - client_stats.bytes_out;
    let spoofed_out = total.bytes_out - client_stats.bytes_in;
    eprintln!(
        "initiation flood ({policy:?}): server read {} datagrams, sent {} cookies, made {} \
         handshakes, opened {} sessions; toward spoofed sources {spoofed_out} bytes for \
         {spoofed_in} received; listened sources received/sent {:?}/{:?}",
        total.datagrams_in,
        total.cookies_sent,
        total.handshakes,
        total.sessions_opened,
        received,
        flooded.from_listened
    );
    assert!(
        total.datagrams_in as usize >= FLOOD / 2,
        "most of the flood reached the server (else the test shows little): {total:?}"
    );
    // Toward the addresses that never proved themselves: at most 3x what they sent,
    // in total and for each listened one (whose replies we saw arrive).
    assert!(
        spoofed_out <= 3 * spoofed_in,
        "{spoofed_out} bytes toward spoofed sources for {spoofed_in}"
    );
    assert!(
        received.iter().sum::<usize>() > 0,
        "the replies reached the listeners"
    );
    for (r, s) in received.iter().zip(&flooded.from_listened) {
        assert!(r <= &(3 * s), "a listened source got {r} bytes for {s}");
    }
    // Every initiation read (all but the real client's sealed datagrams) was
    // answered by one cookie reply, one handshake or the stored response, or
    // refused: none is left unaccounted for. The client counts what it sent, and
    // under the flood the kernel may drop a few of those at the server's full
    // socket, so what was read of them is known only within that many.
    let answered = total.cookies_sent
        + total.handshakes
        + total.initiations_repeated
        + total.rejected_full
        + total.dropped_unconfirmed_full
        + total.dropped_rate_limited
        + total.dropped_ip_rate
        + total.dropped_ip_limit;
    let initiations_read = total.datagrams_in - client_stats.datagrams_out;
    assert!(
        (initiations_read..=initiations_read + client_stats.datagrams_out).contains(&answered),
        "{answered} initiations answered or refused, {initiations_read} read \
         (+ up to {} of the client's lost): {total:?}",
        client_stats.datagrams_out
    );
    // The real client's session is there, confirmed, and still served.
    assert!(total.sessions_confirmed >= 1, "{total:?}");
    echo_once(&mut client, b"still served");
    server.shutdown(Duration::ZERO).unwrap();
    total
}

#[test]
fn a_flood_of_spoofed_initiations_with_cookies_always_opens_no_session() {
    let total = initiation_flood(CookiePolicy::Always);
    // Every spoofed initiation was answered by a stateless cookie reply: the one
    // session, the one handshake, are the real client's.
    assert_eq!(total.sessions_opened, 1, "{total:?}");
    assert_eq!(total.handshakes, 1, "{total:?}");
}

#[test]
fn a_flood_of_spoofed_initiations_under_load_opens_no_more_than_the_threshold() {
    let total = initiation_flood(CookiePolicy::UnderLoad);
    // Until `load_threshold` handshakes wait unconfirmed the server answers at once
    // (a session each, in the bounded pool); from then on every spoofed initiation
    // gets a stateless cookie reply.
    let threshold = ServerSecurity::new(ServerIdentity::generate().unwrap()).load_threshold;
    let spoofed_sessions = total.sessions_opened - 1;
    assert!(
        spoofed_sessions <= threshold as u64,
        "{spoofed_sessions} sessions for spoofed sources: {total:?}"
    );
    assert!(
        total.cookies_sent > 0,
        "the flood put the server under load: {total:?}"
    );
}
