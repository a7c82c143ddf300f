//! The KV table: the state machine that decided entries are applied to, with its client
//! sessions and the index of the last applied entry.
//!
//! An [`ApplyBatch`] collects the effects of a run of decided entries (and possibly a snapshot
//! install) and commits them together with the new applied index in one atomic write: after a
//! crash the table is exactly the fold of the log up to the recorded index, never an entry
//! applied twice or skipped. Which writes apply is decided by `omnikv_core::session`, the rule
//! every replica, snapshot and view shares.
//!
//! The batch also keeps the number of live keys (the table serves as OmniPaxos' snapshot, see
//! `table_snapshot`, and viewers are told its size at each compaction): at commit, the keys the
//! batch wrote that the table did not write recently (`live_keys`) are looked up in one sorted
//! `MultiGet` to learn which were live before, so the count costs at most a point read per
//! distinct written key and never a scan.
//!
//! The sessions (at most `SESSIONS_MAX`, each bounded by its window) live in memory as well as
//! on disk: eviction needs all of them, and each write consults one. On disk a batch adds one
//! record of the sessions it changed, not each of them whole (`session_journal`).
//!
//! The table's digest (`omnikv_core::digest`, shown by the visualizer so that replicas can be
//! seen to converge) is folded beside the event loop while someone watches (`table_digest`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use omnikv_core::{
    scan::{self, ScanEntry, ScanPage, ScanRange},
    session::{self, Applied, KvState, Sessions, Versioned},
    KVCommand, KVSnapshot,
};
use rocksdb::{Direction, IteratorMode, WriteBatch};

use super::db::{StorageError, Store, CF_KV, CF_META, KEY_APPLIED_IDX, KEY_KV_COUNT};
use super::live_keys::LiveKeys;
use super::session_journal::{self, SessionJournal};
use super::table_digest::{DigestAt, DigestFolds};
use super::versioned;

/// Upper bound of every UTF-8 key: 0xFF never occurs in UTF-8.
const KEY_SPACE_END: &[u8] = &[0xFF];

pub struct KvTable {
    store: Arc<Store>,
    /// The committed sessions, as on disk.
    sessions: Sessions,
    /// What the next batch's sessions are written after.
    journal: SessionJournal,
    /// The last digest folded, and the next fold.
    digest: DigestFolds,
    /// Live keys, as committed.
    key_count: KeyCount,
}

/// The table's number of live keys, and the keys known to be live or not without a read.
struct KeyCount {
    committed: u64,
    known: LiveKeys,
}

impl KeyCount {
    /// Live keys once `writes` commit: the count before them, with each written key's change.
    /// Whether a key was live before is read only if it is not known.
    fn after(&self, writes: &KvWrites<'_>) -> Result<u64, StorageError> {
        if writes.cleared {
            // Every key was written since the table was replaced; none was live before.
            return Ok(writes.values.values().filter(|v| v.is_some()).count() as u64);
        }
        let mut after = self.committed;
        let mut unknown: Vec<(&String, bool)> = Vec::new();
        for (key, value) in &writes.values {
            let live = value.is_some();
            match self.known.get(key) {
                Some(before) => after = changed(after, before, live),
                None => unknown.push((key, live)),
            }
        }
        // Sorted, so that RocksDB reads keys that share a block together.
        unknown.sort_unstable_by_key(|(k, _)| *k);
        let found = writes.store.db().batched_multi_get_cf(
            writes.store.cf(CF_KV),
            unknown.iter().map(|(k, _)| k.as_bytes()),
            true,
        );
        for ((_, live), before) in unknown.iter().zip(found) {
            let before = before?.is_some();
            after = changed(after, before, *live);
        }
        Ok(after)
    }

    /// Takes the count `after` of a batch's writes (`values`, on a table it `cleared` or not)
    /// once they are written, and what they say of their keys.
    fn written(&mut self, values: &HashMap<String, Option<Versioned>>, cleared: bool, after: u64) {
        if cleared {
            // A whole new table: its keys are learnt as they are written again.
            self.known.forget_all();
        } else {
            for (key, value) in values {
                self.known.remember(key, value.is_some());
            }
        }
        self.committed = after;
    }
}

