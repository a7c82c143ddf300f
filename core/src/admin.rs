//! Node administration over a node's `/admin` WebSocket: used by the launcher (link control,
//! status) and by tests (full state dumps to compare replicas).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{event::NodeStatus, KVCommand, KVSnapshot, NodeId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AdminRequest {
    /// Cut (`connected: false`) or heal this node's link to `peer`, both directions.
    SetLink {
        peer: NodeId,
        connected: bool,
    },
    Status,
    Dump,
}

/// Everything a replica holds, to check that replicas are identical.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDump {
    pub id: NodeId,
    pub applied_idx: u64,
    pub decided_idx: u64,
    pub compacted_idx: u64,
    /// The KV table as stored in RocksDB.
    pub kv: BTreeMap<String, String>,
    /// Deduplication sessions as stored next to the KV table.
    pub sessions: BTreeMap<u64, u64>,
    /// The stored snapshot of the compacted prefix, resolved.
    pub snapshot: Option<KVSnapshot>,
    /// Decided entries after the compacted prefix.
    pub decided_suffix: Vec<KVCommand>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AdminResponse {
    Ok,
    Status(NodeStatus),
    Dump(Box<NodeDump>),
    Error { message: String },
}
