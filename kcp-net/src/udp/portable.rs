//! The fallback: one `recv_from`/`send_to` per datagram, through `std`.

use std::io;

use super::{DatagramIo, DatagramSocket, RecvBatch, RecvMeta, SendBatch, sealed};

/// Datagram I/O with plain `std` calls.
#[derive(Debug)]
pub(crate) struct Portable;

/// Datagrams one `send` call writes before returning, to keep the loop's work per call
/// in line with the batched backend.
const SEND_CHUNK: usize = super::BATCH;

impl sealed::Sealed for Portable {}

impl DatagramIo for Portable {
    fn recv(&mut self, socket: &dyn DatagramSocket, batch: &mut RecvBatch) -> io::Result<usize> {
        let (slot_size, slots, meta) = batch.slots_mut();
        let slot_count = slots.len();
        let mut drained = false;
        for (i, slot) in slots.enumerate() {
            match socket.recv_from(slot) {
                Ok((len, addr)) => meta.push(RecvMeta {
                    addr,
                    start: i * slot_size,
                    len,
                    // `recv_from` cannot report truncation; a full slot may have been
                    // cut, so the slot is one byte larger than any datagram we accept.
                    truncated: len == slot.len(),
                }),
                Err(e) if meta.is_empty() => return Err(e),
                // Report what we have; the error (usually WouldBlock) repeats next call.
                Err(e) => {
                    drained = e.kind() == io::ErrorKind::WouldBlock;
                    break;
                }
            }
        }
        let datagrams = meta.len();
        // Only `WouldBlock` proves the queue empty; after another error, look again.
        batch.set_filled(if drained { datagrams } else { slot_count });
        Ok(datagrams)
    }

    fn send(
        &mut self,
        socket: &dyn DatagramSocket,
        batch: &SendBatch,
        from: usize,
    ) -> io::Result<usize> {
        let end = batch.len().min(from + SEND_CHUNK);
        for i in from..end {
            let (addr, datagram) = batch.get(i);
            if let Err(e) = socket.send_to(datagram, addr) {
                if i == from {
                    return Err(e);
                }
                return Ok(i - from);
            }
        }
        Ok(end - from)
    }
}
