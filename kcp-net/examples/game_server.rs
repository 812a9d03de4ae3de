//! A fixed-timestep game server on a [`ServerDriver`]: one thread, one UDP socket, one
//! loop that the game owns. Copy it as the skeleton of your own.
//!
//! Each client sends `move DX DY` text messages (integers, each at most
//! [`MAX_STEP`] in size); the server keeps one position per session and, every
//! frame, broadcasts a snapshot of every position to every session. A malformed
//! `move` is ignored and counted, never a panic.
//!
//! ```sh
//! cargo run -p kcp-net --example game_server                        # 127.0.0.1:4000, 60 Hz, forever
//! cargo run -p kcp-net --example game_server -- --bots 3 --frames 600  # 10 s with three bots
//! ```
//!
//! `--bots N` starts N [`KcpClient`]s on threads of this process that wander about
//! (and send one malformed line each), so the loop has something to serve. Any raw-KCP
//! client with the fast preset can play: connect a `KcpClient` to the address, send
//! `move 1 0`, and read the snapshots with `recv`. (`echo_client` speaks KCP too, but
//! expects its messages echoed, so against this server it only shows that sessions
//! open and its lines are counted as malformed moves.) Ctrl-C, or `--frames N`,
//! stops the loop; the server then shuts down gracefully and prints one summary line.
//!
//! # Messages from the server
//!
//! - welcome, once per session: `b'W'`, then the player's id (`u32`, little endian);
//! - snapshot, every frame: `b'S'`, the frame number (`u32` LE), the player count
//!   (`u16` LE), then per player its id (`u32` LE), `x` and `y` (`i16` LE): 8 bytes
//!   a player.
//!
//! # The loop
//!
//! Frames come every `1/hz` s on a fixed grid of `Instant`s (a late frame does not
//! shift the ones after it; a loop more than [`MAX_CATCH_UP`] frames behind skips
//! ahead instead of spiralling). Between frames the thread sleeps until the next
//! frame or the driver's [`next_deadline`](ServerDriver::next_deadline) (a
//! retransmission, an idle timeout), whichever is first: no busy loop. Input is read
//! when the loop wakes, so a move waits at most one frame; to react sooner, register
//! the driver (it is a `mio::event::Source`) with a `mio::Poll` and wait on that
//! instead of sleeping.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::{BufMut, Bytes, BytesMut};
use clap::Parser;
use kcp_net::{
    ClientConfig, KcpClient, Preset, ServerConfig, ServerDriver, ServerEvent, SessionKey,
};

/// The largest `DX` or `DY` a `move` may carry.
const MAX_STEP: i32 = 10;
/// The world is the square `-WORLD..=WORLD` on both axes (fits an `i16`).
const WORLD: i32 = 1_000;
/// Frames a late loop runs back to back before it skips ahead.
const MAX_CATCH_UP: u32 = 5;
/// How long a shutdown waits for clients to acknowledge the last snapshots.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

#[derive(Parser, Debug)]
#[command(about = "A fixed-timestep KCP game server on ServerDriver (positions, snapshots)")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4000")]
    bind: SocketAddr,
    /// Frames (simulation steps and snapshots) per second.
    #[arg(long, default_value_t = 60)]
    hz: u32,
    /// Stop after this many frames (default: run until Ctrl-C).
    #[arg(long)]
    frames: Option<u64>,
    /// Close sessions silent for this many milliseconds.
    #[arg(long, default_value_t = 10_000)]
    idle_timeout_ms: u64,
    /// Start this many bot clients in this process.
    #[arg(long, default_value_t = 0)]
    bots: u32,
}

/// One player: an id for the snapshots and a position.
#[derive(Debug)]
struct Player {
    id: u32,
    x: i32,
    y: i32,
}

/// The whole game: the players by session, and the counters the summary prints.
#[derive(Debug, Default)]
struct Game {
    players: BTreeMap<SessionKey, Player>,
    next_id: u32,
    moves: u64,
    bad_moves: u64,
    opened: u64,
    closed: u64,
}

