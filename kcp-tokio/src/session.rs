//! The state a stream and its driver task share: one [`Conversation`] behind a std
//! `Mutex` (held for short, non-async sections only), the wakers of the stream's
//! reader and writer, and the driver's "come and look" list.
//!
//! A stream's task drives its conversation itself when it sends or takes a message,
//! and sends what that emits straight on the shared socket: a reply leaves in the
//! turn that wrote it, and the ACKs owed leave once the message is taken, with no
//! hop through the driver task (which would cost a wake-up and a scheduling delay
//! per message). The driver is woken only for what the stream's task cannot do: arm
//! a sooner timer, close the session, or send what a full socket buffer refused.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kcp_net::udp::SendBatch;
use kcp_net::{CloseReason, Conversation, QueueError, SessionState, SessionStats, WireMode};

use crate::socket::Reader;
use crate::udp::Udp;
use tokio::sync::Notify;

/// What the streams of one driver tell it: which sessions to look at, and whether
/// the owner (listener or client stream) is gone.
#[derive(Debug, Default)]
pub(crate) struct DriverShared {
    /// Ids of sessions touched by their streams since the driver last looked. Each
    /// id is listed at most once (the session's `dirty` flag), so the list is bounded
    /// by the number of sessions.
    dirty: Mutex<Vec<u64>>,
    /// Wakes the driver; a notification sent while it is busy is kept (one permit).
    pub(crate) notify: Notify,
    /// The listener was dropped: close every session and stop.
    pub(crate) shutdown: AtomicBool,
    /// What the streams' tasks sent themselves since the driver's last turn.
    spill: Mutex<Spill>,
}

/// The streams' own sends, as the driver collects them each turn: counters for its
/// [`LoopStats`](kcp_net::LoopStats), and the datagrams a full socket buffer refused,
/// which the driver sends in its turn (waiting for room as it does for its own). The
/// batch is bounded by the engines' send windows: a refused datagram is in flight as
/// far as its engine knows, so no engine emits more of them than its window holds.
#[derive(Debug, Default)]
pub(crate) struct Spill {
    /// Datagrams the socket refused with `WouldBlock`, in order.
    pub(crate) batch: SendBatch,
    pub(crate) datagrams: u64,
    pub(crate) bytes: u64,
    pub(crate) syscalls: u64,
    pub(crate) errors: u64,
    pub(crate) retransmits: u64,
}

impl DriverShared {
    /// Takes the touched ids.
    pub(crate) fn take_dirty(&self, into: &mut Vec<u64>) {
        into.append(&mut lock(&self.dirty));
    }

    /// Lists `id` for the driver and wakes it.
    pub(crate) fn mark(&self, id: u64) {
        lock(&self.dirty).push(id);
        self.notify.notify_one();
    }

    /// Swaps out what the streams' tasks sent since the last call.
    pub(crate) fn take_spill(&self, into: &mut Spill) {
        std::mem::swap(&mut *lock(&self.spill), into);
    }

    /// Asks the driver to close everything and stop.
    pub(crate) fn shut_down(&self) {
        self.shutdown.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }
}

/// Locks a mutex; a poisoned lock (a panic while held, which our sections do not do
/// on peer input) still yields its data.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One session as its stream and its driver share it.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: u64,
    /// The peer's first address: the one the admission limits counted it under (and,
    /// in raw mode, its route). Its current one is [`State::peer`].
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) conv: u32,
    /// How long a stream dropped with data queued keeps delivering it.
    pub(crate) linger: Duration,
    pub(crate) span: tracing::Span,
    pub(crate) state: Mutex<State>,
    pub(crate) driver: Arc<DriverShared>,
    /// The driver's socket, for the stream task's own sends (and a client's reads).
    pub(crate) udp: Arc<Udp>,
}

/// The mutable part of a [`Session`].
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) conversation: Conversation,
    /// The peer's current address: a secure session follows its peer to a new one.
    pub(crate) peer: SocketAddr,
    /// The deadline the driver's timer holds for this session (`None`: no timer).
    pub(crate) next_wake: Option<Instant>,
    /// When the driver's heap entry for this session comes up (at or before
    /// `next_wake`; `None`: no entry). Only that entry counts: the others are older,
    /// and are dropped when they come up, so moving a deadline leaves no copies.
    pub(crate) queued: Option<Instant>,
    /// Listed in the driver's dirty list and not yet looked at.
    pub(crate) dirty: bool,
    /// The stream asked for everything to leave at once (flush, shutdown).
    pub(crate) flush: bool,
    /// The session ended and the driver forgot it: reads see EOF, writes fail.
    pub(crate) ended: Option<CloseReason>,
    /// The writer's half was shut down.
    pub(crate) write_shut: bool,
    pub(crate) read_waker: Option<Waker>,
    pub(crate) write_waker: Option<Waker>,
    /// Whoever waits in `recv_datagram` (secure mode).
    datagram_waker: Option<Waker>,
    /// The stream task's datagrams of one drive, reused.
    out: SendBatch,
    /// A client's own reader of its socket; `None` for a listener's sessions, whose
    /// socket only the driver reads.
    pub(crate) reader: Option<Reader>,
    /// What the listener's budget counts this session as holding out of order.
    pub(crate) held_bytes: usize,
}

