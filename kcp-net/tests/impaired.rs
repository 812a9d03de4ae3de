//! Real sockets with simulated loss: the server and every client push what they send
//! through a seeded `kcp_core::sim::Link` that drops 20%, so loss hits both ways.
//! Every message must still arrive, whole and in order. Run on both I/O backends.

mod common;

use std::time::Duration;

use common::*;
use kcp_net::impair::{ImpairConfig, LinkConfig};
use kcp_net::{IoBackend, KcpClient, KcpServer};

fn lossy(seed: u64) -> Option<ImpairConfig> {
    Some(ImpairConfig::new(LinkConfig::lossy(0.2, 5, 5), seed))
}

fn twenty_percent_loss_both_ways(io: IoBackend) {
    let mut config = server_config();
    config.io = io;
    config.impair = lossy(1);
    let server = KcpServer::bind(localhost(), config, Echo).unwrap();
    let mut client = client_config();
    client.io = io;
    client.impair = lossy(2);
    // 8 clients × 30 messages of 3 kB (three segments each), all sent at once.
    run_echo_clients(
        server.local_addr(),
        8,
        2,
        30,
        3_000,
        &client,
        Duration::from_secs(30),
    );
    let stats = server.shutdown(Duration::from_secs(1)).unwrap().total;
    assert_eq!(stats.messages_in, 240);
    assert_eq!(stats.messages_out, 240);
    assert!(
        stats.dropped_impaired > 0,
        "the link dropped nothing: {stats:?}"
    );
    assert!(
        stats.retransmits > 0,
        "nothing was retransmitted: {stats:?}"
    );
    let lost =
        stats.dropped_impaired as f64 / (stats.datagrams_out + stats.dropped_impaired) as f64;
    assert!((0.1..0.3).contains(&lost), "loss rate {lost}");
}

#[test]
fn twenty_percent_loss_both_ways_batched_io() {
    twenty_percent_loss_both_ways(IoBackend::Batched);
}

#[test]
fn twenty_percent_loss_both_ways_portable_io() {
    twenty_percent_loss_both_ways(IoBackend::Portable);
}

#[test]
fn a_client_counts_what_its_impaired_link_dropped() {
    let server = KcpServer::bind(localhost(), server_config(), Echo).unwrap();
    // Without impairment nothing is dropped on purpose.
    let mut clean = KcpClient::connect(server.local_addr(), client_config()).unwrap();
    echo_once(&mut clean, b"hello");
    assert_eq!(clean.impaired_drops(), 0);
    // A link that loses everything drops every datagram the client sends.
    let mut config = client_config();
    config.impair = lossy_all();
    let mut cut_off = KcpClient::connect(server.local_addr(), config).unwrap();
    for i in 0..3 {
        cut_off.send(&payload(0, i, 100)).unwrap();
    }
    cut_off.tick().unwrap();
    let sent = cut_off.stats().counters.datagrams_out;
    assert!(sent >= 3, "one datagram per send at least: {sent}");
    assert_eq!(cut_off.impaired_drops(), sent);
    assert_eq!(cut_off.send_drops(), 0, "the socket itself dropped nothing");
    let stats = server.shutdown(Duration::from_secs(1)).unwrap().total;
    assert_eq!(
        stats.sessions_opened, 1,
        "only the clean client got through"
    );
}

fn lossy_all() -> Option<ImpairConfig> {
    Some(ImpairConfig::new(LinkConfig::lossy(1.0, 0, 0), 3))
}