impl Game {
    /// Handles one driver event; replies are queued on `server` at `now`.
    fn event(&mut self, server: &mut ServerDriver, now: Instant, event: ServerEvent) {
        match event {
            ServerEvent::Opened { key, peer, conv } => {
                self.next_id += 1;
                let id = self.next_id;
                self.players.insert(key, Player { id, x: 0, y: 0 });
                self.opened += 1;
                println!("join  player {id} from {peer} (conv {conv:#010x})");
                let mut welcome = BytesMut::with_capacity(5);
                welcome.put_u8(b'W');
                welcome.put_u32_le(id);
                if let Err(e) = server.send(now, key, welcome.freeze()) {
                    eprintln!("welcome to player {id} dropped: {e}");
                }
            }
            ServerEvent::Message { key, message } => {
                let Some(player) = self.players.get_mut(&key) else {
                    return;
                };
                match parse_move(&message) {
                    Some((dx, dy)) => {
                        player.x = (player.x + dx).clamp(-WORLD, WORLD);
                        player.y = (player.y + dy).clamp(-WORLD, WORLD);
                        self.moves += 1;
                    }
                    None => self.bad_moves += 1,
                }
            }
            ServerEvent::Closed { key, reason, .. } => {
                if let Some(player) = self.players.remove(&key) {
                    self.closed += 1;
                    println!("leave player {} ({reason:?})", player.id);
                }
            }
            // Events a later kcp-net may add.
            _ => {}
        }
    }

    /// The snapshot of frame `frame` (layout in the module docs).
    fn snapshot(&self, frame: u64) -> Bytes {
        let count = self.players.len().min(usize::from(u16::MAX));
        let mut out = BytesMut::with_capacity(7 + 8 * count);
        out.put_u8(b'S');
        out.put_u32_le(frame as u32);
        out.put_u16_le(count as u16);
        for player in self.players.values().take(count) {
            out.put_u32_le(player.id);
            // Positions are clamped to the world, which fits an i16.
            out.put_i16_le(player.x as i16);
            out.put_i16_le(player.y as i16);
        }
        out.freeze()
    }
}

/// `move DX DY` with `|DX|, |DY| <= MAX_STEP`, or `None` for anything else.
fn parse_move(message: &[u8]) -> Option<(i32, i32)> {
    let text = std::str::from_utf8(message).ok()?;
    let mut words = text.split_ascii_whitespace();
    if words.next()? != "move" {
        return None;
    }
    let dx: i32 = words.next()?.parse().ok()?;
    let dy: i32 = words.next()?.parse().ok()?;
    let step = -MAX_STEP..=MAX_STEP;
    (words.next().is_none() && step.contains(&dx) && step.contains(&dy)).then_some((dx, dy))
}

/// Hands every pending event to the game.
fn drain(game: &mut Game, server: &mut ServerDriver, now: Instant) {
    while let Some(event) = server.next_event() {
        game.event(server, now, event);
    }
}

