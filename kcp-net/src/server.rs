//! `KcpServer`: binds the sockets, starts the loops, and hands out `ServerHandle`s.

use std::net::SocketAddr;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, atomic::Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::Waker;

use crate::command::{Command, SessionInfo, Shared, on_loop_thread};
use crate::config::ServerConfig;
use crate::error::NetError;
use crate::event_loop::EventLoop;
use crate::session::{CloseReason, KcpSession};
use crate::stats::{LoopStats, ServerStats, SessionStats};
use crate::store::SessionKey;
use crate::udp::{self, SocketOptions};

/// What a server does with its sessions. One clone runs on each event loop (thread),
/// and is called only from that thread, so it needs no locks of its own.
///
/// Calls happen inside the loop: keep them short, and do not block. To hand work to
/// other threads, send it through a channel; to reply, use the [`SessionCtx`].
pub trait EventHandler: Send + 'static {
    /// A datagram from a new (peer, conv) wants to open a session. Return `false` to
    /// refuse it (counted as `dropped_refused`). Called after the `max_sessions` and
    /// rate checks. Default: accept.
    fn accept(&mut self, peer: SocketAddr, conv: u32) -> bool {
        let _ = (peer, conv);
        true
    }

    /// A session was opened; its first datagram is processed right after.
    fn on_open(&mut self, session: &mut SessionCtx<'_>) {
        let _ = session;
    }

    /// A whole message arrived (empty messages are keepalives and do not arrive here
    /// unless `swallow_empty_messages` is off).
    fn on_message(&mut self, session: &mut SessionCtx<'_>, message: Bytes);

    /// A session was closed and removed. `session` shows its final state and counters,
    /// and its [`handle`](CloseCtx::handle) reaches the rest of the server (tell the
    /// other sessions, say). Its key is stale from now on: sends to it are refused.
    fn on_close(&mut self, session: &CloseCtx<'_>, reason: CloseReason) {
        let _ = (session, reason);
    }
}

/// A handler's view of a session that was just closed and removed, in
/// [`EventHandler::on_close`]: its final state and counters, and the server's handle.
#[derive(Debug)]
pub struct CloseCtx<'a> {
    pub(crate) session: &'a KcpSession,
    pub(crate) handle: &'a ServerHandle,
}

impl CloseCtx<'_> {
    /// The session as it ended (state, counters, timestamps, peer, conv).
    pub fn session(&self) -> &KcpSession {
        self.session
    }

    /// The key the session had; no longer valid.
    pub fn key(&self) -> SessionKey {
        self.session.key()
    }

    /// The server's handle, as in [`SessionCtx::handle`]: calls on it post work
    /// without waiting. When a session closes because its loop is stopping (the
    /// loop's last sessions at shutdown), what is posted may never run.
    pub fn handle(&self) -> &ServerHandle {
        self.handle
    }
}

/// A handler's access to one session during a callback: reply, close, read counters,
/// and reach the rest of the server through [`handle`](Self::handle).
#[derive(Debug)]
pub struct SessionCtx<'a> {
    pub(crate) session: &'a mut KcpSession,
    pub(crate) handle: &'a ServerHandle,
    pub(crate) limit: usize,
    pub(crate) linger: Duration,
    pub(crate) now: Instant,
    pub(crate) dirty: &'a mut Vec<SessionKey>,
    pub(crate) refused: &'a mut u64,
    pub(crate) queued: &'a mut u64,
}

impl<'a> SessionCtx<'a> {
    /// A context for `session` inside a loop turn at `now`: sends obey `config`'s
    /// limits, dirty the session in `dirty` and are counted in `stats`.
    pub(crate) fn new(
        session: &'a mut KcpSession,
        handle: &'a ServerHandle,
        config: &ServerConfig,
        now: Instant,
        dirty: &'a mut Vec<SessionKey>,
        stats: &'a mut LoopStats,
    ) -> Self {
        Self {
            session,
            handle,
            limit: config.max_queued_bytes_per_session,
            linger: config.close_linger,
            now,
            dirty,
            refused: &mut stats.sends_refused,
            queued: &mut stats.messages_out,
        }
    }

    /// The session's key, valid on any thread through a [`ServerHandle`].
    pub fn key(&self) -> SessionKey {
        self.session.key()
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.session.peer()
    }

    /// The conversation id.
    pub fn conv(&self) -> u32 {
        self.session.conv()
    }

