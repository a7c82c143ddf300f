//! Which of a turn's messages may leave before the turn's fsync.
//!
//! A leader's accepts can go to the followers while its own disk writes the same entries, as
//! Raft's leaders do (Ongaro's thesis, 10.2.1): the follower's fsync and the leader's then
//! overlap instead of following each other, which takes one fsync off every write's path.
//!
//! Why it is safe here: OmniPaxos counts the leader as having accepted an entry as soon as it
//! is appended, but an entry is decided only once a follower's `Accepted` for it is handled,
//! and that can only happen in a later turn than the one that sent the entry. Every turn ends
//! with its fsync before the next one handles anything (`node`), so by then the leader's copy
//! is durable and the decided index it sends (in `AcceptDecide` or `Decide`) never counts an
//! entry only the leader's page cache holds. Entries a leader appends while finishing a turn
//! (renewed proposals) are taken at the next turn and synced at its end, before any answer to
//! them is read. If the leader loses power before its fsync, followers may hold entries of its
//! ballot that it lost; no one else proposes in that ballot and the leader itself never
//! proposes again in it (a restarted node needs a new, higher ballot to lead), so the next
//! leader adopts them like any other accepted entries.
//!
//! Everything else waits for the fsync: a `Promise` or `Accepted` promises what this node
//! wrote, and a leader's `Prepare` or `AcceptSync` stands on the promise or accepted round it
//! just wrote. Messages to one peer keep their order: once one of them waits, the rest wait
//! behind it. Ballot leader election messages touch no storage and leave at once.
//!
//! This is the rule of the turn loop (`node --turn-loop`); the default loop handles inputs
//! while its fsync runs, and `pipeline` holds its rule.

use omnipaxos::messages::{sequence_paxos::PaxosMsg, Message};

use omnikv_core::{KVCommand, NodeId};

use super::Outgoing;

/// Which messages a replica hands out before its host's fsync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseBeforeSync {
    /// A leader's accepts and decides, and ballot leader election (see the module comment).
    LeaderAccepts,
    /// Every message, a `Promise` or `Accepted` included: unsafe, it promises writes that a
    /// power loss can take back. Only for the simulation to show that it catches this.
    UnsafeAll,
    /// As `LeaderAccepts` in turns; in the overlapped loop (`pipeline`), a leader's decides
    /// also leave at once, though their decided index may count its own unsynced copy: unsafe.
    /// Only for the simulation to show that it catches this.
    UnsafeDecides,
}

impl ReleaseBeforeSync {
    fn allows(self, msg: &Message<KVCommand>) -> bool {
        match (self, msg) {
            (ReleaseBeforeSync::UnsafeAll, _) => true,
            (_, Message::BLE(_)) => true,
            (_, Message::SequencePaxos(p)) => {
                matches!(p.msg, PaxosMsg::AcceptDecide(_) | PaxosMsg::Decide(_))
            }
        }
    }
}

/// Splits `messages` (in the order OmniPaxos produced them) into those that may leave now and
/// those that wait for the fsync, keeping each peer's messages in order.
pub fn split(messages: Vec<Outgoing>, rule: ReleaseBeforeSync) -> (Vec<Outgoing>, Vec<Outgoing>) {
    let mut now = Vec::with_capacity(messages.len());
    let mut after_sync = Vec::new();
    // Peers with a waiting message: few (the cluster's size), so a vector.
    let mut waiting: Vec<NodeId> = Vec::new();
    for out in messages {
        if !waiting.contains(&out.to) && rule.allows(&out.msg) {
            now.push(out);
        } else {
            if !waiting.contains(&out.to) {
                waiting.push(out.to);
            }
            after_sync.push(out);
        }
    }
    (now, after_sync)
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnipaxos::ballot_leader_election::Ballot;
    use omnipaxos::messages::sequence_paxos::{AcceptDecide, AcceptSync, Accepted, PaxosMessage};
    use omnipaxos::util::LogSync;

    fn ballot() -> Ballot {
        Ballot {
            config_id: 1,
            n: 2,
            priority: 0,
            pid: 1,
        }
    }

    fn out(to: NodeId, msg: PaxosMsg<KVCommand>) -> Outgoing {
        Outgoing {
            to,
            msg_id: 0,
            msg: Message::SequencePaxos(PaxosMessage { from: 1, to, msg }),
        }
    }

    fn accept_decide() -> PaxosMsg<KVCommand> {
        PaxosMsg::AcceptDecide(AcceptDecide {
            n: ballot(),
            seq_num: Default::default(),
            decided_idx: 0,
            entries: Vec::new(),
        })
    }

    fn accepted() -> PaxosMsg<KVCommand> {
        PaxosMsg::Accepted(Accepted {
            n: ballot(),
            accepted_idx: 1,
        })
    }

    fn accept_sync() -> PaxosMsg<KVCommand> {
        PaxosMsg::AcceptSync(AcceptSync {
            n: ballot(),
            seq_num: Default::default(),
            decided_idx: 0,
            log_sync: LogSync {
                decided_snapshot: None,
                suffix: Vec::new(),
                sync_idx: 0,
                stopsign: None,
            },
        })
    }

    fn targets(messages: &[Outgoing]) -> Vec<NodeId> {
        messages.iter().map(|m| m.to).collect()
    }

    #[test]
    fn a_leaders_accepts_leave_before_the_sync_and_a_followers_accepted_waits() {
        let messages = vec![out(2, accept_decide()), out(3, accepted())];
        let (now, later) = split(messages, ReleaseBeforeSync::LeaderAccepts);
        assert_eq!(targets(&now), [2]);
        assert_eq!(targets(&later), [3]);
    }

    #[test]
    fn an_accept_behind_a_waiting_sync_to_the_same_peer_waits_too() {
        let messages = vec![
            out(2, accept_sync()),
            out(3, accept_decide()),
            out(2, accept_decide()),
        ];
        let (now, later) = split(messages, ReleaseBeforeSync::LeaderAccepts);
        assert_eq!(targets(&now), [3]);
        assert_eq!(targets(&later), [2, 2]);
        assert!(matches!(
            &later[0].msg,
            Message::SequencePaxos(PaxosMessage {
                msg: PaxosMsg::AcceptSync(_),
                ..
            })
        ));
    }
}
