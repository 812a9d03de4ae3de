//! A chat client on a [`KcpClient`]: frames in and out, and what the client must
//! remember to pick up again after a reconnect (nick, resume token, rooms).

use std::collections::BTreeSet;
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
/// It is driven by its owner's thread, like the [`KcpClient`] under it.
#[derive(Debug)]
pub struct ChatClient {
    kcp: KcpClient,
    nick: String,
    token: Option<u64>,
    rooms: BTreeSet<String>,
    welcomed: bool,
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
        let kcp = KcpClient::connect(server, config)?;
        let mut client = Self {
            kcp,
            nick: nick.to_owned(),
            token: None,
            rooms: BTreeSet::new(),
            welcomed: false,
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

    /// Sends one frame.
    ///
    /// # Errors
    /// [`ChatError::Net`]: queue full, or the link failed.
    pub fn send(&mut self, frame: &ClientFrame) -> Result<(), ChatError> {
        let bytes = encode(frame)?;
        self.kcp.send_bytes(bytes)?;
        Ok(())
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
        self.send(&ClientFrame::hello(nick))
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
        match self.kcp.recv(timeout)? {
            Some(bytes) => self.observe(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The next frame if one has arrived, without waiting.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn try_recv(&mut self) -> Result<Option<ServerFrame>, ChatError> {
        match self.kcp.try_recv()? {
            Some(bytes) => self.observe(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Waits up to `timeout` until the server has acknowledged everything we sent.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn wait_acknowledged(&mut self, timeout: Duration) -> Result<bool, ChatError> {
        Ok(self.kcp.wait_acknowledged(timeout)?)
    }

    /// Sends a quit and waits up to `timeout` for it to be acknowledged.
    ///
    /// # Errors
    /// As [`wait_acknowledged`](Self::wait_acknowledged).
    pub fn quit(&mut self, reason: &str, timeout: Duration) -> Result<bool, ChatError> {
        self.send(&ClientFrame::Quit {
            reason: reason.to_owned(),
        })?;
        self.wait_acknowledged(timeout)
    }

    /// Starts a new conversation after a link failure: hello with our resume token
    /// (so the server hands us our nick back from the lost session), then a join for
    /// each room we were in.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn reconnect(&mut self) -> Result<(), ChatError> {
        self.kcp.reconnect()?;
        self.welcomed = false;
        self.send(&ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            nick: self.nick.clone(),
            resume: self.token,
        })?;
        for room in self.rooms.clone() {
            self.join(&room)?;
        }
        Ok(())
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
