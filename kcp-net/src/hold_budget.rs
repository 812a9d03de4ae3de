//! A server's budget for the data its sessions hold out of order
//! ([`ServerConfig::max_buffered_bytes`]): what a peer can make us keep without
//! ever completing a message. Every server of the workspace (kcp-net's loops,
//! kcp-tokio's listener) feeds its sessions' datagrams through [`HoldBudget::input`]
//! and counts what they hold with [`HoldBudget::recount`]; over the budget, the data
//! that would be held is left out (the peer sends it again once the gap before it is
//! filled).

use kcp_core::Sn;
use kcp_core::segment::{Command as SegmentCommand, HEADER_LEN, Header};

use crate::config::{ServerConfig, max_datagram};
use crate::{Conversation, Refused};

/// What [`HoldBudget::input`] did with a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fed {
    /// The conversation moved to the datagram's source (send there from now on).
    pub moved: bool,
    /// Data segments left out for the budget.
    pub left_out: u64,
}

/// What a server's sessions hold out of order, against its share of
/// `max_buffered_bytes`. Each held segment counts as a whole datagram of the largest
/// size accepted (it may keep one alive).
#[derive(Clone, Copy, Debug)]
pub struct HoldBudget {
    held: usize,
    budget: usize,
    per_segment: usize,
}

impl HoldBudget {
    /// The budget of one of `shares` equal parts of `config`'s server (its event
    /// loops; 1 for a server of one loop or task).
    pub fn new(config: &ServerConfig, shares: usize) -> Self {
        Self {
            held: 0,
            budget: config.max_buffered_bytes / shares.max(1),
            per_segment: max_datagram(&config.engine),
        }
    }

    /// Whether the sessions may hold more out of order: `false` once the budget is
    /// spent.
    pub const fn may_hold(&self) -> bool {
        self.held < self.budget
    }

    /// Bytes counted as held now.
    pub const fn held(&self) -> usize {
        self.held
    }

    /// Feeds `datagram`, which came from `from`, to `conversation`, whose peer was
    /// last at `peer` ([`Conversation::input_from`]), leaving out the data it would
    /// hold out of order while the budget is spent
    /// ([`Conversation::input_within_budget`]). Recount after taking its messages.
    ///
    /// # Errors
    /// As [`Conversation::input_from`].
    pub fn input(
        &self,
        conversation: &mut Conversation,
        now: std::time::Instant,
        peer: std::net::SocketAddr,
        from: std::net::SocketAddr,
        datagram: &[u8],
    ) -> Result<Fed, Refused> {
        let before = conversation.counters_ref().dropped_over_budget;
        let moved = conversation.input_within_budget(now, peer, from, datagram, self.may_hold())?;
        Ok(Fed {
            moved,
            left_out: conversation.counters_ref().dropped_over_budget - before,
        })
    }

    /// Counts again what `conversation` holds after an input; `counted` is what was
    /// counted for it before (updated in place, kept beside the conversation).
    pub fn recount(&mut self, counted: &mut usize, conversation: &Conversation) {
        let now = conversation.engine().held_segments() * self.per_segment;
        // Saturating: a `counted` that did not come from this budget must not panic.
        self.held = self.held.saturating_sub(*counted) + now;
        *counted = now;
    }

    /// Gives back what a closed session held (`counted`, as [`recount`](Self::recount)
    /// left it).
    pub fn release(&mut self, counted: usize) {
        self.held = self.held.saturating_sub(counted);
    }
}