impl State {
    pub(crate) fn new(conversation: Conversation, peer: SocketAddr) -> Self {
        Self {
            conversation,
            peer,
            next_wake: None,
            queued: None,
            dirty: false,
            flush: false,
            ended: None,
            write_shut: false,
            read_waker: None,
            write_waker: None,
            datagram_waker: None,
            out: SendBatch::default(),
            reader: None,
            held_bytes: 0,
        }
    }

    /// Wakes whoever waits on the stream (data arrived, ACKs freed room, it ended).
    /// A datagram reader is woken by every call (each follows an input or the
    /// end): a spurious poll finds nothing and waits again.
    pub(crate) fn wake(&mut self, read: bool, write: bool) {
        if let Some(w) = self.datagram_waker.take() {
            w.wake();
        }
        if read {
            if let Some(w) = self.read_waker.take() {
                w.wake();
            }
        }
        if write {
            if let Some(w) = self.write_waker.take() {
                w.wake();
            }
        }
    }
}

/// The largest message one `poll_write` queues: 64 segments, well inside the
/// receive windows of every preset (the engine refuses more fragments than the
/// peer's window holds).
const WRITE_CHUNK_SEGMENTS: usize = 64;

/// A conversation with at most this many segments queued or in flight is taken to
/// be latency-bound (request/response, paced messages): its stream's task sends
/// (and a client's reads) itself. With more it is throughput-bound, and its
/// datagrams go through the driver in batches (`sendmmsg`/GSO, `recvmmsg`/GRO):
/// measured with the loopback bench's bulk section, sending and reading from the
/// stream's task for every conversation cut kcp-tokio's bulk echo from 1.5x to
/// 0.3-0.5x kcp-net's.
const DIRECT_SEGMENTS: usize = 4;

/// Whether `conversation` is latency-bound ([`DIRECT_SEGMENTS`]).
pub(crate) fn latency_bound(conversation: &Conversation) -> bool {
    let mss = conversation.engine().config().mss();
    conversation.queued_bytes() <= DIRECT_SEGMENTS * mss
}

/// Receive calls a client's reader makes in one poll before it leaves the rest to
/// the driver: bounds the work a flood of foreign datagrams can make one poll do.
const READS_PER_POLL: usize = 64;

impl Session {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Lists the session for its driver once. `flush` asks for everything to leave
    /// at once.
    fn touch(&self, state: &mut State, flush: bool) {
        state.flush |= flush;
        if !state.dirty {
            state.dirty = true;
            self.driver.mark(self.id);
        }
    }

    /// Lists the session for its driver if the conversation now needs it sooner than
    /// the driver's timer says. Taking a message does not flush the ACKs held for
    /// it: they wait (at most `ACK_HOLD`, a millisecond, on the driver's timer) for
    /// the reply the application may send, and leave with it.
    fn touch_if_sooner(&self, state: &mut State, now: Instant) {
        let mut due = state.conversation.next_deadline(now);
        // The driver may have left the conversation undriven for the reader (its
        // `deliver`): what it owes then reads as due now, but waits for the hold.
        if let Some(until) = state.conversation.acks_held_until() {
            due = due.map(|at| at.max(until));
        }
        if due.is_some_and(|at| state.next_wake.is_none_or(|wake| at < wake)) {
            self.touch(state, false);
        }
    }

    /// A message was queued: a latency-bound conversation is driven here, the
    /// others by the driver (listed for its next turn, batched with the rest).
    fn sent(&self, state: &mut State, now: Instant, direct: bool) {
        if direct {
            self.drive_here(state, now);
        } else {
            self.touch(state, false);
        }
    }

    /// Drives the conversation here, in the stream's task, and sends what it emits
    /// at once (see the module doc). The driver is listed only if it must act: the
    /// conversation needs a timer sooner than the one the driver holds for it, or
    /// wants to close.
    fn drive_here(&self, state: &mut State, now: Instant) {
        if state.ended.is_some() {
            return;
        }
        let State {
            conversation,
            out,
            peer,
            ..
        } = &mut *state;
        let Ok(retransmits) = conversation.drive(now, &mut out.to(*peer));
        self.send_direct(out, retransmits);
        if state.conversation.poll_close(now).is_some() {
            self.touch(state, false);
            return;
        }
        let due = state.conversation.next_deadline(now);
        match (due, state.next_wake) {
            (Some(at), wake) if wake.is_none_or(|wake| at < wake) => self.touch(state, false),
            // Later or never: the driver moves (or drops) its entry when it reaches
            // it, without waking for it.
            _ => state.next_wake = due,
        }
    }

