//! The threaded server's bootstrap: bind the sockets, start one loop thread each,
//! join them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::ServerConfig;
use crate::error::NetError;
use crate::server::event_loop::EventLoop;
use crate::server::handle::{Remote, ServerHandle};
use crate::server::handler::EventHandler;
use crate::server::request::Shared;
use crate::stats::ServerStats;
use crate::udp::{self, SocketOptions};

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
        let shared = Shared::new(&config, now);
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
                requests: tx,
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
