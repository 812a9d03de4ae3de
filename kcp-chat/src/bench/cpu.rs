//! CPU time of a process or some of its threads, from `/proc` (Linux; elsewhere the
//! functions return `None`).

use std::fs;
use std::time::Duration;

/// Clock ticks per second of `/proc/*/stat` times.
fn ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// utime + stime from the text of a `stat` file.
fn parse_stat(stat: &str) -> Option<Duration> {
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the file; `rest` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = ticks_per_sec();
    Some(Duration::from_millis((utime + stime) * 1000 / ticks))
}

/// CPU time used so far by process `pid`.
pub(crate) fn process_cpu(pid: u32) -> Option<Duration> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU time used so far by the calling thread.
pub(crate) fn this_thread_cpu() -> Option<Duration> {
    parse_stat(&fs::read_to_string("/proc/thread-self/stat").ok()?)
}

/// CPU time used so far by the threads of this process whose name starts with
/// `prefix` (live threads only).
pub(crate) fn own_threads_cpu(prefix: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut any = false;
    for entry in fs::read_dir("/proc/self/task").ok()?.flatten() {
        let path = entry.path();
        let Ok(comm) = fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        if let Some(cpu) = fs::read_to_string(path.join("stat"))
            .ok()
            .and_then(|s| parse_stat(&s))
        {
            total += cpu;
            any = true;
        }
    }
    any.then_some(total)
}

/// The inode of the UDP socket bound to local `port`, from `/proc/net/udp{,6}`.
fn udp_inode(port: u16) -> Option<String> {
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some(local) = fields.get(1) else { continue };
            let Some((_, hex_port)) = local.rsplit_once(':') else {
                continue;
            };
            if u16::from_str_radix(hex_port, 16).ok() == Some(port)
                && let Some(inode) = fields.get(9)
            {
                return Some((*inode).to_owned());
            }
        }
    }
    None
}

/// The process that owns the UDP socket bound to local `port`, if we may look at its
/// file descriptors (same user, or root).
pub(crate) fn pid_of_udp_port(port: u16) -> Option<u32> {
    let target = format!("socket:[{}]", udp_inode(port)?);
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str() == target.as_str()) {
                return Some(pid);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_times_are_read_after_the_command_name() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        let ticks = ticks_per_sec();
        assert_eq!(
            parse_stat(stat),
            Some(Duration::from_millis(300 * 1000 / ticks))
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn finds_our_own_udp_socket_and_cpu() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        if std::path::Path::new("/proc/net/udp").exists() {
            assert_eq!(pid_of_udp_port(port), Some(std::process::id()));
            assert!(process_cpu(std::process::id()).is_some());
        }
    }
}
