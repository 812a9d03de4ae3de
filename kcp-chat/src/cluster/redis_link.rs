//! One connection to Redis that comes back by itself: connect with a timeout, and
//! after a failure retry with a growing pause (100 ms doubling to 1 s), so a blip or
//! a restart of Redis costs a node at most a second beyond the outage.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{Client, Connection, RedisError};
use tracing::{info, warn};

use super::Counters;

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// A connection that is either up, or down until `retry_at`.
pub(crate) struct RedisLink {
    client: Client,
    conn: Option<Connection>,
    /// Answers slower than this count as a broken connection.
    io_timeout: Duration,
    pause: Duration,
    retry_at: Instant,
    /// Who we are, for the logs (`publisher`, `reader`).
    role: &'static str,
    /// Where reconnections are counted.
    counters: Arc<Counters>,
    ever_connected: bool,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink")
            .field("role", &self.role)
            .field("up", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisLink {
    pub(crate) fn new(
        client: Client,
        role: &'static str,
        io_timeout: Duration,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            client,
            conn: None,
            io_timeout,
            pause: FIRST_PAUSE,
            retry_at: Instant::now(),
            role,
            counters,
            ever_connected: false,
        }
    }

    pub(crate) const fn is_up(&self) -> bool {
        self.conn.is_some()
    }

    /// The connection, connecting first if it is down and the pause is over. The
    /// flag is `true` for a connection made just now (the caller restores what a
    /// restarted Redis may have forgotten). `None` while Redis is unreachable.
    pub(crate) fn get(&mut self, now: Instant) -> Option<(&mut Connection, bool)> {
        let mut fresh = false;
        if self.conn.is_none() {
            if now < self.retry_at {
                return None;
            }
            match self.connect() {
                Ok(conn) => {
                    if self.ever_connected {
                        Counters::add(&self.counters.reconnects, 1);
                        info!(role = self.role, "reconnected to Redis");
                    }
                    self.ever_connected = true;
                    self.pause = FIRST_PAUSE;
                    self.conn = Some(conn);
                    fresh = true;
                }
                Err(e) => {
                    self.schedule_retry(now);
                    warn!(role = self.role, "cannot reach Redis: {e}");
                    return None;
                }
            }
        }
        self.conn.as_mut().map(|c| (c, fresh))
    }

    fn connect(&self) -> Result<Connection, RedisError> {
        let conn = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        conn.set_read_timeout(Some(self.io_timeout))?;
        conn.set_write_timeout(Some(self.io_timeout))?;
        Ok(conn)
    }

    /// The connection failed: drop it and retry after a pause.
    pub(crate) fn broke(&mut self, error: &RedisError) {
        if self.conn.take().is_some() {
            warn!(role = self.role, "lost Redis: {error}");
        }
        self.schedule_retry(Instant::now());
    }

    fn schedule_retry(&mut self, now: Instant) {
        self.retry_at = now + self.pause;
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
    }

    /// When a connection will next be tried (now if it is up).
    pub(crate) fn retry_at(&self) -> Instant {
        self.retry_at
    }
}
