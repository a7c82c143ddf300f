//! The compacted form of a log prefix.
//!
//! A snapshot is the state a prefix of the log folds to: the latest value of every live key and
//! the client sessions ([`crate::session`]), which are part of the replicated state because a
//! retried request may be decided after the snapshot that holds its first copy; every replica
//! must then answer it the same way. A deleted key is simply absent: nothing needs tombstones,
//! because snapshots are only ever merged with deltas of unresolved commands (below).
//!
//! Applying a write depends on everything before it (its session) and on its log index (kept
//! as the outcome a duplicate is answered with). OmniPaxos builds snapshots with
//! [`Snapshot::create`] over a slice of entries that may not start at index 0 (a delta), so
//! `create` keeps the slice's commands unresolved (reads too), each with its offset in the
//! slice, and the slice's length. [`Snapshot::merge`] is only ever called on a snapshot of a
//! prefix that starts at index 0 (OmniPaxos' stored snapshot, or the node's own decided prefix),
//! whose length gives the delta's absolute indices, so it resolves the delta in order.
//! [`KVSnapshot::resolved`] gives the settled form of such a complete snapshot.

use std::collections::BTreeMap;

use omnipaxos::storage::Snapshot;
use serde::{Deserialize, Serialize};

use crate::command::KVCommand;
use crate::session::{self, Applied, KvState, Sessions, Versioned};

/// A command kept unresolved inside a delta snapshot until it is merged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unresolved {
    /// Offset of the command in the snapshot's slice of the log.
    pub at: u64,
    pub command: KVCommand,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KVSnapshot {
    /// Latest value of every live key, with the index of its last write.
    pub snapshotted: BTreeMap<String, Versioned>,
    /// Client sessions after the prefix.
    pub sessions: Sessions,
    /// Log entries the snapshot covers: the prefix's length, or the delta's.
    #[serde(default)]
    pub len: u64,
    /// Commands not yet folded, in log order (only in a snapshot made by `create`).
    #[serde(default)]
    pub unresolved: Vec<Unresolved>,
    /// Log entries whose effects `snapshotted` and `sessions` already hold, when that is more
    /// than `len` (zero otherwise). A node whose KV table serves as its snapshot lends the
    /// table, which is ahead of the compacted prefix OmniPaxos knows the snapshot as: a merge
    /// skips the delta's commands the state already holds ([`KVSnapshot::covers`]).
    #[serde(default)]
    pub state_len: u64,
}

impl KvState for BTreeMap<String, Versioned> {
    fn read(&self, key: &str) -> Option<Versioned> {
        self.get(key).cloned()
    }

    fn write(&mut self, key: &str, value: Option<&str>, index: u64) {
        match value {
            Some(v) => {
                let versioned = Versioned {
                    value: v.to_owned(),
                    mod_index: index,
                };
                self.insert(key.to_owned(), versioned);
            }
            None => {
                self.remove(key);
            }
        }
    }
}

impl KVSnapshot {
    /// Applies the next command of the log (at index `len`) as the state machine does.
    /// Only meaningful for a resolved snapshot of a prefix starting at 0.
    pub fn push(&mut self, cmd: &KVCommand) -> Applied {
        debug_assert!(
            self.unresolved.is_empty() && self.state_len <= self.len,
            "push onto an unresolved snapshot, or one ahead of its length"
        );
        let applied = session::apply(&mut self.sessions, &mut self.snapshotted, cmd, self.len);
        self.len += 1;
        applied
    }

    /// Folds the unresolved commands. Only meaningful for a snapshot of a prefix starting at 0.
    pub fn resolve(&mut self) {
        for u in std::mem::take(&mut self.unresolved) {
            session::apply(&mut self.sessions, &mut self.snapshotted, &u.command, u.at);
        }
    }

    /// The settled form of a snapshot of a prefix starting at index 0: its commands folded, and
    /// its length the entries it holds.
    pub fn resolved(mut self) -> Self {
        self.resolve();
        self.len = self.covers();
        self.state_len = 0;
        self
    }

