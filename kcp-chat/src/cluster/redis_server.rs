//! A `redis-server` of our own on a free loopback port, for the demo, the benches and
//! the tests: started with [`RedisServer::start`], stopped when dropped.
//!
//! It listens on 127.0.0.1 only, in a temporary directory of its own. By default it
//! keeps nothing on disk (`--save '' --appendonly no`); [`RedisOptions::durable`]
//! makes it write every command to an append-only file first (`appendfsync always`),
//! so a [`restart`](RedisServer::restart) keeps every stream entry it acknowledged.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

/// How long a started server may take to answer `PING`.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// Why a Redis could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisServerError {
    /// `redis-server` is not installed.
    #[error("redis-server was not found on PATH ({0}); ./scripts/deps.sh installs it")]
    NotInstalled(io::Error),
    /// Something else failed (a port, the temporary directory, the process).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// It started but did not answer `PING` in time.
    #[error("redis-server on port {port} did not answer PING within {within:?}{exit}")]
    NotReady {
        /// Its port.
        port: u16,
        /// How long we waited.
        within: Duration,
        /// How it exited, if it did.
        exit: String,
    },
}

fn io_error(what: &'static str) -> impl FnOnce(io::Error) -> RedisServerError {
    move |source| RedisServerError::Io { what, source }
}

/// How to run the server.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct RedisOptions {
    /// Keep an append-only file written before each acknowledgement, so a restart
    /// loses nothing (slower: every write is a disk sync).
    pub durable: bool,
}

impl RedisOptions {
    /// Options for a server that loses nothing it acknowledged across a restart.
    pub fn durable() -> Self {
        Self { durable: true }
    }
}

/// A running `redis-server` child process.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    options: RedisOptions,
}

/// A free loopback TCP port (the kernel's pick, released for the server to bind).
fn free_port() -> Result<u16, RedisServerError> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io_error("finding a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(io_error("finding a free port"))?
        .port())
}

/// `PING` → `+PONG`, over a plain socket (no client library needed here).
fn pings(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

impl RedisServer {
    /// Starts a server that keeps nothing on disk.
    ///
    /// # Errors
    /// [`RedisServerError`]: not installed, no port, or no answer.
    pub fn start() -> Result<Self, RedisServerError> {
        Self::start_with(RedisOptions::default())
    }

    /// Starts a server with `options`.
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub fn start_with(options: RedisOptions) -> Result<Self, RedisServerError> {
        static RUNS: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kcp-chat-redis-{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(io_error("creating the Redis directory"))?;
        let mut server = Self {
            child: None,
            port: free_port()?,
            dir,
            options,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<(), RedisServerError> {
        let mut command = Command::new("redis-server");
        command
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", ""])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.options.durable {
            command.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            command.args(["--appendonly", "no"]);
        }
        let child = command.spawn().map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                RedisServerError::NotInstalled(e)
            } else {
                RedisServerError::Io {
                    what: "starting redis-server",
                    source: e,
                }
            }
        })?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if pings(self.port) {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(RedisServerError::NotReady {
                    port: self.port,
                    within: READY_WITHIN,
                    exit: format!(" (it exited: {status})"),
                });
            }
            thread::sleep(Duration::from_millis(20));
        }
        Err(RedisServerError::NotReady {
            port: self.port,
            within: READY_WITHIN,
            exit: String::new(),
        })
    }

    /// Its URL, `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub const fn port(&self) -> u16 {
        self.port
    }

    /// Its process id (to read its CPU time from `/proc/PID/stat`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills it at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and directory (after [`kill`](Self::kill),
    /// or kills it first).
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub fn restart(&mut self) -> Result<(), RedisServerError> {
        self.kill();
        self.spawn()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
