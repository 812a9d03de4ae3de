//! A chat client on a [`KcpClient`]: frames in and out, and what the client must
//! remember to pick up again after a reconnect (nick, resume token, rooms, and the
//! frames the server may not have received).

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use kcp_net::{ClientConfig, KcpClient, NetError};

use crate::protocol::{
    ClientFrame, CodecError, PROTOCOL_VERSION, ServerFrame, decode_server, encode,
};

/// What can go wrong talking to a chat server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// The socket layer failed, or the link to the server did (see
    /// [`is_link_failure`](Self::is_link_failure)).
    #[error(transparent)]
    Net(#[from] NetError),
    /// The server sent a frame we cannot decode (the conversation goes on).
    #[error("undecodable frame from the server: {0}")]
    Codec(#[from] CodecError),
}

impl ChatError {
    /// `true` when the conversation with the server is over and
    /// [`ChatClient::reconnect`] is the way on.
    pub const fn is_link_failure(&self) -> bool {
        match self {
            Self::Net(e) => e.is_link_failure(),
            Self::Codec(_) => false,
        }
    }
}

/// One user's conversation with a chat server.
///
/// [`connect`](Self::connect) sends the hello at once; the server's
/// [`Welcome`](ServerFrame::Welcome) (or error) comes back through
/// [`recv`](Self::recv). The client watches the frames it returns to keep its nick,
/// its resume token and its rooms, which [`reconnect`](Self::reconnect) uses to take up
/// where the lost conversation was.
///
/// # Frames a lost conversation may not have delivered
///
/// A reconnect starts a new KCP conversation and drops what the old one had not got
/// acknowledged. So the client keeps the frames sent through [`send`](Self::send) (and
/// the helpers built on it; hellos and quits excepted) that the server may not have
/// received, and [`reconnect`](Self::reconnect) hands them back, oldest first, for
/// the caller to send again. Delivery is then at least once: a frame the server got
/// but whose acknowledgement the failure swallowed comes back too.
///
/// Memory: the log forgets everything once the server has acknowledged everything
/// sent. While segments wait, only frames that may still hold one are kept. The
/// server delivers in order, so those are the frames holding the last `w + q`
/// segments sent (`w` the send window, the most that can be in flight; `q` the
/// segments still queued). So the log holds at most the frames of
/// `snd_wnd + max_queued_bytes / mss` segments.
///
/// It is driven by its owner's thread, like the [`KcpClient`] under it.
#[derive(Debug)]
pub struct ChatClient {
    kcp: KcpClient,
    nick: String,
    token: Option<u64>,
    rooms: BTreeSet<String>,
    welcomed: bool,
    /// Frames sent that the server may not have received, with their segment counts,
    /// oldest first.
    unacked: VecDeque<(ClientFrame, usize)>,
    /// The sum of `unacked`'s segment counts.
    unacked_segments: usize,
    /// Payload bytes per segment.
    mss: usize,
    /// The engine's send window, in segments: the most that can be in flight.
    send_window: usize,
    /// Stream mode merges messages into segments: segment counts are then unknown,
    /// and the log is only forgotten when everything is acknowledged.
    stream: bool,
}

impl ChatClient {
    /// Opens a conversation with `server` and sends a hello for `nick`.
    ///
    /// # Errors
    /// A socket that cannot be bound, an invalid `config`.
    pub fn connect(
        server: SocketAddr,
        nick: &str,
        config: ClientConfig,
    ) -> Result<Self, ChatError> {
        let mss = config.engine.mss().max(1);
        let send_window = usize::try_from(config.engine.snd_wnd).unwrap_or(usize::MAX);
        let stream = config.engine.stream;
        let kcp = KcpClient::connect(server, config)?;
        let mut client = Self {
            kcp,
            nick: nick.to_owned(),
            token: None,
            rooms: BTreeSet::new(),
            welcomed: false,
            unacked: VecDeque::new(),
            unacked_segments: 0,
            mss,
            send_window,
            stream,
        };
        client.send(&ClientFrame::hello(nick))?;
        Ok(client)
    }

    /// Our nick (as asked, then as the server confirmed).
    pub fn nick(&self) -> &str {
        &self.nick
    }

    /// Whether the server has welcomed us on the current conversation.
    pub const fn welcomed(&self) -> bool {
        self.welcomed
    }

    /// The rooms the server says we are in (kept across reconnects).
    pub const fn rooms(&self) -> &BTreeSet<String> {
        &self.rooms
    }

    /// The KCP client underneath (counters, `mio` registration).
    pub const fn kcp(&self) -> &KcpClient {
        &self.kcp
    }

    /// The KCP client underneath, mutably (to register it with a `mio` poll).
    pub const fn kcp_mut(&mut self) -> &mut KcpClient {
        &mut self.kcp
    }

    /// Frames sent that the server may not have received yet, oldest first (see the
    /// type's docs).
    pub fn unacknowledged(&self) -> impl ExactSizeIterator<Item = &ClientFrame> {
        self.unacked.iter().map(|(frame, _)| frame)
    }

    /// Sends one frame, and keeps it until the server has acknowledged it unless it is
    /// a hello or a quit (see the type's docs).
    ///
    /// # Errors
    /// [`ChatError::Net`]: queue full, or the link failed; the frame was not sent
    /// (nor kept).
    pub fn send(&mut self, frame: &ClientFrame) -> Result<(), ChatError> {
        let bytes = encode(frame)?;
        let segments = bytes.len().div_ceil(self.mss).max(1);
        self.kcp.send_bytes(bytes)?;
        if !matches!(frame, ClientFrame::Hello { .. } | ClientFrame::Quit { .. }) {
            self.unacked.push_back((frame.clone(), segments));
            self.unacked_segments += segments;
        }
        Ok(())
    }

    /// Sends a frame of the client's own making (the hello and joins of a reconnect),
    /// which a later reconnect makes again rather than resends.
    fn send_control(&mut self, frame: &ClientFrame) -> Result<(), ChatError> {
        let bytes = encode(frame)?;
        self.kcp.send_bytes(bytes)?;
        Ok(())
    }

    /// Forgets the logged frames the server has certainly received: all of them when
    /// nothing waits for an acknowledgement, else those older than the last
    /// `send_window + queued` segments (see the type's docs).
    fn forget_acknowledged(&mut self) {
        let waiting = self.kcp.queued_bytes() / self.mss;
        if waiting == 0 {
            self.unacked.clear();
            self.unacked_segments = 0;
            return;
        }
        if self.stream {
            return;
        }
        let keep = waiting.saturating_add(self.send_window);
        while let Some(&(_, oldest)) = self.unacked.front() {
            if self.unacked_segments - oldest < keep {
                break;
            }
            self.unacked.pop_front();
            self.unacked_segments -= oldest;
        }
    }

    /// Says `text` in `room`.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn say(&mut self, room: &str, text: &str) -> Result<(), ChatError> {
        self.send(&ClientFrame::Say {
            room: room.to_owned(),
            text: text.to_owned(),
        })
    }

    /// Sends a fresh hello for `nick` (after the server refused our first one, say
    /// because the nick was taken).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn hello(&mut self, nick: &str) -> Result<(), ChatError> {
        self.nick = nick.to_owned();
        self.send_control(&ClientFrame::hello(nick))
    }

    /// Joins `room`.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn join(&mut self, room: &str) -> Result<(), ChatError> {
        self.send(&ClientFrame::Join {
            room: room.to_owned(),
        })
    }

    /// The next frame from the server, waiting up to `timeout`.
    ///
    /// # Errors
    /// [`ChatError::Net`] when the link failed (see
    /// [`ChatError::is_link_failure`]); [`ChatError::Codec`] for a frame that does not
    /// decode (skip it and call again).
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<ServerFrame>, ChatError> {
        let received = self.kcp.recv(timeout)?;
        self.forget_acknowledged();
        match received {
            Some(bytes) => self.observe(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The next frame if one has arrived, without waiting.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn try_recv(&mut self) -> Result<Option<ServerFrame>, ChatError> {
        let received = self.kcp.try_recv()?;
        self.forget_acknowledged();
        match received {
            Some(bytes) => self.observe(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Waits up to `timeout` until the server has acknowledged everything we sent.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn wait_acknowledged(&mut self, timeout: Duration) -> Result<bool, ChatError> {
        let all = self.kcp.wait_acknowledged(timeout)?;
        self.forget_acknowledged();
        Ok(all)
    }

    /// Sends a quit and waits up to `timeout` for it to be acknowledged.
    ///
    /// # Errors
    /// As [`wait_acknowledged`](Self::wait_acknowledged).
    pub fn quit(&mut self, reason: &str, timeout: Duration) -> Result<bool, ChatError> {
        self.send_control(&ClientFrame::Quit {
            reason: reason.to_owned(),
        })?;
        self.wait_acknowledged(timeout)
    }

    /// Starts a new conversation after a link failure: hello with our resume token
    /// (so the server hands us our nick back from the lost session), then a join for
    /// each room we were in.
    ///
    /// Returns the frames the lost conversation may not have delivered, oldest first
    /// ([`unacknowledged`](Self::unacknowledged) before the call), which are not
    /// resent: send them again to deliver them (at least once), paced if there are
    /// many, as the server limits each client's rate; or tell the user they were not
    /// sent. Joins of rooms the server has since confirmed, and leaves of rooms we are
    /// no longer in, are left out (they took effect).
    ///
    /// # Errors
    /// As [`send`](Self::send). The frames are lost only if the new conversation
    /// cannot be started at all.
    pub fn reconnect(&mut self) -> Result<Vec<ClientFrame>, ChatError> {
        // First the new conversation (in the secure mode a handshake, which fails
        // while the server is unreachable): nothing is taken from us if it fails.
        self.kcp.reconnect()?;
        let rooms = &self.rooms;
        let lost: Vec<ClientFrame> = self
            .unacked
            .drain(..)
            .map(|(frame, _)| frame)
            .filter(|frame| match frame {
                ClientFrame::Join { room } => !rooms.contains(room),
                ClientFrame::Leave { room } => rooms.contains(room),
                _ => true,
            })
            .collect();
        self.unacked_segments = 0;
        self.welcomed = false;
        self.send_control(&ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            nick: self.nick.clone(),
            resume: self.token,
        })?;
        for room in self.rooms.clone() {
            self.send_control(&ClientFrame::Join { room })?;
        }
        Ok(lost)
    }

    /// Decodes a frame and updates what we remember from it.
    fn observe(&mut self, bytes: &[u8]) -> Result<ServerFrame, ChatError> {
        let frame = decode_server(bytes)?;
        match &frame {
            ServerFrame::Welcome { nick, token, .. } => {
                self.welcomed = true;
                self.nick.clone_from(nick);
                self.token = Some(*token);
            }
            ServerFrame::Joined { room, nick } if *nick == self.nick => {
                self.rooms.insert(room.clone());
            }
            ServerFrame::Left { room, nick, .. } if *nick == self.nick => {
                self.rooms.remove(room);
            }
            ServerFrame::NickChanged { old, new } if *old == self.nick => {
                self.nick.clone_from(new);
            }
            _ => {}
        }
        Ok(frame)
    }
}
