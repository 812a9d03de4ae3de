//! The line-based client: reads lines from an input (a terminal or a pipe), sends them
//! as frames, and prints what the server sends as it arrives.
//!
//! Input is read on its own thread into a channel, so the conversation keeps running
//! (acknowledgements, keepalives, incoming messages) while nobody types. At the end of
//! input the client pings the server, prints everything that arrives before the pong
//! (the echo of what it said included), quits, waits for the quit to be acknowledged
//! and returns.
//!
//! # While the server is unreachable
//!
//! When the link fails the client reconnects (resume token, rejoins) and keeps what
//! the user typed: the lines the lost conversation may not have delivered (see
//! [`ChatClient::reconnect`]) and the lines typed until the server answers again wait,
//! in order, and are sent (paced) once it welcomes us back; the user is told
//! "N lines queued, will send on reconnect". At most
//! [`offline_queue`](ClientOptions::offline_queue) lines wait; a line beyond, every
//! waiting line when the client gives up reconnecting (after
//! [`give_up_after`](ClientOptions::give_up_after)), and every line not known to be
//! delivered when the server ends the session, is reported as
//! "line not sent: TEXT". No line is dropped without a word; a line whose
//! acknowledgement the failure swallowed may be delivered twice.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use kcp_net::secure::HandshakeError;
use kcp_net::{ClientConfig, NetError};

use crate::client::{ChatClient, ChatError};
use crate::command::{HELP, Input, parse_line};
use crate::protocol::{ClientFrame, ErrorCode, ServerFrame};
use crate::rate::TokenBucket;
use crate::render::render;

/// Lines sent per second after a burst, so a pasted file or a pipe stays under the
/// server's default rate limit (20 frames/s, bursts of 40).
const PACE_PER_SEC: f64 = 10.0;
/// Lines sent at once before pacing starts.
const PACE_BURST: u32 = 20;
/// How long the end of input waits for the server's answers and acknowledgement.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a quit waits for its acknowledgement.
const QUIT_TIMEOUT: Duration = Duration::from_secs(1);

/// Lines kept while the server is unreachable, by default.
pub const DEFAULT_OFFLINE_QUEUE: usize = 100;
/// How long the client keeps reconnecting to an unreachable server, by default.
pub const DEFAULT_GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// What the client needs to start. Build it with [`ClientOptions::new`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientOptions {
    /// The server's address.
    pub server: SocketAddr,
    /// The nick to ask for.
    pub nick: String,
    /// The room to join first, and the current room until `/join`.
    pub room: String,
    /// Socket and engine settings.
    pub config: ClientConfig,
    /// Most lines kept to send after a reconnect while the server is unreachable
    /// (each about its text's size); more are reported as not sent. Default
    /// [`DEFAULT_OFFLINE_QUEUE`].
    pub offline_queue: usize,
    /// Stop reconnecting once the server has not answered for this long: the waiting
    /// lines are reported as not sent and [`run_client`] returns
    /// [`ClientExit::Unreachable`]. Default [`DEFAULT_GIVE_UP_AFTER`].
    pub give_up_after: Duration,
}

impl ClientOptions {
    /// Options for `nick` on `server`, starting in `room`, with the default offline
    /// queue and give-up time.
    pub fn new(server: SocketAddr, nick: &str, room: &str, config: ClientConfig) -> Self {
        Self {
            server,
            nick: nick.to_owned(),
            room: room.to_owned(),
            config,
            offline_queue: DEFAULT_OFFLINE_QUEUE,
            give_up_after: DEFAULT_GIVE_UP_AFTER,
        }
    }
}

/// Why [`run_client`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientExit {
    /// The input ended or the user typed `/quit`; the quit was acknowledged.
    Quit,
    /// The server announced its shutdown.
    ServerShutdown,
    /// The server refused or disconnected us (kicked, wrong version, full).
    Refused(ErrorCode),
    /// The server did not answer for [`give_up_after`](ClientOptions::give_up_after);
    /// the lines still waiting were reported as not sent.
    Unreachable,
}

