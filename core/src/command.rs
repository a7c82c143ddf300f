//! The replicated log entry.
//!
//! Every command carries the identity of the request that produced it. OmniPaxos may lose a
//! proposal that was forwarded to a leader that then died, so clients retry, and a retry can put
//! the same request in the log twice; the state machine applies a request only the first time it
//! sees its identity (see [`crate::snapshot`] for how that survives compaction).

use serde::{Deserialize, Serialize};

use crate::scan::ScanRange;
use crate::txn::{Guard, TxnOp};

/// Who asked, and which of their requests this is. `client` is a session id (see
/// [`crate::session`]); `seq` increases by one for each new request and is unchanged on retry.
/// A client may have many requests in flight.
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
        /// The client will never send a `seq` below this again (see [`crate::session`]).
        #[serde(default)]
        forget_below: u64,
    },
    Delete {
        id: RequestId,
        key: String,
        #[serde(default)]
        forget_below: u64,
    },
    /// Writes applied together, all or none, when every guard holds (see [`crate::txn`]).
    /// A write like any other for the session rule: a copy answers as the first did.
    Txn {
        id: RequestId,
        guards: Vec<Guard>,
        ops: Vec<TxnOp>,
        #[serde(default)]
        forget_below: u64,
    },
    /// A linearizable read through the log, answered when it is applied. Nodes now serve reads
    /// by the read-index protocol (`peer::ReadIndexMsg`); logs written before still hold these.
    Get { id: RequestId, key: String },
    /// One page of a linearizable scan through the log, answered from the table as it stands
    /// right after the run of entries that applies it (see the node's `apply`). Like `Get`,
    /// kept for logs written before reads took the read-index protocol.
    /// (Boxed: a range is larger than any other command, and every log entry is as large as
    /// the largest variant.)
    Scan {
        id: RequestId,
        range: Box<ScanRange>,
    },
    /// Opens a client session whose id is this entry's log index. `id` only pairs the reply
    /// with the request (its `client` is a random nonce).
    OpenSession { id: RequestId },
}

impl KVCommand {
    pub fn id(&self) -> RequestId {
        match self {
            KVCommand::Put { id, .. }
            | KVCommand::Delete { id, .. }
            | KVCommand::Txn { id, .. }
            | KVCommand::Get { id, .. }
            | KVCommand::Scan { id, .. }
            | KVCommand::OpenSession { id } => *id,
        }
    }

    /// Bytes of its key and value: what it costs to carry in an event.
    pub fn payload_bytes(&self) -> usize {
        match self {
            KVCommand::Put { key, value, .. } => key.len() + value.len(),
            KVCommand::Txn { guards, ops, .. } => {
                let guard_bytes = guards.iter().map(|g| match g {
                    Guard::Value { key, value } => key.len() + value.len(),
                    _ => g.key().len(),
                });
                let op_bytes = ops
                    .iter()
                    .map(|o| o.key().len() + o.value().map_or(0, str::len));
                guard_bytes.chain(op_bytes).sum()
            }
            _ => self.key().len(),
        }
    }

    /// The key the command reads or writes (`""` for opening a session; a transaction's first
    /// written key, or its first guarded one, for display).
    pub fn key(&self) -> &str {
        match self {
            KVCommand::Put { key, .. }
            | KVCommand::Delete { key, .. }
            | KVCommand::Get { key, .. } => key,
            KVCommand::Txn { guards, ops, .. } => ops
                .first()
                .map(TxnOp::key)
                .or(guards.first().map(Guard::key))
                .unwrap_or(""),
            KVCommand::Scan { range, .. } => range
                .prefix
                .as_deref()
                .or(range.start.as_deref())
                .unwrap_or(""),
            KVCommand::OpenSession { .. } => "",
        }
    }

    /// The writes this command makes if it applies: `(key, Some(value))` sets, `(key, None)`
    /// deletes; none for reads and sessions.
    pub fn writes(&self) -> Vec<(&str, Option<&str>)> {
        match self {
            KVCommand::Put { key, value, .. } => vec![(key, Some(value))],
            KVCommand::Delete { key, .. } => vec![(key, None)],
            KVCommand::Txn { ops, .. } => ops.iter().map(|o| (o.key(), o.value())).collect(),
            KVCommand::Get { .. } | KVCommand::Scan { .. } | KVCommand::OpenSession { .. } => {
                Vec::new()
            }
        }
    }

    /// A stable 64-bit digest (FNV-1a) of what the command does, not of who sent it: sessions
    /// keep it to refuse a different command reusing an applied request's id. Stable across
    /// platforms and versions, because every replica must compute the same value.
    pub fn digest(&self) -> u64 {
        let mut h = Fnv1a::default();
        match self {
            KVCommand::Put { key, value, .. } => {
                h.bytes(b"p");
                h.framed(key.as_bytes());
                h.framed(value.as_bytes());
            }
            KVCommand::Delete { key, .. } => {
                h.bytes(b"d");
                h.framed(key.as_bytes());
            }
            KVCommand::Get { key, .. } => {
                h.bytes(b"g");
                h.framed(key.as_bytes());
            }
            KVCommand::Txn { guards, ops, .. } => {
                h.bytes(b"t");
                h.bytes(&(guards.len() as u64).to_le_bytes());
                for g in guards {
                    match g {
                        Guard::Value { key, value } => {
                            h.bytes(b"v");
                            h.framed(key.as_bytes());
                            h.framed(value.as_bytes());
                        }
                        Guard::Absent { key } => {
                            h.bytes(b"a");
                            h.framed(key.as_bytes());
                        }
                        Guard::ModIndex { key, mod_index } => {
                            h.bytes(b"m");
                            h.framed(key.as_bytes());
                            h.bytes(&mod_index.to_le_bytes());
                        }
                    }
                }
                h.bytes(&(ops.len() as u64).to_le_bytes());
                for op in ops {
                    match op {
                        TxnOp::Put { key, value } => {
                            h.bytes(b"p");
                            h.framed(key.as_bytes());
                            h.framed(value.as_bytes());
                        }
                        TxnOp::Delete { key } => {
                            h.bytes(b"d");
                            h.framed(key.as_bytes());
                        }
                    }
                }
            }
            KVCommand::Scan { range, .. } => {
                // Reads keep no session state; the digest only pairs a reply with its request.
                h.bytes(b"s");
                for bound in [&range.prefix, &range.start, &range.end, &range.after] {
                    h.framed(bound.as_deref().unwrap_or("").as_bytes());
                }
                h.bytes(&range.limit.to_le_bytes());
            }
            KVCommand::OpenSession { .. } => h.bytes(b"o"),
        }
        h.0
    }
}

struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// Length first, so that ("ab", "c") and ("a", "bc") differ.
    fn framed(&mut self, bytes: &[u8]) {
        self.bytes(&(bytes.len() as u64).to_le_bytes());
        self.bytes(bytes);
    }
}
