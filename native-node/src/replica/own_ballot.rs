//! A node stuck on a ballot of its own asks for a higher one.
//!
//! OmniPaxos 0.2.4 can leave nodes out of a working cluster for good. Say node 5 leads with
//! ballot (2, 5) and node 4 promises it, then node 5 crashes before the others hear of it, and
//! nodes 1-3 elect node 2 with ballot (2, 2), which orders below (2, 5). When node 5 restarts,
//! it recovers its promise of (2, 5) and waits, a follower, for a leader. Its heartbeats carry
//! (2, 5), so every node's leader election settles on node 5, but node 5's Sequence Paxos
//! ignores a ballot it has already promised, so it never prepares again; node 2's `Prepare`s
//! carry a lower ballot than nodes 4 and 5 promised, so they ignore those. Nodes 4 and 5 never
//! catch up, and the cluster has no node to spare. The deterministic simulation found this on
//! 5 nodes.
//!
//! The way out is a ballot higher than every promise: OmniPaxos' `try_become_leader`. A node
//! asks for one when its promise has been its own ballot without it leading for
//! [`STALLED_ROUNDS`] heartbeat rounds, and only while it hears from a majority (so an isolated
//! node does not inflate its ballot and take the lead when it comes back). A leader's prepare
//! phase normally ends within one round trip, far inside that time.
//!
//! Not when a follower's promise carries a snapshot: a follower ahead of a new leader promises
//! with what the leader lacks, the whole table when the leader is behind its compacted index,
//! and a large one takes seconds to encode, send and decode. A higher ballot asked for
//! meanwhile makes the follower build and send the table again for the new ballot, and the
//! leader drops the old promise when it arrives: each round repeats this, and the cluster never
//! gets a working leader. The stall this watch exists for is a node that holds its own ballot
//! *without having prepared in it*; a node that sent a `Prepare` of the ballot it holds waits
//! [`PREPARING_STALLED_ROUNDS`] instead, long enough for a large promise and still a bound.

use omnikv_core::{KVCommand, NodeId};
use omnipaxos::ballot_leader_election::Ballot;
use omnipaxos::messages::{sequence_paxos::PaxosMsg, Message};
use omnipaxos::{storage::Storage, OmniPaxos};

/// Heartbeat rounds a node may hold its own ballot without leading before it asks for a higher
/// one.
pub const STALLED_ROUNDS: u64 = 3;

/// The same for a node that sent a `Prepare` of the ballot it holds: 10 s at the default 50 ms
/// rounds, in which a promise of a few hundred MB arrives.
pub const PREPARING_STALLED_ROUNDS: u64 = 200;

#[derive(Default)]
pub struct OwnBallotWatch {
    stalled_ticks: u64,
    /// The ballot of the last `Prepare` this node sent.
    prepared: Option<Ballot>,
}

impl OwnBallotWatch {
    /// Notes an outgoing message: a `Prepare` names the ballot this node prepared in.
    pub fn sent(&mut self, msg: &Message<KVCommand>) {
        if let Message::SequencePaxos(p) = msg {
            if let PaxosMsg::Prepare(prepare) = &p.msg {
                self.prepared = Some(prepare.n);
            }
        }
    }

    /// Called on every tick; when it asked OmniPaxos for a higher ballot, gives the heartbeat
    /// rounds it waited.
    pub fn tick<S: Storage<KVCommand>>(
        &mut self,
        omni: &mut OmniPaxos<KVCommand, S>,
        me: NodeId,
        cluster_size: usize,
        round_ticks: u64,
    ) -> Option<u64> {
        if omni.get_current_leader() != Some((me, false)) {
            self.stalled_ticks = 0;
            return None;
        }
        let rounds = if self.prepared == Some(omni.get_promise()) {
            PREPARING_STALLED_ROUNDS
        } else {
            STALLED_ROUNDS
        };
        self.stalled_ticks += 1;
        if self.stalled_ticks < rounds * round_ticks {
            return None;
        }
        // Replies of the last heartbeat round, from peers only.
        let heard = omni.get_ui_states().heartbeats.len() + 1;
        if heard <= cluster_size / 2 {
            return None;
        }
        self.stalled_ticks = 0;
        omni.try_become_leader();
        Some(rounds)
    }
}
