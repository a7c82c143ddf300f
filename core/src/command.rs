//! The replicated log entry.
//!
//! Every command carries the identity of the request that produced it. OmniPaxos may lose a
//! proposal that was forwarded to a leader that then died, so clients retry, and a retry can put
//! the same request in the log twice; the state machine applies a request only the first time it
//! sees its identity (see [`crate::snapshot`] for how that survives compaction).

use serde::{Deserialize, Serialize};

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
    /// A linearizable read: it goes through the log, and is answered when it is applied.
    Get { id: RequestId, key: String },
    /// Opens a client session whose id is this entry's log index. `id` only pairs the reply
    /// with the request (its `client` is a random nonce).
    OpenSession { id: RequestId },
}

impl KVCommand {
    pub fn id(&self) -> RequestId {
        match self {
            KVCommand::Put { id, .. }
            | KVCommand::Delete { id, .. }
            | KVCommand::Get { id, .. }
            | KVCommand::OpenSession { id } => *id,
        }
    }

    /// Bytes of its key and value: what it costs to carry in an event.
    pub fn payload_bytes(&self) -> usize {
        match self {
            KVCommand::Put { key, value, .. } => key.len() + value.len(),
            _ => self.key().len(),
        }
    }

    /// The key the command reads or writes (`""` for opening a session).
    pub fn key(&self) -> &str {
        match self {
            KVCommand::Put { key, .. }
            | KVCommand::Delete { key, .. }
            | KVCommand::Get { key, .. } => key,
            KVCommand::OpenSession { .. } => "",
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
            KVCommand::OpenSession { .. } => h.bytes(b"o"),
        }
        h.0
    }

    /// The write this command makes: `Some(Some(v))` sets, `Some(None)` deletes, `None` for reads.
    pub fn mutation(&self) -> Option<Option<&str>> {
        match self {
            KVCommand::Put { value, .. } => Some(Some(value)),
            KVCommand::Delete { .. } => Some(None),
            KVCommand::Get { .. } | KVCommand::OpenSession { .. } => None,
        }
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
