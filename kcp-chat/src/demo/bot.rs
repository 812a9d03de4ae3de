//! One scripted bot: joins its rooms, chats on a timer, records every tracked message
//! it receives, and quits once it has everything it should get.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kcp_net::{ClientConfig, SessionStats};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::tracker::{Tracker, parse_tag, tag_text};
use crate::client::{ChatClient, ChatError};
use crate::protocol::{ClientFrame, ServerFrame};
use crate::render::render;

/// What the bots say, in turn.
const SCRIPT: &[&str] = &[
    "hello everyone!",
    "anyone else on a lossy link today?",
    "KCP retransmits before TCP would even notice",
    "fast resend kicks in after two skipped acks",
    "my packets keep getting lost, but my messages don't",
    "who's up for a round of ping pong?",
    "the window is 128 segments, plenty for chat",
    "nodelay mode: interval 10 ms, no congestion control",
    "did you see that? 10% loss and nothing missing",
    "reliable, ordered, and still quick",
    "sends a message, waits for an ack, simple as that",
    "I hear jitter makes things arrive out of order",
    "the receive window puts them back in order",
    "time for coffee",
    "one more message for the stats",
];

/// Actions (`/me`), used for every fifth message.
const ACTIONS: &[&str] = &[
    "waves",
    "retransmits a segment, just to be sure",
    "counts acks",
    "shuffles datagrams",
];

/// What the orchestrator tells one bot.
#[derive(Clone, Debug)]
pub(crate) struct BotPlan {
    pub(crate) index: usize,
    pub(crate) nick: String,
    /// The nick it switches to halfway, if any.
    pub(crate) rename_to: Option<String>,
    /// Rooms it joins; the first is where most of its messages go.
    pub(crate) rooms: Vec<String>,
    /// For each of its rooms, the bots that are in it (set before anyone talks).
    pub(crate) members: Vec<BTreeSet<usize>>,
    /// Mean time between its messages.
    pub(crate) interval: Duration,
    pub(crate) config: ClientConfig,
    pub(crate) seed: u64,
    /// Shows what it sees (one bot narrates the conversation).
    pub(crate) narrate: bool,
    /// The node (index into [`Stage::servers`]) it talks to.
    pub(crate) node: usize,
}

/// The run's shared parts.
#[derive(Clone, Debug)]
pub(crate) struct Stage {
    /// The server, or each node of the cluster.
    pub(crate) servers: Vec<SocketAddr>,
    pub(crate) tracker: Arc<Mutex<Tracker>>,
    pub(crate) ready: Arc<Barrier>,
    pub(crate) lines: Sender<String>,
    /// When chatting starts (after everyone joined) is decided at the barrier; these
    /// are offsets from it.
    pub(crate) chat_for: Duration,
    pub(crate) drain_for: Duration,
    pub(crate) setup_for: Duration,
}

impl Stage {
    fn tracker(&self) -> MutexGuard<'_, Tracker> {
        self.tracker.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A bot's state while it runs.
struct Bot<'a> {
    plan: &'a BotPlan,
    stage: &'a Stage,
    chat: ChatClient,
}

