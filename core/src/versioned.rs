//! A live key's value with the log index of its last write: what the state machine replicates
//! per key, what transactions' guards compare and what sessions apply to. Its own module, so
//! that `txn` and `session` share it without importing each other.

use serde::{Deserialize, Serialize};

/// A live key's value and the log index of the write that set it. Replicated state: every
/// replica holds the same `mod_index` for a key, because it is the index of a decided entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Versioned {
    pub value: String,
    pub mod_index: u64,
}

impl AsRef<str> for Versioned {
    fn as_ref(&self) -> &str {
        &self.value
    }
}
