//! The KV table: the state machine that decided entries are applied to, with its deduplication
//! sessions and the index of the last applied entry.
//!
//! An [`ApplyBatch`] collects the effects of a run of decided entries (and possibly a snapshot
//! install) and commits them together with the new applied index in one atomic write: after a
//! crash the table is exactly the fold of the log up to the recorded index, never an entry
//! applied twice or skipped.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use omnikv_core::{snapshot::is_new_request, KVCommand, KVSnapshot, RequestId};
use rocksdb::{IteratorMode, WriteBatch};

use super::db::{decode_index_key, index_key, StorageError, Store, CF_KV, CF_META, CF_SESSIONS};

const KEY_APPLIED_IDX: &str = "applied_idx";
/// Upper bound of every UTF-8 key: 0xFF never occurs in UTF-8.
const KEY_SPACE_END: &[u8] = &[0xFF];

#[derive(Clone)]
pub struct KvTable {
    store: Arc<Store>,
}

/// What applying one command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    Written,
    /// A retry of a request already applied: skipped.
    Duplicate,
    /// A Get, answered with the value at this point of the log.
    Read(Option<String>),
}

impl KvTable {
    pub fn new(store: Arc<Store>) -> KvTable {
        KvTable { store }
    }

    pub fn applied_idx(&self) -> Result<u64, StorageError> {
        Ok(self.store.get_meta(KEY_APPLIED_IDX)?.unwrap_or(0))
    }

    pub fn get(&self, key: &str) -> Result<Option<String>, StorageError> {
        match self.store.db().get_pinned_cf(self.store.cf(CF_KV), key)? {
            Some(bytes) => Ok(Some(String::from_utf8(bytes.to_vec()).map_err(|_| {
                StorageError::Corrupt(format!("value of {key:?} is not UTF-8"))
            })?)),
            None => Ok(None),
        }
    }

