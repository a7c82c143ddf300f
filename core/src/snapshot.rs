//! The compacted form of a log prefix.
//!
//! A snapshot is the state a prefix of the log folds to: the latest value of every live key, the
//! keys that were deleted, and, per client, the highest request sequence applied (the
//! deduplication sessions). Sessions are part of the replicated state because a retried request
//! may be decided after the snapshot that holds its first copy; every replica must then skip it
//! the same way.
//!
//! Deduplication makes folding depend on what came before: a duplicate is only recognisable
//! against the sessions of the whole prefix. OmniPaxos builds snapshots with
//! [`Snapshot::create`] over a slice of entries that may not start at index 0 (a delta), so
//! `create` keeps the slice's writes as an ordered list of [`Mutation`]s and does not resolve
//! them. [`Snapshot::merge`] is only ever called on a snapshot of a prefix that starts at index
//! 0 (OmniPaxos' stored snapshot, or the node's own decided prefix), so it resolves both sides in
//! order. [`KVSnapshot::resolved`] gives the settled form of such a complete snapshot.

use std::collections::{BTreeMap, BTreeSet};

use omnipaxos::storage::Snapshot;
use serde::{Deserialize, Serialize};

use crate::command::{KVCommand, RequestId};

/// One write, kept unresolved inside a delta snapshot until it is merged onto its base.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mutation {
    pub id: RequestId,
    pub key: String,
    /// `None` deletes the key.
    pub value: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KVSnapshot {
    /// Latest value of every live key.
    pub snapshotted: BTreeMap<String, String>,
    /// Keys deleted (and not written again) in the prefix.
    pub deleted_keys: BTreeSet<String>,
    /// Highest applied request sequence per client.
    pub sessions: BTreeMap<u64, u64>,
    /// Writes not yet folded, in log order (only non-empty in a snapshot made by `create`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unresolved: Vec<Mutation>,
}

crate::json_struct!(deny_unknown_fields Mutation { id, key, value });

crate::json_struct!(deny_unknown_fields KVSnapshot {
    snapshotted,
    deleted_keys,
    sessions,
    unresolved = Vec::new(),
});

/// Whether a request is new for its client. The one deduplication rule: the node's KV table, the
/// snapshot fold and the simulation all use it.
pub fn is_new_request(sessions: &BTreeMap<u64, u64>, id: RequestId) -> bool {
    sessions.get(&id.client).is_none_or(|&last| id.seq > last)
}

impl KVSnapshot {
    /// Applies one write with deduplication. Returns whether it took effect.
    pub fn apply(&mut self, id: RequestId, key: &str, value: Option<&str>) -> bool {
        if !is_new_request(&self.sessions, id) {
            return false;
        }
        self.sessions.insert(id.client, id.seq);
        match value {
            Some(v) => {
                self.deleted_keys.remove(key);
                self.snapshotted.insert(key.to_owned(), v.to_owned());
            }
            None => {
                self.snapshotted.remove(key);
                self.deleted_keys.insert(key.to_owned());
            }
        }
        true
    }

    /// Folds the unresolved writes. Only meaningful for a snapshot of a prefix starting at 0.
    pub fn resolve(&mut self) {
        for m in std::mem::take(&mut self.unresolved) {
            self.apply(m.id, &m.key, m.value.as_deref());
        }
    }

    /// The settled form of a snapshot of a prefix starting at index 0.
    pub fn resolved(mut self) -> Self {
        self.resolve();
        self
    }

    /// Applies a decided command as the state machine does.
    pub fn apply_command(&mut self, cmd: &KVCommand) -> bool {
        match cmd.mutation() {
            Some(value) => self.apply(cmd.id(), cmd.key(), value),
            None => false,
        }
    }

    /// Keys this snapshot mentions (live or deleted), for events and display.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.snapshotted
            .keys()
            .chain(self.deleted_keys.iter())
            .chain(self.unresolved.iter().map(|m| &m.key))
            .map(String::as_str)
    }
}

impl Snapshot<KVCommand> for KVSnapshot {
    fn create(entries: &[KVCommand]) -> Self {
        let unresolved = entries
            .iter()
            .filter_map(|cmd| {
                cmd.mutation().map(|value| Mutation {
                    id: cmd.id(),
                    key: cmd.key().to_owned(),
                    value: value.map(str::to_owned),
                })
            })
            .collect();
        KVSnapshot {
            unresolved,
            ..KVSnapshot::default()
        }
    }

