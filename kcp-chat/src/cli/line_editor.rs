//! The interactive client's line editor on a terminal (rustyline): the line being
//! typed stays on the last row while messages arrive above it, with history (up and
//! down arrows) for the session. Ctrl-D or Ctrl-C on an empty line ends the input
//! (the client quits as at the end of a pipe).

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::sync::mpsc::{self, Receiver};

use anyhow::Context as _;
use rustyline::{DefaultEditor, ExternalPrinter};

/// The prompt in front of the line being typed.
const PROMPT: &str = "> ";

/// A line editor reading the terminal on a thread of its own.
pub(super) struct LineEditor<P> {
    /// The lines typed, `None` at the end of input.
    pub(super) lines: Receiver<Option<String>>,
    /// Shows output above the line being typed.
    pub(super) out: PrinterOut<P>,
    /// Puts the terminal back as it was, even if the editor thread is still inside
    /// `readline` (in raw mode) when the client ends.
    _terminal: TerminalGuard,
}

/// Starts the editor on stdin and stdout (both terminals).
///
/// # Errors
/// The terminal cannot be set up.
pub(super) fn start() -> anyhow::Result<LineEditor<impl ExternalPrinter>> {
    let terminal = TerminalGuard::save()?;
    let mut editor = DefaultEditor::new().context("starting the line editor")?;
    let printer = editor
        .create_external_printer()
        .context("starting the line editor's printer")?;
    let (tx, lines) = mpsc::channel();
    std::thread::Builder::new()
        .name("kcp-chat-editor".into())
        .spawn(move || {
            // Ctrl-D, Ctrl-C or a terminal error end the input.
            while let Ok(line) = editor.readline(PROMPT) {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                if tx.send(Some(line)).is_err() {
                    return;
                }
            }
            let _ = tx.send(None);
        })
        .context("starting the line editor thread")?;
    Ok(LineEditor {
        lines,
        out: PrinterOut::new(printer),
        _terminal: terminal,
    })
}

/// A `Write` that hands each complete line to the editor's printer on `flush`, so it
/// appears above the line being typed.
pub(super) struct PrinterOut<P> {
    printer: P,
    pending: Vec<u8>,
}

impl<P: ExternalPrinter> PrinterOut<P> {
    const fn new(printer: P) -> Self {
        Self {
            printer,
            pending: Vec::new(),
        }
    }
}

impl<P: ExternalPrinter> Write for PrinterOut<P> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..end]).into_owned();
            self.printer.print(text).map_err(io::Error::other)?;
        }
        Ok(())
    }
}

impl<P> Drop for PrinterOut<P> {
    fn drop(&mut self) {
        // What was written without a newline is not lost.
        if !self.pending.is_empty() {
            let _ = io::stdout().write_all(&self.pending);
        }
    }
}

/// The terminal's settings at start, restored on drop.
struct TerminalGuard {
    saved: libc::termios,
}

impl TerminalGuard {
    fn save() -> anyhow::Result<Self> {
        let fd = io::stdin().as_raw_fd();
        // SAFETY: termios is plain old data; tcgetattr fills it for a valid fd (stdin
        // stays open for the whole process) and reports errors through its result.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: see above; `saved` is a valid, exclusively borrowed termios.
        let rc = unsafe { libc::tcgetattr(fd, &raw mut saved) };
        if rc != 0 {
            return Err(io::Error::last_os_error()).context("reading the terminal settings");
        }
        Ok(Self { saved })
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        // SAFETY: `saved` came from tcgetattr on the same fd; tcsetattr only reads it.
        let _ = unsafe {
            libc::tcsetattr(
                io::stdin().as_raw_fd(),
                libc::TCSANOW,
                &raw const self.saved,
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Lines(Vec<String>);

    impl ExternalPrinter for &mut Lines {
        fn print(&mut self, msg: String) -> rustyline::Result<()> {
            self.0.push(msg);
            Ok(())
        }
    }

    #[test]
    fn complete_lines_are_printed_on_flush_and_partial_ones_wait() {
        let mut printed = Lines::default();
        {
            let mut out = PrinterOut::new(&mut printed);
            write!(out, "one\ntw").unwrap();
            out.flush().unwrap();
            write!(out, "o\nthree\n").unwrap();
            out.flush().unwrap();
        }
        assert_eq!(printed.0, ["one", "two", "three"]);
    }
}
