//! Liveness on virtual time: keepalives through loss, a vanished peer, a dead link,
//! the idle timeout, and an idle conversation that asks for no wake-ups. Two
//! `Conversation`s over `kcp_core::sim` links; no sleeps, no sockets.

mod common;

use std::time::Duration;

use common::virtual_link::{End, VirtualPair};
use kcp_core::sim::{LinkConfig, LossModel};
use kcp_net::{CloseReason, ConversationConfig, Preset};

const SECOND: u64 = 1000;

fn client_config() -> ConversationConfig {
    let mut config = ConversationConfig::new(Preset::Fast);
    config.keepalive = Some(Duration::from_secs(1));
    config.peer_timeout = Some(Duration::from_secs(5));
    config
}

fn server_config() -> ConversationConfig {
    let mut config = ConversationConfig::new(Preset::Fast);
    config.idle_timeout = Some(Duration::from_secs(3));
    config
}

fn lost() -> LinkConfig {
    LinkConfig {
        loss: LossModel::Random { rate: 1.0 },
        ..LinkConfig::default()
    }
}

#[test]
fn keepalives_keep_a_quiet_conversation_open_through_loss() {
    let link = LinkConfig::lossy(0.2, 20, 10);
    let mut pair = VirtualPair::new(client_config(), server_config(), link.clone(), link, 3);
    pair.send(End::Client, b"hello");
    pair.run_until(60 * SECOND);
    assert_eq!(pair.client.closed, None, "the client gave up");
    assert_eq!(pair.server.closed, None, "the server timed the session out");
    let client = pair.client.conversation.counters();
    assert!(
        client.keepalives_out >= 40,
        "keepalives sent: {}",
        client.keepalives_out
    );
    assert!(pair.server.conversation.counters().keepalives_in > 0);
    assert!(
        pair.server.received.iter().all(|(_, m)| &m[..] == b"hello"),
        "keepalives are swallowed"
    );
}

#[test]
fn a_vanished_peer_is_gone_exactly_at_the_peer_timeout() {
    let mut pair = VirtualPair::new(client_config(), server_config(), lost(), lost(), 1);
    pair.send(End::Client, b"anyone?");
    pair.step();
    let sent_at = pair.ms - 1; // queued at the ms before the step
    pair.run_until(sent_at + 5 * SECOND + 1);
    assert_eq!(
        pair.client.closed,
        Some((sent_at + 5 * SECOND, CloseReason::PeerGone))
    );
}

#[test]
fn without_a_peer_timeout_the_engine_declares_the_link_dead() {
    let mut config = client_config();
    config.peer_timeout = None;
    config.engine.dead_link = 5;
    let mut pair = VirtualPair::new(config, server_config(), lost(), lost(), 1);
    pair.send(End::Client, b"into the void");
    pair.run_until(120 * SECOND);
    let (_, reason) = pair.client.closed.expect("the link was declared dead");
    assert_eq!(reason, CloseReason::DeadLink);
    assert!(pair.client.conversation.engine().is_dead());
}

#[test]
fn a_silent_client_is_closed_at_the_idle_timeout_and_not_before() {
    let mut client = client_config();
    client.keepalive = None;
    let link = LinkConfig::lossy(0.0, 10, 0);
    let mut pair = VirtualPair::new(client, server_config(), link.clone(), link, 1);
    pair.send(End::Client, b"hi");
    pair.run_until(SECOND);
    let heard = pair.server.conversation.last_heard();
    let heard_ms = (heard - pair.t0).as_millis() as u64;
    assert_eq!(
        pair.server.conversation.next_deadline(pair.now()),
        Some(heard + Duration::from_secs(3))
    );
    pair.run_until(heard_ms + 3 * SECOND - 1);
    assert_eq!(pair.server.closed, None, "closed early");
    pair.step();
    assert_eq!(
        pair.server.closed,
        Some((heard_ms + 3 * SECOND, CloseReason::IdleTimeout))
    );
}

#[test]
fn an_idle_conversation_without_timeouts_asks_for_no_wake_up() {
    let plain = ConversationConfig::new(Preset::Fast);
    let link = LinkConfig::lossy(0.0, 10, 0);
    let mut pair = VirtualPair::new(plain.clone(), plain, link.clone(), link, 1);
    pair.send(End::Client, b"hi");
    pair.run_until(SECOND);
    assert_eq!(pair.server.received.len(), 1);
    assert_eq!(pair.client.conversation.next_deadline(pair.now()), None);
    assert_eq!(pair.server.conversation.next_deadline(pair.now()), None);
    let drives = (pair.client.drives, pair.server.drives);
    pair.run_until(600 * SECOND);
    assert_eq!(
        (pair.client.drives, pair.server.drives),
        drives,
        "ten idle minutes cost no drive"
    );
}
