//! No heap allocation per datagram in steady state, counted with a counting global
//! allocator: a transfer over a lossy in-memory wire, through the entry points the
//! benches use (`send_bytes`, `update`, `input_bytes`, `recv_into`, `check`), for each
//! benchmark message size. Only allocations made inside engine calls are counted; the
//! wire's own buffers are made outside them.

use std::convert::Infallible;

use bytes::Bytes;
use kcp_core::{Config, Kcp, Timestamp};
use kcp_ref::counting::{Counting, counted};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One direction of the wire: datagrams in a buffer allocated up front, every
/// `lose_every`-th one lost.
struct Wire {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    lose_every: u64,
    seen: u64,
}

impl Wire {
    fn new(lose_every: u64) -> Self {
        Self {
            bytes: Vec::with_capacity(16 << 20),
            ends: Vec::with_capacity(1 << 16),
            lose_every,
            seen: 0,
        }
    }

    fn sink(&mut self) -> impl FnMut(&[u8]) -> Result<(), Infallible> + '_ {
        |d| {
            self.seen += 1;
            if self.seen % self.lose_every != 0 {
                self.bytes.extend_from_slice(d);
                self.ends.push(self.bytes.len());
            }
            Ok(())
        }
    }

    /// The datagrams as the `Bytes` a network layer would hand over (made here, outside
    /// any engine call).
    fn take(&mut self) -> Vec<Bytes> {
        let all = Bytes::copy_from_slice(&self.bytes);
        // A shared handle: slicing it later costs a reference count, not an allocation.
        let all = all.slice(..);
        let mut start = 0;
        let out = self
            .ends
            .iter()
            .map(|&end| {
                let d = all.slice(start..end);
                start = end;
                d
            })
            .collect();
        self.bytes.clear();
        self.ends.clear();
        out
    }
}

/// Counts allocations inside engine calls while `message_size` messages stream over a
/// lossy wire; returns (datagrams input, allocations) after the warm-up.
fn steady_state(message_size: usize) -> (u64, u64, u64) {
    let mut config = Config::fast();
    config.snd_wnd = 128;
    let mut a = Kcp::new(3, config.clone()).unwrap();
    let mut b = Kcp::new(3, config).unwrap();
    let (mut to_b, mut to_a) = (Wire::new(17), Wire::new(13));
    let pattern = Bytes::from(vec![0xA5u8; message_size]).slice(..);
    let mut scratch = vec![0u8; message_size];
    let (mut datagrams, mut allocs, mut delivered) = (0u64, 0u64, 0u64);
    let mut now = Timestamp::from_millis(u32::MAX - 3_000);
    for round in 0..1_500 {
        let measure = round >= 500;
        let mut spent = 0;
        while a.wait_send() < 256 {
            let (r, n) = counted(|| a.send_bytes(pattern.clone()));
            r.unwrap();
            spent += n;
        }
        spent += counted(|| a.update(now, to_b.sink()).unwrap()).1;
        spent += counted(|| b.update(now, to_a.sink()).unwrap()).1;
        let (for_b, for_a) = (to_b.take(), to_a.take());
        let inputs = (for_b.len() + for_a.len()) as u64;
        for d in for_b {
            spent += counted(|| b.input_bytes(now, d).unwrap()).1;
        }
        for d in for_a {
            spent += counted(|| a.input_bytes(now, d).unwrap()).1;
        }
        loop {
            let (r, n) = counted(|| b.recv_into(&mut scratch));
            spent += n;
            match r.unwrap() {
                Some(len) => {
                    assert_eq!(len, message_size);
                    delivered += 1;
                }
                None => break,
            }
        }
        spent += counted(|| (a.check(now), b.check(now))).1;
        if measure {
            datagrams += inputs;
            allocs += spent;
        }
        now = now.add_millis(10);
    }
    (datagrams, allocs, delivered)
}

#[test]
fn no_allocation_per_datagram_in_steady_state() {
    for size in [64, 1024, 16 * 1024] {
        let (datagrams, allocs, delivered) = steady_state(size);
        println!(
            "{size:>5} B messages: {datagrams} datagrams in steady state, {allocs} allocations"
        );
        assert!(datagrams > 2_000, "{size}: the transfer ran ({datagrams})");
        assert!(delivered > 1_000, "{size}: messages arrived ({delivered})");
        assert_eq!(allocs, 0, "{size} B messages");
    }
}