    /// Log entries whose effects the snapshot holds: its length, or more for a table lent as
    /// a snapshot (see `state_len`).
    pub fn covers(&self) -> u64 {
        self.len.max(self.state_len)
    }

    /// Keys this snapshot mentions, for events and display.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.snapshotted
            .keys()
            .map(String::as_str)
            .chain(self.unresolved.iter().map(|u| u.command.key()))
    }
}

/// Here rather than next to `KVCommand`: the entry names its snapshot type, and the snapshot
/// module already depends on the command module, not the other way round.
impl omnipaxos::storage::Entry for KVCommand {
    type Snapshot = KVSnapshot;
}

impl Snapshot<KVCommand> for KVSnapshot {
    fn create(entries: &[KVCommand]) -> Self {
        // Reads too, though they change nothing: a delta then holds every entry of its slice,
        // and a node can take it back apart into the entries themselves (see the node's
        // `snapshot_fix`).
        let unresolved = entries
            .iter()
            .enumerate()
            .map(|(at, cmd)| Unresolved {
                at: at as u64,
                command: cmd.clone(),
            })
            .collect();
        KVSnapshot {
            len: entries.len() as u64,
            unresolved,
            ..KVSnapshot::default()
        }
    }

    /// `self` is a snapshot of a prefix starting at 0 and `delta` one made by `create` over the
    /// entries right after it. A delta carries nothing resolved (OmniPaxos and the node only
    /// merge what `create` made); anything resolved it holds is ignored. Commands the state
    /// already holds (a table lent ahead of its length, see `state_len`) are skipped.
    fn merge(&mut self, delta: Self) {
        self.resolve();
        let base = self.len;
        let held = self.covers();
        for u in delta.unresolved {
            let index = base + u.at;
            if index >= held {
                session::apply(&mut self.sessions, &mut self.snapshotted, &u.command, index);
            }
        }
        self.len = (base + delta.len).max(held);
        self.state_len = 0;
    }

    fn use_snapshots() -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::RequestId;

    fn open(nonce: u64) -> KVCommand {
        KVCommand::OpenSession {
            id: RequestId {
                client: nonce,
                seq: 0,
            },
        }
    }

    fn put(client: u64, seq: u64, key: &str, value: &str) -> KVCommand {
        KVCommand::Put {
            id: RequestId { client, seq },
            key: key.into(),
            value: value.into(),
            forget_below: 0,
        }
    }

    fn del(client: u64, seq: u64, key: &str) -> KVCommand {
        KVCommand::Delete {
            id: RequestId { client, seq },
            key: key.into(),
            forget_below: 0,
        }
    }

    fn fold(entries: &[KVCommand]) -> KVSnapshot {
        let mut s = KVSnapshot::default();
        for e in entries {
            s.push(e);
        }
        s
    }

    /// Sessions 0 and 1 (the indices of their opening entries), then writes.
    fn log() -> Vec<KVCommand> {
        vec![
            open(90),
            open(91),
            put(0, 1, "k", "1"),
            put(0, 2, "a", "1"),
            put(1, 1, "k", "2"),
            del(1, 2, "a"),
            put(0, 2, "a", "1"),
            put(1, 3, "x", "0"),
        ]
    }

    #[test]
    fn create_then_resolve_equals_fold() {
        let log = log();
        let s = fold(&log);
        assert_eq!(KVSnapshot::create(&log).resolved(), s);
        assert_eq!(
            s.snapshotted.get("k"),
            Some(&Versioned {
                value: "2".into(),
                mod_index: 4
            }),
            "the value and the index of the write that set it"
        );
        assert!(
            !s.snapshotted.contains_key("a"),
            "a late copy of a put must not undo a delete"
        );
        assert_eq!(s.len, log.len() as u64);
        assert_eq!(
            s.sessions.get(0).unwrap().applied(2).unwrap().index,
            3,
            "the first copy's index"
        );
    }