    fn merge(&mut self, delta: Self) {
        self.resolve();
        for (key, value) in delta.snapshotted {
            self.deleted_keys.remove(&key);
            self.snapshotted.insert(key, value);
        }
        for key in delta.deleted_keys {
            self.snapshotted.remove(&key);
            self.deleted_keys.insert(key);
        }
        for (client, seq) in delta.sessions {
            let last = self.sessions.entry(client).or_insert(seq);
            *last = (*last).max(seq);
        }
        for m in delta.unresolved {
            self.apply(m.id, &m.key, m.value.as_deref());
        }
    }

    fn use_snapshots() -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(client: u64, seq: u64, key: &str, value: &str) -> KVCommand {
        KVCommand::Put {
            id: RequestId { client, seq },
            key: key.into(),
            value: value.into(),
        }
    }

    fn del(client: u64, seq: u64, key: &str) -> KVCommand {
        KVCommand::Delete {
            id: RequestId { client, seq },
            key: key.into(),
        }
    }

    fn fold(entries: &[KVCommand]) -> KVSnapshot {
        let mut s = KVSnapshot::default();
        for e in entries {
            s.apply_command(e);
        }
        s
    }

    #[test]
    fn create_then_resolve_equals_fold() {
        let log = vec![
            put(1, 1, "a", "1"),
            put(2, 1, "b", "2"),
            del(1, 2, "a"),
            put(2, 2, "a", "3"),
        ];
        assert_eq!(KVSnapshot::create(&log).resolved(), fold(&log));
        let s = fold(&log);
        assert_eq!(s.snapshotted.get("a").map(String::as_str), Some("3"));
        assert!(s.deleted_keys.is_empty());
    }

    #[test]
    fn delete_is_recorded_and_rewrite_clears_it() {
        let s = fold(&[put(1, 1, "a", "1"), del(1, 2, "a")]);
        assert!(s.snapshotted.is_empty());
        assert!(s.deleted_keys.contains("a"));
    }

    #[test]
    fn merge_of_split_log_equals_fold_of_whole_log() {
        let log = vec![
            put(1, 1, "k", "1"),
            put(1, 2, "a", "1"),
            put(2, 1, "k", "2"),
            del(2, 2, "a"),
            put(3, 1, "x", "0"),
        ];
        for split in 0..=log.len() {
            let mut base = KVSnapshot::create(&log[..split]);
            base.merge(KVSnapshot::create(&log[split..]));
            assert_eq!(base.resolved(), fold(&log), "split at {split}");
        }
    }

    #[test]
    fn duplicate_in_delta_of_request_in_base_is_skipped() {
        // Client 1's request 5 is decided, then another client overwrites the key, then a retry
        // of request 5 is decided again. The retry must not take effect, even when the original
        // sits in the base snapshot and the retry in a delta.
        let log = vec![
            put(1, 5, "k", "old"),
            put(2, 1, "k", "new"),
            put(1, 5, "k", "old"),
        ];
        let mut base = KVSnapshot::create(&log[..1]);
        base.merge(KVSnapshot::create(&log[1..]));
        let s = base.resolved();
        assert_eq!(s.snapshotted.get("k").map(String::as_str), Some("new"));
        assert_eq!(s, fold(&log));
    }

    #[test]
    fn gets_do_not_change_state() {
        let get = KVCommand::Get {
            id: RequestId { client: 9, seq: 1 },
            key: "k".into(),
        };
        assert_eq!(
            KVSnapshot::create(std::slice::from_ref(&get)).resolved(),
            KVSnapshot::default()
        );
        assert_eq!(fold(&[get]), KVSnapshot::default());
    }

    #[test]
    fn json_round_trip() {
        let mut s = KVSnapshot::create(&[put(1, 1, "a", "1"), del(1, 2, "b")]);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<KVSnapshot>(&json).unwrap(), s);
        s.resolve();
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("unresolved"));
        assert_eq!(serde_json::from_str::<KVSnapshot>(&json).unwrap(), s);
    }
}
