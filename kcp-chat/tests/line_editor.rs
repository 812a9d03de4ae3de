//! The interactive client on a terminal (a pseudo-terminal here): the line being
//! typed survives messages arriving, history recalls it, `--plain` reads plain lines.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::*;

/// A client whose stdin, stdout and stderr are a pseudo-terminal we type into.
struct Terminal {
    child: Child,
    keys: File,
    screen: Receiver<Vec<u8>>,
    /// Everything the client wrote so far.
    seen: String,
}

impl Terminal {
    fn spawn(server: &Server, nick: &str, args: &[&str]) -> Self {
        let (mut master, mut slave) = (-1, -1);
        let size = libc::winsize {
            ws_row: 24,
            ws_col: 100,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two fds into the two ints we pass; the name buffer
        // and termios are optional (null), the winsize is read only.
        let rc = unsafe {
            libc::openpty(
                &raw mut master,
                &raw mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &raw const size,
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both fds were just opened by openpty and are owned by nothing else.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let mut command = server.client_command(nick, args);
        command
            .stdin(Stdio::from(slave.try_clone().expect("a fd")))
            .stdout(Stdio::from(slave.try_clone().expect("a fd")))
            .stderr(Stdio::from(slave));
        let child = command.spawn().expect("spawning the client");
        let keys = File::from(master);
        let mut reader = keys.try_clone().expect("a fd");
        let (tx, screen) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once the client (the last holder of the slave) exits.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            keys,
            screen,
            seen: String::new(),
        }
    }

    fn type_keys(&mut self, keys: &str) {
        self.keys.write_all(keys.as_bytes()).expect("typing");
    }

    /// Waits until the screen output, from byte `from` on, satisfies `want`; returns
    /// the length of the output then.
    #[track_caller]
    fn expect(&mut self, from: usize, want: impl Fn(&str) -> bool) -> usize {
        let deadline = Instant::now() + WAIT;
        while !want(&self.seen[from.min(self.seen.len())..]) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.screen.recv_timeout(left) {
                Ok(bytes) => self.seen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(e) => panic!("{e}; the screen so far: {:?}", self.seen),
            }
        }
        self.seen.len()
    }

    #[track_caller]
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "still running: {:?}", self.seen);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_line_being_typed_survives_a_message_and_history_recalls_it() {
    let server = Server::start(&[]);
    let mut listener = server.chat("listener");
    join(&mut listener, "lobby");
    let mut term = Terminal::spawn(&server, "typist", &[]);
    let at = term.expect(0, |s| {
        s.contains("--> typist joined lobby") && s.contains("> ")
    });
    term.type_keys("half a li");
    let at = term.expect(at, |s| s.contains("half a li"));
    listener.say("lobby", "interrupting").unwrap();
    // The message is printed, then the prompt and the unfinished line again.
    term.expect(at, |s| {
        s.find("<listener> interrupting")
            .is_some_and(|i| s[i..].contains("> half a li"))
    });
    term.type_keys("ne\r");
    expect_message(&mut listener, "half a line");
    // Up arrow, Enter: the same line again, from history.
    term.type_keys("\x1b[A\r");
    expect_message(&mut listener, "half a line");
    // Ctrl-D: the end of input; the client quits cleanly.
    term.type_keys("\x04");
    assert!(term.wait_exit().success(), "{:?}", term.seen);
}

#[test]
fn plain_reads_lines_without_an_editor_on_a_terminal() {
    let server = Server::start(&[]);
    let mut listener = server.chat("listener");
    join(&mut listener, "lobby");
    let mut term = Terminal::spawn(&server, "plain", &["--plain"]);
    term.expect(0, |s| s.contains("--> plain joined lobby"));
    term.type_keys("just a line\n");
    expect_message(&mut listener, "just a line");
    let prompted = term.seen.split(['\r', '\n']).any(|l| l.starts_with("> "));
    assert!(!prompted, "no prompt: {:?}", term.seen);
    term.type_keys("\x04");
    assert!(term.wait_exit().success(), "{:?}", term.seen);
}
