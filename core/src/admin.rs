//! Node administration over a node's `/admin` WebSocket: used by the launcher (link control,
//! status), by the visualizer (the head of a node's state, bounded whatever the table's size),
//! by `omnikv dump` (pages of the KV table) and by tests (full state dumps to compare replicas).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    event::NodeStatus,
    session::{Sessions, Versioned},
    KVCommand, KVSnapshot, NodeId,
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AdminRequest {
    /// Cut (`connected: false`) or heal this node's link to `peer`, both directions.
    SetLink {
        peer: NodeId,
        connected: bool,
    },
    Status,
    /// Hold (`held: true`) this node's messages to `peer` in a queue, to be delivered one by
    /// one; releasing delivers what waits, in order.
    HoldLink {
        peer: NodeId,
        held: bool,
    },
    /// Delivers the first `count` messages held for `peer`, in order.
    DeliverHeld {
        peer: NodeId,
        count: u32,
    },
    /// Drops the first message held for `peer` and breaks the link's stream: a lost message
    /// is a broken session to OmniPaxos, which then resynchronises the peer.
    DropHeld {
        peer: NodeId,
    },
    /// Everything the replica holds (tests compare replicas with it). Refused for a table of
    /// more than [`DUMP_KEYS_MAX`](crate::limits::DUMP_KEYS_MAX) keys: read it by pages.
    Dump,
    /// Up to `limit` keys of the KV table after `after` (from the first key when absent), in
    /// key order. Served from a RocksDB snapshot beside the event loop, so reading a large table
    /// costs the node's consensus work nothing but disk and CPU time.
    DumpPage {
        #[serde(default)]
        after: Option<String>,
        /// Clamped to [`DUMP_PAGE_KEYS_MAX`](crate::limits::DUMP_PAGE_KEYS_MAX).
        limit: u32,
    },
    /// What a viewer of the node shows: the first `keys` keys of the table, the sessions, a
    /// summary of the stored snapshot and the last `log_entries` decided entries, all of one
    /// applied index. Bounded whatever the table holds, so a viewer may ask it of any node.
    DumpHead {
        /// Clamped to [`DUMP_HEAD_KEYS_MAX`](crate::limits::DUMP_HEAD_KEYS_MAX); the keys'
        /// bytes are bounded by [`DUMP_HEAD_BYTES_MAX`](crate::limits::DUMP_HEAD_BYTES_MAX).
        keys: u32,
        /// Clamped to [`DUMP_HEAD_LOG_MAX`](crate::limits::DUMP_HEAD_LOG_MAX).
        log_entries: u32,
    },
}

/// One page of a node's KV table, read at one applied index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpPage {
    /// The index of the last entry applied to the table this page was read from. Pages of one
    /// walk may come from different indices: a table that changes while it is read is seen as
    /// it was at each page.
    pub applied_idx: u64,
    /// Keys in increasing byte order, with their values.
    pub entries: Vec<(String, String)>,
    /// The key to ask the next page after; absent on the last page.
    pub next_after: Option<String>,
}

/// Everything a replica holds, to check that replicas are identical.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDump {
    pub id: NodeId,
    pub applied_idx: u64,
    pub decided_idx: u64,
    pub compacted_idx: u64,
    /// The KV table as stored in RocksDB, with each key's `mod_index`.
    pub kv: BTreeMap<String, Versioned>,
    /// Client sessions as stored next to the KV table.
    pub sessions: Sessions,
    /// The stored snapshot of the compacted prefix, resolved.
    pub snapshot: Option<KVSnapshot>,
    /// Decided entries after the compacted prefix.
    pub decided_suffix: Vec<KVCommand>,
}

/// The head of a replica's state (see [`AdminRequest::DumpHead`]), read at one applied index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeHead {
    pub id: NodeId,
    pub applied_idx: u64,
    pub decided_idx: u64,
    pub compacted_idx: u64,
    /// The first keys of the KV table in key order, with each key's `mod_index`.
    pub kv: BTreeMap<String, Versioned>,
    /// Whether `kv` is the whole table.
    pub kv_complete: bool,
    /// Client sessions as stored next to the KV table (bounded by the session rule).
    pub sessions: Sessions,
    /// Keys in the stored snapshot of the compacted prefix.
    pub snapshot_key_count: u64,
    /// Its first keys in key order.
    pub snapshot_keys: Vec<String>,
    /// The log index of the first entry of `decided_tail`.
    pub tail_from_idx: u64,
    /// The last decided entries, ending at `decided_idx`.
    pub decided_tail: Vec<KVCommand>,
}