/// The live-key `count` after a write that leaves its key `live`, the key having been live
/// `before` or not. Saturating: a hash collision in `live_keys` (see there) must not wrap it.
fn changed(count: u64, before: bool, live: bool) -> u64 {
    (count + u64::from(live)).saturating_sub(u64::from(before))
}

/// The number of live keys in the table: as recorded, or counted once in data written before
/// the count was kept.
pub(crate) fn live_key_count(store: &Store) -> Result<u64, StorageError> {
    if let Some(n) = store.get_meta(KEY_KV_COUNT)? {
        return Ok(n);
    }
    let mut n = 0;
    for item in store.db().iterator_cf(store.cf(CF_KV), IteratorMode::Start) {
        item?;
        n += 1;
    }
    Ok(n)
}

impl KvTable {
    pub fn open(store: Arc<Store>) -> Result<KvTable, StorageError> {
        let (sessions, journal) = session_journal::load(&store)?;
        Ok(KvTable {
            sessions,
            journal,
            key_count: KeyCount {
                committed: live_key_count(&store)?,
                known: LiveKeys::default(),
            },
            store,
            digest: DigestFolds::default(),
        })
    }

    /// Live keys, as committed.
    pub fn key_count(&self) -> u64 {
        self.key_count.committed
    }

    /// The last digest folded, with the applied index of the table it is the digest of.
    pub fn digest(&self) -> Option<DigestAt> {
        self.digest.last()
    }

    /// Folds the table's digest again while `watched`, when due (called once a turn).
    pub fn refresh_digest(&mut self, applied_idx: u64, watched: bool) {
        self.digest.refresh(&self.store, applied_idx, watched);
    }

    pub fn applied_idx(&self) -> Result<u64, StorageError> {
        self.store.applied_idx()
    }

    pub fn get(&self, key: &str) -> Result<Option<Versioned>, StorageError> {
        KvTable::get_in(&self.store, key)
    }

    /// The whole table, for replica comparison, or `None` if it holds more than `keys_max`
    /// keys (it is then read by pages, see `kv_pages`).
    pub fn entries(
        &self,
        keys_max: usize,
    ) -> Result<Option<BTreeMap<String, Versioned>>, StorageError> {
        let mut out = BTreeMap::new();
        for item in self
            .store
            .db()
            .iterator_cf(self.store.cf(CF_KV), IteratorMode::Start)
        {
            let (k, v) = item?;
            if out.len() == keys_max {
                return Ok(None);
            }
            let (key, value) = versioned::decode_entry(&k, &v)?;
            out.insert(key, value);
        }
        Ok(Some(out))
    }

    /// One page of a scan, in key order, from RocksDB's ordered key space. The iterator reads
    /// one consistent state of the table and stops at the page's bounds (keys and bytes), so
    /// the work is that of the page, not of the table.
    pub fn scan(&self, range: &ScanRange) -> Result<ScanPage, StorageError> {
        let mode = IteratorMode::From(range.seek(), Direction::Forward);
        let entries = self
            .store
            .db()
            .iterator_cf(self.store.cf(CF_KV), mode)
            .map(|item| {
                let (k, v) = item?;
                let (key, Versioned { value, mod_index }) = versioned::decode_entry(&k, &v)?;
                Ok(ScanEntry {
                    key,
                    value,
                    mod_index,
                })
            });
        scan::page(range, entries)
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// A batch over this table. Its session changes are made in memory at once: a batch that
    /// is not committed must end the process (the node treats a storage error as fatal).
    pub fn batch(&mut self) -> ApplyBatch<'_> {
        ApplyBatch {
            writes: KvWrites {
                store: &self.store,
                batch: WriteBatch::default(),
                values: HashMap::new(),
                cleared: false,
                read_error: std::cell::RefCell::new(None),
            },
            sessions: &mut self.sessions,
            journal: &mut self.journal,
            key_count: &mut self.key_count,
            dirty: BTreeSet::new(),
        }
    }
}