impl Bot<'_> {
    /// Handles one frame: tracks tagged messages, narrates.
    fn frame(&self, frame: &ServerFrame) {
        if let ServerFrame::Message { text, history, .. } = frame
            && !history
            && let Some(tag) = parse_tag(text)
        {
            self.stage
                .tracker()
                .received(tag, self.plan.index, Instant::now());
        }
        if self.plan.narrate
            && let Some(line) = render(frame)
        {
            let _ = self.stage.lines.send(line);
        }
    }

    /// Receives for up to `wait` and handles everything that came.
    fn pump(&mut self, wait: Duration) -> Result<(), ChatError> {
        let mut next = self.chat.recv(wait)?;
        while let Some(frame) = next {
            self.frame(&frame);
            next = self.chat.try_recv()?;
        }
        Ok(())
    }

    fn setup(&mut self) -> Result<(), ChatError> {
        for room in &self.plan.rooms {
            self.chat.join(room)?;
        }
        let deadline = Instant::now() + self.stage.setup_for;
        while self.chat.rooms().len() < self.plan.rooms.len() && Instant::now() < deadline {
            self.pump(Duration::from_millis(20))?;
        }
        Ok(())
    }

    fn say(&mut self, n: u64, rng: &mut SmallRng) -> Result<(), ChatError> {
        // Every third message goes to the bot's second room, if it has one.
        let which = if n % 3 == 2 && self.plan.rooms.len() > 1 {
            1
        } else {
            0
        };
        let room = self.plan.rooms[which].clone();
        let tag = (self.plan.index, n);
        let frame = if n % 5 == 4 {
            let action = ACTIONS[rng.random_range(0..ACTIONS.len())];
            ClientFrame::Me {
                room,
                text: format!("{action} {}", tag_text(tag)),
            }
        } else {
            let line = SCRIPT[(self.plan.index * 7 + n as usize) % SCRIPT.len()];
            ClientFrame::Say {
                room,
                text: format!("{line} {}", tag_text(tag)),
            }
        };
        // Recorded before sending, so no receiver can see it first.
        let members = self.plan.members[which].clone();
        self.stage.tracker().sent(tag, members, Instant::now());
        self.chat.send(&frame)
    }

    fn chat(&mut self, until: Instant) -> Result<(), ChatError> {
        let mut rng = SmallRng::seed_from_u64(self.plan.seed);
        let start = Instant::now();
        let mut next_send = start + self.plan.interval.mul_f64(rng.random_range(0.1..1.0));
        let mut rename_at = self
            .plan
            .rename_to
            .as_ref()
            .map(|nick| (start + (until - start) / 2, nick.clone()));
        let mut n = 0;
        loop {
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            if now >= next_send {
                n += 1;
                self.say(n, &mut rng)?;
                next_send += self.plan.interval.mul_f64(rng.random_range(0.5..1.5));
            }
            if let Some((_, nick)) = rename_at.take_if(|(at, _)| now >= *at) {
                self.chat.send(&ClientFrame::Nick { nick })?;
            }
            let wait = next_send.min(until).saturating_duration_since(now);
            self.pump(wait.min(Duration::from_millis(20)))?;
        }
    }

    fn drain(&mut self, until: Instant) -> Result<(), ChatError> {
        while Instant::now() < until && self.stage.tracker().missing_at(self.plan.index) > 0 {
            self.pump(Duration::from_millis(20))?;
        }
        // Make sure what we said reached the server before we go.
        self.chat
            .wait_acknowledged(until.saturating_duration_since(Instant::now()))?;
        Ok(())
    }
}

/// What a bot's connection did.
pub(crate) struct BotStats {
    /// The connection's counters.
    pub(crate) session: SessionStats,
    /// Datagrams its simulated link dropped.
    pub(crate) impaired_drops: u64,
}

/// Runs one bot to the end; returns its connection's counters.
pub(crate) fn run_bot(plan: &BotPlan, stage: &Stage) -> Result<BotStats, ChatError> {
    let server = stage.servers[plan.node % stage.servers.len().max(1)];
    let chat = ChatClient::connect(server, &plan.nick, plan.config.clone());
    let setup = chat.and_then(|chat| {
        let mut bot = Bot { plan, stage, chat };
        bot.setup().map(|()| bot)
    });
    // Everyone meets here, even a bot that failed, so nobody waits forever.
    stage.ready.wait();
    let mut bot = setup?;
    let chat_until = Instant::now() + stage.chat_for;
    bot.chat(chat_until)?;
    bot.drain(chat_until + stage.drain_for)?;
    let stats = BotStats {
        session: bot.chat.kcp().stats(),
        impaired_drops: bot.chat.kcp().impaired_drops(),
    };
    let _ = bot.chat.quit("demo over", Duration::from_millis(500));
    Ok(stats)
}
