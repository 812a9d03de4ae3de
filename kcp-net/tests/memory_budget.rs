//! The server-wide buffer budget holds in resident memory: peers that fill many
//! sessions' receive windows with out-of-order data (what an attacker who knows their
//! addresses and convs can do) make the server hold at most `max_buffered_bytes`, and
//! what they made it hold is given back when the sessions close. Its own test binary,
//! so that the resident set is this test's alone.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;
use kcp_core::Sn;
use kcp_core::segment::{Command, HEADER_LEN, Header};
use kcp_net::KcpServer;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("a VmRSS line");
    kib / 1024.0
}

#[test]
fn filled_windows_stay_within_the_buffer_budget_and_are_given_back() {
    const SESSIONS: u32 = 600;
    const BUDGET_MIB: usize = 16;
    let mut config = server_config();
    config.max_buffered_bytes = BUDGET_MIB << 20;
    // Long enough that every session is still open when the peak is read, even on a
    // slow machine where the flood takes seconds.
    config.idle_timeout = Duration::from_secs(3);
    config.recv_buffer = 8 << 20;
    let mss = config.engine.mtu - HEADER_LEN;
    let rcv_wnd = config.engine.rcv_wnd;
    let server = KcpServer::bind(localhost(), config, Echo).unwrap();
    let addr = server.local_addr();
    let base = rss_mib();

    // Unbounded, this would pin 600 × 127 × 1,440 B ≈ 105 MiB.
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let payload = vec![0xa5; mss];
    for conv in 1..=SESSIONS {
        let first = Header::new(conv, Command::Push, Sn::new(0)).encode(b"open");
        attacker.send_to(&first, addr).unwrap();
        for sn in 2..=rcv_wnd {
            let d = Header::new(conv, Command::Push, Sn::new(sn)).encode(&payload);
            attacker.send_to(&d, addr).unwrap();
        }
        if conv % 10 == 0 {
            // Let the loop drain its socket now and then. A full socket buffer drops
            // datagrams (a lost first segment loses that whole session), which would
            // only make this test easier, so the wait below does not insist on all.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let deadline = Instant::now() + WAIT;
    let mut total = server.handle().stats().total;
    let enough = u64::from(SESSIONS) * 9 / 10;
    while total.dropped_memory_budget == 0 || total.sessions_opened < enough {
        assert!(
            Instant::now() < deadline,
            "the flood never got in: {total:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
        total = server.handle().stats().total;
    }
    // Let the loop take in what is still queued on its socket.
    let mut last = total.datagrams_in;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        total = server.handle().stats().total;
        if total.datagrams_in == last {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the flood never settled: {total:?}"
        );
        last = total.datagrams_in;
    }
    let peak = rss_mib() - base;
    // The budget, plus what is not counted against it (each fresh session's engine,
    // the loop's receive slots, the allocator's rounding): 16 MiB more at most.
    let bound = (2 * BUDGET_MIB) as f64;
    eprintln!(
        "buffer budget {BUDGET_MIB} MiB: resident growth {peak:.1} MiB under {SESSIONS} \
         filled windows ({} sessions, {} datagrams dropped at the budget)",
        total.sessions_opened, total.dropped_memory_budget
    );
    assert!(peak <= bound, "resident growth {peak:.1} MiB > {bound} MiB");

    // The idle timeout closes them all; the memory goes back to the system.
    let deadline = Instant::now() + WAIT;
    while server.handle().session_count() > 0 {
        assert!(Instant::now() < deadline, "the sessions never timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let after = rss_mib() - base;
    eprintln!("after they closed: {after:.1} MiB above the start");
    assert!(
        after <= peak,
        "{after:.1} MiB after close, {peak:.1} MiB at the peak"
    );
    server.shutdown(Duration::ZERO).unwrap();
}