    /// The session itself (state, counters, timestamps).
    pub fn session(&self) -> &KcpSession {
        self.session
    }

    /// Queues a message to the peer (copied once).
    ///
    /// # Errors
    /// [`NetError::QueueFull`] beyond `max_queued_bytes_per_session`,
    /// [`NetError::Send`] if the engine refuses it, [`NetError::SessionClosed`] if the
    /// session is closing.
    pub fn send(&mut self, message: &[u8]) -> Result<(), NetError> {
        self.send_bytes(Bytes::copy_from_slice(message))
    }

    /// Queues a message without copying (the engine's segments slice it).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn send_bytes(&mut self, message: Bytes) -> Result<(), NetError> {
        let result = self.session.queue(message, self.limit);
        match result {
            Ok(()) => *self.queued += 1,
            Err(_) => *self.refused += 1,
        }
        self.mark_dirty();
        result
    }

    /// Closes the session once what it has queued is acknowledged, or after the
    /// configured `close_linger`.
    pub fn close(&mut self) {
        self.session
            .close(CloseReason::Local, self.now + self.linger);
        self.mark_dirty();
    }

    /// The server's handle: send to other sessions, broadcast, stats. Calls on it from
    /// a handler post work without waiting (see [`ServerHandle`]).
    pub fn handle(&self) -> &ServerHandle {
        self.handle
    }

    fn mark_dirty(&mut self) {
        if !self.session.dirty {
            self.session.dirty = true;
            self.dirty.push(self.session.key());
        }
    }
}

/// How a handle reaches one loop.
#[derive(Debug)]
pub(crate) struct Remote {
    pub(crate) commands: Sender<Command>,
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

    fn post(&self, loop_id: usize, command: Command) -> Result<(), NetError> {
        let remote = self.remotes.get(loop_id).ok_or(NetError::SessionClosed)?;
        remote
            .commands
            .send(command)
            .map_err(|_| NetError::Shutdown)?;
        remote
            .waker
            .wake()
            .map_err(|e| NetError::io("waking an event loop", e))
    }

