//! Wake-ups per message: a reply leaves from the task that wrote it, not through an
//! extra turn of the driver task (issue 16, the paced-latency item).

use std::time::Duration;

use bytes::Bytes;
use kcp_tokio::{ClientConfig, KcpListener, KcpStream, Preset, ServerConfig};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);
const MESSAGES: u64 = 100;

/// A listener with one echo session, and its client, after a first round trip.
async fn echo_pair() -> (KcpListener, KcpStream, tokio::task::JoinHandle<()>) {
    let mut server_config = ServerConfig::new(Preset::Fast);
    server_config.flush_on_send = true;
    server_config.flush_on_input = true;
    let listener = KcpListener::bind("127.0.0.1:0", server_config)
        .await
        .unwrap();
    let mut config = ClientConfig::new(Preset::Fast);
    config.flush_on_send = true;
    config.flush_on_input = true;
    let mut client = KcpStream::connect(listener.local_addr(), config)
        .await
        .unwrap();
    client.send(Bytes::from_static(b"open")).await.unwrap();
    let (mut server, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    let echo = tokio::spawn(async move {
        while let Some(message) = server.recv().await {
            if server.send(message).await.is_err() {
                break;
            }
        }
    });
    assert_eq!(
        timeout(WAIT, client.recv()).await.unwrap().as_deref(),
        Some(&b"open"[..])
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    (listener, client, echo)
}

/// The listener's driver over a run.
struct Counts {
    wakeups: u64,
    datagrams_out: u64,
}

/// `MESSAGES` round trips, `gap` apart; the listener's counters over them.
async fn round_trips(listener: &KcpListener, client: &mut KcpStream, gap: Duration) -> Counts {
    let before = listener.stats();
    for i in 0..MESSAGES {
        let message = Bytes::from(i.to_le_bytes().to_vec());
        client.send(message.clone()).await.unwrap();
        let echoed = timeout(WAIT, client.recv()).await.unwrap().unwrap();
        assert_eq!(echoed, message);
        tokio::time::sleep(gap).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = listener.stats();
    let (wakeups, datagrams_in, datagrams_out) = (
        after.wakeups - before.wakeups,
        after.datagrams_in - before.datagrams_in,
        after.datagrams_out - before.datagrams_out,
    );
    println!(
        "{gap:?} apart, per message: {:.2} wake-ups, {:.2} datagrams in, {:.2} out",
        wakeups as f64 / MESSAGES as f64,
        datagrams_in as f64 / MESSAGES as f64,
        datagrams_out as f64 / MESSAGES as f64,
    );
    Counts {
        wakeups,
        datagrams_out,
    }
}

/// A ping-pong of `MESSAGES` round trips, paced so that each finishes (its ACKs
/// included) before the next. The server's driver wakes at most three times per
/// message (2.4 measured, 2.0 since the driver leaves a
/// request's session to the echo task): the request arrives, the echo task asks it to arm the
/// reply's retransmission timer (after the reply left), the client's ACK arrives
/// (unless it rides on the next request). It no longer wakes to send the
/// reply, which the echo task sends itself: that hop made it 3.74 per message, and
/// put a scheduling delay into every round trip.
#[tokio::test(flavor = "current_thread")]
async fn an_echo_reply_leaves_without_a_driver_turn() {
    let (listener, mut client, echo) = echo_pair().await;
    let stats = round_trips(&listener, &mut client, Duration::from_millis(3)).await;
    let wakeups = stats.wakeups;
    assert!(
        wakeups * 4 <= MESSAGES * 13,
        "{wakeups} driver wake-ups for {MESSAGES} messages (at most 3.25 each)"
    );
    drop(client);
    echo.abort();
}

/// Round trips further apart than the engine's flush interval (10 ms in the fast
/// preset), so that every request finds the interval lapsed: the ACK for it still
/// rides on the echo, one datagram out per message. The driver used to drive the
/// session before the echo task had taken the request, and the engine's interval
/// flush sent the ACK alone first: two datagrams per message (measured 2.00; 1.00
/// now). At most 1.25 each, for a retransmission or a keepalive on a loaded machine.
#[tokio::test(flavor = "current_thread")]
async fn the_ack_for_a_request_rides_on_its_echo_after_a_pause() {
    let (listener, mut client, echo) = echo_pair().await;
    let stats = round_trips(&listener, &mut client, Duration::from_millis(25)).await;
    let out = stats.datagrams_out;
    assert!(
        out * 4 <= MESSAGES * 5,
        "{out} datagrams out for {MESSAGES} echoes (at most 1.25 each)"
    );
    drop(client);
    echo.abort();
}
