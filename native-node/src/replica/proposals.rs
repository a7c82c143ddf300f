//! The proposals of a turn, handed to OmniPaxos together.
//!
//! OmniPaxos 0.2.4 takes a proposal at a time (`append`), and a leader writes each one to its
//! log and sends each its own `AcceptDecide`; a follower forwards each in its own
//! `ProposalForward`, which the leader then writes on its own. Under many clients that is a log
//! write and a message per request on every node. A `ProposalForward` carries any number of
//! entries, and a node handed one addressed to itself does what `append` does with each
//! (accepts them as leader, buffers them while preparing, forwards them as follower), in one
//! write and one message per peer. So the turn's proposals wait here until its messages are
//! taken, and go in as one.
//!
//! `append` also refuses proposals once a reconfiguration was accepted; nodes never propose
//! one, so nothing is lost by not asking it.

use omnikv_core::{KVCommand, NodeId};
use omnipaxos::messages::{
    sequence_paxos::{PaxosMessage, PaxosMsg},
    Message,
};

/// Bytes of keys and values in one batch: a larger turn is proposed in several, so that one
/// message stays a small share of a peer's queue.
pub const PROPOSAL_BATCH_BYTES_MAX: usize = 1 << 20;

#[derive(Debug, Default)]
pub struct ProposalBatch {
    entries: Vec<KVCommand>,
    bytes: usize,
}

impl ProposalBatch {
    /// Adds `cmd`; true once the batch should be proposed without waiting for the turn's end.
    pub fn push(&mut self, cmd: KVCommand) -> bool {
        self.bytes += cmd.payload_bytes();
        self.entries.push(cmd);
        self.bytes >= PROPOSAL_BATCH_BYTES_MAX
    }

    /// The batch as the message that proposes it on node `own`, if it holds anything.
    pub fn take(&mut self, own: NodeId) -> Option<Message<KVCommand>> {
        if self.entries.is_empty() {
            return None;
        }
        self.bytes = 0;
        Some(Message::SequencePaxos(PaxosMessage {
            from: own,
            to: own,
            msg: PaxosMsg::ProposalForward(std::mem::take(&mut self.entries)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnikv_core::RequestId;

    fn put(seq: u64, value_bytes: usize) -> KVCommand {
        KVCommand::Put {
            id: RequestId { client: 1, seq },
            key: format!("k{seq}"),
            value: "v".repeat(value_bytes),
            forget_below: 0,
        }
    }

    #[test]
    fn a_batch_keeps_the_order_of_its_proposals_and_empties() {
        let mut batch = ProposalBatch::default();
        assert!(batch.take(2).is_none(), "nothing to propose");
        for seq in 0..3 {
            assert!(!batch.push(put(seq, 10)));
        }
        let Some(Message::SequencePaxos(m)) = batch.take(2) else {
            panic!("no proposal message");
        };
        assert_eq!((m.from, m.to), (2, 2));
        let PaxosMsg::ProposalForward(entries) = m.msg else {
            panic!("not a ProposalForward");
        };
        assert_eq!(entries, (0..3).map(|seq| put(seq, 10)).collect::<Vec<_>>());
        assert!(batch.take(2).is_none(), "taken once");
    }

    #[test]
    fn a_batch_asks_to_be_proposed_once_it_holds_a_megabyte() {
        let mut batch = ProposalBatch::default();
        let value_bytes = PROPOSAL_BATCH_BYTES_MAX / 4;
        let full = (0..8).position(|seq| batch.push(put(seq, value_bytes)));
        assert_eq!(full, Some(3), "the fourth value fills it");
        assert!(batch.take(1).is_some());
        assert!(!batch.push(put(9, 1)), "empty again after it was taken");
    }
}
