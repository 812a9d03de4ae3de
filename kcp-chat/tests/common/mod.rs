//! Helpers for the end-to-end tests: the real `kcp-chat` binary as a server or an
//! interactive client (killed when dropped), and library clients to poke it.
//!
//! Every wait is bounded; every address is 127.0.0.1.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use kcp_chat::client::ChatClient;
use kcp_chat::protocol::ServerFrame;
use kcp_net::{ClientConfig, Preset};

/// Generous bound for anything that takes milliseconds on loopback.
pub const WAIT: Duration = Duration::from_secs(10);

/// The binary under test.
pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kcp-chat"))
}

/// Reads a child's output lines on a thread into a channel.
fn lines_of(output: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A child process that is killed when dropped, with its stdout and stderr as lines.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    errors: Receiver<String>,
    /// Every line seen so far (for failure messages).
    pub seen: Vec<String>,
}

impl Proc {
    fn spawn(mut command: Command, stdin: bool) -> Self {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        command.stdin(if stdin { Stdio::piped() } else { Stdio::null() });
        let mut child = command.spawn().expect("spawning kcp-chat");
        let lines = lines_of(child.stdout.take().expect("stdout"));
        let errors = lines_of(child.stderr.take().expect("stderr"));
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            lines,
            errors,
            seen: Vec::new(),
        }
    }

    /// The next line matching `want` within `timeout`; panics with everything seen if
    /// none comes.
    #[track_caller]
    pub fn expect(&mut self, timeout: Duration, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no matching line within {timeout:?}; saw {:#?}", self.seen)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("output ended without a matching line; saw {:#?}", self.seen)
                }
            }
        }
    }

    /// The next stderr line matching `want` within `timeout`.
    #[track_caller]
    pub fn expect_stderr(&mut self, timeout: Duration, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.errors.recv_timeout(left) {
                Ok(line) if want(&line) => return line,
                Ok(line) => seen.push(line),
                Err(e) => panic!("no matching stderr line within {timeout:?} ({e}); saw {seen:#?}"),
            }
        }
    }

    /// Waits for a line containing `text`.
    #[track_caller]
    pub fn expect_text(&mut self, text: &str) -> String {
        self.expect(WAIT, |l| l.contains(text))
    }

    /// Asserts no line containing `text` arrives within `window`.
    #[track_caller]
    pub fn expect_no_text(&mut self, text: &str, window: Duration) {
        let deadline = Instant::now() + window;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            assert!(!line.contains(text), "unexpected line {line:?}");
            self.seen.push(line);
        }
    }

    /// Types a line.
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").expect("writing to the client");
        stdin.flush().expect("flushing to the client");
    }

    /// Closes stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Sends a signal (SIGINT, SIGTERM...).
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill has no memory-safety preconditions; the pid is our live child.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({signal}) failed");
    }

    /// Kills it at once (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `timeout` for it to exit.
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {timeout:?}; saw {:#?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The rest of its output after it exited.
    pub fn rest(&mut self) -> Vec<String> {
        let mut rest = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            rest.push(line);
        }
        self.seen.extend(rest.iter().cloned());
        rest
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `kcp-chat server` on 127.0.0.1 (port 0 unless `args` says otherwise), secure
/// unless `args` has `--raw`, with a home of its own (its key file; the clients'
/// known-servers file).
pub struct Server {
    pub proc: Proc,
    pub addr: SocketAddr,
    /// Its public key (`None` with `--raw`).
    pub key: Option<kcp_net::secure::PublicKey>,
    pub home: std::path::PathBuf,
}

/// A fresh directory for one test server's files.
fn fresh_home() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let home = std::env::temp_dir().join(format!("kcp-chat-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).expect("a temp dir");
    home
}

impl Server {
    pub fn start(args: &[&str]) -> Self {
        Self::start_in(fresh_home(), args)
    }

    /// A server restarted in `home`: the same key file, so its clients trust it.
    pub fn restart(before: &Self, args: &[&str]) -> Self {
        Self::start_in(before.home.clone(), args)
    }

    fn start_in(home: std::path::PathBuf, args: &[&str]) -> Self {
        let mut command = binary();
        command.arg("server");
        if !args.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        command
            .args(args)
            .env("RUST_LOG", "warn")
            .env("KCP_CHAT_HOME", &home);
        let mut proc = Proc::spawn(command, false);
        let key = if args.contains(&"--raw") {
            None
        } else {
            let line = proc.expect(WAIT, |l| l.starts_with("server key "));
            let key = line["server key ".len()..]
                .split(' ')
                .next()
                .unwrap_or_default();
            Some(key.parse().expect("a public key"))
        };
        let line = proc.expect(WAIT, |l| l.starts_with("listening "));
        let addr = line["listening ".len()..].parse().expect("an address");
        Self {
            proc,
            addr,
            key,
            home,
        }
    }

    /// A client config for this server (pinning its key unless it is raw).
    pub fn client_config(&self) -> ClientConfig {
        let mut config = client_config();
        config.secure = self.key.map(kcp_net::secure::ClientSecurity::new);
        config
    }

    /// `kcp-chat client` for `nick` on this server, with extra `args`.
    pub fn client_command(&self, nick: &str, args: &[&str]) -> Command {
        let mut command = binary();
        command
            .args(["client", "--server", &self.addr.to_string(), "--nick", nick])
            .env("KCP_CHAT_HOME", &self.home)
            .args(args);
        if let Some(key) = self.key.filter(|_| !args.contains(&"--raw")) {
            command.args(["--server-key", &key.to_string()]);
        }
        command
    }

    /// An interactive `kcp-chat client` for `nick`, with extra `args`.
    pub fn client(&self, nick: &str, args: &[&str]) -> Proc {
        Proc::spawn(self.client_command(nick, args), true)
    }

    /// Runs a `kcp-chat client` for `nick`, with extra `args`, to its exit (within 30 s)
    /// with `input` as its whole stdin, a pipe rather than a terminal.
    pub fn run_client(&self, nick: &str, args: &[&str], input: impl Into<Vec<u8>>) -> Output {
        assert_cmd::Command::from_std(self.client_command(nick, args))
            .write_stdin(input)
            .timeout(Duration::from_secs(30))
            .output()
            .expect("running the client")
    }

    /// A library chat client (fast preset, flush on send).
    pub fn chat(&self, nick: &str) -> ChatClient {
        ChatClient::connect(self.addr, nick, self.client_config()).expect("connecting")
    }
}

pub fn client_config() -> ClientConfig {
    let mut config = ClientConfig::new(Preset::Fast);
    config.flush_on_send = true;
    config
}

/// The next frame from `chat` that `want` accepts, within [`WAIT`].
#[track_caller]
pub fn expect_frame(chat: &mut ChatClient, want: impl Fn(&ServerFrame) -> bool) -> ServerFrame {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Some(frame) = chat.recv(Duration::from_millis(50)).expect("receiving") {
            if want(&frame) {
                return frame;
            }
            seen.push(frame);
        }
    }
    panic!("no matching frame within {WAIT:?}; saw {seen:#?}");
}

/// Joins `room` and waits until the server confirms.
#[track_caller]
pub fn join(chat: &mut ChatClient, room: &str) {
    chat.join(room).expect("joining");
    let nick = chat.nick().to_owned();
    expect_frame(
        chat,
        |f| matches!(f, ServerFrame::Joined { room: r, nick: n } if r == room && *n == nick),
    );
}

/// Waits for a message with this text.
#[track_caller]
pub fn expect_message(chat: &mut ChatClient, text: &str) -> ServerFrame {
    expect_frame(
        chat,
        |f| matches!(f, ServerFrame::Message { text: t, .. } if t == text),
    )
}
