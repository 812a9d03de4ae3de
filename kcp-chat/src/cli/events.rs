//! What a running server waits for, on one channel: signals (stop, print the
//! counters) and scrapes from the metrics thread.

use std::sync::mpsc::{Sender, SyncSender};

use anyhow::Context as _;
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::{Handle, Signals};

/// Something for the server's main loop to do.
#[derive(Debug)]
pub(super) enum Event {
    /// SIGINT or SIGTERM: tell the clients and shut down.
    Stop,
    /// SIGUSR1: print the counters on stderr and go on.
    Dump,
    /// The metrics thread wants the counters as Prometheus text.
    Scrape(SyncSender<String>),
}

/// Turns SIGINT, SIGTERM and SIGUSR1 into events on `events`, from a thread of
/// signal-hook's; [`Handle::close`] stops it.
///
/// # Errors
/// The handlers cannot be installed.
pub(super) fn watch_signals(events: Sender<Event>) -> anyhow::Result<Handle> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGUSR1])
        .context("installing the SIGINT/SIGTERM/SIGUSR1 handlers")?;
    let handle = signals.handle();
    std::thread::Builder::new()
        .name("kcp-chat-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let event = if signal == SIGUSR1 {
                    Event::Dump
                } else {
                    Event::Stop
                };
                if events.send(event).is_err() {
                    break;
                }
            }
        })
        .context("starting the signal thread")?;
    Ok(handle)
}