    /// Sends `out` on the socket without waiting, then clears it. What a full
    /// socket buffer refuses goes to the driver's spill (and the driver is woken to
    /// send it); a datagram the OS refuses otherwise is dropped and counted, as the
    /// driver does (KCP retransmits it like any loss).
    fn send_direct(&self, out: &mut SendBatch, retransmits: u64) {
        let (mut datagrams, mut bytes, mut syscalls, mut errors) = (0, 0, 0, 0);
        let mut refused = None;
        for i in 0..out.len() {
            let (to, datagram) = out.get(i);
            syscalls += 1;
            match self.udp.try_send_to(datagram, to) {
                Ok(_) => {
                    datagrams += 1;
                    bytes += datagram.len() as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    refused = Some(i);
                    break;
                }
                Err(_) => errors += 1,
            }
        }
        if out.is_empty() && retransmits == 0 {
            return; // nothing happened: no lock taken
        }
        let mut spill = lock(&self.driver.spill);
        spill.datagrams += datagrams;
        spill.bytes += bytes;
        spill.syscalls += syscalls;
        spill.errors += errors;
        spill.retransmits += retransmits;
        if let Some(first) = refused {
            for i in first..out.len() {
                let (to, datagram) = out.get(i);
                spill.batch.push(to, datagram);
            }
            drop(spill);
            self.driver.notify.notify_one();
        }
        out.clear();
    }

    // ---------------------------------------------------------------- reading

    /// The next whole message, `None` once the session ended.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut state = self.lock();
        loop {
            if let Some(message) = state.conversation.recv() {
                self.touch_if_sooner(&mut state, Instant::now());
                return Poll::Ready(Some(message));
            }
            if state.ended.is_some() {
                return Poll::Ready(None);
            }
            if !self.read_socket(&mut state, cx) {
                break;
            }
        }
        state.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// A client's reader takes its datagrams off the socket itself, so that the
    /// reply it waits for reaches it in the turn it arrived in, not through a turn of
    /// the driver task first. Reads at most [`READS_PER_POLL`] datagrams; `true` once
    /// one was taken in. The driver listens too (its readiness future is woken with
    /// this one): whatever this leaves behind, it reads, routes and counts.
    fn read_socket(&self, state: &mut State, cx: &mut Context<'_>) -> bool {
        for _ in 0..READS_PER_POLL {
            let State {
                conversation,
                reader: Some(reader),
                ..
            } = &mut *state
            else {
                return false;
            };
            if !latency_bound(conversation) {
                return false; // the driver reads in batches
            }
            let n = match reader.poll_recv(cx) {
                Poll::Ready(Ok(n)) => n,
                // An ICMP report, consumed by the call that returned it.
                Poll::Ready(Err(_)) => continue,
                Poll::Pending => return false,
            };
            let now = Instant::now();
            let mut taken = false;
            for i in 0..n {
                let (meta, datagram) = reader.batch().get(i);
                if meta.addr == self.peer && !meta.truncated {
                    taken |= conversation.input(now, datagram).is_ok();
                }
            }
            if taken {
                // ACKs may have freed room for a blocked writer; a message may be
                // whole for a reader waiting in the other method.
                let has_message = state.conversation.has_message();
                state.wake(has_message, true);
                self.drive_here(state, now);
                return true;
            }
        }
        false
    }