impl NodeHead {
    /// The head a node would have answered with, cut from a full dump (traces recorded before
    /// heads existed carry dumps).
    pub fn of_dump(
        dump: &NodeDump,
        keys: usize,
        log_entries: usize,
        snapshot_keys: usize,
    ) -> NodeHead {
        let skip = dump.decided_suffix.len().saturating_sub(log_entries);
        let snapshot = dump.snapshot.as_ref();
        // Inserted one by one, not collected: a map collected from an iterator sorts it first,
        // and that sort would be kilobytes of the page's wasm.
        let mut kv = BTreeMap::new();
        for (k, v) in dump.kv.iter().take(keys) {
            kv.insert(k.clone(), v.clone());
        }
        NodeHead {
            id: dump.id,
            applied_idx: dump.applied_idx,
            decided_idx: dump.decided_idx,
            compacted_idx: dump.compacted_idx,
            kv,
            kv_complete: dump.kv.len() <= keys,
            sessions: dump.sessions.clone(),
            snapshot_key_count: snapshot.map_or(0, |s| s.snapshotted.len() as u64),
            snapshot_keys: snapshot
                .map(|s| s.snapshotted.keys().take(snapshot_keys).cloned().collect())
                .unwrap_or_default(),
            tail_from_idx: dump.compacted_idx + skip as u64,
            decided_tail: dump.decided_suffix[skip..].to_vec(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminResponse {
    Ok,
    Status(NodeStatus),
    Dump(Box<NodeDump>),
    DumpPage(DumpPage),
    DumpHead(Box<NodeHead>),
    /// Messages delivered (or dropped) from a held link.
    Held {
        count: u32,
    },
    Error {
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_with_sessions_round_trips() {
        let dump = NodeDump {
            id: 1,
            applied_idx: 2,
            decided_idx: 2,
            compacted_idx: 0,
            kv: BTreeMap::from([(
                "k".into(),
                Versioned {
                    value: "v".into(),
                    mod_index: 1,
                },
            )]),
            sessions: {
                let mut s = Sessions::default();
                s.open(u64::MAX);
                s
            },
            snapshot: Some(KVSnapshot::default()),
            decided_suffix: vec![],
        };
        for r in [
            AdminResponse::Ok,
            AdminResponse::Dump(Box::new(dump.clone())),
            AdminResponse::DumpPage(DumpPage {
                applied_idx: 3,
                entries: vec![("a".into(), "1".into())],
                next_after: Some("a".into()),
            }),
            AdminResponse::DumpHead(Box::new(NodeHead::of_dump(&dump, 1, 1, 1))),
            AdminResponse::Error {
                message: "x".into(),
            },
        ] {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<AdminResponse>(&json).unwrap(), r);
        }
        let requests = [
            (
                r#"{"set_link":{"peer":2,"connected":false}}"#,
                AdminRequest::SetLink {
                    peer: 2,
                    connected: false,
                },
            ),
            (
                r#"{"dump_page":{"limit":10}}"#,
                AdminRequest::DumpPage {
                    after: None,
                    limit: 10,
                },
            ),
            (
                r#"{"dump_head":{"keys":2001,"log_entries":40}}"#,
                AdminRequest::DumpHead {
                    keys: 2001,
                    log_entries: 40,
                },
            ),
        ];
        for (json, expected) in requests {
            assert_eq!(
                serde_json::from_str::<AdminRequest>(json).unwrap(),
                expected
            );
        }
    }

    #[test]
    fn a_head_cut_from_a_dump_keeps_the_tail_at_its_indices() {
        let suffix: Vec<KVCommand> = (0..5u64)
            .map(|i| KVCommand::Delete {
                id: crate::RequestId { client: 1, seq: i },
                key: format!("k{i}"),
                forget_below: 0,
            })
            .collect();
        let dump = NodeDump {
            id: 2,
            applied_idx: 15,
            decided_idx: 15,
            compacted_idx: 10,
            kv: (0..3)
                .map(|i| {
                    let v = Versioned {
                        value: "v".into(),
                        mod_index: i,
                    };
                    (format!("k{i}"), v)
                })
                .collect(),
            sessions: Sessions::default(),
            snapshot: None,
            decided_suffix: suffix.clone(),
        };
        let head = NodeHead::of_dump(&dump, 2, 2, 8);
        assert_eq!(head.kv.len(), 2);
        assert!(!head.kv_complete);
        assert_eq!(head.tail_from_idx, 13);
        assert_eq!(head.decided_tail, suffix[3..]);
        let whole = NodeHead::of_dump(&dump, 3, 9, 8);
        assert!(whole.kv_complete);
        assert_eq!(whole.tail_from_idx, 10);
        assert_eq!(whole.decided_tail, suffix);
    }
}
