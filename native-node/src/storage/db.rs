//! Opening the database and the write/sync discipline.
//!
//! Writes go to the WAL without fsync; [`Store::sync`] makes everything written so far durable
//! with one fsync. The node calls it once per event-loop turn, before any message or client
//! reply leaves the process, so many entries share one fsync (group commit) while nothing is
//! acknowledged before it is on disk. A plain process crash (SIGKILL) never loses a WAL write
//! even without fsync, because RocksDB hands every write to the kernel before returning.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};

pub(crate) const CF_LOG: &str = "log";
pub(crate) const CF_META: &str = "meta";
pub(crate) const CF_KV: &str = "kv";
pub(crate) const CF_SESSIONS: &str = "sessions";
pub(crate) const CF_SNAPSHOT: &str = "snapshot";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("encoding: {0}")]
    Codec(#[from] serde_json::Error),
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

pub struct Store {
    db: DB,
    path: PathBuf,
    /// Whether [`Store::sync`] fsyncs. Off only by explicit, documented choice: a power loss can
    /// then lose acknowledged writes (a process crash still cannot).
    fsync: bool,
    /// Set by every write, cleared by a sync: a turn that wrote nothing costs no fsync.
    dirty: AtomicBool,
    /// Number of fsyncs done, for status and benchmarks.
    syncs: AtomicU64,
}

impl Store {
    pub fn open(path: &Path, fsync: bool) -> Result<Arc<Store>, StorageError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cfs = [CF_LOG, CF_META, CF_KV, CF_SESSIONS, CF_SNAPSHOT]
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        Ok(Arc::new(Store {
            db,
            path: path.to_owned(),
            fsync,
            dirty: AtomicBool::new(false),
            syncs: AtomicU64::new(0),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn db(&self) -> &DB {
        &self.db
    }

    pub(crate) fn cf(&self, name: &str) -> &ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family is created at open")
    }

    /// Writes a batch atomically to the WAL and memtable, without fsync.
    pub fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut opts = WriteOptions::default();
        opts.set_sync(false);
        self.db.write_opt(batch, &opts)?;
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Writes a batch whose loss in a power failure is harmless, without asking for an fsync:
    /// the decided index (peers tell it again) and the applied state (re-applied from the log).
    /// It becomes durable with the next fsync, and since RocksDB recovers a prefix of its WAL,
    /// a later durable write (a compaction, say) implies it. Keeping it off the fsync path
    /// saves the leader one fsync per decision and the follower one per Decide.
    pub fn write_deferred(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut opts = WriteOptions::default();
        opts.set_sync(false);
        self.db.write_opt(batch, &opts)?;
        Ok(())
    }

    /// Makes every earlier write durable (one fsync), if any write happened since the last sync.
    pub fn sync(&self) -> Result<(), StorageError> {
        if self.dirty.swap(false, Ordering::AcqRel) && self.fsync {
            self.db.flush_wal(true)?;
            self.syncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    pub fn sync_count(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    pub(crate) fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StorageError> {
        match self.db.get_pinned_cf(self.cf(CF_META), key)? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }
}

/// Log and session keys are big-endian so that RocksDB's byte order is numeric order.
pub(crate) fn index_key(idx: u64) -> [u8; 8] {
    idx.to_be_bytes()
}

pub(crate) fn decode_index_key(key: &[u8]) -> Result<u64, StorageError> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| StorageError::Corrupt(format!("index key of {} bytes", key.len())))?;
    Ok(u64::from_be_bytes(bytes))
}