    fn session(&self, client: u64) -> Result<Option<u64>, StorageError> {
        match self
            .store
            .db()
            .get_pinned_cf(self.store.cf(CF_SESSIONS), index_key(client))?
        {
            Some(bytes) => Ok(Some(decode_index_key(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The whole table, for replica comparison and the visualizer's first picture.
    pub fn entries(&self) -> Result<BTreeMap<String, String>, StorageError> {
        let mut out = BTreeMap::new();
        for item in self
            .store
            .db()
            .iterator_cf(self.store.cf(CF_KV), IteratorMode::Start)
        {
            let (k, v) = item?;
            out.insert(
                String::from_utf8_lossy(&k).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            );
        }
        Ok(out)
    }

    pub fn sessions(&self) -> Result<BTreeMap<u64, u64>, StorageError> {
        let mut out = BTreeMap::new();
        for item in self
            .store
            .db()
            .iterator_cf(self.store.cf(CF_SESSIONS), IteratorMode::Start)
        {
            let (k, v) = item?;
            out.insert(decode_index_key(&k)?, decode_index_key(&v)?);
        }
        Ok(out)
    }

    pub fn batch(&self) -> ApplyBatch<'_> {
        ApplyBatch {
            table: self,
            batch: WriteBatch::default(),
            values: HashMap::new(),
            sessions: HashMap::new(),
            cleared: false,
        }
    }
}

/// Effects of applying a run of entries, visible to later entries of the same run before they
/// are committed.
pub struct ApplyBatch<'a> {
    table: &'a KvTable,
    batch: WriteBatch,
    /// Keys written in this batch (`None`: deleted).
    values: HashMap<String, Option<String>>,
    sessions: HashMap<u64, u64>,
    /// A snapshot replaced the whole table: reads must not fall through to the old contents.
    cleared: bool,
}

impl ApplyBatch<'_> {
    fn value(&self, key: &str) -> Result<Option<String>, StorageError> {
        match self.values.get(key) {
            Some(v) => Ok(v.clone()),
            None if self.cleared => Ok(None),
            None => self.table.get(key),
        }
    }

    fn is_new(&self, id: RequestId) -> Result<bool, StorageError> {
        let last = match self.sessions.get(&id.client) {
            Some(&seq) => Some(seq),
            None if self.cleared => None,
            None => self.table.session(id.client)?,
        };
        let mut view = BTreeMap::new();
        if let Some(seq) = last {
            view.insert(id.client, seq);
        }
        Ok(is_new_request(&view, id))
    }

    pub fn apply(&mut self, cmd: &KVCommand) -> Result<ApplyOutcome, StorageError> {
        let Some(value) = cmd.mutation() else {
            return Ok(ApplyOutcome::Read(self.value(cmd.key())?));
        };
        let id = cmd.id();
        if !self.is_new(id)? {
            return Ok(ApplyOutcome::Duplicate);
        }
        let kv = self.table.store.cf(CF_KV);
        match value {
            Some(v) => self.batch.put_cf(kv, cmd.key(), v),
            None => self.batch.delete_cf(kv, cmd.key()),
        }
        self.values
            .insert(cmd.key().to_owned(), value.map(str::to_owned));
        self.batch.put_cf(
            self.table.store.cf(CF_SESSIONS),
            index_key(id.client),
            index_key(id.seq),
        );
        self.sessions.insert(id.client, id.seq);
        Ok(ApplyOutcome::Written)
    }

    /// Replaces the whole table by a complete snapshot (catch-up of a node that fell behind the
    /// leader's compacted prefix).
    pub fn install(&mut self, snapshot: &KVSnapshot) {
        assert!(
            snapshot.unresolved.is_empty(),
            "install takes a resolved snapshot"
        );
        let store = &self.table.store;
        self.batch
            .delete_range_cf(store.cf(CF_KV), &b""[..], KEY_SPACE_END);
        self.batch
            .delete_range_cf(store.cf(CF_SESSIONS), &index_key(0)[..], &[0xFF; 9][..]);
        self.values.clear();
        self.sessions.clear();
        self.cleared = true;
        for (k, v) in &snapshot.snapshotted {
            self.batch.put_cf(store.cf(CF_KV), k, v);
            self.values.insert(k.clone(), Some(v.clone()));
        }
        for (&client, &seq) in &snapshot.sessions {
            self.batch
                .put_cf(store.cf(CF_SESSIONS), index_key(client), index_key(seq));
            self.sessions.insert(client, seq);
        }
    }

    /// Writes the batch and the new applied index atomically.
    pub fn commit(mut self, applied_idx: u64) -> Result<(), StorageError> {
        let store = &self.table.store;
        self.batch.put_cf(
            store.cf(CF_META),
            KEY_APPLIED_IDX,
            serde_json::to_vec(&applied_idx)?,
        );
        // Applied state is rebuilt from the log if a power failure loses it.
        store.write_deferred(self.batch)
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

    #[test]
    fn applies_dedups_and_reads_within_a_batch() {
        let dir = tempfile::tempdir().unwrap();
        let table = KvTable::new(Store::open(dir.path(), false).unwrap());
        let mut b = table.batch();
        assert_eq!(
            b.apply(&put(1, 1, "k", "a")).unwrap(),
            ApplyOutcome::Written
        );
        assert_eq!(
            b.apply(&put(2, 1, "k", "b")).unwrap(),
            ApplyOutcome::Written
        );
        assert_eq!(
            b.apply(&put(1, 1, "k", "a")).unwrap(),
            ApplyOutcome::Duplicate
        );
        let get = KVCommand::Get {
            id: RequestId { client: 3, seq: 1 },
            key: "k".into(),
        };
        assert_eq!(b.apply(&get).unwrap(), ApplyOutcome::Read(Some("b".into())));
        b.commit(4).unwrap();
        assert_eq!(table.applied_idx().unwrap(), 4);
        assert_eq!(table.get("k").unwrap().as_deref(), Some("b"));
        let mut b = table.batch();
        assert_eq!(
            b.apply(&put(2, 1, "k", "b")).unwrap(),
            ApplyOutcome::Duplicate
        );
        let del = KVCommand::Delete {
            id: RequestId { client: 2, seq: 2 },
            key: "k".into(),
        };
        assert_eq!(b.apply(&del).unwrap(), ApplyOutcome::Written);
        b.commit(6).unwrap();
        assert_eq!(table.get("k").unwrap(), None);
        assert_eq!(table.sessions().unwrap(), BTreeMap::from([(1, 1), (2, 2)]));
    }

    #[test]
    fn install_replaces_everything() {
        let dir = tempfile::tempdir().unwrap();
        let table = KvTable::new(Store::open(dir.path(), false).unwrap());
        let mut b = table.batch();
        b.apply(&put(1, 1, "old", "x")).unwrap();
        b.commit(1).unwrap();
        let mut snap = KVSnapshot::default();
        snap.apply(RequestId { client: 5, seq: 3 }, "new", Some("y"));
        let mut b = table.batch();
        b.install(&snap);
        assert_eq!(
            b.apply(&put(5, 3, "new", "z")).unwrap(),
            ApplyOutcome::Duplicate
        );
        b.commit(10).unwrap();
        assert_eq!(table.entries().unwrap(), snap.snapshotted);
        assert_eq!(table.sessions().unwrap(), snap.sessions);
    }
}
