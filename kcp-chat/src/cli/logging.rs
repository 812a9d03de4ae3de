//! Log output on stderr.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Logs to stderr with `flag` as the filter, else `RUST_LOG`, else `default`.
pub(crate) fn init(flag: Option<&str>, default: &str) {
    let filter = match flag {
        Some(f) => EnvFilter::new(f),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
    };
    // A log pipe whose reader went away must not stop anything: write errors are
    // dropped (not reported with `eprintln!`, which panics on a closed stderr).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .log_internal_errors(false)
        .try_init();
}
