//! The listener's admission limits on loopback sockets: sessions per IP, new sessions
//! per IP per second, the unconfirmed pool (eviction of its oldest session, and
//! refusal while all are young) and the memory budget for data held out of order,
//! with peers on 127.0.0.1 and on other loopback addresses (Linux routes all of
//! 127.0.0.0/8 to the loopback device). Every wait is bounded.
//!
//! The openers are plain UDP sockets that send one first data segment per
//! conversation and never acknowledge anything: their sessions stay unconfirmed, and
//! each refusal is counted exactly once (nothing is retransmitted).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kcp_core::Sn;
use kcp_core::segment::{Command, Header};
use kcp_tokio::{
    ClientConfig, CloseReason, KcpListener, KcpStream, LoopStats, Preset, ServerConfig,
};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

/// A socket on `127.0.0.<host>` that opens sessions and never answers.
struct Opener(UdpSocket);

impl Opener {
    fn on(host: u8) -> Self {
        Self(UdpSocket::bind((Ipv4Addr::new(127, 0, 0, host), 0)).unwrap())
    }

    /// Sends the first data segment (empty) of conversation `conv` to `server`.
    fn open(&self, conv: u32, server: SocketAddr) {
        let first = Header::new(conv, Command::Push, Sn::new(0)).to_bytes();
        self.0.send_to(&first, server).unwrap();
    }

    fn addr(&self) -> SocketAddr {
        self.0.local_addr().unwrap()
    }
}

fn config() -> ServerConfig {
    let mut config = ServerConfig::new(Preset::Fast);
    config.max_sessions_per_ip = 1_000;
    config.new_sessions_per_ip_per_sec = 1_000;
    config
}

async fn listener(config: ServerConfig) -> KcpListener {
    KcpListener::bind("127.0.0.1:0", config).await.unwrap()
}

