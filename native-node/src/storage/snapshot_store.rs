//! OmniPaxos' stored snapshot, kept only on disk (column family `snapshot`), one entry per live
//! key, so that neither a compaction nor a restart reads or holds the whole table.
//!
//! OmniPaxos compacts by reading the stored snapshot, merging the new entries into it and
//! storing the result. Held in memory, that snapshot is a second copy of the table, as large as
//! the live data; stored as one document, every compaction reads and writes the whole table.
//! Here a compaction borrows a *partial* snapshot ([`load_keys`]): its sessions and length,
//! and only the keys that the entries it folds read or write. Merging the entries changes
//! nothing else, so storing the result writes those keys only ([`stage_keys`]). Anything
//! that needs the whole snapshot (a follower's catch-up, a dump) reads it back with [`load`].
//!
//! Layout: `p` marks that a snapshot exists; `k`+key: live value, encoded as in the KV table
//! (`versioned`: its `mod_index`, then its bytes); `S`: the client sessions (JSON, one
//! document: they are bounded, and eviction can change any of them); `n`: the number of log
//! entries covered; `c`: the number of live keys; `u`: unresolved commands (JSON; only in data
//! written before snapshots were stored resolved).

use std::collections::BTreeSet;

use omnikv_core::{snapshot::Unresolved, KVCommand, KVSnapshot};
use rocksdb::{Direction, IteratorMode, WriteBatch};

use super::db::{StorageError, Store, CF_SNAPSHOT};
use super::versioned;

const PRESENT: &[u8] = b"p";
const LIVE: u8 = b'k';
const SESSIONS: &[u8] = b"S";
const LEN: &[u8] = b"n";
const COUNT: &[u8] = b"c";
const UNRESOLVED: &[u8] = b"u";
const TABLE: &[u8] = b"t";

fn prefixed(tag: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(tag);
    k.extend_from_slice(rest);
    k
}

/// Every key `command` reads or writes when it is applied: what a merge of it depends on and
/// can change.
pub(crate) fn touched_keys(command: &KVCommand) -> impl Iterator<Item = &str> {
    let guards = match command {
        KVCommand::Txn { guards, .. } => guards.as_slice(),
        _ => &[],
    };
    (command.writes().into_iter().map(|(key, _)| key)).chain(guards.iter().map(|g| g.key()))
}

/// Whether the KV table serves as the snapshot (see [`stage_table`]).
pub(crate) fn table_serves(store: &Store) -> Result<bool, StorageError> {
    Ok(store
        .db()
        .get_pinned_cf(store.cf(CF_SNAPSHOT), TABLE)?
        .is_some())
}

/// Adds to `batch` the writes that make the KV table the snapshot: whatever was stored goes.
pub(crate) fn stage_table(store: &Store, batch: &mut WriteBatch) {
    let cf = store.cf(CF_SNAPSHOT);
    batch.delete_range_cf(cf, &b""[..], &[0xFF][..]);
    batch.put_cf(cf, PRESENT, b"");
    batch.put_cf(cf, TABLE, b"");
}

/// Reads the whole stored snapshot (not for a table that serves as one).
pub(crate) fn load(store: &Store) -> Result<Option<KVSnapshot>, StorageError> {
    let mut present = false;
    let mut snap = KVSnapshot::default();
    for item in store
        .db()
        .iterator_cf(store.cf(CF_SNAPSHOT), IteratorMode::Start)
    {
        let (key, value) = item?;
        match key.split_first() {
            Some((&LIVE, k)) => {
                let (key, value) = versioned::decode_entry(k, &value)?;
                snap.snapshotted.insert(key, value);
            }
            _ if &*key == PRESENT => present = true,
            _ if &*key == SESSIONS => snap.sessions = serde_json::from_slice(&value)?,
            _ if &*key == LEN => snap.len = serde_json::from_slice(&value)?,
            _ if &*key == COUNT => {}
            _ if &*key == UNRESOLVED => snap.unresolved = serde_json::from_slice(&value)?,
            _ if &*key == TABLE => {
                return Err(StorageError::Corrupt(
                    "the table serves as the snapshot: read it as one".into(),
                ))
            }
            _ => return Err(StorageError::Corrupt("unknown snapshot entry".into())),
        }
    }
    Ok(present.then_some(snap))
}

