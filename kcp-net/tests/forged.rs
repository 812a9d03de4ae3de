//! Datagrams forged from other hosts' addresses, as an attacker who cannot see the
//! server's replies (or, in the first test, one who can) would send them: control
//! segments from a real client's exact address and conv, and floods of first segments
//! from thousands of spoofed sources.
//!
//! The forgeries leave through a raw IPv4 socket that writes its own IP and UDP
//! headers (`IP_HDRINCL`), so they need root (or `CAP_NET_RAW`); without it these
//! tests fail and say so. Every address used, forged or real, is in 127.0.0.0/8.

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::mpsc::{self, Sender};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::forge::*;
use common::*;
use kcp_core::segment::{Command, HEADER_LEN, Header};
use kcp_core::{Sn, Timestamp};
use kcp_net::{
    CloseCtx, CloseReason, EventHandler, KcpClient, KcpServer, Preset, ServerConfig, SessionCtx,
    SessionKey,
};

// ------------------------------------------------------------------- helpers

/// The first `Push` segment from `from` to `to` that `sniffer` sees within `timeout`:
/// its `sn` and `ts`.
fn push_between(
    sniffer: &mut Sniffer,
    from: SocketAddrV4,
    to: SocketAddrV4,
    timeout: Duration,
) -> Option<(Sn, Timestamp)> {
    let deadline = Instant::now() + timeout;
    while let Some(datagram) = sniffer.next_between(from, to, deadline) {
        let mut rest = &datagram[..];
        while rest.len() >= HEADER_LEN {
            let Ok((header, payload)) = Header::parse(rest) else {
                break;
            };
            if header.cmd == Command::Push {
                return Some((header.sn, header.ts));
            }
            rest = &rest[HEADER_LEN + payload.len()..];
        }
    }
    None
}

fn first_push(conv: u32, ts: u32, payload: &[u8]) -> Vec<u8> {
    Header {
        ts: Timestamp::from_millis(ts),
        ..Header::new(conv, Command::Push, Sn::new(0))
    }
    .encode(payload)
}

// ------------------------------------------------------------------- 1. control fields

/// One echo: `message` back within `bound`, or the test fails. Returns the time taken.
#[track_caller]
fn timed_echo(client: &mut KcpClient, message: &[u8], bound: Duration) -> Duration {
    let start = Instant::now();
    client.send(message).unwrap();
    let reply = client
        .recv(bound)
        .unwrap()
        .unwrap_or_else(|| panic!("no echo within {bound:?}: the session stalled"));
    assert_eq!(&reply[..], message);
    start.elapsed()
}

/// Well above an echo's time on loopback even on a loaded 2-core machine, far below
/// the stalls forged control fields would cause without the engine's checks (a
/// forged zero window waits for the probe timer, 7 s; a forged RTT sample inflates the
/// RTO to seconds; a forged `una` drops data unacknowledged).
const ECHO_BOUND: Duration = Duration::from_secs(1);

