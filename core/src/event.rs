//! The event stream a node publishes on its `/events` WebSocket.
//!
//! Events describe what the node really did: OmniPaxos messages sent and received, entries
//! appended, decided and applied, snapshots, leader changes and client traffic. The visualizer
//! draws only from these. Every event is wrapped in an [`EventEnvelope`] with the node's id, a
//! per-node sequence number (gaps mean events were dropped) and a wall-clock timestamp.
//!
//! A frame carries one or more envelopes, one JSON object per line ([`frame_events`]), or in
//! postcard one after another ([`postcard_frame_events`]): a busy
//! node sends what happened during a few milliseconds together, which costs it and its watchers
//! one message instead of hundreds.

use omnipaxos::{
    ballot_leader_election::Ballot,
    messages::{ballot_leader_election::HeartbeatMsg, sequence_paxos::PaxosMsg, Message},
    util::LogSync,
};
use serde::{Deserialize, Serialize};

use crate::{
    client::{ClientError, ClientOp},
    command::{KVCommand, RequestId},
    NodeId,
};

/// The encoded envelopes in an `/events` frame. JSON text never holds a raw newline, so lines
/// are envelopes.
/// Whether a log event that carries `count` commands holding `bytes` of keys and values may
/// carry one more (see [`NodeEvent::EntriesAppended`]): the one rule that bounds the commands
/// an event carries, in number and in bytes.
pub fn event_takes_another(count: usize, bytes: usize) -> bool {
    count < crate::limits::EVENT_COMMANDS_MAX && bytes < crate::limits::EVENT_COMMAND_BYTES_MAX
}

pub fn frame_events(frame: &str) -> impl Iterator<Item = &str> {
    frame.split('\n').filter(|line| !line.trim().is_empty())
}

/// The envelopes of a postcard frame, written one after another; decoding stops at the first
/// that does not decode (what follows it cannot be found).
pub fn postcard_frame_events(
    frame: &[u8],
) -> impl Iterator<Item = Result<EventEnvelope, crate::DecodeError>> + '_ {
    let mut rest = Some(frame);
    std::iter::from_fn(move || {
        let bytes = rest.take().filter(|b| !b.is_empty())?;
        match crate::wire::take_postcard::<EventEnvelope>(bytes) {
            Ok((envelope, after)) => {
                rest = Some(after);
                Some(Ok(envelope))
            }
            Err(e) => Some(Err(e)),
        }
    })
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventEnvelope {
    pub node: NodeId,
    /// Per-node sequence number, starting at 1 for each process start.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub event: NodeEvent,
}

/// A ballot in the form the wire and the page use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BallotView {
    pub n: u32,
    pub priority: u32,
    pub pid: NodeId,
}

