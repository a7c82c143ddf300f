//! Frames between nodes: length-delimited JSON on one TCP stream per direction and peer.
//!
//! A connection opens with [`PeerFrame::Hello`]; the receiver accepts it only from a member of
//! its own cluster. When the cluster has a secret, each side sends the other a
//! [`PeerFrame::Challenge`] and must answer the other's with a [`PeerFrame::Proof`] that it
//! holds the secret (an HMAC over the challenge; the secret itself never crosses the link). Every
//! OmniPaxos message carries a per-sender sequence id so that the event stream can match a send
//! to its receive.

use omnipaxos::messages::Message;
use serde::{Deserialize, Serialize};

use crate::{command::KVCommand, NodeId};

/// The first frame on a connection is `Hello` (then `Challenge` back and `Proof` when the
/// cluster has a secret); every other frame carries one OmniPaxos message.
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
        let mut snapshot = KVSnapshot::default();
        snapshot.len = 6411328019041888;
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
}