#[test]
fn forged_control_fields_from_the_victims_address_change_nothing() {
    let _serial = serial();
    let (server, events) = reporting_server(server_config());
    let server_addr = v4(server.local_addr());
    let mut config = client_config();
    config.bind = Some("127.0.0.1:0".parse().unwrap());
    let mut client = KcpClient::connect(server.local_addr(), config).unwrap();
    let victim = v4(client.local_addr().unwrap());
    let conv = client.conv();
    let (key, peer, _) = {
        for i in 0..5 {
            timed_echo(&mut client, format!("warm-up {i}").as_bytes(), WAIT);
        }
        expect_opened(&events)
    };
    assert_eq!(v4(peer), victim, "the server sees the client's own address");
    wait_for_stats(&server, &mut client, |t| t.sessions_confirmed == 1);
    let handle = server.handle();
    let before = handle.session_stats(key).unwrap().engine;

    // An on-path attacker reads the `sn` and `ts` of a segment the server sent.
    let mut sniffer = Sniffer::new();
    client.send(b"sniffed").unwrap();
    let (sn, ts) = push_between(&mut sniffer, server_addr, victim, WAIT)
        .expect("the server's echo seen on the wire");
    assert_eq!(&client.recv(WAIT).unwrap().expect("echo")[..], b"sniffed");
    drop(sniffer);

    let mut rng = Rng(0x5eed_0001);
    let ack = |sn: Sn, una: Sn, ts: Timestamp| {
        Header {
            una,
            ts,
            ..Header::new(conv, Command::Ack, sn)
        }
        .encode(&[])
    };
    let forgeries = |rng: &mut Rng| {
        vec![
            // `una` far beyond anything the server sent.
            ack(sn, sn.add(1_000_000), ts),
            // An ACK of a number never sent.
            ack(sn.add(1_000_000), Sn::new(0), ts),
            // ACKs of a segment sent, echoing a `ts` in the future, one a second before
            // its transmission (a 1-s RTT sample if believed), and a random one.
            ack(sn, Sn::new(0), ts.add_millis(60_000)),
            ack(
                sn,
                Sn::new(0),
                Timestamp::from_millis(ts.as_millis().wrapping_sub(1_000)),
            ),
            ack(sn, Sn::new(0), Timestamp::from_millis(rng.u32())),
            // "My window is closed."
            Header {
                wnd: 0,
                ..Header::new(conv, Command::WindowTell, Sn::new(0))
            }
            .encode(&[]),
        ]
    };
    let mut forger = Forger::new();
    let mut forge_round = |rng: &mut Rng| {
        for datagram in forgeries(rng) {
            assert!(forger.send(victim, server_addr, &datagram), "forged");
        }
    };
    forge_round(&mut rng);
    // The session counts them before the real client goes on.
    let deadline = Instant::now() + WAIT;
    loop {
        let engine = handle.session_stats(key).unwrap().engine;
        if engine.refused_una >= 1 && engine.refused_ack >= 1 && engine.refused_rtt_sample >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "forgeries not seen: {engine:?}");
        client.tick().unwrap();
        thread::sleep(Duration::from_millis(2));
    }

    let mut rounds = 1;
    let mut slowest = Duration::ZERO;
    for i in 0..50 {
        if i % 10 == 5 {
            forge_round(&mut rng);
            rounds += 1;
        }
        let took = timed_echo(&mut client, format!("echo {i}").as_bytes(), ECHO_BOUND);
        slowest = slowest.max(took);
    }
    let after = handle.session_stats(key).unwrap();
    let engine = after.engine;
    eprintln!(
        "forged control fields: {rounds} rounds; slowest of 50 echoes {slowest:?}; \
         refused_una {} refused_ack {} refused_rtt_sample {} unconfirmed_zero_windows {}; \
         rto {} -> {} ms, srtt {} -> {} ms",
        engine.refused_una,
        engine.refused_ack,
        engine.refused_rtt_sample,
        engine.unconfirmed_zero_windows,
        before.rto,
        engine.rto,
        before.srtt,
        engine.srtt
    );
    assert!(engine.refused_una >= 1, "{engine:?}");
    assert!(engine.refused_ack >= 1, "{engine:?}");
    assert!(engine.refused_rtt_sample >= 1, "{engine:?}");
    assert!(
        engine.unconfirmed_zero_windows >= 1,
        "a forged zero window is probed at once: {engine:?}"
    );
    assert!(
        engine.rto <= 3 * before.rto.max(Preset::Fast.config().min_rto),
        "the RTO jumped: {} -> {} ms",
        before.rto,
        engine.rto
    );
    assert!(engine.srtt < 500, "srtt {} ms", engine.srtt);
    // Every echo is acknowledged (the last ACK may still be on its way).
    let deadline = Instant::now() + WAIT;
    while handle.session_stats(key).unwrap().engine.in_flight > 0 {
        assert!(Instant::now() < deadline, "an echo never acknowledged");
        client.tick().unwrap();
        thread::sleep(Duration::from_millis(2));
    }
    let total = server.handle().stats().total;
    assert_eq!(total.sessions_opened, 1, "{total:?}");
    assert_eq!(total.dropped_rejected, 0, "{total:?}");
    server.shutdown(Duration::ZERO).unwrap();
}

// ------------------------------------------------------------------- 2. spoofed flood

const FLOOD: usize = 20_000;
/// Every `LISTENED_EVERY`th forged first segment comes from one of the listened
/// addresses.
const LISTENED_EVERY: usize = 50;
const LISTENERS: u8 = 8;