/// What a compaction was lent (see [`load_keys`]), to store its result with [`stage_keys`].
pub(crate) struct Loan {
    /// The keys it was asked for, with those of its unresolved commands: the only keys a merge
    /// into it can read or change.
    pub keys: BTreeSet<String>,
    /// Of `keys`, those stored (and so in `snapshot`) before the merge.
    pub stored: BTreeSet<String>,
    /// What was stored before the merge beside the keys: to tell what the merge changed.
    pub unresolved: Vec<Unresolved>,
    pub key_count: u64,
}

/// The stored snapshot, which holds `key_count` live keys (the caller knows it is there and
/// how many), with only `keys` (and those its unresolved commands touch) among its live keys,
/// and the loan to store a merge into it with.
pub(crate) fn load_keys(
    store: &Store,
    keys: impl IntoIterator<Item = String>,
    key_count: u64,
) -> Result<(KVSnapshot, Loan), StorageError> {
    let cf = store.cf(CF_SNAPSHOT);
    let db = store.db();
    let json = |key: &[u8]| -> Result<Option<Vec<u8>>, StorageError> { Ok(db.get_cf(cf, key)?) };
    let mut snapshot = KVSnapshot::default();
    if let Some(b) = json(SESSIONS)? {
        snapshot.sessions = serde_json::from_slice(&b)?;
    }
    if let Some(b) = json(LEN)? {
        snapshot.len = serde_json::from_slice(&b)?;
    }
    if let Some(b) = json(UNRESOLVED)? {
        snapshot.unresolved = serde_json::from_slice(&b)?;
    }
    let mut wanted: BTreeSet<String> = keys.into_iter().collect();
    for u in &snapshot.unresolved {
        wanted.extend(touched_keys(&u.command).map(str::to_owned));
    }
    let mut stored = BTreeSet::new();
    // One sorted batch: RocksDB looks up keys that share a block together, and a compaction's
    // keys often do.
    let live: Vec<Vec<u8>> = wanted
        .iter()
        .map(|k| prefixed(LIVE, k.as_bytes()))
        .collect();
    for (key, found) in wanted.iter().zip(db.batched_multi_get_cf(cf, &live, true)) {
        if let Some(value) = found? {
            let v = versioned::decode(key.as_bytes(), &value)?;
            snapshot.snapshotted.insert(key.clone(), v);
            stored.insert(key.clone());
        }
    }
    let loan = Loan {
        unresolved: snapshot.unresolved.clone(),
        keys: wanted,
        stored,
        key_count,
    };
    Ok((snapshot, loan))
}

/// How many live keys the stored snapshot holds; `None` if none is stored. Data written before
/// the count was kept is counted once, by a scan of the keys.
pub(crate) fn key_count(store: &Store) -> Result<Option<u64>, StorageError> {
    let cf = store.cf(CF_SNAPSHOT);
    let db = store.db();
    if db.get_pinned_cf(cf, PRESENT)?.is_none() {
        return Ok(None);
    }
    if let Some(b) = db.get_pinned_cf(cf, COUNT)? {
        return Ok(Some(serde_json::from_slice(&b)?));
    }
    let mut n = 0;
    for item in live_keys(store) {
        item?;
        n += 1;
    }
    Ok(Some(n))
}

/// A stored entry: its key (tag included) and its encoded value.
type RawEntry = (Box<[u8]>, Box<[u8]>);

/// The stored live keys and their encoded values, in key order (which is the KV table's:
/// the bytes of UTF-8).
fn live_entries(store: &Store) -> impl Iterator<Item = Result<RawEntry, StorageError>> + '_ {
    let start = [LIVE];
    store
        .db()
        .iterator_cf(
            store.cf(CF_SNAPSHOT),
            IteratorMode::From(&start, Direction::Forward),
        )
        .map(|item| item.map_err(StorageError::from))
        .take_while(|item| !matches!(item, Ok((k, _)) if k.first() != Some(&LIVE)))
}

fn live_keys(store: &Store) -> impl Iterator<Item = Result<Vec<u8>, StorageError>> + '_ {
    live_entries(store).map(|item| item.map(|(k, _)| k[1..].to_vec()))
}