/// Spawns the thread that turns `input` into lines on a channel (`None` at its end).
fn read_lines<R: BufRead + Send + 'static>(input: R) -> Receiver<Option<String>> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("kcp-chat-stdin".into())
        .spawn(move || {
            for line in input.lines() {
                let Ok(line) = line else { break };
                if tx.send(Some(line)).is_err() {
                    return;
                }
            }
            let _ = tx.send(None);
        })
        .expect("spawning the input thread");
    rx
}

/// Something to send, in the order the user typed it.
#[derive(Debug)]
enum Queued {
    /// A line typed and not sent yet. It is interpreted when it is sent (a `/join`
    /// changes the current room then), and `line` is what the user is shown if it
    /// cannot be.
    Typed { line: String, input: Input },
    /// A frame a lost conversation may not have delivered, to send again.
    Resend(ClientFrame),
}

impl Queued {
    /// The line as the user would have typed it.
    fn text(&self) -> String {
        match self {
            Self::Typed { line, .. } => line.clone(),
            Self::Resend(frame) => line_of(frame),
        }
    }
}

/// The input line that makes `frame`.
fn line_of(frame: &ClientFrame) -> String {
    match frame {
        ClientFrame::Say { text, .. } => text.clone(),
        ClientFrame::Me { text, .. } => format!("/me {text}"),
        ClientFrame::Join { room } => format!("/join {room}"),
        ClientFrame::Leave { room } => format!("/leave {room}"),
        ClientFrame::Nick { nick } => format!("/nick {nick}"),
        ClientFrame::ListUsers { room } => format!("/who {room}"),
        ClientFrame::ListRooms => "/rooms".to_owned(),
        ClientFrame::Ping { .. } => "/ping".to_owned(),
        ClientFrame::Quit { reason } => format!("/quit {reason}"),
        ClientFrame::Hello { nick, .. } => format!("/nick {nick}"),
    }
}

/// "1 line" or "N lines".
fn count_lines(n: usize) -> String {
    if n == 1 {
        "1 line".to_owned()
    } else {
        format!("{n} lines")
    }
}

/// The running client's state.
struct Session<W: Write> {
    chat: ChatClient,
    out: W,
    current: String,
    pings: HashMap<u64, Instant>,
    next_nonce: u64,
    /// The server refused our hello (nick taken or bad): `/nick` sends a new one.
    hello_refused: bool,
    /// The nonce of the latest pong (nonces only grow).
    last_pong: u64,
    /// Quitting: the server's `Left` notices are a goodbye, not a room change.
    quitting: bool,
    /// What waits to be sent, oldest first: paced while the server answers, held
    /// while it does not (then at most `offline_queue` entries).
    pending: VecDeque<Queued>,
    /// Most entries of `pending` while the server is unreachable.
    offline_queue: usize,
    /// Since when the server has not answered (the link failed and no welcome came
    /// since); `None` while it answers.
    outage: Option<Instant>,
    /// How long an outage may last before the client gives up.
    give_up_after: Duration,
    /// More input may come (no end of input, no `/quit` yet).
    input_open: bool,
    /// The reason of the `/quit` typed, if one was (empty at the end of input).
    quit_reason: String,
}

impl<W: Write> Session<W> {
    fn show(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
    }

    fn not_sent(&mut self, queued: &Queued) {
        let line = format!("!!! line not sent: {}", queued.text());
        self.show(&line);
    }

    fn show_queued(&mut self) {
        let line = format!(
            "*** {} queued, will send on reconnect",
            count_lines(self.pending.len())
        );
        self.show(&line);
    }

    /// A line of input: queued behind the others, or while the server is unreachable
    /// and the queue is full, reported as not sent.
    fn enqueue(&mut self, line: String, input: Input) {
        let queued = Queued::Typed { line, input };
        if self.outage.is_none() {
            self.pending.push_back(queued);
        } else if self.pending.len() >= self.offline_queue {
            self.not_sent(&queued);
        } else {
            self.pending.push_back(queued);
            self.show_queued();
        }
    }

