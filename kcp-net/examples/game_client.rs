//! A fixed-timestep game client on [`KcpClient`] events: one thread, one loop that
//! the game owns, no blocking call in it. The counterpart of `game_server.rs`; copy it
//! as the skeleton of your own client.
//!
//! ```sh
//! cargo run -p kcp-net --example game_server                         # in one terminal
//! cargo run -p kcp-net --example game_client                         # 127.0.0.1:4000, 60 Hz, until Ctrl-C
//! cargo run -p kcp-net --example game_client -- --ticks 600          # 10 s, then a summary
//! ```
//!
//! Every frame the loop takes the client's events ([`KcpClient::drain_events`]):
//! `Connected` (raw KCP has no handshake, so it comes with the server's first
//! acknowledgement, of our first move), `Message` (the server's welcome and its
//! snapshots, layout in `game_server.rs`), `Closed` (the server went silent for
//! [`SERVER_TIMEOUT`], or the link died). Ten times a second it sends a `move DX DY`
//! that walks the player around a square; once a second it prints the smoothed RTT,
//! the snapshots received and where the server says we are. Between frames it sleeps
//! until the next frame or the client's [`next_deadline`](KcpClient::next_deadline),
//! whichever is first.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use kcp_net::{ClientConfig, ClientEvent, KcpClient, Preset};

/// A server silent for this long is gone (the client's keepalive asks it every second).
const SERVER_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames a late loop runs back to back before it skips ahead.
const MAX_CATCH_UP: u32 = 5;

#[derive(Parser, Debug, Clone)]
#[command(about = "A fixed-timestep KCP game client on KcpClient events (talks to game_server)")]
struct Args {
    /// The game server's address.
    #[arg(long, default_value = "127.0.0.1:4000")]
    server: SocketAddr,
    /// Frames per second.
    #[arg(long, default_value_t = 60)]
    hz: u32,
    /// Stop after this many frames (default: until Ctrl-C or the server is gone).
    #[arg(long)]
    ticks: Option<u64>,
}

/// What one run saw.
#[derive(Debug, Default)]
struct Summary {
    ticks: u64,
    connected: bool,
    player: Option<u32>,
    snapshots: u64,
    /// Where the latest snapshot put us.
    position: Option<(i16, i16)>,
    moves: u64,
    closed: Option<String>,
    srtt_ms: u32,
}

impl Summary {
    /// Takes one message from the server (see `game_server.rs` for the layout);
    /// anything malformed is ignored.
    fn message(&mut self, message: &[u8]) {
        match message {
            [b'W', id @ ..] => {
                if let Ok(id) = <[u8; 4]>::try_from(id) {
                    self.player = Some(u32::from_le_bytes(id));
                }
            }
            [b'S', ..] if message.len() >= 7 => {
                self.snapshots += 1;
                let count = u16::from_le_bytes([message[5], message[6]]) as usize;
                let players = message[7..].chunks_exact(8).take(count);
                for p in players {
                    let id = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
                    if Some(id) == self.player {
                        let x = i16::from_le_bytes([p[4], p[5]]);
                        let y = i16::from_le_bytes([p[6], p[7]]);
                        self.position = Some((x, y));
                    }
                }
            }
            _ => {}
        }
    }
}

/// The move of frame `n` (sent ten times a second): five steps each way round a square.
fn walk(n: u64) -> (i32, i32) {
    match (n / 5) % 4 {
        0 => (10, 0),
        1 => (0, 10),
        2 => (-10, 0),
        _ => (0, -10),
    }
}

