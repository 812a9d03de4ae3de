//! [`KcpClient`] events as values, for a game's tick loop: [`KcpClient::poll_event`]
//! and [`KcpClient::drain_events`], beside the blocking calls.

use bytes::Bytes;

use super::KcpClient;
use crate::error::NetError;

/// What happened to a [`KcpClient`], as [`KcpClient::poll_event`] reports it.
///
/// In one conversation the order is: `Connected` once, then `Message`s and
/// `Datagram`s as they arrive, then `Closed` once (after the messages that arrived
/// before the failure). [`KcpClient::reconnect`] starts the sequence again.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The server is there. Secure mode: the handshake completed (so this is the first
    /// event after [`connect`](KcpClient::connect)). Raw mode, which has no
    /// handshake: the first datagram from the server that the engine accepted,
    /// usually the acknowledgement of our first message or keepalive (so send
    /// something first).
    Connected,
    /// A reliable message from the server, in order.
    Message(Bytes),
    /// An unreliable datagram from the server (secure mode).
    Datagram(Bytes),
    /// The conversation ended; the error is what the blocking calls now return:
    /// [`NetError::DeadLink`], [`NetError::ServerGone`] (silent for
    /// [`ClientConfig::server_timeout`](crate::ClientConfig::server_timeout)) or
    /// [`NetError::ClosedByServer`] (secure mode: the server said why). No event
    /// follows until [`reconnect`](KcpClient::reconnect).
    Closed(NetError),
    /// A socket error that did not end the conversation (it is retried at the next
    /// poll).
    Error(NetError),
}

impl KcpClient {
    /// The next event, without blocking. Events already known are returned first;
    /// when there are none, the client does its pending work once (as
    /// [`tick`](Self::tick): reads the socket, runs the timers, sends) and returns
    /// what that produced. `None`: nothing happened.
    ///
    /// Call it in a loop each frame until `None` (or use
    /// [`drain_events`](Self::drain_events)), then sleep until
    /// [`next_deadline`](Self::next_deadline) or the next frame.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        if let Some(event) = self.known_event() {
            return Some(event);
        }
        self.tick_for_events().or_else(|| self.known_event())
    }

    /// Does the pending work once, then yields every event it and earlier calls
    /// produced: a frame's worth of [`poll_event`](Self::poll_event) with one tick.
    ///
    /// The iterator borrows the client. To answer while handling the events (a send
    /// per message, say), loop on `while let Some(event) = client.poll_event()`
    /// instead, which costs one more tick at the end of the frame.
    pub fn drain_events(&mut self) -> impl Iterator<Item = ClientEvent> + '_ {
        let error = self.tick_for_events();
        error
            .into_iter()
            .chain(std::iter::from_fn(move || self.known_event()))
    }

    /// Whether the server is known to be there: secure mode, since the handshake;
    /// raw mode, since its first accepted datagram. `false` once the conversation
    /// failed.
    pub fn is_connected(&self) -> bool {
        self.failure.is_none()
            && (self.config.secure.is_some() || self.conversation.engine().last_heard().is_some())
    }

    /// Ticks (unless the conversation already failed); a socket error that did not
    /// end the conversation becomes an [`ClientEvent::Error`].
    fn tick_for_events(&mut self) -> Option<ClientEvent> {
        if self.failure.is_some() {
            return None;
        }
        let error = self.tick().err()?;
        // A failure is reported by `known_event`, after the messages before it.
        self.failure.is_none().then_some(ClientEvent::Error(error))
    }

    /// The next event already known, without touching the socket.
    fn known_event(&mut self) -> Option<ClientEvent> {
        if !self.events.connected && self.is_connected() {
            self.events.connected = true;
            return Some(ClientEvent::Connected);
        }
        if let Some(message) = self.conversation.recv() {
            return Some(ClientEvent::Message(message));
        }
        if let Some(datagram) = self.conversation.recv_datagram() {
            return Some(ClientEvent::Datagram(datagram));
        }
        if self.events.closed {
            return None;
        }
        let error = self.check_failure().err()?;
        self.events.closed = true;
        Some(ClientEvent::Closed(error))
    }
}

/// Which once-per-conversation events were reported.
#[derive(Debug, Default)]
pub(super) struct Reported {
    connected: bool,
    closed: bool,
}
