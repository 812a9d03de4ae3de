//! What the numbers were measured on.

use std::process::Command;

/// The machine and toolchain of a report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// Logical CPUs available to this process (`nproc`).
    pub cpus: usize,
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `/proc/loadavg` when the report started: how busy the shared machine was.
    pub load: String,
    /// `rustc --version`.
    pub rustc: String,
    /// UTC date and time, `date -u`.
    pub date: String,
    /// `uname -sr`.
    pub kernel: String,
}

impl Machine {
    /// Reads the facts from the running system; anything unreadable is `"unknown"`.
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
            .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
        let load = std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".to_owned());
        Self {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model,
            load,
            rustc: command("rustc", &["--version"]),
            date: command("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            kernel: command("uname", &["-sr"]),
        }
    }
}

fn command(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown".to_owned(), |s| s.trim().to_owned())
}