    /// The next unreliable datagram (secure mode), `None` once the session ended.
    pub(crate) fn poll_recv_datagram(&self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut state = self.lock();
        loop {
            if let Some(datagram) = state.conversation.recv_datagram() {
                return Poll::Ready(Some(datagram));
            }
            if state.ended.is_some() {
                return Poll::Ready(None);
            }
            if !self.read_socket(&mut state, cx) {
                break;
            }
        }
        state.datagram_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    // ---------------------------------------------------------------- writing

    /// Queues an unreliable datagram (secure mode) and sends it at once.
    pub(crate) fn send_datagram(&self, datagram: Bytes) -> io::Result<()> {
        let mut state = self.lock();
        if let Some(error) = closed_error(&state) {
            return Err(error);
        }
        state
            .conversation
            .send_datagram(datagram)
            .map_err(|e| io::Error::from(kcp_net::NetError::from(e)))?;
        self.drive_here(&mut state, Instant::now());
        Ok(())
    }

    /// The largest datagram [`send_datagram`](Self::send_datagram) takes (`None` in
    /// raw mode).
    pub(crate) fn max_datagram_size(&self) -> Option<usize> {
        self.lock().conversation.max_datagram_size()
    }

    /// Queues `message` whole, waiting for room while the queue limit is reached.
    pub(crate) fn poll_send(&self, cx: &mut Context<'_>, message: &Bytes) -> Poll<io::Result<()>> {
        let mut state = self.lock();
        if let Some(error) = closed_error(&state) {
            return Poll::Ready(Err(error));
        }
        let limit = state.conversation.config().max_queued_bytes;
        let now = Instant::now();
        let direct = latency_bound(&state.conversation);
        match state.conversation.send(now, message.clone()) {
            Ok(()) => {
                self.sent(&mut state, now, direct);
                Poll::Ready(Ok(()))
            }
            Err(QueueError::Full { .. }) if message.len() <= limit => {
                state.write_waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(queue_error(e))),
        }
    }

    /// Queues a prefix of `buf` as one message: as much as the queue limit leaves
    /// room for, at most [`WRITE_CHUNK_SEGMENTS`] segments. Pending while the queue is
    /// full.
    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut state = self.lock();
        if let Some(error) = closed_error(&state) {
            return Poll::Ready(Err(error));
        }
        let conversation = &state.conversation;
        let mss = conversation.engine().config().mss();
        let room = conversation
            .config()
            .max_queued_bytes
            .saturating_sub(conversation.queued_bytes());
        // Whole segments only: the queue counts in segments.
        let room = room / mss * mss;
        let len = buf.len().min(room).min(WRITE_CHUNK_SEGMENTS * mss);
        if len == 0 {
            state.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let message = Bytes::copy_from_slice(&buf[..len]);
        let now = Instant::now();
        let direct = latency_bound(&state.conversation);
        match state.conversation.send(now, message) {
            Ok(()) => {
                self.sent(&mut state, now, direct);
                Poll::Ready(Ok(len))
            }
            Err(QueueError::Full { .. }) => {
                state.write_waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(queue_error(e))),
        }
    }

    /// Asks the driver to send everything queued now; does not wait for ACKs.
    pub(crate) fn poll_flush(&self) -> Poll<io::Result<()>> {
        let mut state = self.lock();
        if state.ended.is_none() {
            self.touch(&mut state, true);
        }
        Poll::Ready(Ok(()))
    }

    /// Flushes, refuses further writes, and waits until everything queued is
    /// acknowledged (or the session ended). In the secure mode it also closes the
    /// conversation, and waits until the close has been handed to the socket: the
    /// peer learns at once (raw KCP has no close to send).
    pub(crate) fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.lock();
        if state.ended.is_some() {
            return Poll::Ready(Ok(()));
        }
        let secure = state.conversation.wire() == WireMode::Secure;
        if !state.write_shut {
            state.write_shut = true;
            if secure {
                let deadline = Instant::now() + self.linger;
                state.conversation.close(CloseReason::Local, deadline);
            }
            self.touch(&mut state, true);
        }
        if !secure && state.conversation.queued_bytes() == 0 {
            return Poll::Ready(Ok(()));
        }
        state.write_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    // ---------------------------------------------------------------- closing

    /// Closes the conversation: what is queued is still delivered, for at most the
    /// linger; then the driver forgets it.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        if state.ended.is_some() {
            return;
        }
        let now = Instant::now();
        state
            .conversation
            .close(CloseReason::Local, now + self.linger);
        self.touch(&mut state, true);
    }

    // ---------------------------------------------------------------- getters

    /// The peer's current address.
    pub(crate) fn peer_addr(&self) -> SocketAddr {
        self.lock().peer
    }

    pub(crate) fn stats(&self) -> SessionStats {
        self.lock().conversation.stats()
    }

    pub(crate) fn queued_bytes(&self) -> usize {
        self.lock().conversation.queued_bytes()
    }

    pub(crate) fn close_reason(&self) -> Option<CloseReason> {
        let state = self.lock();
        state.ended.or(match state.conversation.state() {
            SessionState::Closing { reason, .. } => Some(reason),
            _ => None,
        })
    }
}

/// Why the stream cannot take data, if it cannot.
fn closed_error(state: &State) -> Option<io::Error> {
    if let Some(reason) = state.ended {
        return Some(io::Error::new(
            io::ErrorKind::BrokenPipe,
            format!("KCP session closed: {reason:?}"),
        ));
    }
    if state.write_shut {
        return Some(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "the stream's write half was shut down",
        ));
    }
    None
}

fn queue_error(e: QueueError) -> io::Error {
    let kind = match e {
        QueueError::Closed => io::ErrorKind::BrokenPipe,
        _ => io::ErrorKind::InvalidInput,
    };
    io::Error::new(kind, e)
}