    /// The link failed: reconnect, and put what the lost conversation may not have
    /// delivered (then `unsent`, which the dead link refused) before what waits.
    fn link_lost(&mut self, unsent: Option<Queued>) -> Result<(), ChatError> {
        let first = self.outage.is_none();
        if first {
            self.outage = Some(Instant::now());
            self.show("*** server not responding, reconnecting…");
        }
        let lost = match self.chat.reconnect() {
            Ok(lost) => lost,
            // The secure handshake found nobody: the outage goes on, and the next
            // pump tries again (the client reports the link failed until then).
            Err(ChatError::Net(NetError::Handshake(
                HandshakeError::Timeout(_) | HandshakeError::CookieTimeout(_),
            ))) => return Ok(()),
            Err(e) => return Err(e),
        };
        let had = self.pending.len();
        let mut front: VecDeque<Queued> = lost.into_iter().map(Queued::Resend).collect();
        front.extend(unsent);
        front.append(&mut self.pending);
        self.pending = front;
        if self.pending.len() > self.offline_queue {
            let over = self.pending.split_off(self.offline_queue);
            for queued in &over {
                self.not_sent(queued);
            }
        }
        // Told once per outage, and again whenever the count changes.
        if !self.pending.is_empty() && (first || self.pending.len() != had) {
            self.show_queued();
        }
        Ok(())
    }

    /// Reports everything waiting, and everything sent but not known to be delivered,
    /// as not sent: the session is over.
    fn abandon(&mut self) {
        let unconfirmed: Vec<Queued> = self
            .chat
            .unacknowledged()
            .filter(|f| !matches!(f, ClientFrame::Ping { .. }))
            .cloned()
            .map(Queued::Resend)
            .collect();
        let waiting: Vec<Queued> = self.pending.drain(..).collect();
        for queued in unconfirmed.iter().chain(&waiting) {
            self.not_sent(queued);
        }
    }

    /// Sends a frame the user asked for. A link found dead is not an error: the frame
    /// waits for the reconnect with the others.
    fn send_user(&mut self, frame: ClientFrame) -> Result<(), ChatError> {
        match self.chat.send(&frame) {
            Err(e) if e.is_link_failure() => self.link_lost(Some(Queued::Resend(frame))),
            other => other,
        }
    }

    fn ping(&mut self) -> Result<u64, ChatError> {
        self.next_nonce += 1;
        let nonce = self.next_nonce;
        self.pings.insert(nonce, Instant::now());
        self.send_user(ClientFrame::Ping { nonce })?;
        Ok(nonce)
    }

    /// Sends one queued entry; `Some(exit)` when it ends the session.
    fn execute(&mut self, queued: Queued) -> Result<Option<ClientExit>, ChatError> {
        let input = match queued {
            Queued::Resend(frame) => return self.send_user(frame).map(|()| None),
            Queued::Typed { input, .. } => input,
        };
        let room = self.current.clone();
        let frame = match input {
            Input::Nothing => return Ok(None),
            Input::Help => {
                self.show(HELP);
                return Ok(None);
            }
            Input::Quit(reason) => {
                // Nothing after a quit is sent: say so for what was typed already.
                self.input_open = false;
                self.quit_reason = reason;
                let after: Vec<Queued> = self.pending.drain(..).collect();
                for queued in &after {
                    self.not_sent(queued);
                }
                return Ok(None);
            }
            Input::Ping => {
                self.ping()?;
                return Ok(None);
            }
            Input::Nick(nick) if self.hello_refused => {
                // The hello was refused (nick taken?): try again with this nick.
                self.hello_refused = false;
                let retried = self.chat.hello(&nick).and_then(|()| self.chat.join(&room));
                return match retried {
                    // The reconnect says hello again, with the new nick.
                    Err(e) if e.is_link_failure() => self.link_lost(None).map(|()| None),
                    other => other.map(|()| None),
                };
            }
            Input::Say(text) => ClientFrame::Say { room, text },
            Input::Me(text) => ClientFrame::Me { room, text },
            Input::Join(new) => {
                self.current.clone_from(&new);
                ClientFrame::Join { room: new }
            }
            Input::Leave(which) => ClientFrame::Leave {
                room: which.unwrap_or(room),
            },
            Input::Nick(nick) => ClientFrame::Nick { nick },
            Input::Who(which) => ClientFrame::ListUsers {
                room: which.unwrap_or(room),
            },
            Input::Rooms => ClientFrame::ListRooms,
        };
        self.send_user(frame)?;
        Ok(None)
    }