impl From<Ballot> for BallotView {
    fn from(b: Ballot) -> Self {
        BallotView {
            n: b.n,
            priority: b.priority,
            pid: b.pid,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Leader in the accept phase: it can decide entries.
    Leader,
    /// Elected, but still synchronising logs (prepare phase).
    Candidate,
    Follower,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub id: NodeId,
    /// The outgoing TCP stream is up.
    pub connected: bool,
    /// The link is not cut by the operator.
    pub link_enabled: bool,
    /// Messages to this peer are held by this node, to be delivered one by one.
    #[serde(default)]
    pub held: bool,
    /// Messages waiting on the held link.
    #[serde(default)]
    pub waiting: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: NodeId,
    pub role: Role,
    pub leader: Option<NodeId>,
    /// Ballot of the current leader as this node knows it.
    pub ballot: BallotView,
    /// Highest ballot this node has promised.
    pub promise: BallotView,
    pub accepted_idx: u64,
    pub decided_idx: u64,
    pub compacted_idx: u64,
    pub applied_idx: u64,
    /// The digest of the applied table (`crate::digest`) at `kv_digest_idx`. A node computes
    /// it beside its event loop while someone watches its events, so it trails `applied_idx`
    /// under load, and is absent (`null`) until the first such fold is done.
    #[serde(default)]
    pub kv_digest: Option<crate::digest::TableDigest>,
    /// The applied index `kv_digest` is at (absent from older statuses and traces, whose
    /// digest is at `applied_idx`).
    #[serde(default)]
    pub kv_digest_idx: Option<u64>,
    pub peers: Vec<PeerStatus>,
    pub data_dir: String,
    pub started_at_ms: u64,
    pub pid: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageKind {
    PrepareReq,
    Prepare,
    Promise,
    AcceptSync,
    AcceptDecide,
    Accepted,
    NotAccepted,
    Decide,
    ProposalForward,
    Compaction,
    AcceptStopSign,
    ForwardStopSign,
    HeartbeatRequest,
    HeartbeatReply,
}

impl MessageKind {
    pub fn is_heartbeat(self) -> bool {
        matches!(
            self,
            MessageKind::HeartbeatRequest | MessageKind::HeartbeatReply
        )
    }
}

/// How a log-synchronising message carries the decided prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotCarried {
    Complete,
    Delta,
}

/// A summary of one OmniPaxos message: enough to draw and inspect it, small enough to stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageInfo {
    /// Sender-assigned id; `(from, msg_id)` matches a send to its receive.
    pub msg_id: u64,
    pub from: NodeId,
    pub to: NodeId,
    pub kind: MessageKind,
    pub ballot: Option<BallotView>,
    /// Decided index the message carries, if any.
    pub decided_idx: Option<u64>,
    /// Accepted index the message carries, if any.
    pub accepted_idx: Option<u64>,
    /// Log index of the first carried entry, if entries are carried.
    pub sync_idx: Option<u64>,
    pub entry_count: u64,
    pub snapshot: Option<SnapshotCarried>,
}

impl MessageInfo {
    pub fn of(msg_id: u64, msg: &Message<KVCommand>) -> MessageInfo {
        let mut info = MessageInfo {
            msg_id,
            from: msg.get_sender(),
            to: msg.get_receiver(),
            kind: MessageKind::HeartbeatRequest,
            ballot: None,
            decided_idx: None,
            accepted_idx: None,
            sync_idx: None,
            entry_count: 0,
            snapshot: None,
        };
        fn sync_fields(info: &mut MessageInfo, sync: &LogSync<KVCommand>) {
            info.sync_idx = Some(sync.sync_idx as u64);
            info.entry_count = sync.suffix.len() as u64;
            info.snapshot = sync.decided_snapshot.as_ref().map(|s| match s {
                omnipaxos::storage::SnapshotType::Complete(_) => SnapshotCarried::Complete,
                omnipaxos::storage::SnapshotType::Delta(_) => SnapshotCarried::Delta,
            });
        }
        match msg {
            Message::BLE(b) => match &b.msg {
                HeartbeatMsg::Request(_) => info.kind = MessageKind::HeartbeatRequest,
                HeartbeatMsg::Reply(r) => {
                    info.kind = MessageKind::HeartbeatReply;
                    info.ballot = Some(r.ballot.into());
                }
            },
            Message::SequencePaxos(p) => match &p.msg {
                PaxosMsg::PrepareReq(m) => {
                    info.kind = MessageKind::PrepareReq;
                    info.ballot = Some(m.n.into());
                }
                PaxosMsg::Prepare(m) => {
                    info.kind = MessageKind::Prepare;
                    info.ballot = Some(m.n.into());
                    info.decided_idx = Some(m.decided_idx as u64);
                    info.accepted_idx = Some(m.accepted_idx as u64);
                }
                PaxosMsg::Promise(m) => {
                    info.kind = MessageKind::Promise;
                    info.ballot = Some(m.n.into());
                    info.decided_idx = Some(m.decided_idx as u64);
                    info.accepted_idx = Some(m.accepted_idx as u64);
                    if let Some(sync) = &m.log_sync {
                        sync_fields(&mut info, sync);
                    }
                }
                PaxosMsg::AcceptSync(m) => {
                    info.kind = MessageKind::AcceptSync;
                    info.ballot = Some(m.n.into());
                    info.decided_idx = Some(m.decided_idx as u64);
                    sync_fields(&mut info, &m.log_sync);
                }
                PaxosMsg::AcceptDecide(m) => {
                    info.kind = MessageKind::AcceptDecide;
                    info.ballot = Some(m.n.into());
                    info.decided_idx = Some(m.decided_idx as u64);
                    info.entry_count = m.entries.len() as u64;
                }
                PaxosMsg::Accepted(m) => {
                    info.kind = MessageKind::Accepted;
                    info.ballot = Some(m.n.into());
                    info.accepted_idx = Some(m.accepted_idx as u64);
                }
                PaxosMsg::NotAccepted(m) => {
                    info.kind = MessageKind::NotAccepted;
                    info.ballot = Some(m.n.into());
                }
                PaxosMsg::Decide(m) => {
                    info.kind = MessageKind::Decide;
                    info.ballot = Some(m.n.into());
                    info.decided_idx = Some(m.decided_idx as u64);
                }
                PaxosMsg::ProposalForward(entries) => {
                    info.kind = MessageKind::ProposalForward;
                    info.entry_count = entries.len() as u64;
                }
                PaxosMsg::Compaction(_) => info.kind = MessageKind::Compaction,
                PaxosMsg::AcceptStopSign(m) => {
                    info.kind = MessageKind::AcceptStopSign;
                    info.ballot = Some(m.n.into());
                }
                PaxosMsg::ForwardStopSign(_) => info.kind = MessageKind::ForwardStopSign,
            },
        }
        info
    }
}

/// The outcome of a client request, as the event stream reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestOutcome {
    Ok { value: Option<String> },
    Err { error: ClientError },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeEvent {
    /// The node's state; sent on subscription, on every change and at least once a second.
    Status(NodeStatus),
    MessageSent(MessageInfo),
    MessageReceived(MessageInfo),
    /// Entries accepted into this node's log at `from_idx..`. `commands` is a prefix of them,
    /// cut where [`event_takes_another`] says no, and empty when the node is too busy to read
    /// its new entries back (they come again with [`NodeEvent::EntriesApplied`]); `count` is the
    /// real number.
    EntriesAppended {
        from_idx: u64,
        count: u64,
        commands: Vec<KVCommand>,
    },
    /// The decided index moved from `from_idx` to `to_idx`.
    EntriesDecided {
        from_idx: u64,
        to_idx: u64,
    },
    /// Entries applied to the KV table at `from_idx..`; `commands` is a prefix of them, cut as
    /// for [`NodeEvent::EntriesAppended`]; `skipped_duplicates` retried requests were
    /// recognised and not applied again.
    EntriesApplied {
        from_idx: u64,
        count: u64,
        commands: Vec<KVCommand>,
        skipped_duplicates: u64,
    },
    /// The log prefix up to `compacted_idx` was folded into a snapshot.
    SnapshotTaken {
        compacted_idx: u64,
        keys: Vec<String>,
        key_count: u64,
    },
    /// The KV table was replaced by a snapshot received from the leader (catch-up).
    SnapshotInstalled {
        compacted_idx: u64,
        keys: Vec<String>,
        key_count: u64,
    },
    LeaderChanged {
        leader: Option<NodeId>,
        ballot: BallotView,
    },
    LinkChanged {
        peer: NodeId,
        connected: bool,
    },
    /// The messages this node holds for `peer` changed: the link was held or released, a
    /// message was queued, delivered or dropped. `head` is the first of them, oldest first (at
    /// most [`crate::limits::EVENT_HELD_HEAD_MAX`]); `waiting` is how many there are.
    HeldMessages {
        peer: NodeId,
        held: bool,
        waiting: u64,
        head: Vec<MessageInfo>,
    },
    ClientRequest {
        id: RequestId,
        op: ClientOp,
    },
    ClientReply {
        id: RequestId,
        outcome: RequestOutcome,
        latency_us: u64,
    },
    /// The node was busier than its detail budget: this many message and client events since
    /// the last such report were counted instead of sent (the log, snapshot, leader and status
    /// events are always sent).
    DetailsSampled {
        messages: u64,
        client_events: u64,
    },
    /// This subscriber fell behind and `dropped` frames (of one or more events each) were
    /// skipped.
    Lagged {
        dropped: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnipaxos::messages::sequence_paxos::{AcceptDecide, PaxosMessage};

    #[test]
    fn every_event_variant_round_trips() {
        let status = NodeStatus {
            id: 1,
            role: Role::Leader,
            leader: Some(1),
            ballot: BallotView {
                n: 2,
                priority: 0,
                pid: 1,
            },
            promise: BallotView {
                n: 2,
                priority: 0,
                pid: 1,
            },
            accepted_idx: 5,
            decided_idx: 4,
            compacted_idx: 0,
            kv_digest: Some(crate::digest::TableDigest(7)),
            kv_digest_idx: Some(3),
            applied_idx: 4,
            peers: vec![PeerStatus {
                id: 2,
                connected: true,
                link_enabled: true,
                held: true,
                waiting: 3,
            }],
            data_dir: "/tmp/x".into(),
            started_at_ms: 1,
            pid: 42,
        };
        let id = RequestId { client: 1, seq: 1 };
        let cmd = KVCommand::Put {
            id,
            key: "k".into(),
            value: "v".into(),
            forget_below: 0,
        };
        let msg: Message<KVCommand> = Message::SequencePaxos(PaxosMessage {
            from: 1,
            to: 2,
            msg: PaxosMsg::AcceptDecide(AcceptDecide {
                n: Ballot::default(),
                seq_num: Default::default(),
                decided_idx: 3,
                entries: vec![cmd.clone()],
            }),
        });
        let info = MessageInfo::of(9, &msg);
        assert_eq!(info.kind, MessageKind::AcceptDecide);
        assert_eq!(info.entry_count, 1);
        assert_eq!((info.from, info.to, info.decided_idx), (1, 2, Some(3)));
        let events = vec![
            NodeEvent::Status(status),
            NodeEvent::MessageSent(info.clone()),
            NodeEvent::MessageReceived(info),
            NodeEvent::EntriesAppended {
                from_idx: 0,
                count: 1,
                commands: vec![cmd.clone()],
            },
            NodeEvent::EntriesDecided {
                from_idx: 0,
                to_idx: 1,
            },
            NodeEvent::EntriesApplied {
                from_idx: 0,
                count: 1,
                commands: vec![cmd],
                skipped_duplicates: 0,
            },
            NodeEvent::SnapshotTaken {
                compacted_idx: 1,
                keys: vec!["k".into()],
                key_count: 1,
            },
            NodeEvent::SnapshotInstalled {
                compacted_idx: 1,
                keys: vec!["k".into()],
                key_count: 1,
            },
            NodeEvent::LeaderChanged {
                leader: Some(1),
                ballot: BallotView::default(),
            },
            NodeEvent::LinkChanged {
                peer: 2,
                connected: false,
            },
            NodeEvent::ClientRequest {
                id,
                op: ClientOp::Delete { key: "k".into() },
            },
            NodeEvent::ClientReply {
                id,
                outcome: RequestOutcome::Ok { value: None },
                latency_us: 5,
            },
            NodeEvent::ClientReply {
                id,
                outcome: RequestOutcome::Err {
                    error: ClientError::Timeout { timeout_ms: 1 },
                },
                latency_us: 5,
            },
            NodeEvent::DetailsSampled {
                messages: 4,
                client_events: 2,
            },
            NodeEvent::Lagged { dropped: 3 },
        ];
        for (seq, event) in events.into_iter().enumerate() {
            let env = EventEnvelope {
                node: 1,
                seq: seq as u64,
                time_ms: 7,
                event,
            };
            let json = serde_json::to_string(&env).unwrap();
            assert_eq!(
                serde_json::from_str::<EventEnvelope>(&json).unwrap(),
                env,
                "{json}"
            );
        }
    }

    #[test]
    fn a_frame_carries_one_event_per_line() {
        let lines = [
            r#"{"node":1,"seq":3,"time_ms":4,"event":{"entries_decided":{"from_idx":0,"to_idx":1}}}"#,
            r#"{"node":1,"seq":4,"time_ms":4,"event":{"lagged":{"dropped":2}}}"#,
        ];
        let frame = format!("{}\n{}\n", lines[0], lines[1]);
        let seqs: Vec<u64> = frame_events(&frame)
            .map(|e| serde_json::from_str::<EventEnvelope>(e).unwrap().seq)
            .collect();
        assert_eq!(seqs, [3, 4]);
        assert_eq!(frame_events(lines[0]).count(), 1);
    }
}