/// The first `n` live keys of the stored snapshot, in key order.
pub(crate) fn first_keys(store: &Store, n: usize) -> Result<Vec<String>, StorageError> {
    live_keys(store)
        .take(n)
        .map(|k| versioned::key_text(&k?))
        .collect()
}

/// Adds to `batch` the writes that make `new` the stored snapshot, whatever is stored now; gives
/// the number of live keys it will hold. Only changed keys are written: the stored ones are
/// walked beside `new` in key order, so the old snapshot is never held in memory. `new` must
/// cover a prefix of the log from index 0 (every snapshot OmniPaxos stores does): it is stored
/// resolved.
pub(crate) fn stage_replacement(
    store: &Store,
    batch: &mut WriteBatch,
    new: Option<KVSnapshot>,
    rewrite_all: bool,
) -> Result<u64, StorageError> {
    let cf = store.cf(CF_SNAPSHOT);
    let Some(new) = new else {
        batch.delete_range_cf(cf, &b""[..], &[0xFF][..]);
        return Ok(0);
    };
    let new = new.resolved();
    let mut fresh = new.snapshotted.iter().peekable();
    if rewrite_all {
        // The batch already changes the snapshot: what is on disk is not what it replaces.
        batch.delete_range_cf(cf, &b""[..], &[0xFF][..]);
    } else {
        for old in live_entries(store) {
            let (old_key, old_value) = old?;
            let old_key = &old_key[1..];
            while let Some((k, v)) = fresh.next_if(|(k, _)| k.as_bytes() < old_key) {
                put_live(batch, cf, k, v);
            }
            match fresh.next_if(|(k, _)| k.as_bytes() == old_key) {
                Some((k, v)) if encoded(v).as_slice() != &*old_value => put_live(batch, cf, k, v),
                Some(_) => {}
                None => batch.delete_cf(cf, prefixed(LIVE, old_key)),
            }
        }
        batch.delete_cf(cf, UNRESOLVED);
        batch.delete_cf(cf, TABLE);
    }
    batch.put_cf(cf, PRESENT, b"");
    for (k, v) in fresh {
        put_live(batch, cf, k, v);
    }
    let count = new.snapshotted.len() as u64;
    stage_fields(batch, cf, &new, count)?;
    Ok(count)
}

fn encoded(v: &omnikv_core::session::Versioned) -> Vec<u8> {
    versioned::encode(v.mod_index, &v.value)
}

fn put_live(
    batch: &mut WriteBatch,
    cf: &rocksdb::ColumnFamily,
    key: &str,
    v: &omnikv_core::session::Versioned,
) {
    batch.put_cf(cf, prefixed(LIVE, key.as_bytes()), encoded(v));
}

fn stage_fields(
    batch: &mut WriteBatch,
    cf: &rocksdb::ColumnFamily,
    new: &KVSnapshot,
    key_count: u64,
) -> Result<(), StorageError> {
    batch.put_cf(cf, SESSIONS, serde_json::to_vec(&new.sessions)?);
    batch.put_cf(cf, LEN, serde_json::to_vec(&new.len)?);
    batch.put_cf(cf, COUNT, serde_json::to_vec(&key_count)?);
    Ok(())
}

