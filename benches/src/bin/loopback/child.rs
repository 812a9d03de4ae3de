//! A server in a child process: started from this same binary, its address read from
//! its first line, its CPU time read from `/proc`, stopped by closing its stdin.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::Impl;

/// A running echo server process.
pub(crate) struct ServerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `which`'s server on an ephemeral loopback port, with a KCP window of
    /// `window` segments (ignored by TCP and UDP).
    pub(crate) fn start(which: Impl, window: u16) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let window = window.to_string();
        let mut child = Command::new(exe)
            .args(["serve", which.name(), "--listen", "127.0.0.1:0"])
            .args(["--window", &window])
            .envs(crate::quinn_peer::server_env(which))
            .envs(crate::secure_peer::server_env(which))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the server process")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("server stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(addr) = line.trim().strip_prefix("listening ") else {
            let _ = child.kill();
            bail!("{}: server did not start: {line:?}", which.name());
        };
        let addr = addr.parse()?;
        Ok(Self { child, stdin, addr })
    }

    /// CPU time (user + system, all threads, 10 ms resolution) the process has used
    /// so far.
    pub(crate) fn cpu_time(&self) -> anyhow::Result<Duration> {
        cpu_time_of(self.child.id())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        drop(self.stdin.take()); // EOF: the server exits
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User plus system time of the whole process, threads that already exited included:
/// fields 14 and 15 of `/proc/PID/stat`, in clock ticks.
fn cpu_time_of(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after it follow its ')'.
    let rest = stat.rsplit_once(')').context("malformed /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_secs_f64(
        ticks as f64 / clock_ticks_per_sec(),
    ))
}

/// `getconf CLK_TCK` (100 on every Linux we know of), asked once.
fn clock_ticks_per_sec() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}