fn run(args: &Args, stop: &AtomicBool) -> anyhow::Result<()> {
    if !(1..=1_000).contains(&args.hz) {
        bail!("--hz must be 1..=1000");
    }
    let mut config = ServerConfig::new(Preset::Fast);
    config.idle_timeout = Duration::from_millis(args.idle_timeout_ms);
    let mut server = ServerDriver::bind(args.bind, config).context("starting the server")?;
    let addr = server.local_addr()?;
    println!("listening {addr} at {} Hz", args.hz);
    let bots_stop = Arc::new(AtomicBool::new(false));
    let bots: Vec<_> = (0..args.bots)
        .map(|i| {
            let stop = Arc::clone(&bots_stop);
            thread::spawn(move || bot(addr, i, &stop))
        })
        .collect();

    let mut game = Game::default();
    let frame = Duration::from_secs(1) / args.hz;
    let mut next_frame = Instant::now();
    let mut frames = 0u64;
    while !stop.load(Ordering::Relaxed) && args.frames.is_none_or(|n| frames < n) {
        let now = Instant::now();
        server.poll_io(now)?;
        drain(&mut game, &mut server, now);
        // Fixed timestep: run every frame whose time has come, a few at most.
        let mut ran = 0;
        while now >= next_frame && ran < MAX_CATCH_UP && args.frames.is_none_or(|n| frames < n) {
            // (A real game steps its simulation by `frame` here.)
            server.broadcast(now, game.snapshot(frames));
            frames += 1;
            ran += 1;
            next_frame += frame;
        }
        if now >= next_frame {
            next_frame = now + frame; // too far behind: skip ahead
        }
        server.tick(now);
        drain(&mut game, &mut server, now); // the sessions that tick closed
        let wake = server
            .next_deadline(now)
            .map_or(next_frame, |at| at.min(next_frame));
        thread::sleep(wake.saturating_duration_since(Instant::now()));
    }

    // Graceful shutdown: the last snapshots get acknowledged (or the grace ends).
    // Keep the frame cadence: the ACKs that end each session arrive on the socket,
    // which a sleep until the driver's deadline would not read in time.
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    server.shutdown(deadline);
    while !server.is_finished() {
        let now = Instant::now();
        server.poll(now)?;
        drain(&mut game, &mut server, now);
        let wake = server
            .next_deadline(now)
            .map_or(now + frame, |at| at.min(now + frame));
        thread::sleep(wake.saturating_duration_since(Instant::now()));
    }
    bots_stop.store(true, Ordering::Relaxed);
    let snapshots: u64 = bots.into_iter().filter_map(|b| b.join().ok()).sum();

    let s = server.stats();
    print!(
        "frames {frames} sessions opened {} closed {} moves {} bad {} datagrams in {} out {}",
        game.opened, game.closed, game.moves, game.bad_moves, s.datagrams_in, s.datagrams_out
    );
    if args.bots > 0 {
        print!(" bot snapshots {snapshots}");
    }
    println!();
    Ok(())
}

/// A bot: wanders about until `stop`, sends one malformed line, and returns how
/// many snapshots it received.
fn bot(server: SocketAddr, index: u32, stop: &AtomicBool) -> u64 {
    let mut config = ClientConfig::new(Preset::Fast);
    config.keepalive = Some(Duration::from_secs(1));
    let Ok(mut client) = KcpClient::connect(server, config) else {
        return 0;
    };
    let mut rng = 0x9e37_79b9_u32.wrapping_mul(index + 1); // a tiny LCG
    let mut snapshots = 0;
    let _ = client.send(b"move left please");
    while !stop.load(Ordering::Relaxed) {
        rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let dx = (rng >> 16) as i32 % (2 * MAX_STEP + 1) - MAX_STEP;
        let dy = (rng >> 8 & 0xffff) as i32 % (2 * MAX_STEP + 1) - MAX_STEP;
        if client.send(format!("move {dx} {dy}").as_bytes()).is_err() {
            break;
        }
        let until = Instant::now() + Duration::from_millis(50);
        while let Ok(Some(message)) = client.recv(until.saturating_duration_since(Instant::now())) {
            if message.first() == Some(&b'S') {
                snapshots += 1;
            }
        }
    }
    snapshots
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = Arc::clone(&stop);
    ctrlc::set_handler(move || on_signal.store(true, Ordering::Relaxed))
        .context("installing the Ctrl-C handler")?;
    run(&args, &stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_parse_and_everything_else_is_refused() {
        assert_eq!(parse_move(b"move 3 -4"), Some((3, -4)));
        assert_eq!(parse_move(b"  move  10   -10 "), Some((10, -10)));
        for bad in [
            &b""[..],
            b"move",
            b"move 1",
            b"move 1 2 3",
            b"move 11 0",
            b"move x y",
            b"jump 1 1",
            b"move 99999999999 0",
            b"\xff\xfe",
        ] {
            assert_eq!(parse_move(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