/// Polls the listener's counters until `done`; panics with them after [`WAIT`].
async fn wait_for(listener: &KcpListener, what: &str, done: impl Fn(&LoopStats) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let stats = listener.stats();
        if done(&stats) {
            return;
        }
        assert!(Instant::now() < deadline, "waiting for {what}: {stats:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The next accepted stream; panics unless it is from `peer`.
async fn accept_from(listener: &KcpListener, peer: SocketAddr) -> KcpStream {
    let (stream, from) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    assert_eq!(from, peer);
    stream
}

// ==================================================================== per IP

#[tokio::test]
async fn each_ip_holds_at_most_max_sessions_per_ip() {
    let mut config = config();
    config.max_sessions_per_ip = 2;
    let listener = listener(config).await;
    let server = listener.local_addr();
    let local = Opener::on(1);

    for conv in 1..=3 {
        local.open(conv, server);
    }
    wait_for(&listener, "two opened, one refused", |s| {
        s.sessions_opened == 2 && s.dropped_ip_limit == 1
    })
    .await;
    let first = accept_from(&listener, local.addr()).await;
    let _second = accept_from(&listener, local.addr()).await;

    // Another address has a limit of its own.
    let other = Opener::on(2);
    other.open(4, server);
    let _third = accept_from(&listener, other.addr()).await;

    // A session that ends gives its IP's place back.
    drop(first);
    wait_for(&listener, "the dropped stream's close", |s| {
        s.closed_local == 1
    })
    .await;
    local.open(5, server);
    let _fourth = accept_from(&listener, local.addr()).await;
    let stats = listener.stats();
    assert_eq!((stats.sessions_opened, stats.dropped_ip_limit), (4, 1));
}

#[tokio::test]
async fn each_ip_opens_at_most_new_sessions_per_ip_per_sec() {
    let mut config = config();
    config.new_sessions_per_ip_per_sec = 2;
    let listener = listener(config).await;
    let server = listener.local_addr();
    let local = Opener::on(1);

    let start = Instant::now();
    for conv in 1..=6 {
        local.open(conv, server);
    }
    wait_for(&listener, "all six judged", |s| {
        s.sessions_opened + s.dropped_ip_rate == 6
    })
    .await;
    // The bucket starts with 2 and refills at 2 a second: on a fast machine exactly
    // two get in; a slow one may have earned a token or two meanwhile.
    let earned = (2.0 * start.elapsed().as_secs_f64()).ceil() as u64;
    let opened = listener.stats().sessions_opened;
    assert!(
        (2..=2 + earned).contains(&opened),
        "{opened} opened, {earned} tokens earned"
    );

    // Another address has a bucket of its own, full.
    let other = Opener::on(3);
    other.open(7, server);
    other.open(8, server);
    wait_for(&listener, "two more from 127.0.0.3", |s| {
        s.sessions_opened == opened + 2
    })
    .await;
}

// ==================================================================== unconfirmed pool

/// A real client on `127.0.0.<host>` whose session the server confirms (it
/// acknowledges the server's reply), and the server's side of it.
async fn confirmed_client(listener: &KcpListener, host: u8) -> (KcpStream, KcpStream) {
    let mut config = ClientConfig::new(Preset::Fast);
    config.flush_on_send = true;
    config.bind = Some((Ipv4Addr::new(127, 0, 0, host), 0).into());
    let mut client = KcpStream::connect(listener.local_addr(), config)
        .await
        .unwrap();
    client.send(Bytes::from_static(b"hi")).await.unwrap();
    let mut server = accept_from(listener, client.local_addr()).await;
    assert_eq!(timeout(WAIT, server.recv()).await.unwrap().unwrap(), "hi");
    server.send(Bytes::from_static(b"hello")).await.unwrap();
    assert_eq!(
        timeout(WAIT, client.recv()).await.unwrap().unwrap(),
        "hello"
    );
    let before = listener.stats().sessions_confirmed;
    wait_for(listener, "the client's confirmation", |s| {
        s.sessions_confirmed > before
    })
    .await;
    (client, server)
}

#[tokio::test]
async fn a_full_unconfirmed_pool_evicts_its_oldest_session() {
    let mut config = config();
    config.max_unconfirmed_sessions = 2;
    config.unconfirmed.min_age = Duration::ZERO;
    let listener = listener(config).await;
    let server = listener.local_addr();
    // A confirmed session is not in the pool: it is never evicted.
    let (mut client, mut client_session) = confirmed_client(&listener, 4).await;

    let opener = Opener::on(1);
    opener.open(11, server);
    let mut oldest = accept_from(&listener, opener.addr()).await;
    opener.open(12, server);
    let mut next = accept_from(&listener, opener.addr()).await;

    opener.open(13, server);
    let _newest = accept_from(&listener, opener.addr()).await;
    assert_eq!(timeout(WAIT, oldest.recv()).await.unwrap(), None, "EOF");
    assert_eq!(oldest.close_reason(), Some(CloseReason::Evicted));
    assert_eq!(next.close_reason(), None);

    // Another address's newcomer evicts the next oldest: the pool is per listener.
    let other = Opener::on(5);
    other.open(14, server);
    let _other = accept_from(&listener, other.addr()).await;
    assert_eq!(timeout(WAIT, next.recv()).await.unwrap(), None, "EOF");
    assert_eq!(next.close_reason(), Some(CloseReason::Evicted));

    let stats = listener.stats();
    assert_eq!((stats.evicted_unconfirmed, stats.sessions_opened), (2, 5));
    client
        .send(Bytes::from_static(b"still here"))
        .await
        .unwrap();
    let echo = timeout(WAIT, client_session.recv()).await.unwrap().unwrap();
    assert_eq!(echo, "still here");
}

#[tokio::test]
async fn a_pool_of_young_unconfirmed_sessions_refuses_newcomers() {
    let mut config = config();
    config.max_unconfirmed_sessions = 1;
    // Far longer than the test: the one pooled session is always too young to evict.
    config.unconfirmed.min_age = Duration::from_secs(3_600);
    let listener = listener(config).await;
    let server = listener.local_addr();
    let opener = Opener::on(1);
    opener.open(21, server);
    let pooled = accept_from(&listener, opener.addr()).await;

    opener.open(22, server);
    Opener::on(6).open(23, server);
    wait_for(&listener, "two refusals", |s| {
        s.dropped_unconfirmed_full == 2
    })
    .await;
    assert_eq!(listener.stats().sessions_opened, 1);
    assert_eq!(pooled.close_reason(), None);
}

// ==================================================================== memory budget

#[tokio::test]
async fn out_of_order_data_past_the_memory_budget_is_left_out_and_in_order_data_flows() {
    let mut config = config();
    // Room for 20 held datagrams (each counted as a whole 1,500-byte datagram).
    config.max_buffered_bytes = 20 * 1500;
    let listener = listener(config).await;
    let server = listener.local_addr();
    let (mut client, mut served) = confirmed_client(&listener, 1).await;

    // A session whose sn 1 never comes: everything after it is held, up to the budget.
    let attacker = Opener::on(2);
    let mut datagrams = vec![Header::new(77, Command::Push, Sn::new(0)).encode(b"open")];
    datagrams.extend(
        (2..=100).map(|sn| Header::new(77, Command::Push, Sn::new(sn)).encode(&[0xa5; 1000])),
    );
    for d in &datagrams {
        attacker.0.send_to(d, server).unwrap();
    }
    wait_for(&listener, "the budget's drops", |s| {
        s.dropped_memory_budget >= 99 - 21
    })
    .await;
    let _sprayed = accept_from(&listener, attacker.addr()).await;

    // In-order data still flows.
    client
        .send(Bytes::from_static(b"still served"))
        .await
        .unwrap();
    assert_eq!(
        timeout(WAIT, served.recv()).await.unwrap().unwrap(),
        "still served"
    );
}
