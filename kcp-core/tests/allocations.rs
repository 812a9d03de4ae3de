//! Steady-state allocation counts, measured with a counting global allocator: in a
//! running transfer, ACK-only input, `update` (flushing) and `check` allocate nothing;
//! a data datagram with one payload costs one allocation: the copy of that payload.

use std::convert::Infallible;

use kcp_core::{Config, Kcp, Timestamp};
use kcp_ref::counting::{Counting, allocations};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Datagrams in flight between the engines, in buffers allocated once up front, so
/// that only the engine's own allocations are counted.
struct Wire {
    bytes: Vec<u8>,
    ranges: Vec<(usize, usize)>,
}

impl Wire {
    fn new() -> Self {
        Self {
            bytes: Vec::with_capacity(8 << 20),
            ranges: Vec::with_capacity(8192),
        }
    }

    fn sink(&mut self) -> impl FnMut(&[u8]) -> Result<(), Infallible> + '_ {
        |d: &[u8]| {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(d);
            self.ranges.push((start, self.bytes.len()));
            Ok(())
        }
    }

    fn deliver(&mut self, mut f: impl FnMut(&[u8])) {
        for &(s, e) in &self.ranges {
            f(&self.bytes[s..e]);
        }
        self.bytes.clear();
        self.ranges.clear();
    }
}

#[test]
fn steady_state_costs_no_allocation_per_ack_or_flush() {
    let mut config = Config::fast();
    config.snd_wnd = 256;
    let mut a = Kcp::new(5, config.clone()).unwrap();
    let mut b = Kcp::new(5, config).unwrap();
    let (mut to_b, mut to_a) = (Wire::new(), Wire::new());
    let message = vec![7u8; 1000];
    let mut recv_buf = vec![0u8; 2000];
    let (mut ack_only_inputs, mut ack_only_allocs) = (0u64, 0u64);
    let (mut data_inputs, mut data_allocs) = (0u64, 0u64);
    let (mut calls, mut timer_allocs) = (0u64, 0u64);
    let mut t = 0u32;
    for round in 0..2_000 {
        let now = Timestamp::from_millis(t);
        // Warm-up rounds grow every buffer to its working size; measure after.
        let measure = round >= 500;
        while a.wait_send() < 200 {
            a.send(&message).unwrap();
        }
        let before = allocations();
        a.update(now, to_b.sink()).unwrap();
        b.update(now, to_a.sink()).unwrap();
        let _ = a.check(now);
        let _ = b.check(now);
        if measure {
            calls += 4;
            timer_allocs += allocations() - before;
        }
        to_b.deliver(|d| {
            let before = allocations();
            b.input(now, d).unwrap();
            if measure {
                data_inputs += 1;
                data_allocs += allocations() - before;
            }
        });
        to_a.deliver(|d| {
            let before = allocations();
            a.input(now, d).unwrap();
            if measure {
                ack_only_inputs += 1;
                ack_only_allocs += allocations() - before;
            }
        });
        while let Ok(Some(_)) = b.recv_into(&mut recv_buf) {}
        t = t.wrapping_add(10);
    }
    println!(
        "{ack_only_inputs} ack-only inputs: {ack_only_allocs} allocations; \
         {data_inputs} data inputs: {data_allocs} allocations; \
         {calls} update/check calls: {timer_allocs} allocations"
    );
    assert!(ack_only_inputs > 1_000 && data_inputs > 1_000);
    assert_eq!(ack_only_allocs, 0);
    assert_eq!(timer_allocs, 0);
    // Each data datagram carries one payload, copied alone: one allocation.
    assert_eq!(
        data_allocs, data_inputs,
        "one payload copy per data datagram"
    );
    assert!(b.stats().messages_received > 10_000);
}

#[test]
fn input_bytes_keeps_payloads_without_copying() {
    let mut a = Kcp::new(9, Config::fast()).unwrap();
    let mut b = Kcp::new(9, Config::fast()).unwrap();
    let mut wire = Wire::new();
    let now = Timestamp::from_millis(0);
    for i in 0..100u8 {
        a.send(&[i; 1000]).unwrap();
    }
    a.update(now, wire.sink()).unwrap();
    let mut datagrams = Vec::with_capacity(128);
    wire.deliver(|d| datagrams.push(bytes::Bytes::copy_from_slice(d)));
    let buffers: Vec<(usize, usize)> = datagrams
        .iter()
        .map(|d| (d.as_ptr() as usize, d.as_ptr() as usize + d.len()))
        .collect();
    let before = allocations();
    for d in datagrams.drain(..) {
        b.input_bytes(now, d).unwrap();
    }
    let spent = allocations() - before;
    let mut n = 0u8;
    while let Some(m) = b.recv() {
        assert_eq!(m[..], [n; 1000]);
        // The message is a slice of the datagram it arrived in: no copy was made.
        let p = m.as_ptr() as usize;
        assert!(buffers.iter().any(|&(s, e)| s <= p && p + m.len() <= e));
        n += 1;
    }
    assert_eq!(n, 32, "the first flush sends one send window");
    println!(
        "input_bytes: {spent} allocations for {} datagrams",
        buffers.len()
    );
}
