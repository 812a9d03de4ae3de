//! What a session can be made to hold, measured with a counting allocator: a fresh
//! server conversation, and one whose receive window a peer (or an attacker who knows
//! its address and conv) filled with out-of-order data it will never complete.

use std::time::Instant;

use kcp_core::Sn;
use kcp_core::segment::{Command, HEADER_LEN, Header};
use kcp_net::{Conversation, Preset, ServerConfig};
use kcp_ref::counting::{Counting, live_bytes};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn a_filled_receive_window_costs_what_the_docs_say_and_is_freed_at_close() {
    let config = ServerConfig::new(Preset::Fast);
    let rcv_wnd = config.engine.rcv_wnd;
    let mss = config.engine.mtu - HEADER_LEN;
    let t0 = Instant::now();
    // Once per thread: the random number generator behind a server conversation's
    // clock start.
    drop(Conversation::new(1, config.conversation(), t0).unwrap());

    let before = live_bytes();
    let mut session = Conversation::new(7, config.conversation(), t0).unwrap();
    let fresh = live_bytes() - before;

    // The opening segment, then every other sn of the window, full size: nothing can
    // be delivered (sn 1 is missing), everything is held.
    let first = Header::new(7, Command::Push, Sn::new(0)).encode(b"hi");
    session.input(t0, &first).unwrap();
    while session.recv().is_some() {}
    let payload = vec![0xa5; mss];
    for sn in 2..=rcv_wnd {
        let d = Header::new(7, Command::Push, Sn::new(sn)).encode(&payload);
        let _ = session.input(t0, &d);
    }
    let held = session.stats().engine.recv_buffer;
    let filled = live_bytes() - before;
    assert!(held >= rcv_wnd - 2, "the window was filled: {held}");
    // The documented bound (ServerConfig's memory bound): a fresh conversation under
    // 16 KiB, and at most one datagram allocation (the engine's `mtu`, plus the
    // allocator's bookkeeping) per held segment.
    assert!(fresh < 16 << 10, "fresh conversation: {fresh} B");
    let per_segment = (filled - fresh) / i64::from(held);
    assert!(
        per_segment <= config.engine.mtu as i64 + 256,
        "{per_segment} B per held segment"
    );

    drop((session, payload, first));
    let after = live_bytes() - before;
    assert!(
        after <= 0,
        "{after} B still allocated after the session was dropped"
    );
    // Printed last: captured output is itself an allocation of this thread.
    eprintln!(
        "fast preset: fresh conversation {fresh} B; window of {rcv_wnd} filled out of order \
         ({held} segments held): {filled} B ({per_segment} B per held segment beyond the \
         fresh cost); all freed when the session was dropped"
    );
}
