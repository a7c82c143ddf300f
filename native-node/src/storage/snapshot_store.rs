//! OmniPaxos' stored snapshot, kept in memory and persisted entry by entry (column family
//! `snapshot`), so that a compaction writes only what changed since the previous snapshot.
//!
//! OmniPaxos compacts by reading the stored snapshot, merging the new entries into it and
//! storing the result. Stored as one JSON document, that is a read and a write of the whole
//! table every `--snapshot-every` entries: with 100k keys of 256 B, about 330 ms of a stalled
//! event loop each time, long enough to miss heartbeats and lose the leadership. Here reads are
//! served from memory and a write is a diff of the two snapshots (compared in memory, in key
//! order), so the disk sees the changed keys only.
//!
//! Layout: `p` marks that a snapshot exists; `k`+key: live value, encoded as in the KV table
//! (`versioned`: its `mod_index`, then its bytes); `S`: the client sessions
//! (JSON, one document: they are bounded, and eviction can change any of them); `n`: the number
//! of log entries covered; `u`: unresolved commands (JSON, only in a delta).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use omnikv_core::{snapshot::Unresolved, KVSnapshot};
use rocksdb::{IteratorMode, WriteBatch};

use super::db::{StorageError, Store, CF_SNAPSHOT};
use super::versioned;

const PRESENT: &[u8] = b"p";
const LIVE: u8 = b'k';
const SESSIONS: &[u8] = b"S";
const LEN: &[u8] = b"n";
const UNRESOLVED: &[u8] = b"u";

fn prefixed(tag: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(tag);
    k.extend_from_slice(rest);
    k
}

/// Reads the stored snapshot.
pub(crate) fn load(store: &Store) -> Result<Option<KVSnapshot>, StorageError> {
    let mut present = false;
    let mut snap = KVSnapshot::default();
    for item in store
        .db()
        .iterator_cf(store.cf(CF_SNAPSHOT), IteratorMode::Start)
    {
        let (key, value) = item?;
        let text = |b: &[u8]| {
            String::from_utf8(b.to_vec())
                .map_err(|_| StorageError::Corrupt("snapshot entry is not UTF-8".into()))
        };
        match key.split_first() {
            Some((&LIVE, k)) => {
                snap.snapshotted
                    .insert(text(k)?, versioned::decode(k, &value)?);
            }
            _ if &*key == PRESENT => present = true,
            _ if &*key == SESSIONS => snap.sessions = serde_json::from_slice(&value)?,
            _ if &*key == LEN => snap.len = serde_json::from_slice(&value)?,
            _ if &*key == UNRESOLVED => snap.unresolved = serde_json::from_slice(&value)?,
            _ => return Err(StorageError::Corrupt("unknown snapshot entry".into())),
        }
    }
    Ok(present.then_some(snap))
}

/// Adds to `batch` the writes that turn the stored `old` snapshot into `new`.
pub(crate) fn stage(
    store: &Store,
    batch: &mut WriteBatch,
    old: Option<&KVSnapshot>,
    new: Option<&KVSnapshot>,
) -> Result<(), StorageError> {
    let cf = store.cf(CF_SNAPSHOT);
    let Some(new) = new else {
        if old.is_some() {
            batch.delete_range_cf(cf, &b""[..], &[0xFF][..]);
        }
        return Ok(());
    };
    let empty = KVSnapshot::default();
    let old = match old {
        Some(o) => o,
        None => {
            batch.delete_range_cf(cf, &b""[..], &[0xFF][..]);
            batch.put_cf(cf, PRESENT, b"");
            &empty
        }
    };
    diff_maps(&old.snapshotted, &new.snapshotted, |k, v| {
        let key = prefixed(LIVE, k.as_bytes());
        match v {
            Some(v) => batch.put_cf(cf, key, versioned::encode(v.mod_index, &v.value)),
            None => batch.delete_cf(cf, key),
        }
    });
    if old.sessions != new.sessions || old.len != new.len {
        stage_sessions_and_len(batch, cf, new)?;
    }
    stage_unresolved(batch, cf, &old.unresolved, &new.unresolved)
}

fn stage_sessions_and_len(
    batch: &mut WriteBatch,
    cf: &rocksdb::ColumnFamily,
    new: &KVSnapshot,
) -> Result<(), StorageError> {
    batch.put_cf(cf, SESSIONS, serde_json::to_vec(&new.sessions)?);
    batch.put_cf(cf, LEN, serde_json::to_vec(&new.len)?);
    Ok(())
}

fn stage_unresolved(
    batch: &mut WriteBatch,
    cf: &rocksdb::ColumnFamily,
    old: &[Unresolved],
    new: &[Unresolved],
) -> Result<(), StorageError> {
    if old != new {
        if new.is_empty() {
            batch.delete_cf(cf, UNRESOLVED);
        } else {
            batch.put_cf(cf, UNRESOLVED, serde_json::to_vec(new)?);
        }
    }
    Ok(())
}

