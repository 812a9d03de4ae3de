//! Two game peers in a fixed 60 Hz loop exchange small state updates through an
//! in-memory link that drops some datagrams; prints what arrived and how late. Then
//! the server vanishes, and the player notices within a 10 s timeout
//! ([`Kcp::silent_for`]), long before the engine's own dead-link rule would.
//!
//! ```text
//! cargo run -p kcp-core --example game_loop [-- LOSS_PERCENT]
//! ```
//!
//! The engine never reads a clock: the loop passes a virtual time, advanced by one
//! frame (16 ms) per iteration, so the run is the same on every machine.

use std::collections::VecDeque;
use std::convert::Infallible;

use kcp_core::{Config, Kcp, Timestamp};

const FRAME_MS: u32 = 16;
const FRAMES: u32 = 600; // ten seconds of game time, then the server vanishes
/// The player gives up on a server that said nothing for this long.
const PEER_TIMEOUT_MS: u32 = 10_000;
const ONE_WAY_DELAY_FRAMES: u32 = 2;

/// A state update: frame number, position and the frame it was produced on.
fn encode(frame: u32, x: f32, y: f32) -> [u8; 12] {
    let mut m = [0; 12];
    m[..4].copy_from_slice(&frame.to_le_bytes());
    m[4..8].copy_from_slice(&x.to_le_bytes());
    m[8..].copy_from_slice(&y.to_le_bytes());
    m
}

/// A link that delays every datagram by a fixed number of frames and drops a share of
/// them, decided by a tiny deterministic generator.
struct Link {
    in_flight: VecDeque<(u32, Vec<u8>)>,
    loss_percent: u32,
    state: u32,
    dropped: u32,
    carried: u32,
}

impl Link {
    fn new(loss_percent: u32, seed: u32) -> Self {
        Self {
            in_flight: VecDeque::new(),
            loss_percent,
            state: seed | 1,
            dropped: 0,
            carried: 0,
        }
    }

    fn send(&mut self, frame: u32, datagram: &[u8]) {
        // xorshift32
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        if self.state % 100 < self.loss_percent {
            self.dropped += 1;
        } else {
            self.carried += 1;
            self.in_flight
                .push_back((frame + ONE_WAY_DELAY_FRAMES, datagram.to_vec()));
        }
    }

    fn arrivals(&mut self, frame: u32) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while self.in_flight.front().is_some_and(|(due, _)| *due <= frame) {
            out.extend(self.in_flight.pop_front().map(|(_, d)| d));
        }
        out
    }
}

fn main() {
    let loss_percent: u32 = match std::env::args().nth(1) {
        None => 10,
        Some(arg) => match arg.parse() {
            Ok(p) if p < 100 => p,
            _ => {
                eprintln!("usage: game_loop [LOSS_PERCENT (0..=99)]");
                std::process::exit(2);
            }
        },
    };
    let mut player = Kcp::new(0xC0FFEE, Config::fast()).expect("valid preset");
    let mut server = Kcp::new(0xC0FFEE, Config::fast()).expect("valid preset");
    let mut up = Link::new(loss_percent, 0x1234_5678);
    let mut down = Link::new(loss_percent, 0x9abc_def0);
    let (mut latencies, mut received) = (Vec::new(), 0u32);

    println!(
        "60 Hz, {loss_percent}% loss each way, one-way delay {} ms",
        ONE_WAY_DELAY_FRAMES * FRAME_MS
    );
    let mut frame = 0;
    loop {
        let now = Timestamp::from_millis(frame * FRAME_MS);
        // Liveness: every ACK or update from the server resets `silent_for`.
        let silent = player.silent_for(now);
        if silent >= PEER_TIMEOUT_MS {
            println!(
                "frame {frame:4}: server silent for {silent} ms, disconnecting \
                 (is_dead: {}, {} segments unacknowledged)",
                player.is_dead(),
                player.wait_send()
            );
            break;
        }
        let server_up = frame < FRAMES;
        // Game logic: the player moves on a circle and reports every 6th frame (10 Hz).
        if frame % 6 == 0 {
            let angle = frame as f32 / 60.0;
            player
                .send(&encode(frame, angle.cos() * 10.0, angle.sin() * 10.0))
                .expect("small message fits");
        }
        player
            .update(now, |d| {
                up.send(frame, d);
                Ok::<_, Infallible>(())
            })
            .expect("infallible sink");
        let arrivals = up.arrivals(frame);
        if server_up {
            server
                .update(now, |d| {
                    down.send(frame, d);
                    Ok::<_, Infallible>(())
                })
                .expect("infallible sink");
            for d in arrivals {
                server.input(now, &d).expect("well-formed datagram");
            }
        }
        for d in down.arrivals(frame) {
            player.input(now, &d).expect("well-formed datagram");
        }
        while let Some(update) = server.recv() {
            let sent = u32::from_le_bytes(update[..4].try_into().expect("12-byte update"));
            let x = f32::from_le_bytes(update[4..8].try_into().expect("12-byte update"));
            let y = f32::from_le_bytes(update[8..].try_into().expect("12-byte update"));
            let late_ms = (frame - sent) * FRAME_MS;
            latencies.push(late_ms);
            received += 1;
            if received <= 5 || received % 20 == 0 {
                println!(
                    "frame {frame:4}: update from frame {sent:4} at ({x:6.2}, {y:6.2}), {late_ms:3} ms late"
                );
            }
        }
        frame += 1;
    }
    latencies.sort_unstable();
    let pct = |p: usize| latencies[(latencies.len() - 1) * p / 100];
    let stats = player.stats();
    println!(
        "received {received}/{} updates sent while the server was up, in order; latency p50 {} ms, p99 {} ms, max {} ms",
        FRAMES / 6,
        pct(50),
        pct(99),
        latencies.last().copied().unwrap_or(0)
    );
    println!(
        "link dropped {}/{} datagrams up, {}/{} down; {} timeout and {} fast retransmissions",
        up.dropped,
        up.dropped + up.carried,
        down.dropped,
        down.dropped + down.carried,
        stats.retransmits_timeout,
        stats.retransmits_fast
    );
}