    /// Shows a frame; `Some(exit)` when it ends the session.
    fn frame(&mut self, frame: &ServerFrame) -> Option<ClientExit> {
        if let ServerFrame::Pong { nonce } = frame {
            self.last_pong = self.last_pong.max(*nonce);
            if let Some(sent) = self.pings.remove(nonce) {
                let rtt = sent.elapsed().as_secs_f64() * 1000.0;
                self.show(&format!("*** pong: round trip {rtt:.1} ms"));
            }
            return None;
        }
        if let Some(line) = render(frame) {
            self.show(&line);
        }
        let refused_hello = matches!(
            frame,
            ServerFrame::Error {
                code: ErrorCode::NickTaken | ErrorCode::BadNick,
                ..
            }
        ) && !self.chat.welcomed();
        if refused_hello {
            self.hello_refused = true;
            self.show("*** choose another nick with /nick NICK");
        }
        // The server answers our hello: it is reachable again.
        if (refused_hello || matches!(frame, ServerFrame::Welcome { .. }))
            && self.outage.take().is_some()
            && !self.pending.is_empty()
        {
            let line = format!(
                "*** reconnected: sending {}",
                count_lines(self.pending.len())
            );
            self.show(&line);
        }
        if let ServerFrame::Left { room, nick, .. } = frame
            && *nick == self.chat.nick()
            && *room == self.current
            && !self.quitting
        {
            // Left the current room: fall back to another one we are in.
            if let Some(other) = self.chat.rooms().iter().next() {
                self.current.clone_from(other);
                let line = format!("*** now talking in {}", self.current);
                self.show(&line);
            }
        }
        match frame {
            ServerFrame::Shutdown { .. } => Some(ClientExit::ServerShutdown),
            ServerFrame::Error { code, .. }
                if matches!(
                    code,
                    ErrorCode::Kicked
                        | ErrorCode::WrongVersion
                        | ErrorCode::ServerFull
                        | ErrorCode::ServerBusy
                ) =>
            {
                Some(ClientExit::Refused(*code))
            }
            _ => None,
        }
    }

    /// Receives for up to `wait`, shows what came. Link failures reconnect.
    fn pump(&mut self, wait: Duration) -> Result<Option<ClientExit>, ChatError> {
        let mut next = self.chat.recv(wait);
        loop {
            match next {
                Ok(Some(frame)) => {
                    if let Some(exit) = self.frame(&frame) {
                        // Acknowledge the server's last frames before going, so it
                        // need not retransmit them until its shutdown deadline.
                        let _ = self.chat.wait_acknowledged(Duration::from_millis(200));
                        self.abandon();
                        return Ok(Some(exit));
                    }
                }
                Ok(None) => return Ok(None),
                // Quitting anyway: everything said was confirmed by the pong.
                Err(e) if e.is_link_failure() && self.quitting => {
                    return Ok(Some(ClientExit::Quit));
                }
                Err(e) if e.is_link_failure() => {
                    self.link_lost(None)?;
                    return Ok(None);
                }
                Err(ChatError::Codec(e)) => self.show(&format!("!!! {e}")),
                Err(e) => return Err(e),
            }
            next = self.chat.try_recv();
        }
    }

    /// End of input or `/quit`: show the answers to what we sent (up to a pong), quit,
    /// and wait for the quit to be acknowledged. `None` if the server stopped
    /// answering first: what was sent waits for the reconnect, and so does the quit.
    fn finish(&mut self) -> Result<Option<ClientExit>, ChatError> {
        let deadline = Instant::now() + FINISH_TIMEOUT;
        let nonce = self.ping()?;
        self.pings.remove(&nonce); // the closing ping prints no round trip
        while self.last_pong < nonce {
            if self.outage.is_some() {
                return Ok(None);
            }
            if Instant::now() >= deadline {
                // No answer in seconds: as good as a failed link.
                self.link_lost(None)?;
                return Ok(None);
            }
            if let Some(exit) = self.pump(Duration::from_millis(50))? {
                return Ok(Some(exit));
            }
        }
        // The server confirms with a `Left` per room we are in: show them, then
        // acknowledge them at once (`flush`) so the server can close the session.
        self.quitting = true;
        let reason = self.quit_reason.clone();
        match self.chat.send(&ClientFrame::Quit { reason }) {
            // Everything said was confirmed by the pong.
            Err(e) if e.is_link_failure() => return Ok(Some(ClientExit::Quit)),
            other => other?,
        }
        let quit_deadline = Instant::now() + QUIT_TIMEOUT;
        while !self.chat.rooms().is_empty() && Instant::now() < quit_deadline {
            if let Some(exit) = self.pump(Duration::from_millis(20))? {
                return Ok(Some(exit));
            }
        }
        let _ = self
            .chat
            .wait_acknowledged(quit_deadline.saturating_duration_since(Instant::now()));
        Ok(Some(ClientExit::Quit))
    }

