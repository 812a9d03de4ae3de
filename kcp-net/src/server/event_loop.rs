//! One event loop thread of the threaded server: a [`ServerDriver`], the requests
//! other threads post to it, and the [`EventHandler`] its events go to.
//!
//! Each turn:
//!
//! 1. Pick the poll timeout: zero if the socket may still hold data, else the
//!    driver's next deadline (session timers, the impaired link's next release, the
//!    shutdown deadline; `mio` rounds sub-millisecond timeouts up, so the loop never
//!    spins on a deadline that is less than 1 ms away).
//! 2. Poll. The socket event marks the socket readable; the waker needs no handling,
//!    since requests are drained every turn.
//! 3. Apply the requests from other threads.
//! 4. Read the socket into the sessions (at most
//!    [`MAX_DATAGRAMS_PER_TURN`](crate::server::driver::MAX_DATAGRAMS_PER_TURN)) and
//!    hand the events (opened, message) to the handler, whose replies dirty their
//!    sessions.
//! 5. Tick the driver: due timers, every touched session driven and rescheduled,
//!    finished ones closed, the whole turn's datagrams sent in as few syscalls as the
//!    backend allows. Hand the `Closed` events to the handler.
//!
//! A handler method that panics is caught: its session is closed at once with
//! [`CloseReason::HandlerPanicked`] and the loop goes on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Instant;

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::config::ServerConfig;
use crate::error::NetError;
use crate::lifecycle::CloseReason;
use crate::server::driver::{ServerDriver, ServerEvent};
use crate::server::handle::ServerHandle;
use crate::server::handler::{CloseCtx, EventHandler, SessionCtx};
use crate::server::request::{Request, Shared, mark_loop_thread};
use crate::store::SessionKey;

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

/// A loop before it runs on its thread.
#[derive(Debug)]
pub(crate) struct EventLoop {
    poll: Poll,
    driver: ServerDriver,
    requests: Receiver<Request>,
    shared: Arc<Shared>,
}

impl EventLoop {
    /// Registers `socket` and a waker with a new poll.
    pub(crate) fn new(
        id: u16,
        mut socket: UdpSocket,
        requests: Receiver<Request>,
        config: Arc<ServerConfig>,
        shared: Arc<Shared>,
    ) -> Result<(Self, Arc<Waker>), NetError> {
        let poll = Poll::new().map_err(|e| NetError::io("creating a poll", e))?;
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE)
            .map_err(|e| NetError::io("registering the socket", e))?;
        let waker =
            Waker::new(poll.registry(), WAKER).map_err(|e| NetError::io("creating a waker", e))?;
        let driver =
            ServerDriver::with_socket(id, socket, config, Arc::clone(&shared), Instant::now());
        let event_loop = Self {
            poll,
            driver,
            requests,
            shared,
        };
        Ok((event_loop, Arc::new(waker)))
    }

    /// Runs until shut down.
    pub(crate) fn run<H: EventHandler>(
        self,
        handler: H,
        handle: ServerHandle,
    ) -> Result<(), NetError> {
        mark_loop_thread();
        let Self {
            mut poll,
            driver,
            requests,
            shared,
        } = self;
        let loop_id = driver.loop_id();
        tracing::info!(loop_id, addr = %handle.local_addr(), "event loop started");
        let mut running = Running {
            driver,
            handler,
            handle,
            shared,
        };
        let result = running.turns(&mut poll, &requests);
        let now = Instant::now();
        running.driver.close_all(now);
        running.dispatch(now);
        running.publish();
        match &result {
            Ok(()) => tracing::info!(loop_id, "event loop stopped"),
            Err(e) => tracing::error!(loop_id, error = %e, "event loop stopped on an error"),
        }
        result
    }
}

/// A loop on its thread: the driver and the handler its events go to.
struct Running<H> {
    driver: ServerDriver,
    handler: H,
    handle: ServerHandle,
    shared: Arc<Shared>,
}

