//! Node administration over a node's `/admin` WebSocket: used by the launcher (link control,
//! status) and by tests (full state dumps to compare replicas).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{event::NodeStatus, session::Sessions, KVCommand, KVSnapshot, NodeId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
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
    Error { message: String },
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
            kv: BTreeMap::from([("k".into(), "v".into())]),
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
    }
}
