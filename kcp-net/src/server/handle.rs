//! The cross-thread handle of a threaded server: [`ServerHandle`] posts requests to
//! the loops and, off a loop thread, waits for their answers.

use std::net::SocketAddr;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, atomic::Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::Waker;

use crate::error::NetError;
use crate::server::request::{Request, SessionInfo, Shared, on_loop_thread};
use crate::stats::{ServerStats, SessionStats};
use crate::store::SessionKey;

/// How a handle reaches one loop.
#[derive(Debug)]
pub(crate) struct Remote {
    pub(crate) requests: Sender<Request>,
    pub(crate) waker: Arc<Waker>,
}

/// A cloneable, `Send` handle to a running server: send to any session or set of
/// sessions, broadcast, close, read counters, shut down.
///
/// Calls that need an answer from a loop ([`send`](Self::send),
/// [`send_to_many`](Self::send_to_many), [`broadcast`](Self::broadcast),
/// [`close`](Self::close), [`session_stats`](Self::session_stats),
/// [`sessions`](Self::sessions)) wait for it when made from an ordinary thread. From a
/// loop thread (inside a handler) waiting could deadlock, so `send`, `send_to_many`,
/// `broadcast` and `close` post and return at once (failures are counted in the loop's
/// `sends_refused`), and the others return [`NetError::OnLoopThread`].
///
/// Commands from one thread reach a loop in the order they were posted, so messages
/// posted to a session with `send`, `send_to_many` and `broadcast` arrive in that order.
#[derive(Clone, Debug)]
pub struct ServerHandle {
    pub(crate) remotes: Arc<[Remote]>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) local_addr: SocketAddr,
}