fn run(args: &Args, stop: &AtomicBool) -> anyhow::Result<Summary> {
    if !(1..=1_000).contains(&args.hz) {
        bail!("--hz must be 1..=1000");
    }
    let config = ClientConfig::builder()
        .preset(Preset::Fast)
        .keepalive(Some(Duration::from_secs(1)))
        .server_timeout(SERVER_TIMEOUT)
        .flush_on_send(true)
        .build()?;
    let mut client = KcpClient::connect(args.server, config).context("connecting")?;
    println!("conversation {:#010x} with {}", client.conv(), args.server);

    let mut summary = Summary::default();
    let frame = Duration::from_secs(1) / args.hz;
    let moves_every = u64::from(args.hz.div_ceil(10));
    let mut next_frame = Instant::now();
    while !stop.load(Ordering::Relaxed) && args.ticks.is_none_or(|n| summary.ticks < n) {
        for event in client.drain_events() {
            match event {
                ClientEvent::Connected => {
                    summary.connected = true;
                    println!("connected");
                }
                ClientEvent::Message(message) => summary.message(&message),
                ClientEvent::Closed(e) => summary.closed = Some(e.to_string()),
                ClientEvent::Error(e) => eprintln!("socket: {e}"),
                // Datagrams (secure mode only) and events a later kcp-net may add.
                _ => {}
            }
        }
        if let Some(reason) = &summary.closed {
            println!("closed: {reason}");
            break;
        }
        // Fixed timestep: run every frame whose time has come, a few at most.
        let now = Instant::now();
        let mut ran = 0;
        while now >= next_frame
            && ran < MAX_CATCH_UP
            && args.ticks.is_none_or(|n| summary.ticks < n)
        {
            if summary.ticks % moves_every == 0 {
                let (dx, dy) = walk(summary.moves);
                client.send(format!("move {dx} {dy}").as_bytes())?;
                summary.moves += 1;
            }
            if summary.ticks % u64::from(args.hz) == 0 && summary.ticks > 0 {
                let srtt = client.stats().engine.srtt;
                println!(
                    "t={:>3}s rtt {srtt:>3} ms snapshots {:>5} player {:?} at {:?}",
                    summary.ticks / u64::from(args.hz),
                    summary.snapshots,
                    summary.player,
                    summary.position
                );
            }
            summary.ticks += 1;
            ran += 1;
            next_frame += frame;
        }
        if now >= next_frame {
            next_frame = now + frame; // too far behind: skip ahead
        }
        let wake = client
            .next_deadline()
            .map_or(next_frame, |at| at.min(next_frame));
        thread::sleep(wake.saturating_duration_since(Instant::now()));
    }
    summary.srtt_ms = client.stats().engine.srtt;
    if summary.closed.is_none() {
        // Let the server acknowledge the last moves before we go.
        let _ = client.close(Duration::from_millis(500));
    }
    println!(
        "ticks {} connected {} player {:?} moves {} snapshots {} last position {:?} srtt {} ms",
        summary.ticks,
        summary.connected,
        summary.player,
        summary.moves,
        summary.snapshots,
        summary.position,
        summary.srtt_ms
    );
    Ok(summary)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = Arc::clone(&stop);
    ctrlc::set_handler(move || on_signal.store(true, Ordering::Relaxed))
        .context("installing the Ctrl-C handler")?;
    let summary = run(&args, &stop)?;
    if summary.closed.is_some() {
        std::process::exit(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, Bytes, BytesMut};
    use kcp_net::{EventHandler, KcpServer, ServerConfig, SessionCtx};

    /// The game server's protocol in miniature: a welcome, then one snapshot (of this
    /// player alone, at the sum of its moves) per move received.
    #[derive(Clone, Default)]
    struct MiniGame {
        x: i16,
        y: i16,
        welcomed: bool,
    }

    impl EventHandler for MiniGame {
        fn on_message(&mut self, session: &mut SessionCtx<'_>, message: Bytes) {
            if !self.welcomed {
                self.welcomed = true;
                let _ = session.send_bytes(Bytes::from_static(b"W\x07\0\0\0"));
            }
            let text = String::from_utf8_lossy(&message);
            let mut words = text.split_whitespace().skip(1).map(str::parse::<i16>);
            if let (Some(Ok(dx)), Some(Ok(dy))) = (words.next(), words.next()) {
                (self.x, self.y) = (self.x + dx, self.y + dy);
            }
            let mut snapshot = BytesMut::new();
            snapshot.put_u8(b'S');
            snapshot.put_u32_le(0);
            snapshot.put_u16_le(1);
            snapshot.put_u32_le(7);
            snapshot.put_i16_le(self.x);
            snapshot.put_i16_le(self.y);
            let _ = session.send_bytes(snapshot.freeze());
        }
    }

    #[test]
    fn a_bounded_run_connects_is_welcomed_and_follows_its_moves() {
        let server = KcpServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            ServerConfig::new(Preset::Fast),
            MiniGame::default(),
        )
        .unwrap();
        let args = Args {
            server: server.local_addr(),
            hz: 100,
            ticks: Some(150),
        };
        let summary = run(&args, &AtomicBool::new(false)).unwrap();
        server.shutdown(Duration::ZERO).unwrap();
        assert_eq!(summary.ticks, 150);
        assert!(summary.connected, "{summary:?}");
        assert_eq!(summary.player, Some(7));
        assert_eq!(summary.moves, 15);
        // Each move answered with a snapshot; the last ones may still be on the way.
        assert!(summary.snapshots >= 10, "{summary:?}");
        let (x, y) = summary.position.expect("a snapshot with us in it");
        assert!(
            x.abs() <= 50 && y.abs() <= 50 && (x, y) != (0, 0),
            "({x}, {y})"
        );
        assert_eq!(summary.closed, None);
    }

    #[test]
    fn the_walk_goes_round_a_square() {
        let (x, y) = (0..20)
            .map(walk)
            .fold((0, 0), |(x, y), (dx, dy)| (x + dx, y + dy));
        assert_eq!((x, y), (0, 0));
    }
}
