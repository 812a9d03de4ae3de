//! Two [`Conversation`]s joined by simulated links on virtual time: each side is
//! driven only when a datagram arrives, the application queues something, or its
//! own `next_deadline` comes, as the real loops drive them. No real time passes.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kcp_core::sim::{Link, LinkConfig};
use kcp_net::{CloseReason, Conversation, ConversationConfig};

/// Which end of a [`VirtualPair`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Client,
    Server,
}

/// One end: its conversation, its outgoing link and what its application saw.
pub struct Side {
    pub conversation: Conversation,
    pub out: Link,
    /// Messages taken from the conversation, with the virtual ms they arrived.
    pub received: Vec<(u64, Bytes)>,
    /// Drives so far (each is a wake-up of a real loop).
    pub drives: u64,
    /// Set when `poll_close` first reported something, with the ms.
    pub closed: Option<(u64, CloseReason)>,
    /// Echo every received message back.
    pub echo: bool,
    /// Take received messages (an application that reads).
    pub reads: bool,
    touched: bool,
}

/// A client and a server conversation on virtual time.
pub struct VirtualPair {
    pub t0: Instant,
    pub ms: u64,
    pub client: Side,
    pub server: Side,
}

impl VirtualPair {
    pub fn new(
        client: ConversationConfig,
        server: ConversationConfig,
        up: LinkConfig,
        down: LinkConfig,
        seed: u64,
    ) -> Self {
        let t0 = Instant::now();
        let side = |config, link, seed| Side {
            conversation: Conversation::new(0x5eed, config, t0).unwrap(),
            out: Link::new(link, seed),
            received: Vec::new(),
            drives: 0,
            closed: None,
            echo: false,
            reads: true,
            touched: false,
        };
        Self {
            t0,
            ms: 0,
            client: side(client, up, seed),
            server: side(server, down, seed.wrapping_add(1)),
        }
    }

    /// The virtual instant now.
    pub fn now(&self) -> Instant {
        self.t0 + Duration::from_millis(self.ms)
    }

    /// The instant of virtual ms `ms`.
    pub fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    pub fn side(&mut self, end: End) -> &mut Side {
        match end {
            End::Client => &mut self.client,
            End::Server => &mut self.server,
        }
    }

    /// The application of `end` queues a message now.
    pub fn send(&mut self, end: End, message: &[u8]) {
        let now = self.now();
        let side = self.side(end);
        side.conversation
            .send(now, Bytes::copy_from_slice(message))
            .unwrap();
        side.touched = true;
    }

    /// Advances one millisecond: datagrams due arrive, then each side is driven if
    /// something touched it or its deadline came.
    pub fn step(&mut self) {
        self.ms += 1;
        let now = self.now();
        let ms = self.ms;
        let (client, server) = (&mut self.client, &mut self.server);
        deliver(&mut client.out, server, ms, now);
        deliver(&mut server.out, client, ms, now);
        client.turn(ms, now);
        server.turn(ms, now);
    }

    /// Steps until virtual ms `until`.
    pub fn run_until(&mut self, until: u64) {
        while self.ms < until {
            self.step();
        }
    }
}

fn deliver(link: &mut Link, to: &mut Side, ms: u64, now: Instant) {
    while let Some(datagram) = link.pop_ready(ms) {
        if to.closed.is_none() && to.conversation.input(now, &datagram).is_ok() {
            to.touched = true;
        }
    }
}

impl Side {
    fn turn(&mut self, ms: u64, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        if self.reads {
            while let Some(message) = self.conversation.recv() {
                if self.echo {
                    self.conversation.send(now, message.clone()).unwrap();
                }
                self.received.push((ms, message));
            }
        }
        let due = self
            .conversation
            .next_deadline(now)
            .is_some_and(|at| at <= now);
        if !(self.touched || due) {
            return;
        }
        self.touched = false;
        self.drives += 1;
        let mut wire = Vec::new();
        self.conversation.drive_to_vec(now, &mut wire);
        for datagram in &wire {
            self.out.push(ms, datagram);
        }
        if let Some(reason) = self.conversation.poll_close(now) {
            self.closed = Some((ms, reason));
        }
    }
}
