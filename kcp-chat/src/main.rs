//! `kcp-chat`: chat over KCP. `kcp-chat demo` shows it working in one command.

mod cli;

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    cli::Cli::run().unwrap_or_else(|e| {
        let _ = writeln!(std::io::stderr(), "kcp-chat: {e:#}");
        ExitCode::FAILURE
    })
}
