//! Frames between nodes: length-delimited JSON on one TCP stream per direction and peer.
//!
//! A connection opens with [`PeerFrame::Hello`]; the receiver accepts it only from a member of
//! its own cluster. When the cluster has a secret, each side sends the other a
//! [`PeerFrame::Challenge`] and must answer the other's with a [`PeerFrame::Proof`] that it
//! holds the secret (an HMAC over the challenge; the secret itself never crosses the link). Every
//! OmniPaxos message carries a per-sender sequence id so that the event stream can match a send
//! to its receive. [`PeerFrame::ReadIndex`] carries the read-index protocol, which OmniPaxos
//! 0.2.4 lacks: linearizable reads served from a node's table once the leader has confirmed,
//! with a majority, that it still leads ([`ReadIndexMsg`]).

use omnipaxos::{ballot_leader_election::Ballot, messages::Message};
use serde::{Deserialize, Serialize};

use crate::{command::KVCommand, NodeId};

/// The first frame on a connection is `Hello` (then `Challenge` back and `Proof` when the
/// cluster has a secret); every other frame carries one OmniPaxos message.
// A frame lives from its encoding or decoding to its hand-over, one at a time; boxing the
// common OmniPaxos variant would allocate once more per message to shrink the rare ones.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerFrame {
    Hello {
        cluster_id: String,
        from: NodeId,
    },
    /// A fresh random nonce (hex) for the other side to prove the secret against.
    Challenge {
        nonce: String,
    },
    /// HMAC-SHA256 of the other side's challenge under the cluster secret (hex).
    Proof {
        mac: String,
    },
    Paxos {
        /// Unique per sender; `(from, msg_id)` identifies a message cluster-wide.
        msg_id: u64,
        msg: Message<KVCommand>,
    },
    ReadIndex(ReadIndexMsg),
}

/// The read-index protocol. A read at the leader takes the leader's log length as its read
/// index; once a majority has answered a [`ReadIndexMsg::Probe`] sent after the read arrived
/// with the leader's own ballot as its promise, no other leader can have decided anything the
/// read must see, and the read is served as soon as the table has applied its index. A read at
/// a follower asks the leader for an index and waits for its own table to apply it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadIndexMsg {
    /// Leader to followers: "do you still hold my ballot?" A node's rounds only increase.
    Probe { ballot: Ballot, round: u64 },
    /// Follower to leader: the promise it holds when it answers `round`.
    Ack { round: u64, promise: Ballot },
    /// Follower to leader: an index for the reads the follower numbered `seq`.
    Request { seq: u64 },
    /// Leader to follower: the read index for `seq`, or `None` if this node cannot confirm
    /// that it leads (the follower's reads are answered `unavailable`).
    Response { seq: u64, read_idx: Option<u64> },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KVCommand, KVSnapshot, RequestId};
    use omnipaxos::{
        ballot_leader_election::Ballot,
        messages::sequence_paxos::{AcceptSync, PaxosMessage, PaxosMsg},
        storage::SnapshotType,
        util::LogSync,
    };

    #[test]
    fn a_frame_carrying_a_snapshot_with_sessions_round_trips() {
        let mut snapshot = KVSnapshot {
            len: 6411328019041888,
            ..KVSnapshot::default()
        };
        snapshot.push(&KVCommand::OpenSession {
            id: RequestId { client: 1, seq: 0 },
        });
        snapshot.push(&KVCommand::Put {
            id: RequestId {
                client: 6411328019041888,
                seq: 3,
            },
            key: "k".into(),
            value: "v".into(),
            forget_below: 1,
        });
        let frame = PeerFrame::Paxos {
            msg_id: 1,
            msg: Message::SequencePaxos(PaxosMessage {
                from: 1,
                to: 2,
                msg: PaxosMsg::AcceptSync(AcceptSync {
                    n: Ballot::default(),
                    seq_num: Default::default(),
                    decided_idx: 5,
                    log_sync: LogSync {
                        decided_snapshot: Some(SnapshotType::Complete(snapshot.clone())),
                        suffix: vec![],
                        sync_idx: 5,
                        stopsign: None,
                    },
                }),
            }),
        };
        let json = serde_json::to_vec(&frame).unwrap();
        let back: PeerFrame = serde_json::from_slice(&json).unwrap();
        let PeerFrame::Paxos {
            msg: Message::SequencePaxos(p),
            ..
        } = back
        else {
            panic!()
        };
        let PaxosMsg::AcceptSync(a) = p.msg else {
            panic!()
        };
        match a.log_sync.decided_snapshot {
            Some(SnapshotType::Complete(s)) => assert_eq!(s, snapshot),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn read_index_frames_round_trip() {
        let ballot = Ballot {
            config_id: 1,
            n: 3,
            priority: 0,
            pid: 2,
        };
        let messages = [
            ReadIndexMsg::Probe { ballot, round: 7 },
            ReadIndexMsg::Ack {
                round: 7,
                promise: ballot,
            },
            ReadIndexMsg::Request { seq: 4 },
            ReadIndexMsg::Response {
                seq: 4,
                read_idx: Some(12),
            },
            ReadIndexMsg::Response {
                seq: 5,
                read_idx: None,
            },
        ];
        for msg in messages {
            let json = serde_json::to_vec(&PeerFrame::ReadIndex(msg.clone())).unwrap();
            let back: PeerFrame = serde_json::from_slice(&json).unwrap();
            assert!(matches!(back, PeerFrame::ReadIndex(m) if m == msg));
        }
    }
}