/// The KV writes of a batch, visible to later entries of the same run before they commit.
struct KvWrites<'a> {
    store: &'a Store,
    batch: WriteBatch,
    /// Keys written in this batch (`None`: deleted).
    values: HashMap<String, Option<Versioned>>,
    /// A snapshot replaced the whole table: reads must not fall through to the old contents.
    cleared: bool,
    /// The first failed read of a guard's key. The rule reads infallibly; a batch that could
    /// not read what it compared must not commit (the node stops on a storage error).
    read_error: std::cell::RefCell<Option<StorageError>>,
}

impl KvWrites<'_> {
    fn lookup(&self, key: &str) -> Result<Option<Versioned>, StorageError> {
        match self.values.get(key) {
            Some(v) => Ok(v.clone()),
            None if self.cleared => Ok(None),
            None => KvTable::get_in(self.store, key),
        }
    }
}

impl KvState for KvWrites<'_> {
    fn read(&self, key: &str) -> Option<Versioned> {
        self.lookup(key).unwrap_or_else(|e| {
            self.read_error.borrow_mut().get_or_insert(e);
            None
        })
    }

    fn write(&mut self, key: &str, value: Option<&str>, index: u64) {
        let kv = self.store.cf(CF_KV);
        match value {
            Some(v) => self.batch.put_cf(kv, key, versioned::encode(index, v)),
            None => self.batch.delete_cf(kv, key),
        }
        let stored = value.map(|v| Versioned {
            value: v.to_owned(),
            mod_index: index,
        });
        self.values.insert(key.to_owned(), stored);
    }
}

/// Effects of applying a run of entries.
pub struct ApplyBatch<'a> {
    writes: KvWrites<'a>,
    sessions: &'a mut Sessions,
    journal: &'a mut SessionJournal,
    /// Sessions changed (or evicted) by this batch, written at commit.
    dirty: BTreeSet<u64>,
    /// The table's count, updated when the batch commits.
    key_count: &'a mut KeyCount,
}

impl ApplyBatch<'_> {
    /// The value of `key` as of the entries applied so far.
    pub fn read(&self, key: &str) -> Result<Option<Versioned>, StorageError> {
        self.writes.lookup(key)
    }

    /// Applies the command decided at `index`.
    pub fn apply(&mut self, cmd: &KVCommand, index: u64) -> Applied {
        let applied = session::apply(self.sessions, &mut self.writes, cmd, index);
        match &applied {
            Applied::Opened { evicted } => {
                self.dirty.insert(index);
                self.dirty.extend(evicted);
            }
            Applied::Written
            | Applied::GuardsFailed { .. }
            | Applied::Duplicate { .. }
            | Applied::Refused(_) => {
                self.dirty.insert(cmd.id().client);
            }
            Applied::Read => {}
        }
        applied
    }

    /// Replaces the whole table by a complete snapshot (catch-up of a node that fell behind the
    /// leader's compacted prefix).
    pub fn install(&mut self, snapshot: &KVSnapshot) {
        assert!(
            snapshot.unresolved.is_empty(),
            "install takes a resolved snapshot"
        );
        let store = self.writes.store;
        let batch = &mut self.writes.batch;
        batch.delete_range_cf(store.cf(CF_KV), &b""[..], KEY_SPACE_END);
        self.writes.values.clear();
        self.writes.cleared = true;
        for (k, v) in &snapshot.snapshotted {
            batch.put_cf(store.cf(CF_KV), k, versioned::encode(v.mod_index, &v.value));
            self.writes.values.insert(k.clone(), Some(v.clone()));
        }
        // The sessions on disk are replaced at commit (`SessionJournal::stage`, whole).
        *self.sessions = snapshot.sessions.clone();
        self.dirty = self.sessions.iter().map(|(c, _)| c).collect();
    }

    /// Writes the batch and the new applied index atomically.
    pub fn commit(self, applied_idx: u64) -> Result<(), StorageError> {
        if let Some(e) = self.writes.read_error.take() {
            return Err(e);
        }
        let store = self.writes.store;
        let key_count = self.key_count.after(&self.writes)?;
        let mut batch = self.writes.batch;
        self.journal.stage(
            store,
            &mut batch,
            self.sessions,
            self.dirty,
            self.writes.cleared,
        )?;
        batch.put_cf(
            store.cf(CF_META),
            KEY_APPLIED_IDX,
            serde_json::to_vec(&applied_idx)?,
        );
        batch.put_cf(
            store.cf(CF_META),
            KEY_KV_COUNT,
            serde_json::to_vec(&key_count)?,
        );
        // Applied state is rebuilt from the log if a power failure loses it.
        store.write_deferred(batch)?;
        self.key_count
            .written(&self.writes.values, self.writes.cleared, key_count);
        Ok(())
    }
}

