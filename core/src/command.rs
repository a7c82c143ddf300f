//! The replicated log entry.
//!
//! Every command carries the identity of the request that produced it. OmniPaxos may lose a
//! proposal that was forwarded to a leader that then died, so clients retry, and a retry can put
//! the same request in the log twice; the state machine applies a request only the first time it
//! sees its identity (see [`crate::snapshot`] for how that survives compaction).

use serde::{Deserialize, Serialize};

/// Who asked, and which of their requests this is. A client sends one request at a time per
/// `client` id, with `seq` increasing by one for each new request and unchanged on retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestId {
    pub client: u64,
    pub seq: u64,
}

/// A command in the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum KVCommand {
    Put {
        id: RequestId,
        key: String,
        value: String,
    },
    Delete {
        id: RequestId,
        key: String,
    },
    /// A linearizable read: it goes through the log, and is answered when it is applied.
    Get {
        id: RequestId,
        key: String,
    },
}

impl KVCommand {
    pub fn id(&self) -> RequestId {
        match self {
            KVCommand::Put { id, .. }
            | KVCommand::Delete { id, .. }
            | KVCommand::Get { id, .. } => *id,
        }
    }

    pub fn key(&self) -> &str {
        match self {
            KVCommand::Put { key, .. }
            | KVCommand::Delete { key, .. }
            | KVCommand::Get { key, .. } => key,
        }
    }

    /// The write this command makes: `Some(Some(v))` sets, `Some(None)` deletes, `None` for reads.
    pub fn mutation(&self) -> Option<Option<&str>> {
        match self {
            KVCommand::Put { value, .. } => Some(Some(value)),
            KVCommand::Delete { .. } => Some(None),
            KVCommand::Get { .. } => None,
        }
    }
}

crate::json_struct!(deny_unknown_fields RequestId { client, seq });

crate::json_enum!(deny_unknown_fields KVCommand {
    "put" => Put { id, key, value },
    "delete" => Delete { id, key },
    "get" => Get { id, key },
});

impl omnipaxos::storage::Entry for KVCommand {
    type Snapshot = crate::snapshot::KVSnapshot;
}
