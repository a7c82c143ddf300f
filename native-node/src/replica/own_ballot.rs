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

use omnikv_core::{KVCommand, NodeId};
use omnipaxos::{storage::Storage, OmniPaxos};

/// Heartbeat rounds a node may hold its own ballot without leading before it asks for a higher
/// one.
pub const STALLED_ROUNDS: u64 = 3;

#[derive(Default)]
pub struct OwnBallotWatch {
    stalled_ticks: u64,
}

impl OwnBallotWatch {
    /// Called on every tick; returns true when it asked OmniPaxos for a higher ballot.
    pub fn tick<S: Storage<KVCommand>>(
        &mut self,
        omni: &mut OmniPaxos<KVCommand, S>,
        me: NodeId,
        cluster_size: usize,
        round_ticks: u64,
    ) -> bool {
        if omni.get_current_leader() != Some((me, false)) {
            self.stalled_ticks = 0;
            return false;
        }
        self.stalled_ticks += 1;
        if self.stalled_ticks < STALLED_ROUNDS * round_ticks {
            return false;
        }
        // Replies of the last heartbeat round, from peers only.
        let heard = omni.get_ui_states().heartbeats.len() + 1;
        if heard <= cluster_size / 2 {
            return false;
        }
        self.stalled_ticks = 0;
        omni.try_become_leader();
        true
    }
}
