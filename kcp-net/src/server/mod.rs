//! The server: a single-threaded [`ServerDriver`] you drive from your own loop, and
//! the threaded [`KcpServer`] that runs one driver per loop thread with an
//! [`EventHandler`].
//!
//! - `driver.rs`: the driver (socket, sessions, timers, limits, events as values);
//! - `handler.rs`: the handler API of the threaded server;
//! - `handle.rs`: the cross-thread [`ServerHandle`];
//! - `request.rs`: what a handle posts to a loop, and what the loops share;
//! - `event_loop.rs`: one loop thread: a driver, its requests and the handler;
//! - `bootstrap.rs`: binding the sockets and starting the threads.

mod bootstrap;
mod driver;
mod event_loop;
mod handle;
mod handler;
mod request;
mod secure_front;

pub use bootstrap::KcpServer;
pub use driver::{MAX_DATAGRAMS_PER_TURN, ServerDriver, ServerEvent};
pub use handle::ServerHandle;
pub use handler::{CloseCtx, EventHandler, SessionCtx};
pub use request::SessionInfo;
