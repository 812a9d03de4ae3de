//! A bench client's conversation with its server over a lane it shares with others:
//! in the secure mode the handshake first, then the sealed conversation; in raw KCP
//! the conversation from the start. No socket of its own: datagrams come in through
//! [`Link::input`] and leave into the lane's send batch.

use std::net::SocketAddr;
use std::time::Instant;

use kcp_net::secure::{self, ClientHandshake};
use kcp_net::{ClientConfig, Conversation, NetError};

use super::lane::Lane;

/// Where a client's conversation stands.
#[derive(Debug)]
pub(crate) enum Link {
    /// The secure handshake is running.
    Handshake(Box<ClientHandshake>),
    /// The conversation is up.
    Open(Box<Conversation>),
}

/// What a datagram did to a link.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Input {
    /// Fed to the handshake or the conversation.
    Taken,
    /// It completed the handshake: the conversation is up.
    Opened,
    /// The server refused the handshake.
    Refused,
}

/// The key that routes the server's datagrams to a client, in `secure` mode or raw.
pub(crate) fn key_of(secure: bool, datagram: &[u8]) -> Option<u32> {
    if secure {
        secure::receiver_index(datagram)
    } else {
        kcp_net::kcp_core::conv_of(datagram)
    }
}

impl Link {
    /// Starts a conversation of `config` on `lane` at `now`, under a key no other
    /// client of the lane has.
    pub(crate) fn start(
        config: &ClientConfig,
        lane: &Lane,
        now: Instant,
    ) -> Result<Self, NetError> {
        loop {
            let conv = loop {
                let conv: u32 = rand::random();
                if conv != 0 {
                    break conv;
                }
            };
            let link = match &config.secure {
                Some(security) => Self::Handshake(Box::new(ClientHandshake::new(
                    security.clone(),
                    conv,
                    config.conversation(),
                    now,
                )?)),
                None => Self::Open(Box::new(Conversation::new(
                    conv,
                    config.conversation(),
                    now,
                )?)),
            };
            if lane.is_free(link.key()) {
                return Ok(link);
            }
        }
    }

    /// What the server puts at the head of its datagrams to us.
    pub(crate) fn key(&self) -> u32 {
        match self {
            Self::Handshake(handshake) => handshake.sender_index(),
            Self::Open(conversation) => conversation
                .local_index()
                .unwrap_or_else(|| conversation.conv()),
        }
    }

    /// The conversation, once up.
    pub(crate) fn conversation(&mut self) -> Option<&mut Conversation> {
        match self {
            Self::Handshake(_) => None,
            Self::Open(conversation) => Some(conversation),
        }
    }

    /// A datagram from the server.
    pub(crate) fn input(&mut self, now: Instant, datagram: &[u8]) -> Input {
        match self {
            Self::Handshake(handshake) => match handshake.handle(now, datagram) {
                Ok(Some(conversation)) => {
                    *self = Self::Open(Box::new(conversation));
                    Input::Opened
                }
                Ok(None) => Input::Taken,
                Err(_) => Input::Refused,
            },
            Self::Open(conversation) => {
                // A rejected datagram is counted by the conversation.
                let _ = conversation.input(now, datagram);
                Input::Taken
            }
        }
    }

    /// Runs a handshake's timer: the initiation (or its retry) into `lane`'s batch.
    /// Returns when to come back, or `Err` once the handshake timed out. Does nothing
    /// for an open conversation (`Ok(None)`).
    pub(crate) fn drive_handshake(
        &mut self,
        now: Instant,
        server: SocketAddr,
        lane: &mut Lane,
    ) -> Result<Option<Instant>, NetError> {
        let Self::Handshake(handshake) = self else {
            return Ok(None);
        };
        handshake.check_timeout(now)?;
        if let Some(initiation) = handshake.poll_transmit(now) {
            lane.out.push(server, initiation);
        }
        Ok(Some(handshake.next_deadline()))
    }
}
