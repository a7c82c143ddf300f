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
//! Layout: `p` marks that a snapshot exists; `k`+key: live value; `d`+key: deleted key;
//! `s`+client (big-endian): session; `u`: unresolved writes (JSON, only in a delta).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use omnikv_core::{snapshot::Mutation, KVSnapshot};
use rocksdb::{IteratorMode, WriteBatch};

use super::db::{decode_index_key, index_key, StorageError, Store, CF_META, CF_SNAPSHOT};

const PRESENT: &[u8] = b"p";
const LIVE: u8 = b'k';
const DELETED: u8 = b'd';
const SESSION: u8 = b's';
const UNRESOLVED: &[u8] = b"u";
/// The snapshot of databases written before this layout: one JSON document in `meta`.
const LEGACY_META_KEY: &str = "snapshot";

fn prefixed(tag: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(tag);
    k.extend_from_slice(rest);
    k
}

/// Reads the stored snapshot (moving a legacy one into this layout).
pub(crate) fn load(store: &Store) -> Result<Option<KVSnapshot>, StorageError> {
    if let Some(legacy) = store.get_meta::<Option<KVSnapshot>>(LEGACY_META_KEY)? {
        let mut batch = WriteBatch::default();
        stage(store, &mut batch, None, legacy.as_ref())?;
        batch.delete_cf(store.cf(CF_META), LEGACY_META_KEY);
        store.write(batch)?;
        return Ok(legacy);
    }
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
                snap.snapshotted.insert(text(k)?, text(&value)?);
            }
            Some((&DELETED, k)) => {
                snap.deleted_keys.insert(text(k)?);
            }
            Some((&SESSION, c)) => {
                snap.sessions
                    .insert(decode_index_key(c)?, decode_index_key(&value)?);
            }
            _ if &*key == PRESENT => present = true,
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
            Some(v) => batch.put_cf(cf, key, v),
            None => batch.delete_cf(cf, key),
        }
    });
    diff_sets(&old.deleted_keys, &new.deleted_keys, |k, present| {
        let key = prefixed(DELETED, k.as_bytes());
        if present {
            batch.put_cf(cf, key, b"");
        } else {
            batch.delete_cf(cf, key);
        }
    });
    diff_maps(&old.sessions, &new.sessions, |c, seq| {
        let key = prefixed(SESSION, &index_key(*c));
        match seq {
            Some(seq) => batch.put_cf(cf, key, index_key(*seq)),
            None => batch.delete_cf(cf, key),
        }
    });
    if old.unresolved != new.unresolved {
        if new.unresolved.is_empty() {
            batch.delete_cf(cf, UNRESOLVED);
        } else {
            batch.put_cf(cf, UNRESOLVED, serde_json::to_vec(&new.unresolved)?);
        }
    }
    Ok(())
}

/// Stages `new` over a stored snapshot that can differ from it only in `keys`, the sessions of
/// `clients` and the unresolved writes (`old_unresolved` before; `old_deleted` were its deleted
/// keys): the write of a compaction, in proportion to the entries it folded, not to the table.
pub(crate) fn stage_keys(
    store: &Store,
    batch: &mut WriteBatch,
    new: &KVSnapshot,
    keys: &BTreeSet<&str>,
    clients: &BTreeSet<u64>,
    old_unresolved: &[Mutation],
    old_deleted: &BTreeSet<String>,
) -> Result<(), StorageError> {
    let cf = store.cf(CF_SNAPSHOT);
    for key in keys {
        let live = prefixed(LIVE, key.as_bytes());
        match new.snapshotted.get(*key) {
            Some(v) => batch.put_cf(cf, live, v),
            None => batch.delete_cf(cf, live),
        }
        let deleted = prefixed(DELETED, key.as_bytes());
        if new.deleted_keys.contains(*key) {
            batch.put_cf(cf, deleted, b"");
        } else if old_deleted.contains(*key) {
            batch.delete_cf(cf, deleted);
        }
    }
    for client in clients {
        let key = prefixed(SESSION, &index_key(*client));
        match new.sessions.get(client) {
            Some(seq) => batch.put_cf(cf, key, index_key(*seq)),
            None => batch.delete_cf(cf, key),
        }
    }
    if old_unresolved != new.unresolved.as_slice() {
        if new.unresolved.is_empty() {
            batch.delete_cf(cf, UNRESOLVED);
        } else {
            batch.put_cf(cf, UNRESOLVED, serde_json::to_vec(&new.unresolved)?);
        }
    }
    Ok(())
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

fn diff_sets<K: Ord>(old: &BTreeSet<K>, new: &BTreeSet<K>, mut change: impl FnMut(&K, bool)) {
    for k in old.difference(new) {
        change(k, false);
    }
    for k in new.difference(old) {
        change(k, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnikv_core::{snapshot::Mutation, RequestId};

    fn snap(live: &[(&str, &str)], deleted: &[&str], sessions: &[(u64, u64)]) -> KVSnapshot {
        KVSnapshot {
            snapshotted: live
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            deleted_keys: deleted.iter().map(|k| k.to_string()).collect(),
            sessions: sessions.iter().copied().collect(),
            unresolved: Vec::new(),
        }
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
        let a = snap(
            &[("a", "1"), ("b", "2"), ("c", "3")],
            &["x"],
            &[(1, 4), (2, 1)],
        );
        write(&store, None, Some(&a));
        assert_eq!(load(&store).unwrap(), Some(a.clone()));
        let mut b = snap(
            &[("b", "2"), ("c", "30"), ("d", "4")],
            &["a"],
            &[(1, 5), (3, 1)],
        );
        b.unresolved.push(Mutation {
            id: RequestId { client: 9, seq: 1 },
            key: "z".into(),
            value: None,
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
    fn a_legacy_snapshot_is_moved_into_the_new_layout() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let a = snap(&[("k", "v")], &[], &[(7, 7)]);
        let mut batch = WriteBatch::default();
        batch.put_cf(
            store.cf(CF_META),
            LEGACY_META_KEY,
            serde_json::to_vec(&Some(&a)).unwrap(),
        );
        store.write(batch).unwrap();
        assert_eq!(load(&store).unwrap(), Some(a.clone()));
        assert_eq!(
            store
                .get_meta::<Option<KVSnapshot>>(LEGACY_META_KEY)
                .unwrap(),
            None
        );
        assert_eq!(load(&store).unwrap(), Some(a));
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