/// Stages `new`, the result of merging entries into a snapshot lent by [`load_keys`], over the
/// stored one it was read from: only `lent.keys` can differ. The write is in proportion to the entries the
/// compaction folded, not to the table; gives the number of live keys it will hold. The
/// sessions are rewritten whole: they are bounded, and opening a session can evict any other.
pub(crate) fn stage_keys(
    store: &Store,
    batch: &mut WriteBatch,
    new: &KVSnapshot,
    lent: &Loan,
) -> Result<u64, StorageError> {
    let cf = store.cf(CF_SNAPSHOT);
    let mut count = lent.key_count;
    for key in &lent.keys {
        let live = prefixed(LIVE, key.as_bytes());
        let was = lent.stored.contains(key);
        match new.snapshotted.get(key) {
            Some(v) => {
                batch.put_cf(cf, live, encoded(v));
                count += u64::from(!was);
            }
            None if was => {
                batch.delete_cf(cf, live);
                count -= 1;
            }
            None => {}
        }
    }
    stage_fields(batch, cf, new, count)?;
    if lent.unresolved != new.unresolved {
        if new.unresolved.is_empty() {
            batch.delete_cf(cf, UNRESOLVED);
        } else {
            batch.put_cf(cf, UNRESOLVED, serde_json::to_vec(&new.unresolved)?);
        }
    }
    Ok(count)
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

    fn write(store: &Store, new: Option<&KVSnapshot>, rewrite_all: bool) {
        let mut batch = WriteBatch::default();
        stage_replacement(store, &mut batch, new.cloned(), rewrite_all).unwrap();
        store.write(batch).unwrap();
    }

    #[test]
    fn a_sequence_of_snapshots_reads_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        assert_eq!(load(&store).unwrap(), None);
        assert_eq!(key_count(&store).unwrap(), None);
        let a = snap(&[("a", "1"), ("b", "2"), ("c", "3")], &[1, 2], 10);
        write(&store, Some(&a), false);
        assert_eq!(load(&store).unwrap(), Some(a.clone()));
        let b = snap(&[("b", "2"), ("c", "30"), ("d", "4")], &[1, 3], 12);
        write(&store, Some(&b), false);
        assert_eq!(load(&store).unwrap(), Some(b.clone()));
        assert_eq!(key_count(&store).unwrap(), Some(3));
        assert_eq!(first_keys(&store, 2).unwrap(), vec!["b", "c"]);
        let e = snap(&[("a", "5")], &[1], 14);
        write(&store, Some(&e), true);
        assert_eq!(load(&store).unwrap(), Some(e.clone()));
        let c = KVSnapshot::default();
        write(&store, Some(&c), false);
        assert_eq!(load(&store).unwrap(), Some(c.clone()));
        assert_eq!(key_count(&store).unwrap(), Some(0));
        write(&store, None, false);
        assert_eq!(load(&store).unwrap(), None);
    }

    #[test]
    fn a_snapshot_with_unresolved_writes_is_stored_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let mut delta = snap(&[], &[], 2);
        let open = KVCommand::OpenSession {
            id: RequestId { client: 7, seq: 0 },
        };
        let put = KVCommand::Put {
            id: RequestId { client: 0, seq: 1 },
            key: "z".into(),
            value: "1".into(),
            forget_below: 0,
        };
        for (at, command) in [open, put].into_iter().enumerate() {
            delta.unresolved.push(Unresolved {
                at: at as u64,
                command,
            });
        }
        write(&store, Some(&delta), false);
        let stored = load(&store).unwrap().unwrap();
        assert!(stored.unresolved.is_empty());
        assert_eq!(stored, delta.resolved());
        assert_eq!(key_count(&store).unwrap(), Some(1));
    }

    #[test]
    fn a_loan_holds_only_the_keys_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let a = snap(&[("a", "1"), ("b", "2"), ("c", "3")], &[1], 10);
        write(&store, Some(&a), false);
        let (lent, loan) = load_keys(&store, ["b".to_string(), "x".to_string()], 3).unwrap();
        assert_eq!(lent.snapshotted.keys().collect::<Vec<_>>(), vec!["b"]);
        assert_eq!(lent.sessions, a.sessions);
        assert_eq!(lent.len, 10);
        assert_eq!(loan.key_count, 3);
        // The merge deleted b and wrote x: the count follows, the untouched keys stay.
        let mut merged = lent.clone();
        merged.snapshotted.remove("b");
        merged.snapshotted.insert(
            "x".into(),
            Versioned {
                value: "9".into(),
                mod_index: 11,
            },
        );
        merged.len = 12;
        let mut batch = WriteBatch::default();
        assert_eq!(stage_keys(&store, &mut batch, &merged, &loan).unwrap(), 3);
        store.write(batch).unwrap();
        let stored = load(&store).unwrap().unwrap();
        let keys: Vec<_> = stored.snapshotted.keys().map(String::as_str).collect();
        assert_eq!(keys, vec!["a", "c", "x"]);
        assert_eq!(stored.len, 12);
        assert_eq!(key_count(&store).unwrap(), Some(3));
    }
}
