//! The line-based client: reads lines from an input (a terminal or a pipe), sends them
//! as frames, and prints what the server sends as it arrives.
//!
//! Input is read on its own thread into a channel, so the conversation keeps running
//! (acknowledgements, keepalives, incoming messages) while nobody types. At the end of
//! input the client pings the server, prints everything that arrives before the pong
//! (the echo of what it said included), quits, waits for the quit to be acknowledged
//! and returns.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use kcp_net::ClientConfig;

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

/// What the client needs to start.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The server's address.
    pub server: SocketAddr,
    /// The nick to ask for.
    pub nick: String,
    /// The room to join first, and the current room until `/join`.
    pub room: String,
    /// Socket and engine settings.
    pub config: ClientConfig,
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
}

impl<W: Write> Session<W> {
    fn show(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
    }

    fn ping(&mut self) -> Result<u64, ChatError> {
        self.next_nonce += 1;
        let nonce = self.next_nonce;
        self.pings.insert(nonce, Instant::now());
        self.chat.send(&ClientFrame::Ping { nonce })?;
        Ok(nonce)
    }

    /// Acts on one line of input; `Some(exit)` when it ends the session.
    fn execute(&mut self, input: Input) -> Result<Option<ClientExit>, ChatError> {
        let room = self.current.clone();
        let frame = match input {
            Input::Nothing => return Ok(None),
            Input::Help => {
                self.show(HELP);
                return Ok(None);
            }
            Input::Quit(reason) => return self.finish(&reason).map(Some),
            Input::Ping => {
                self.ping()?;
                return Ok(None);
            }
            Input::Nick(nick) if self.hello_refused => {
                // The hello was refused (nick taken?): try again with this nick.
                self.hello_refused = false;
                self.chat.hello(&nick)?;
                self.chat.join(&room)?;
                return Ok(None);
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
        self.chat.send(&frame)?;
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
        if let ServerFrame::Error {
            code: ErrorCode::NickTaken | ErrorCode::BadNick,
            ..
        } = frame
            && !self.chat.welcomed()
        {
            self.hello_refused = true;
            self.show("*** choose another nick with /nick NICK");
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
                    ErrorCode::Kicked | ErrorCode::WrongVersion | ErrorCode::ServerFull
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
                        return Ok(Some(exit));
                    }
                }
                Ok(None) => return Ok(None),
                // Quitting anyway: everything said was confirmed by the pong.
                Err(e) if e.is_link_failure() && self.quitting => {
                    return Ok(Some(ClientExit::Quit));
                }
                Err(e) if e.is_link_failure() => {
                    self.show("*** server not responding, reconnecting…");
                    self.chat.reconnect()?;
                    return Ok(None);
                }
                Err(ChatError::Codec(e)) => self.show(&format!("!!! {e}")),
                Err(e) => return Err(e),
            }
            next = self.chat.try_recv();
        }
    }

    /// End of input or `/quit`: show the answers to what we sent (up to a pong), quit,
    /// and wait for the quit to be acknowledged.
    fn finish(&mut self, reason: &str) -> Result<ClientExit, ChatError> {
        let deadline = Instant::now() + FINISH_TIMEOUT;
        let nonce = self.ping()?;
        self.pings.remove(&nonce); // the closing ping prints no round trip
        while self.last_pong < nonce && Instant::now() < deadline {
            if let Some(exit) = self.pump(Duration::from_millis(50))? {
                return Ok(exit);
            }
        }
        // The server confirms with a `Left` per room we are in: show them, then
        // acknowledge them at once (`flush`) so the server can close the session.
        self.quitting = true;
        self.chat.send(&ClientFrame::Quit {
            reason: reason.to_owned(),
        })?;
        let quit_deadline = Instant::now() + QUIT_TIMEOUT;
        while !self.chat.rooms().is_empty() && Instant::now() < quit_deadline {
            if let Some(exit) = self.pump(Duration::from_millis(20))? {
                return Ok(exit);
            }
        }
        self.chat
            .wait_acknowledged(quit_deadline.saturating_duration_since(Instant::now()))?;
        Ok(ClientExit::Quit)
    }
}

/// Runs the client until the input ends, `/quit`, or the server ends the session.
/// Lines read from `input`; frames are shown on `out`.
///
/// # Errors
/// A socket that cannot be bound, or a socket error. Link failures are not errors:
/// the client says "server not responding, reconnecting…" and reconnects.
pub fn run_client<R, W>(options: ClientOptions, input: R, out: W) -> Result<ClientExit, ChatError>
where
    R: BufRead + Send + 'static,
    W: Write,
{
    let lines = read_lines(input);
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
    };
    session.show(&format!(
        "*** connecting to {} as {} (type /help for commands)",
        options.server, options.nick
    ));
    session.chat.join(&options.room)?;
    let mut pending = VecDeque::new();
    let mut pace = TokenBucket::new(PACE_PER_SEC, PACE_BURST, Instant::now());
    let mut input_done = false;
    loop {
        while !input_done {
            match lines.try_recv() {
                Ok(Some(line)) => match parse_line(&line) {
                    Ok(Input::Nothing) => {}
                    Ok(input) => pending.push_back(input),
                    Err(e) => session.show(&format!("!!! {e}")),
                },
                Ok(None) | Err(TryRecvError::Disconnected) => input_done = true,
                Err(TryRecvError::Empty) => break,
            }
        }
        while !pending.is_empty() && pace.take(Instant::now()) {
            if let Some(input) = pending.pop_front()
                && let Some(exit) = session.execute(input)?
            {
                return Ok(exit);
            }
        }
        if input_done && pending.is_empty() {
            return session.finish("");
        }
        let wait = if pending.is_empty() { 25 } else { 5 };
        if let Some(exit) = session.pump(Duration::from_millis(wait))? {
            return Ok(exit);
        }
    }
}