    #[test]
    fn merge_of_split_log_equals_fold_of_whole_log() {
        let log = log();
        for split in 0..=log.len() {
            let mut base = KVSnapshot::create(&log[..split]);
            base.merge(KVSnapshot::create(&log[split..]));
            assert_eq!(base.resolved(), fold(&log), "split at {split}");
            // Three pieces, the middle one merged onto a resolved base.
            for split2 in split..=log.len() {
                let mut base = KVSnapshot::create(&log[..split]).resolved();
                base.merge(KVSnapshot::create(&log[split..split2]));
                base.merge(KVSnapshot::create(&log[split2..]));
                assert_eq!(base, fold(&log), "split at {split}, {split2}");
            }
        }
    }

    /// A node's table lent as the snapshot of a shorter prefix: merging the entries after that
    /// prefix gives the fold of the whole log, each command applied once.
    #[test]
    fn a_state_ahead_of_its_length_merges_only_what_it_does_not_hold() {
        let log = log();
        for held in 0..=log.len() {
            for compacted in 0..=held {
                let mut table = fold(&log[..held]);
                table.len = compacted as u64;
                table.state_len = held as u64;
                table.merge(KVSnapshot::create(&log[compacted..]));
                assert_eq!(table, fold(&log), "held {held}, compacted {compacted}");
            }
        }
        // Lent as a snapshot of all it holds (its length the entries it holds), the same table
        // takes the delta's commands at the wrong indices.
        let mut table = fold(&log[..6]);
        table.merge(KVSnapshot::create(&log[2..]));
        assert_ne!(table, fold(&log));
    }

    #[test]
    fn writes_before_their_session_is_open_change_nothing() {
        let s = fold(&[put(0, 1, "k", "v"), open(5)]);
        assert!(s.snapshotted.is_empty());
        assert_eq!(s.sessions.len(), 1);
    }

    #[test]
    fn gets_do_not_change_state() {
        let get = KVCommand::Get {
            id: RequestId { client: 9, seq: 1 },
            key: "k".into(),
        };
        let s = KVSnapshot::create(std::slice::from_ref(&get)).resolved();
        assert!(s.snapshotted.is_empty() && s.sessions.is_empty() && s.unresolved.is_empty());
        assert_eq!(s.len, 1);
        assert_eq!(fold(&[get]), s);
    }

    #[test]
    fn json_round_trip() {
        let mut s = KVSnapshot::create(&log());
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<KVSnapshot>(&json).unwrap(), s);
        s.resolve();
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""unresolved":[]"#));
        assert_eq!(serde_json::from_str::<KVSnapshot>(&json).unwrap(), s);
    }

    /// What a snapshot keeps does not grow with the number of client ids or deleted keys:
    /// 100,000 sessions, each putting a key never used before and deleting it, fold to at most
    /// `SESSIONS_MAX` sessions and no key: about 0.6 MB of JSON, where keeping every session
    /// would take 16 MB (docs/performance-notes.md, section 9, measures real nodes).
    #[test]
    fn sessions_and_deleted_keys_leave_a_bounded_snapshot() {
        use crate::session::SESSIONS_MAX;
        let mut s = KVSnapshot::default();
        for n in 0..100_000u64 {
            let client = s.len;
            s.push(&open(n));
            let key = format!("gone-{n}");
            assert_eq!(s.push(&put(client, 0, &key, "v")), Applied::Written);
            assert_eq!(s.push(&del(client, 1, &key)), Applied::Written);
        }
        assert!(s.snapshotted.is_empty());
        assert!(s.sessions.len() <= SESSIONS_MAX);
        let bytes = serde_json::to_vec(&s).unwrap().len();
        // A session and its two writes: about 160 bytes of JSON.
        assert!(bytes < SESSIONS_MAX * 200, "{bytes} bytes");
    }
}