    /// The server has not answered for too long: report what waits, and stop.
    fn give_up(&mut self) -> ClientExit {
        let line = format!(
            "*** giving up: no answer from the server for {:?}",
            self.give_up_after
        );
        self.show(&line);
        self.abandon();
        ClientExit::Unreachable
    }

    /// The main loop: read lines, send them paced (or hold them while the server is
    /// unreachable), show what arrives.
    fn run(&mut self, input: &Receiver<Option<String>>) -> Result<ClientExit, ChatError> {
        let mut pace = TokenBucket::new(PACE_PER_SEC, PACE_BURST, Instant::now());
        loop {
            while self.input_open {
                match input.try_recv() {
                    Ok(Some(line)) => match parse_line(&line) {
                        Ok(Input::Nothing) => {}
                        Ok(parsed) => self.enqueue(line, parsed),
                        Err(e) => self.show(&format!("!!! {e}")),
                    },
                    Ok(None) | Err(TryRecvError::Disconnected) => self.input_open = false,
                    Err(TryRecvError::Empty) => break,
                }
            }
            if self
                .outage
                .is_some_and(|since| since.elapsed() >= self.give_up_after)
            {
                return Ok(self.give_up());
            }
            while self.outage.is_none() && !self.pending.is_empty() && pace.take(Instant::now()) {
                if let Some(queued) = self.pending.pop_front()
                    && let Some(exit) = self.execute(queued)?
                {
                    return Ok(exit);
                }
            }
            if !self.input_open && self.pending.is_empty() && self.outage.is_none() {
                if let Some(exit) = self.finish()? {
                    return Ok(exit);
                }
                continue;
            }
            let busy = self.outage.is_none() && !self.pending.is_empty();
            let wait = if busy { 5 } else { 25 };
            if let Some(exit) = self.pump(Duration::from_millis(wait))? {
                return Ok(exit);
            }
        }
    }
}

/// Runs the client until the input ends, `/quit`, the server ends the session, or the
/// client gives up reconnecting. Lines read from `input`; frames are shown on `out`.
///
/// # Errors
/// A socket that cannot be bound, or a socket error. Link failures are not errors:
/// the client says "server not responding, reconnecting…", reconnects and keeps what
/// the user types meanwhile (see the module docs).
pub fn run_client<R, W>(options: ClientOptions, input: R, out: W) -> Result<ClientExit, ChatError>
where
    R: BufRead + Send + 'static,
    W: Write,
{
    run_client_from(options, read_lines(input), out)
}

/// As [`run_client`], with the input already turned into lines on a channel: each
/// `Some(line)` is a line typed, `None` (or the sender dropped) the end of input. A
/// line editor on another thread feeds it this way.
///
/// # Errors
/// As [`run_client`].
pub fn run_client_from<W: Write>(
    options: ClientOptions,
    lines: Receiver<Option<String>>,
    out: W,
) -> Result<ClientExit, ChatError> {
    let chat = ChatClient::connect(options.server, &options.nick, options.config)?;
    let mut session = Session {
        chat,
        out,
        current: options.room.clone(),
        pings: HashMap::new(),
        next_nonce: 0,
        hello_refused: false,
        last_pong: 0,
        quitting: false,
        pending: VecDeque::new(),
        offline_queue: options.offline_queue,
        outage: None,
        give_up_after: options.give_up_after,
        input_open: true,
        quit_reason: String::new(),
    };
    session.show(&format!(
        "*** connecting to {} as {} (type /help for commands)",
        options.server, options.nick
    ));
    session.chat.join(&options.room)?;
    session.run(&lines)
}