impl KvTable {
    fn get_in(store: &Store, key: &str) -> Result<Option<Versioned>, StorageError> {
        match store.db().get_pinned_cf(store.cf(CF_KV), key)? {
            Some(bytes) => Ok(Some(versioned::decode(key.as_bytes(), &bytes)?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnikv_core::digest::TableDigest;
    use omnikv_core::{session::SessionRefusal, RequestId};

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

    /// Installs a snapshot of one session (0) and one key ("x"), at applied index 2.
    fn install_one_key(table: &mut KvTable) {
        let mut snap = KVSnapshot::default();
        snap.push(&open(3));
        snap.push(&put(0, 1, "x", "y"));
        let mut b = table.batch();
        b.install(&snap);
        b.commit(2).unwrap();
    }

    /// An empty table in a new directory (kept while the test runs), and its store.
    fn new_table() -> (tempfile::TempDir, Arc<Store>, KvTable) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let table = KvTable::open(store.clone()).unwrap();
        (dir, store, table)
    }

    #[test]
    fn applies_dedups_and_reads_within_a_batch_and_survives_reopen() {
        let (_dir, store, mut table) = new_table();
        let mut b = table.batch();
        assert_eq!(b.apply(&open(50), 0), Applied::Opened { evicted: vec![] });
        assert_eq!(b.apply(&open(51), 1), Applied::Opened { evicted: vec![] });
        assert_eq!(b.apply(&put(0, 2, "k", "a"), 2), Applied::Written);
        assert_eq!(b.apply(&put(1, 1, "k", "b"), 3), Applied::Written);
        assert_eq!(
            b.apply(&put(0, 1, "j", "c"), 4),
            Applied::Written,
            "a lower seq decided later"
        );
        assert_eq!(
            b.apply(&put(0, 2, "k", "a"), 5),
            Applied::Duplicate {
                index: 2,
                guards_failed: false
            }
        );
        let read = b.read("k").unwrap().unwrap();
        assert_eq!((read.value.as_str(), read.mod_index), ("b", 3));
        assert!(matches!(
            b.apply(&put(9, 1, "k", "x"), 6),
            Applied::Refused(SessionRefusal::Expired { client: 9 })
        ));
        b.commit(7).unwrap();
        assert_eq!(table.applied_idx().unwrap(), 7);
        assert_eq!(
            table.get("k").unwrap().unwrap().mod_index,
            3,
            "durable with its index"
        );
        let sessions = table.sessions().clone();
        drop(table);
        let mut table = KvTable::open(store).unwrap();
        assert_eq!(table.sessions(), &sessions, "sessions are durable");
        let mut b = table.batch();
        assert_eq!(
            b.apply(&put(1, 1, "k", "b"), 7),
            Applied::Duplicate {
                index: 3,
                guards_failed: false
            }
        );
    }

    /// The live keys of the table, counted by a scan.
    fn scanned_key_count(table: &KvTable) -> u64 {
        table.entries(usize::MAX).unwrap().unwrap().len() as u64
    }

    #[test]
    fn install_replaces_everything() {
        let dir = tempfile::tempdir().unwrap();
        let mut table = KvTable::open(Store::open(dir.path(), false).unwrap()).unwrap();
        let mut b = table.batch();
        b.apply(&open(1), 0);
        b.apply(&put(0, 1, "old", "x"), 1);
        b.commit(2).unwrap();
        let mut snap = KVSnapshot::default();
        snap.push(&open(2));
        snap.push(&put(0, 3, "new", "y"));
        let mut b = table.batch();
        b.install(&snap);
        assert_eq!(
            b.apply(&put(0, 3, "new", "y"), 2),
            Applied::Duplicate {
                index: 1,
                guards_failed: false
            }
        );
        b.commit(3).unwrap();
        assert_eq!(
            table.entries(usize::MAX).unwrap(),
            Some(snap.snapshotted.clone())
        );
        // The duplicate only marked the session as used.
        assert_eq!(
            table.sessions().get(0).unwrap().applied,
            snap.sessions.get(0).unwrap().applied
        );
        assert_eq!(table.sessions().get(0).unwrap().last_index, 2);
    }

    #[test]
    fn the_live_key_count_follows_writes_deletes_installs_and_reopens() {
        let (_dir, store, mut table) = new_table();
        let mut b = table.batch();
        b.apply(&open(1), 0);
        b.apply(&put(0, 1, "a", "1"), 1);
        b.apply(&put(0, 2, "a", "2"), 2);
        b.apply(&put(0, 3, "b", "1"), 3);
        b.apply(&delete(0, 4, "b"), 4);
        b.apply(&delete(0, 5, "never"), 5);
        b.apply(&put(0, 6, "c", "1"), 6);
        b.commit(7).unwrap();
        assert_eq!((table.key_count(), scanned_key_count(&table)), (2, 2));
        let mut b = table.batch();
        b.apply(&put(0, 7, "a", "3"), 7);
        b.apply(&delete(0, 8, "c"), 8);
        b.apply(&delete(0, 9, "c"), 9);
        b.apply(&put(0, 10, "d", "1"), 10);
        b.commit(11).unwrap();
        assert_eq!((table.key_count(), scanned_key_count(&table)), (2, 2));
        // A batch that is not committed changes nothing.
        let mut b = table.batch();
        b.apply(&put(0, 11, "e", "1"), 11);
        drop(b);
        assert_eq!(table.key_count(), 2);
        drop(table);
        let mut table = KvTable::open(store.clone()).unwrap();
        assert_eq!(table.key_count(), 2, "the count is durable");
        let mut snap = KVSnapshot::default();
        snap.push(&open(2));
        for (seq, key) in ["x", "y", "z"].iter().enumerate() {
            snap.push(&put(0, seq as u64 + 1, key, "v"));
        }
        let mut b = table.batch();
        b.install(&snap);
        b.apply(&delete(0, 7, "x"), 4);
        b.apply(&put(0, 8, "a", "1"), 5);
        b.commit(6).unwrap();
        assert_eq!((table.key_count(), scanned_key_count(&table)), (3, 3));
        // Data written before the count was kept is counted once.
        store
            .db()
            .delete_cf(store.cf(CF_META), KEY_KV_COUNT)
            .unwrap();
        assert_eq!(live_key_count(&store).unwrap(), 3);
    }

    #[test]
    fn an_install_leaves_no_session_or_known_key_of_the_table_it_replaced() {
        let (_dir, store, mut table) = new_table();
        let mut b = table.batch();
        b.apply(&open(1), 0);
        b.apply(&open(2), 1);
        b.apply(&put(1, 1, "a", "x"), 2);
        b.commit(3).unwrap();
        // Neither "a" nor session 1 is in the snapshot.
        install_one_key(&mut table);
        let mut b = table.batch();
        b.apply(&put(0, 2, "a", "z"), 2);
        b.commit(3).unwrap();
        assert_eq!(
            (table.key_count(), scanned_key_count(&table)),
            (2, 2),
            "\"a\" was live in the table replaced, not in this one"
        );
        let sessions = table.sessions().clone();
        assert_eq!(sessions.iter().map(|(c, _)| c).collect::<Vec<_>>(), [0]);
        drop(table);
        let table = KvTable::open(store).unwrap();
        assert_eq!(table.sessions(), &sessions, "session 1 stays gone");
    }

    #[test]
    fn an_install_hides_the_replaced_keys_held_in_table_files() {
        // The `kv` memtable's bloom filter says "a" is not in the memtable that holds the
        // install's range deletion; the deletion must still hide the "a" a table file holds,
        // from reads and from the live-key lookup alike.
        let (_dir, store, mut table) = new_table();
        let mut b = table.batch();
        b.apply(&open(1), 0);
        b.apply(&put(0, 1, "a", "x"), 1);
        b.commit(2).unwrap();
        assert!(table.get("a").unwrap().is_some());
        store.db().flush_cf(store.cf(CF_KV)).unwrap();
        install_one_key(&mut table);
        assert_eq!(
            table.get("a").unwrap(),
            None,
            "read from the replaced table"
        );
        // A fresh table object knows no key, so the put of "a" asks RocksDB.
        drop(table);
        let mut table = KvTable::open(store).unwrap();
        let mut b = table.batch();
        b.apply(&put(0, 2, "a", "z"), 2);
        b.commit(3).unwrap();
        assert_eq!((table.key_count(), scanned_key_count(&table)), (2, 2));
    }

    #[test]
    fn the_count_agrees_with_the_table_whether_a_key_was_known_or_read() {
        let (_dir, store, mut table) = new_table();
        let mut b = table.batch();
        b.apply(&open(1), 0);
        b.commit(1).unwrap();
        let (mut seq, mut idx, mut rng) = (1, 1, 7_u64);
        for round in 0..60 {
            if round == 30 {
                // A reopen forgets which keys are live: they are read again.
                drop(table);
                table = KvTable::open(store.clone()).unwrap();
            }
            let mut b = table.batch();
            for _ in 0..8 {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let key = format!("k{}", (rng >> 33) % 12);
                let cmd = if (rng >> 20) % 3 == 0 {
                    delete(0, seq, &key)
                } else {
                    put(0, seq, &key, "v")
                };
                b.apply(&cmd, idx);
                seq += 1;
                idx += 1;
            }
            if round % 7 == 3 {
                // Dropped, never written: what it wrote must not be taken as known.
                drop(b);
            } else {
                b.commit(idx).unwrap();
            }
            assert_eq!(
                table.key_count(),
                scanned_key_count(&table),
                "round {round}"
            );
        }
    }

    /// Refreshes, watched, until a fold newer than `after` is in; a fold of a few hundred
    /// keys takes microseconds (the second one waits out the gap between folds).
    fn fold_after(table: &mut KvTable, after: Option<DigestAt>) -> DigestAt {
        let applied_idx = table.applied_idx().unwrap();
        for _ in 0..3000 {
            table.refresh_digest(applied_idx, true);
            match table.digest() {
                Some(d) if Some(d) != after => return d,
                _ => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
        panic!("no fold finished");
    }

    fn delete(client: u64, seq: u64, key: &str) -> KVCommand {
        KVCommand::Delete {
            id: RequestId { client, seq },
            key: key.into(),
            forget_below: 0,
        }
    }

    #[test]
    fn a_fold_is_the_digest_of_the_table_at_the_applied_index_it_reports() {
        let (_dir, _store, mut table) = new_table();
        table.refresh_digest(0, false);
        std::thread::sleep(std::time::Duration::from_millis(20));
        table.refresh_digest(0, false);
        assert_eq!(table.digest(), None, "no fold while nobody watches");
        assert_eq!(fold_after(&mut table, None), (TableDigest::default(), 0));

        let mut b = table.batch();
        b.apply(&open(1), 0);
        for i in 0..300u64 {
            b.apply(&put(0, i + 1, &format!("k{i}"), &format!("v{i}")), i + 1);
        }
        b.commit(301).unwrap();
        let mut b = table.batch();
        b.apply(&put(0, 301, "k0", "changed"), 301);
        b.apply(&delete(0, 302, "k1"), 302);
        b.commit(303).unwrap();
        let before = table.digest();
        let folded = fold_after(&mut table, before);
        let entries = table.entries(usize::MAX).unwrap().unwrap();
        assert_eq!(entries.len(), 299);
        assert_eq!(folded, (TableDigest::of(&entries), 303));

        let mut snap = KVSnapshot::default();
        snap.push(&open(2));
        snap.push(&put(0, 3, "new", "y"));
        let mut b = table.batch();
        b.install(&snap);
        b.apply(&put(0, 4, "new", "z"), 2);
        b.commit(3).unwrap();
        let entries = table.entries(usize::MAX).unwrap().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(
            fold_after(&mut table, Some(folded)),
            (TableDigest::of(&entries), 3)
        );
    }
}