impl ServerHandle {
    /// The address the server's sockets are bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    fn post(&self, loop_id: usize, request: Request) -> Result<(), NetError> {
        let remote = self.remotes.get(loop_id).ok_or(NetError::SessionClosed)?;
        remote
            .requests
            .send(request)
            .map_err(|_| NetError::Shutdown)?;
        remote
            .waker
            .wake()
            .map_err(|e| NetError::io("waking an event loop", e))
    }

    /// Hands a sealed datagram to loop `loop_id`, which holds its session.
    pub(crate) fn post_datagram(
        &self,
        loop_id: usize,
        from: SocketAddr,
        datagram: Bytes,
    ) -> Result<(), NetError> {
        self.post(loop_id, Request::Datagram { from, datagram })
    }

    /// Posts a command that carries a reply channel and waits for the answer.
    fn ask<T>(
        &self,
        loop_id: usize,
        make: impl FnOnce(mpsc::SyncSender<T>) -> Request,
    ) -> Result<T, NetError> {
        if on_loop_thread() {
            return Err(NetError::OnLoopThread);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.post(loop_id, make(tx))?;
        rx.recv().map_err(|_| NetError::Shutdown)
    }

    /// Queues a message to a session and waits until its loop accepted or refused it.
    ///
    /// # Errors
    /// [`NetError::SessionClosed`] for a closed or closing session, the limits of
    /// [`SessionCtx::send`](crate::SessionCtx::send), [`NetError::Shutdown`] after shutdown.
    pub fn send(&self, key: SessionKey, message: impl Into<Bytes>) -> Result<(), NetError> {
        let message = message.into();
        if on_loop_thread() {
            let request = Request::Send {
                key,
                message,
                reply: None,
            };
            return self.post(key.loop_id(), request);
        }
        self.ask(key.loop_id(), |reply| Request::Send {
            key,
            message,
            reply: Some(reply),
        })?
    }

    /// Posts a command that answers with a count; returns the channel the answer
    /// comes on, or `None` on a loop thread, where the caller must not wait.
    fn post_counting(
        &self,
        loop_id: usize,
        make: impl FnOnce(Option<mpsc::SyncSender<usize>>) -> Request,
    ) -> Result<Option<mpsc::Receiver<usize>>, NetError> {
        if on_loop_thread() {
            return self.post(loop_id, make(None)).map(|()| None);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.post(loop_id, make(Some(tx))).map(|()| Some(rx))
    }

    /// Queues one message to each session in `keys`, with one command per event loop
    /// however many of its sessions are listed. The message is shared, not copied: each
    /// session's engine slices the same buffer. Off a loop thread it waits and returns
    /// how many sessions accepted it; on a loop thread it returns at once how many keys
    /// it posted (as [`send`](Self::send) returns `Ok` once posted). Sessions that are
    /// closed, closing or over their queue limit are skipped and counted in
    /// `sends_refused`. A key listed twice gets the message twice.
    ///
    /// For a chat room, say: cheaper than a `send` per member, which wakes a loop per
    /// member.
    ///
    /// # Errors
    /// [`NetError::Shutdown`] if none of the listed sessions' loops is running.
    pub fn send_to_many(
        &self,
        keys: impl IntoIterator<Item = SessionKey>,
        message: impl Into<Bytes>,
    ) -> Result<usize, NetError> {
        let message = message.into();
        let mut per_loop = vec![Vec::new(); self.remotes.len()];
        for key in keys {
            // A key of another server may name no loop of ours: it is refused.
            if let Some(keys) = per_loop.get_mut(key.loop_id()) {
                keys.push(key);
            }
        }
        let (mut attempts, mut posted) = (0, 0);
        let mut replies = Vec::new();
        for (loop_id, keys) in per_loop.into_iter().enumerate() {
            if keys.is_empty() {
                continue;
            }
            attempts += 1;
            let count = keys.len();
            let request = |reply| Request::SendMany {
                keys,
                message: message.clone(),
                reply,
            };
            if let Ok(reply) = self.post_counting(loop_id, request) {
                posted += count;
                replies.extend(reply);
            }
        }
        if attempts > 0 && posted == 0 {
            return Err(NetError::Shutdown);
        }
        if on_loop_thread() {
            return Ok(posted);
        }
        Ok(replies.into_iter().filter_map(|rx| rx.recv().ok()).sum())
    }

    /// Queues a message to every active session of every loop. Off a loop thread it
    /// waits and returns how many sessions accepted it; on a loop thread it returns
    /// `Ok(0)` at once. Sessions over their queue limit are skipped and counted.
    ///
    /// # Errors
    /// [`NetError::Shutdown`] if no loop is running.
    pub fn broadcast(&self, message: impl Into<Bytes>) -> Result<usize, NetError> {
        let message = message.into();
        let mut replies = Vec::new();
        let mut posted = 0;
        for loop_id in 0..self.remotes.len() {
            let request = |reply| Request::Broadcast {
                message: message.clone(),
                reply,
            };
            if let Ok(reply) = self.post_counting(loop_id, request) {
                posted += 1;
                replies.extend(reply);
            }
        }
        if posted == 0 {
            return Err(NetError::Shutdown);
        }
        Ok(replies.into_iter().filter_map(|rx| rx.recv().ok()).sum())
    }

    /// Closes a session once what it has queued is acknowledged (or after
    /// `close_linger`).
    ///
    /// # Errors
    /// [`NetError::SessionClosed`] if it is already gone.
    pub fn close(&self, key: SessionKey) -> Result<(), NetError> {
        if on_loop_thread() {
            return self.post(key.loop_id(), Request::Close { key, reply: None });
        }
        self.ask(key.loop_id(), |reply| Request::Close {
            key,
            reply: Some(reply),
        })?
    }

    /// One session's counters.
    ///
    /// # Errors
    /// [`NetError::SessionClosed`] if it is gone; [`NetError::OnLoopThread`] in a handler.
    pub fn session_stats(&self, key: SessionKey) -> Result<SessionStats, NetError> {
        self.ask(key.loop_id(), |reply| Request::Stats { key, reply })?
    }

    /// Every open session of every loop.
    ///
    /// # Errors
    /// [`NetError::OnLoopThread`] in a handler; [`NetError::Shutdown`] if no loop runs.
    pub fn sessions(&self) -> Result<Vec<SessionInfo>, NetError> {
        let mut all = Vec::new();
        let mut any = false;
        for loop_id in 0..self.remotes.len() {
            match self.ask(loop_id, |reply| Request::List { reply }) {
                Ok(list) => {
                    any = true;
                    all.extend(list);
                }
                Err(NetError::Shutdown) => {}
                Err(e) => return Err(e),
            }
        }
        if any {
            Ok(all)
        } else {
            Err(NetError::Shutdown)
        }
    }

    /// Sessions open now, over all loops.
    pub fn session_count(&self) -> usize {
        self.shared.sessions.load(Ordering::Relaxed)
    }

    /// Every loop's counters, published at the end of each loop turn.
    pub fn stats(&self) -> ServerStats {
        ServerStats::from_loops(self.shared.stats.iter().map(|s| s.snapshot()).collect())
    }

    /// Starts a graceful shutdown: no new sessions; every session closes once its
    /// queued data is acknowledged, or with [`CloseReason::Shutdown`](crate::CloseReason::Shutdown) when `deadline`
    /// passes; then the loops exit. Returns at once; [`KcpServer::join`](crate::KcpServer::join) waits.
    pub fn shutdown(&self, deadline: Duration) {
        let deadline = Instant::now() + deadline;
        for loop_id in 0..self.remotes.len() {
            let _ = self.post(loop_id, Request::Shutdown { deadline });
        }
    }
}
