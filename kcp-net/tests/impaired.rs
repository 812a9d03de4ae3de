//! Real sockets with simulated loss: the server and every client push what they send
//! through a seeded `kcp_core::sim::Link` that drops 20%, so loss hits both ways.
//! Every message must still arrive, whole and in order. Run on both I/O backends.

mod common;

use std::time::Duration;

use common::*;
use kcp_net::impair::{ImpairConfig, LinkConfig};
use kcp_net::{IoBackend, KcpServer};

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
