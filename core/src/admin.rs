//! Node administration over a node's `/admin` WebSocket: used by the launcher (link control,
//! status), by the visualizer (pages of the KV table) and by tests (full state dumps to compare
//! replicas).

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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminResponse {
    Ok,
    Status(NodeStatus),
    Dump(Box<NodeDump>),
    DumpPage(DumpPage),
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
            AdminResponse::Dump(Box::new(dump)),
            AdminResponse::DumpPage(DumpPage {
                applied_idx: 3,
                entries: vec![("a".into(), "1".into())],
                next_after: Some("a".into()),
            }),
            AdminResponse::Error {
                message: "x".into(),
            },
        ] {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<AdminResponse>(&json).unwrap(), r);
        }
        let req: AdminRequest =
            serde_json::from_str(r#"{"set_link":{"peer":2,"connected":false}}"#).unwrap();
        assert_eq!(
            req,
            AdminRequest::SetLink {
                peer: 2,
                connected: false
            }
        );
        let req: AdminRequest = serde_json::from_str(r#"{"dump_page":{"limit":10}}"#).unwrap();
        assert_eq!(
            req,
            AdminRequest::DumpPage {
                after: None,
                limit: 10
            }
        );
    }
}