    /// Posts a command that carries a reply channel and waits for the answer.
    fn ask<T>(
        &self,
        loop_id: usize,
        make: impl FnOnce(mpsc::SyncSender<T>) -> Command,
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
    /// [`SessionCtx::send`], [`NetError::Shutdown`] after shutdown.
    pub fn send(&self, key: SessionKey, message: impl Into<Bytes>) -> Result<(), NetError> {
        let message = message.into();
        if on_loop_thread() {
            let command = Command::Send {
                key,
                message,
                reply: None,
            };
            return self.post(key.loop_id(), command);
        }
        self.ask(key.loop_id(), |reply| Command::Send {
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
        make: impl FnOnce(Option<mpsc::SyncSender<usize>>) -> Command,
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
            let command = |reply| Command::SendMany {
                keys,
                message: message.clone(),
                reply,
            };
            if let Ok(reply) = self.post_counting(loop_id, command) {
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
            let command = |reply| Command::Broadcast {
                message: message.clone(),
                reply,
            };
            if let Ok(reply) = self.post_counting(loop_id, command) {
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
            return self.post(key.loop_id(), Command::Close { key, reply: None });
        }
        self.ask(key.loop_id(), |reply| Command::Close {
            key,
            reply: Some(reply),
        })?
    }

    /// One session's counters.
    ///
    /// # Errors
    /// [`NetError::SessionClosed`] if it is gone; [`NetError::OnLoopThread`] in a handler.
    pub fn session_stats(&self, key: SessionKey) -> Result<SessionStats, NetError> {
        self.ask(key.loop_id(), |reply| Command::Stats { key, reply })?
    }

    /// Every open session of every loop.
    ///
    /// # Errors
    /// [`NetError::OnLoopThread`] in a handler; [`NetError::Shutdown`] if no loop runs.
    pub fn sessions(&self) -> Result<Vec<SessionInfo>, NetError> {
        let mut all = Vec::new();
        let mut any = false;
        for loop_id in 0..self.remotes.len() {
            match self.ask(loop_id, |reply| Command::List { reply }) {
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
    /// queued data is acknowledged, or with [`CloseReason::Shutdown`] when `deadline`
    /// passes; then the loops exit. Returns at once; [`KcpServer::join`] waits.
    pub fn shutdown(&self, deadline: Duration) {
        let deadline = Instant::now() + deadline;
        for loop_id in 0..self.remotes.len() {
            let _ = self.post(loop_id, Command::Shutdown { deadline });
        }
    }
}

/// A KCP server over UDP: one event loop per thread, sessions keyed by (peer address,
/// conv), an [`EventHandler`] per loop.
///
/// Dropping it shuts it down at once (pending data is abandoned); call
/// [`shutdown`](Self::shutdown) to let pending data drain first.
#[derive(Debug)]
pub struct KcpServer {
    handle: ServerHandle,
    threads: Vec<JoinHandle<Result<(), NetError>>>,
}

impl KcpServer {
    /// Binds `config.threads` sockets to `addr` (port 0 picks one port for all) and
    /// starts one event loop thread per socket, each with a clone of `handler`.
    ///
    /// # Errors
    /// [`NetError::Bind`] if a socket cannot be bound, [`NetError::Config`] /
    /// [`NetError::Setting`] for an invalid `config`, [`NetError::Io`] if a poll or
    /// thread cannot be created.
    pub fn bind<H: EventHandler + Clone>(
        addr: SocketAddr,
        config: ServerConfig,
        handler: H,
    ) -> Result<Self, NetError> {
        config.validate()?;
        let config = Arc::new(config);
        let now = Instant::now();
        let options = SocketOptions {
            reuse_port: config.threads > 1,
            recv_buffer: config.recv_buffer,
            send_buffer: config.send_buffer,
        };
        let mut sockets = Vec::with_capacity(config.threads);
        let mut bind_addr = addr;
        for _ in 0..config.threads {
            let socket = udp::bind(bind_addr, options)?;
            if bind_addr.port() == 0 {
                let local = socket
                    .local_addr()
                    .map_err(|e| NetError::io("reading the bound address", e))?;
                bind_addr.set_port(local.port());
            }
            sockets.push(socket);
        }
        let shared = Shared::new(config.threads, config.new_sessions_per_sec, now);
        let mut loops = Vec::with_capacity(config.threads);
        let mut remotes = Vec::with_capacity(config.threads);
        for (id, socket) in sockets.into_iter().enumerate() {
            let (tx, rx) = mpsc::channel();
            let (event_loop, waker) = EventLoop::new(
                id as u16,
                socket,
                rx,
                Arc::clone(&config),
                Arc::clone(&shared),
            )?;
            remotes.push(Remote {
                commands: tx,
                waker,
            });
            loops.push(event_loop);
        }
        let handle = ServerHandle {
            remotes: remotes.into(),
            shared,
            local_addr: bind_addr,
        };
        let mut threads = Vec::with_capacity(loops.len());
        for (id, event_loop) in loops.into_iter().enumerate() {
            let handler = handler.clone();
            let handle = handle.clone();
            let thread = std::thread::Builder::new()
                .name(format!("kcp-net-loop-{id}"))
                .spawn(move || event_loop.run(handler, handle))
                .map_err(|e| NetError::io("spawning an event loop thread", e))?;
            threads.push(thread);
        }
        Ok(Self { handle, threads })
    }

    /// A handle for other threads.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// The address the sockets are bound to (with the port picked, if 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr
    }

    /// Shuts down gracefully (see [`ServerHandle::shutdown`]), waits for the loops and
    /// returns the final counters.
    ///
    /// # Errors
    /// The first error a loop stopped with.
    pub fn shutdown(mut self, deadline: Duration) -> Result<ServerStats, NetError> {
        self.handle.shutdown(deadline);
        self.join_threads()?;
        Ok(self.handle.stats())
    }

    /// Waits until the loops exit (after a [`ServerHandle::shutdown`] from elsewhere).
    ///
    /// # Errors
    /// The first error a loop stopped with.
    pub fn join(mut self) -> Result<ServerStats, NetError> {
        self.join_threads()?;
        Ok(self.handle.stats())
    }

    fn join_threads(&mut self) -> Result<(), NetError> {
        let mut first = Ok(());
        for thread in self.threads.drain(..) {
            let result = thread.join().unwrap_or_else(|_| {
                Err(NetError::io(
                    "event loop thread",
                    std::io::Error::other("a handler panicked"),
                ))
            });
            if first.is_ok() {
                first = result;
            }
        }
        first
    }
}

impl Drop for KcpServer {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.handle.shutdown(Duration::ZERO);
            let _ = self.join_threads();
        }
    }
}