/// The segments of `datagram` the engine may take while the budget is spent: all but
/// the data it would hold out of order (a `Push` with a payload beyond the run of
/// segments that starts at `rcv_nxt`). ACKs and in-order data in the same datagram
/// still count: a sender's retransmission of the missing segment travels with later
/// ones, and dropping it with them would leave the gap open for good. Returns the
/// bytes to feed and how many data segments were left out; `None` if none is (feed
/// `datagram` as it is). Bytes that do not parse as KCP end the walk: the engine
/// judges them.
pub(crate) fn without_held(datagram: &[u8], rcv_nxt: Sn) -> Option<(Vec<u8>, u64)> {
    let mut next = rcv_nxt;
    let mut rest = datagram;
    let mut kept: Option<(Vec<u8>, u64)> = None;
    let mut offset = 0;
    while rest.len() >= HEADER_LEN {
        let Ok((header, payload)) = Header::parse(rest) else {
            break;
        };
        let len = HEADER_LEN + payload.len();
        let data = header.cmd == SegmentCommand::Push && !payload.is_empty();
        if data && header.sn == next {
            next = next.add(1);
        }
        if data && next.is_before(header.sn) {
            // Left out: what came before it is copied once, the first time.
            kept.get_or_insert_with(|| (datagram[..offset].to_vec(), 0))
                .1 += 1;
        } else if let Some((bytes, _)) = &mut kept {
            bytes.extend_from_slice(&rest[..len]);
        }
        offset += len;
        rest = &rest[len..];
    }
    let (mut bytes, left_out) = kept?;
    bytes.extend_from_slice(rest);
    Some((bytes, left_out))
}

#[cfg(test)]
mod tests {
    use kcp_core::segment::Command;

    use super::*;

    fn segment(cmd: Command, sn: u32, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0; HEADER_LEN];
        b[0..4].copy_from_slice(&7u32.to_le_bytes());
        b[4] = cmd.to_byte();
        b[8..12].copy_from_slice(&sn.to_le_bytes());
        b[12..16].copy_from_slice(&sn.to_le_bytes());
        b[20..24].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn a_count_the_budget_never_gave_does_not_underflow_it() {
        let mut config = ServerConfig::new(crate::Preset::Fast);
        config.max_buffered_bytes = 3000;
        let mut budget = HoldBudget::new(&config, 2);
        assert!(budget.may_hold());
        let now = std::time::Instant::now();
        let conversation = Conversation::new(1, config.conversation(), now).unwrap();
        // Nothing held: a count of 5,000 from elsewhere goes, and nothing goes below 0.
        let mut counted = 5_000;
        budget.recount(&mut counted, &conversation);
        assert_eq!((budget.held(), counted), (0, 0));
        budget.release(10_000);
        assert_eq!(budget.held(), 0);
        assert!(budget.may_hold());
    }

    #[test]
    fn only_data_beyond_the_in_order_run_is_left_out() {
        let ack = segment(Command::Ack, 3, b"");
        let (d5, d6, d8) = (
            segment(Command::Push, 5, b"five"),
            segment(Command::Push, 6, b"six"),
            segment(Command::Push, 8, b"eight"),
        );
        let old = segment(Command::Push, 2, b"two");
        // Nothing beyond the run: fed as it is.
        let whole = [ack.clone(), d5.clone(), d6.clone(), old.clone()].concat();
        assert_eq!(without_held(&whole, Sn::new(5)), None);
        // The retransmitted 5 with 8: 5 (and the ACK) stay, 8 goes.
        let mixed = [ack.clone(), d5.clone(), d8.clone(), d6.clone()].concat();
        let (kept, left_out) = without_held(&mixed, Sn::new(5)).unwrap();
        assert_eq!(kept, [ack.clone(), d5.clone(), d6.clone()].concat());
        assert_eq!(left_out, 1);
        // All of it beyond: only the ACK is left.
        let beyond = [d8.clone(), ack.clone(), d6].concat();
        let (kept, left_out) = without_held(&beyond, Sn::new(5)).unwrap();
        assert_eq!(kept, ack);
        assert_eq!(left_out, 2);
        // Bytes that are not KCP are passed on for the engine to refuse.
        let junk = [d8, vec![1, 2, 3]].concat();
        assert_eq!(without_held(&junk, Sn::new(5)).unwrap(), (vec![1, 2, 3], 1));
    }
}