/// Stages `new` over a stored snapshot whose live keys can differ from it only in `keys`
/// (`old_unresolved` were its unresolved commands): the write of a compaction, in proportion to
/// the entries it folded, not to the table. The sessions are rewritten whole: they are bounded,
/// and opening a session can evict any other.
pub(crate) fn stage_keys(
    store: &Store,
    batch: &mut WriteBatch,
    new: &KVSnapshot,
    keys: &BTreeSet<&str>,
    old_unresolved: &[Unresolved],
) -> Result<(), StorageError> {
    let cf = store.cf(CF_SNAPSHOT);
    for key in keys {
        let live = prefixed(LIVE, key.as_bytes());
        match new.snapshotted.get(*key) {
            Some(v) => batch.put_cf(cf, live, versioned::encode(v.mod_index, &v.value)),
            None => batch.delete_cf(cf, live),
        }
    }
    stage_sessions_and_len(batch, cf, new)?;
    stage_unresolved(batch, cf, old_unresolved, &new.unresolved)
}

/// Calls `change(k, Some(v))` for every key whose value is new or changed in `new`, and
/// `change(k, None)` for every key only in `old`. One pass over both, in key order.
fn diff_maps<K: Ord, V: PartialEq>(
    old: &BTreeMap<K, V>,
    new: &BTreeMap<K, V>,
    mut change: impl FnMut(&K, Option<&V>),
) {
    let mut o = old.iter().peekable();
    let mut n = new.iter().peekable();
    loop {
        match (o.peek(), n.peek()) {
            (None, None) => break,
            (Some((ok, _)), None) => {
                change(ok, None);
                o.next();
            }
            (None, Some((nk, nv))) => {
                change(nk, Some(nv));
                n.next();
            }
            (Some((ok, ov)), Some((nk, nv))) => match ok.cmp(nk) {
                Ordering::Less => {
                    change(ok, None);
                    o.next();
                }
                Ordering::Greater => {
                    change(nk, Some(nv));
                    n.next();
                }
                Ordering::Equal => {
                    if ov != nv {
                        change(nk, Some(nv));
                    }
                    o.next();
                    n.next();
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnikv_core::{session::Versioned, KVCommand, RequestId};

    fn snap(live: &[(&str, &str)], sessions: &[u64], len: u64) -> KVSnapshot {
        let mut s = KVSnapshot {
            snapshotted: live
                .iter()
                .map(|(k, v)| {
                    let versioned = Versioned {
                        value: v.to_string(),
                        mod_index: len + v.len() as u64,
                    };
                    (k.to_string(), versioned)
                })
                .collect(),
            len,
            ..KVSnapshot::default()
        };
        for &c in sessions {
            s.sessions.open(c);
        }
        s
    }

    fn write(store: &Store, old: Option<&KVSnapshot>, new: Option<&KVSnapshot>) {
        let mut batch = WriteBatch::default();
        stage(store, &mut batch, old, new).unwrap();
        store.write(batch).unwrap();
    }

    #[test]
    fn a_sequence_of_snapshots_reads_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        assert_eq!(load(&store).unwrap(), None);
        let a = snap(&[("a", "1"), ("b", "2"), ("c", "3")], &[1, 2], 10);
        write(&store, None, Some(&a));
        assert_eq!(load(&store).unwrap(), Some(a.clone()));
        let mut b = snap(&[("b", "2"), ("c", "30"), ("d", "4")], &[1, 3], 12);
        b.unresolved.push(Unresolved {
            at: 1,
            command: KVCommand::Delete {
                id: RequestId { client: 9, seq: 1 },
                key: "z".into(),
                forget_below: 0,
            },
        });
        write(&store, Some(&a), Some(&b));
        assert_eq!(load(&store).unwrap(), Some(b.clone()));
        let c = KVSnapshot::default();
        write(&store, Some(&b), Some(&c));
        assert_eq!(load(&store).unwrap(), Some(c.clone()));
        write(&store, Some(&c), None);
        assert_eq!(load(&store).unwrap(), None);
    }

    #[test]
    fn diff_reports_changes_only() {
        let old = BTreeMap::from([(1, 'a'), (2, 'b'), (4, 'd')]);
        let new = BTreeMap::from([(2, 'b'), (3, 'c'), (4, 'x')]);
        let mut changes = Vec::new();
        diff_maps(&old, &new, |k, v| changes.push((*k, v.copied())));
        assert_eq!(changes, vec![(1, None), (3, Some('c')), (4, Some('x'))]);
    }
}