impl<H: EventHandler> Running<H> {
    fn turns(&mut self, poll: &mut Poll, requests: &Receiver<Request>) -> Result<(), NetError> {
        let mut events = Events::with_capacity(16);
        loop {
            let now = Instant::now();
            let timeout = self
                .driver
                .next_deadline(now)
                .map(|at| at.saturating_duration_since(now));
            if let Err(e) = poll.poll(&mut events, timeout) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(NetError::io("polling", e));
            }
            self.driver.count_wakeup();
            let woke = Instant::now();
            self.driver
                .record_poll_wait(woke.saturating_duration_since(now), woke);
            if events.iter().any(|e| e.token() == SOCKET) {
                self.driver.set_readable();
            }
            let now = woke;
            while let Ok(request) = requests.try_recv() {
                self.driver.count_request();
                self.request(request, now);
            }
            self.receive(now);
            self.forward();
            self.dispatch(now);
            self.driver.tick(now);
            self.dispatch(now);
            self.publish();
            if self.driver.is_finished() {
                return Ok(());
            }
        }
    }

    fn publish(&self) {
        let id = usize::from(self.driver.loop_id());
        self.shared.stats[id].publish(&self.driver.stats());
    }

    /// Reads the socket, asking the handler (guarded) before a session opens.
    fn receive(&mut self, now: Instant) {
        let handler = &mut self.handler;
        let mut panics = 0;
        let mut accept =
            |peer, conv| match catch_unwind(AssertUnwindSafe(|| handler.accept(peer, conv))) {
                Ok(accepted) => accepted,
                Err(_) => {
                    panics += 1;
                    tracing::warn!(%peer, conv, "EventHandler::accept panicked; session refused");
                    false
                }
            };
        self.driver.poll_io_with(now, &mut accept);
        for _ in 0..panics {
            self.driver.count_handler_panic();
        }
    }

    /// Posts the sealed datagrams this turn read for other loops' sessions to them.
    fn forward(&mut self) {
        for (owner, from, datagram) in self.driver.take_forwards() {
            if self.handle.post_datagram(owner, from, datagram).is_err() {
                self.shared.forwards.give_back();
            }
        }
    }

    /// Hands every pending event to the handler.
    fn dispatch(&mut self, now: Instant) {
        while let Some(event) = self.driver.next_event() {
            match event {
                ServerEvent::Opened { key, .. } => {
                    self.call(key, now, |handler, ctx| handler.on_open(ctx));
                }
                ServerEvent::Message { key, message } => {
                    self.call(key, now, |handler, ctx| handler.on_message(ctx, message));
                }
                ServerEvent::Datagram { key, datagram } => {
                    self.call(key, now, |handler, ctx| handler.on_datagram(ctx, datagram));
                }
                ServerEvent::Closed {
                    key,
                    reason,
                    session,
                } => {
                    let ctx = CloseCtx {
                        session: &session,
                        handle: &self.handle,
                    };
                    let handler = &mut self.handler;
                    if catch_unwind(AssertUnwindSafe(|| handler.on_close(&ctx, reason))).is_err() {
                        self.driver.count_handler_panic();
                        tracing::warn!(%key, "EventHandler::on_close panicked");
                    }
                }
            }
        }
    }

    /// Calls the handler with a context for `key`'s session, if it still exists (a
    /// session closed after a panic gets no more calls). A panic closes the session.
    fn call(&mut self, key: SessionKey, now: Instant, f: impl FnOnce(&mut H, &mut SessionCtx<'_>)) {
        let linger = self.driver.config().close_linger;
        let Some((entry, stats)) = self.driver.entry_and_stats(key) else {
            return;
        };
        let mut ctx = SessionCtx {
            entry,
            stats,
            handle: &self.handle,
            linger,
            now,
        };
        let handler = &mut self.handler;
        if catch_unwind(AssertUnwindSafe(|| f(handler, &mut ctx))).is_err() {
            self.driver.count_handler_panic();
            tracing::warn!(%key, "an EventHandler method panicked; closing its session");
            self.driver
                .close_now(key, CloseReason::HandlerPanicked, now);
        }
    }

    fn request(&mut self, request: Request, now: Instant) {
        let driver = &mut self.driver;
        match request {
            Request::Send {
                key,
                message,
                reply,
            } => {
                let result = driver.send(now, key, message).map_err(NetError::from);
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            Request::SendMany {
                keys,
                message,
                reply,
            } => {
                let accepted = keys
                    .into_iter()
                    .filter(|&key| driver.send(now, key, message.clone()).is_ok())
                    .count();
                if let Some(reply) = reply {
                    let _ = reply.send(accepted);
                }
            }
            Request::Broadcast { message, reply } => {
                let accepted = driver.broadcast(now, message);
                if let Some(reply) = reply {
                    let _ = reply.send(accepted);
                }
            }
            Request::Close { key, reply } => {
                let result = driver.close(now, key);
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            Request::Stats { key, reply } => {
                let stats = driver.session(key).map(|s| s.stats());
                let _ = reply.send(stats.ok_or(NetError::SessionClosed));
            }
            Request::List { reply } => {
                let _ = reply.send(driver.session_infos());
            }
            Request::Shutdown { deadline } => driver.shutdown(deadline),
            Request::Datagram { from, datagram } => driver.forwarded(now, from, &datagram),
        }
    }
}