/// Echoes, and reports what happens to the sessions of the real clients (from
/// 127.0.0.1; the forgeries come from 127.1.0.0/16).
#[derive(Clone)]
struct WatchReal {
    events: Sender<(Instant, Event)>,
}

impl WatchReal {
    fn real(peer: SocketAddr) -> bool {
        peer.ip() == Ipv4Addr::LOCALHOST
    }
}

impl EventHandler for WatchReal {
    fn on_open(&mut self, session: &mut SessionCtx<'_>) {
        if Self::real(session.peer()) {
            let event = Event::Opened(session.key(), session.peer(), session.conv());
            let _ = self.events.send((Instant::now(), event));
        }
    }

    fn on_message(&mut self, session: &mut SessionCtx<'_>, message: Bytes) {
        let _ = session.send_bytes(message);
    }

    fn on_close(&mut self, session: &CloseCtx<'_>, reason: CloseReason) {
        if Self::real(session.session().peer()) {
            let _ = self
                .events
                .send((Instant::now(), Event::Closed(session.key(), reason)));
        }
    }
}

#[test]
fn a_spoofed_flood_from_many_addresses_neither_locks_out_a_new_client_nor_amplifies() {
    let _serial = serial();
    let mut config = server_config();
    // The per-IP limits as shipped: the flood comes from ~19,600 addresses, one
    // session each (50 each from the listened ones), so they do not stop it.
    let shipped = ServerConfig::new(Preset::Fast);
    config.max_sessions_per_ip = shipped.max_sessions_per_ip;
    config.new_sessions_per_ip_per_sec = shipped.new_sessions_per_ip_per_sec;
    let pool = config.max_unconfirmed_sessions * config.threads;
    let (events_tx, events) = mpsc::channel();
    let server = KcpServer::bind(localhost(), config, WatchReal { events: events_tx }).unwrap();
    let server_addr = v4(server.local_addr());

    let (sockets, listened): (Vec<_>, Vec<_>) = (1..=LISTENERS)
        .map(|i| listener(Ipv4Addr::new(127, 1, 0, i)))
        .unzip();
    let (progress_tx, progress) = mpsc::channel();
    let started = Instant::now();
    let flooder = {
        let listened = listened.clone();
        thread::spawn(move || {
            let flood = Flood {
                server: server_addr,
                count: FLOOD,
                network: 1,
                listened: &listened,
                listened_every: LISTENED_EVERY,
                pace_every: None,
                seed: 0x5eed_0002,
            };
            flood.run(&progress_tx, |_, rng| {
                first_push(rng.u32(), rng.u32(), b"let me in, please")
            })
        })
    };
    progress
        .recv_timeout(WAIT)
        .expect("the flood got a quarter through");

    // A real new client connects in the middle of the flood.
    let mut config = client_config();
    config.bind = Some("127.0.0.1:0".parse().unwrap());
    let connect_start = Instant::now();
    let mut client = KcpClient::connect(server.local_addr(), config).unwrap();
    client.send(b"a real client").unwrap();
    let reply = client
        .recv(WAIT)
        .unwrap()
        .expect("the real client's first echo within WAIT, under the flood");
    let connect_time = connect_start.elapsed();
    assert_eq!(&reply[..], b"a real client");
    let flooded = flooder.join().expect("the flood thread");
    let flood_time = started.elapsed();
    eprintln!(
        "spoofed flood: {} forged first segments ({} refused by the kernel) from {} \
         addresses in {flood_time:?}; the real client's first echo took {connect_time:?}",
        flooded.datagrams, flooded.refused, flooded.distinct_sources
    );

    // The server has read everything once its counters stop moving (they are
    // published per loop turn); meanwhile the client runs, and the listened sources
    // collect what the server sends them.
    let mut received = vec![0; sockets.len()];
    let mut drain = |client: &mut KcpClient, until: Instant| {
        for (socket, received) in sockets.iter().zip(&mut received) {
            *received += drain_until(socket, Instant::now());
        }
        client.tick().unwrap();
        thread::sleep(Duration::from_millis(5).min(until - Instant::now().min(until)));
    };
    let deadline = Instant::now() + WAIT;
    let mut total = server.handle().stats().total;
    let mut stable_since = Instant::now();
    while stable_since.elapsed() < Duration::from_millis(100) {
        assert!(Instant::now() < deadline, "the server never settled");
        drain(&mut client, deadline);
        let now = server.handle().stats().total;
        if now.datagrams_in != total.datagrams_in || now.sessions_opened != total.sessions_opened {
            stable_since = Instant::now();
        }
        total = now;
    }
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        drain(&mut client, until);
    }
    let total = server.handle().stats().total;
    let sessions = server.handle().session_count();

    let client_stats = client.stats().counters;
    let forged_in = total.bytes_in.saturating_sub(client_stats.bytes_out);
    let forged_out = total.bytes_out.saturating_sub(client_stats.bytes_in);
    let closed = total.closed_idle
        + total.closed_dead_link
        + total.closed_local
        + total.closed_shutdown
        + total.closed_handler_panicked
        + total.closed_unconfirmed
        + total.evicted_unconfirmed;
    eprintln!(
        "spoofed flood: server read {} datagrams; opened {} sessions, {} open at the end \
         (pool {pool}), confirmed {}, evicted {}, closed unconfirmed {}, withheld {}; \
         dropped: ip_limit {} ip_rate {} rate_limited {} session_limit {} malformed {} \
         unknown_session {}",
        total.datagrams_in,
        total.sessions_opened,
        sessions,
        total.sessions_confirmed,
        total.evicted_unconfirmed,
        total.closed_unconfirmed,
        total.withheld_unconfirmed,
        total.dropped_ip_limit,
        total.dropped_ip_rate,
        total.dropped_rate_limited,
        total.dropped_session_limit,
        total.dropped_malformed,
        total.dropped_unknown_session
    );
    eprintln!(
        "spoofed flood: toward forged sources {forged_out} bytes for {forged_in} received \
         (ratio {:.2}); listened sources received/sent: {}",
        forged_out as f64 / forged_in.max(1) as f64,
        received
            .iter()
            .zip(&flooded.from_listened)
            .map(|(r, s)| format!("{r}/{s} ({:.2})", *r as f64 / (*s).max(1) as f64))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // No amplification, toward any forged source.
    assert!(
        forged_out <= 3 * forged_in,
        "{forged_out} bytes sent toward forged sources for {forged_in} received"
    );
    assert!(
        received.iter().sum::<usize>() > 0,
        "the replies within budget reached the listened sources"
    );
    for (i, (&r, &s)) in received.iter().zip(&flooded.from_listened).enumerate() {
        assert!(
            r <= 3 * s,
            "listened source {}: received {r} bytes for {s} sent",
            listened[i]
        );
    }
    // The pool stays bounded, and every session opened is accounted for.
    assert!(
        total.sessions_opened as usize >= pool,
        "the flood filled the unconfirmed pool (else this test tests nothing): {total:?}"
    );
    assert!(
        total.dropped_unconfirmed_full > 0,
        "the full pool refused the rest of the flood: {total:?}"
    );
    assert!(
        sessions <= pool + total.sessions_confirmed as usize,
        "{sessions} sessions open, beyond {pool} unconfirmed + {} confirmed",
        total.sessions_confirmed
    );
    assert_eq!(
        total.sessions_opened,
        sessions as u64 + closed,
        "every session opened is open or closed under a reason: {total:?}"
    );
    assert!(
        total.evicted_unconfirmed + total.closed_unconfirmed
            >= total.sessions_opened - (pool as u64 + total.sessions_confirmed),
        "the rest were evicted or closed unconfirmed: {total:?}"
    );
    assert_eq!(total.dropped_session_limit, 0, "{total:?}");

    // The real client, answered once under the flood, is still served: its session
    // was confirmed (by its ACK of that echo) and not evicted.
    let real: Vec<_> = events.try_iter().collect();
    let story = real
        .iter()
        .map(|(at, e)| {
            format!(
                "{:?} after connect: {e:?}",
                at.duration_since(connect_start)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    eprintln!("spoofed flood: the real client's session: {story}");
    assert_eq!(
        total.sessions_confirmed,
        1,
        "the real client's session was never confirmed ({story}); client: {:?}",
        client.stats()
    );
    assert!(
        !real.iter().any(|(_, e)| matches!(e, Event::Closed(..))),
        "the real client's session was closed under the flood: {story}"
    );
    echo_once(&mut client, b"still served");
    server.shutdown(Duration::ZERO).unwrap();
}

// ------------------------------------------------------------------- 3. big replies

const BIG_REPLY: usize = 10 * 1024;

/// Answers every message with 10 KiB, and reports each session opened.
#[derive(Clone)]
struct BigReply {
    opened: Sender<(SessionKey, SocketAddr)>,
}

impl EventHandler for BigReply {
    fn on_open(&mut self, session: &mut SessionCtx<'_>) {
        let _ = self.opened.send((session.key(), session.peer()));
    }

    fn on_message(&mut self, session: &mut SessionCtx<'_>, _message: Bytes) {
        let _ = session.send_bytes(Bytes::from(vec![0x5a; BIG_REPLY]));
    }
}

#[test]
fn a_forged_first_segment_never_gets_more_than_three_times_back() {
    let _serial = serial();
    let (opened_tx, opened) = mpsc::channel();
    let server =
        KcpServer::bind(localhost(), server_config(), BigReply { opened: opened_tx }).unwrap();
    let server_addr = v4(server.local_addr());
    let handle = server.handle();
    let (socket, listened) = listener(Ipv4Addr::new(127, 1, 0, 20));
    let nobody = SocketAddrV4::new(Ipv4Addr::new(127, 1, 200, 1), 4242);

    // A 1,024-byte first segment from each: a 10 KiB reply is ~10 times that.
    let mut forger = Forger::new();
    let opening = |conv| first_push(conv, 12_345, &[0x33; 1024 - HEADER_LEN]);
    let sent = opening(0xF0_0001).len();
    assert_eq!(sent, 1024);
    assert!(forger.send(listened, server_addr, &opening(0xF0_0001)));
    assert!(forger.send(nobody, server_addr, &opening(0xF0_0002)));
    let mut keys = Vec::new();
    for _ in 0..2 {
        let (key, peer) = opened.recv_timeout(WAIT).expect("a forged session opened");
        keys.push((key, v4(peer)));
    }
    let key_of = |addr| {
        keys.iter()
            .find(|(_, peer)| *peer == addr)
            .map(|(key, _)| *key)
            .unwrap()
    };

    // Long enough for the engine to retransmit several times (they are held too).
    let received = drain_until(&socket, Instant::now() + Duration::from_millis(1_500));
    let total = handle.stats().total;
    let listened_stats = handle.session_stats(key_of(listened)).unwrap().counters;
    let nobody_stats = handle.session_stats(key_of(nobody)).unwrap().counters;
    eprintln!(
        "big reply: the listened forged source received {received} bytes for {sent} sent \
         (ratio {:.2}); server sessions: listened out {} / in {} withheld {}, unlistened \
         out {} / in {} withheld {}; withheld_unconfirmed {}",
        received as f64 / sent as f64,
        listened_stats.bytes_out,
        listened_stats.bytes_in,
        listened_stats.withheld,
        nobody_stats.bytes_out,
        nobody_stats.bytes_in,
        nobody_stats.withheld,
        total.withheld_unconfirmed
    );
    assert!(received > 0, "the part within budget did arrive");
    assert!(
        received <= 3 * sent,
        "{received} bytes reached the forged source for {sent} sent"
    );
    assert!(total.withheld_unconfirmed > 0, "{total:?}");
    for stats in [listened_stats, nobody_stats] {
        assert_eq!(stats.bytes_in, sent as u64, "{stats:?}");
        assert!(stats.bytes_out <= 3 * stats.bytes_in, "{stats:?}");
        assert!(stats.withheld > 0, "{stats:?}");
    }
    assert_eq!(total.sessions_confirmed, 0, "{total:?}");

    // A real client proves its address with its ACKs and gets the whole reply.
    let mut config = client_config();
    config.bind = Some("127.0.0.1:0".parse().unwrap());
    let mut client = KcpClient::connect(server.local_addr(), config).unwrap();
    client.send(b"hi").unwrap();
    let reply = client.recv(WAIT).unwrap().expect("the 10 KiB reply");
    assert_eq!(reply.len(), BIG_REPLY);
    server.shutdown(Duration::ZERO).unwrap();
}
