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

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, LogLevel, Options, Snapshot,
    WriteBatch, WriteOptions, DB,
};

pub(crate) const CF_LOG: &str = "log";
pub(crate) const CF_META: &str = "meta";
pub(crate) const CF_KV: &str = "kv";
pub(crate) const CF_SESSIONS: &str = "sessions";
pub(crate) const CF_SNAPSHOT: &str = "snapshot";
/// The changes to the sessions since they were last written whole (`session_journal`).
pub(crate) const CF_SESSION_JOURNAL: &str = "session_journal";
/// Every column family, in the order they are opened.
const FAMILIES: [&str; 6] = [
    CF_LOG,
    CF_META,
    CF_KV,
    CF_SESSIONS,
    CF_SESSION_JOURNAL,
    CF_SNAPSHOT,
];
/// The key in `meta` of the table's applied index, written with the entries it applied
/// (`kv_table`) and read with the table from one RocksDB snapshot ([`Store::applied_idx_in`]).
pub(crate) const KEY_APPLIED_IDX: &str = "applied_idx";
/// The key in `meta` of the number of live keys in the table, written with the entries that
/// change it (`kv_table`).
pub(crate) const KEY_KV_COUNT: &str = "kv_count";

/// What RocksDB may hold, set in one place: the defaults are [`StoreLimits::DEFAULT`], and an
/// operator changes them with `omnikv node --memtables-mb`, `--wal-max-mb`, `--block-cache-mb`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Memory of every column family's memtables together: RocksDB flushes the largest once
    /// they pass it, so a node's write memory does not grow with the number of families or the
    /// history. While flushes fall behind, memtables waiting for one come on top, at most
    /// [`MEMTABLES_PER_FAMILY_MAX`] per family of at most half this each.
    pub memtables_bytes: usize,
    /// Write-ahead log kept before RocksDB flushes the families that pin its oldest file: what
    /// a restart replays at most, and so what bounds the time from restart to serving.
    pub wal_bytes: u64,
    /// Uncompressed blocks cached for reads, shared by every column family.
    pub block_cache_bytes: usize,
}

/// Bloom filter bits per key: a point read of a key that a table file does not hold (every
/// new key, on every level) skips the file instead of reading its index and a block.
const BLOOM_BITS_PER_KEY: f64 = 10.0;
/// The `kv` memtable's bloom filter, as a share of the memtable's bytes.
const MEMTABLE_BLOOM_RATIO: f64 = 0.05;

/// Memtables a column family holds at most: the one written and those waiting for flush.
const MEMTABLES_PER_FAMILY_MAX: i32 = 4;

impl StoreLimits {
    pub const DEFAULT: StoreLimits = StoreLimits {
        memtables_bytes: 64 << 20,
        wal_bytes: 64 << 20,
        block_cache_bytes: 32 << 20,
    };
}

impl Default for StoreLimits {
    fn default() -> StoreLimits {
        StoreLimits::DEFAULT
    }
}
/// The layout of the data this version writes, recorded in `meta` when a store is created.
/// 2: live values carry their `mod_index` (see `versioned`). A directory without it that holds
/// anything was written by version 1, whose values would be misread, so it is refused.
const FORMAT: u64 = 2;
const KEY_FORMAT: &str = "format";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("encoding: {0}")]
    Codec(#[from] serde_json::Error),
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("{path} holds data of format {found}, this version reads format {FORMAT} (values now carry the index of their last write); start this node on an empty data directory and let its peers catch it up")]
    OldFormat { path: String, found: u64 },
    /// An earlier write failed: the store takes nothing more (see [`Store::write`]).
    #[error("storage failed earlier: {0}")]
    Failed(String),
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
    /// Bytes of write batches taken, so that the free space is read again after a given amount
    /// written (see `disk_guard`).
    written_bytes: AtomicU64,
    /// The first write or sync error. After one, RocksDB's WAL writer holds a write it could
    /// not complete, and syncing it would assert (the system's RocksDB aborts): the store
    /// fails every later call instead, and the node stops (see `fatal`).
    failed: std::sync::Mutex<Option<String>>,
}

impl Store {
    pub fn open(path: &Path, fsync: bool) -> Result<Arc<Store>, StorageError> {
        Store::open_with(path, fsync, StoreLimits::default())
    }

    pub fn open_with(
        path: &Path,
        fsync: bool,
        limits: StoreLimits,
    ) -> Result<Arc<Store>, StorageError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // A column family written rarely (`meta`) would otherwise pin every WAL file since
        // start: with this bound RocksDB flushes it once the WALs pass the bound.
        opts.set_max_total_wal_size(limits.wal_bytes);
        opts.set_db_write_buffer_size(limits.memtables_bytes);
        // RocksDB's own text log. Debian's build logs at debug level, a line for every fsync
        // (most of the file, and a write per turn): information and above only. It is also
        // rotated and trimmed, which that build never does on its own.
        opts.set_log_level(LogLevel::Info);
        opts.set_max_log_file_size(16 << 20);
        opts.set_keep_log_file_num(4);
        let cache = Cache::new_lru_cache(limits.block_cache_bytes)?;
        let cfs = FAMILIES.into_iter().map(|name| {
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            table.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
            let mut cf = Options::default();
            cf.set_block_based_table_factory(&table);
            // RocksDB stops every write while a family has as many memtables waiting for
            // flush as it may hold (2 by default), and a stopped write holds the node's event
            // loop past an election window. With 4, a flush that falls behind slows writes
            // (at 3 waiting) before it stops them; half the budget each keeps one family from
            // holding all of it.
            cf.set_max_write_buffer_number(MEMTABLES_PER_FAMILY_MAX);
            cf.set_write_buffer_size(limits.memtables_bytes / 2);
            if name == CF_KV {
                // Every write asks whether its key was live (`kv_table`): a key the memtable
                // does not hold is answered by this filter instead of a walk of its skip list.
                cf.set_memtable_prefix_bloom_ratio(MEMTABLE_BLOOM_RATIO);
                cf.set_memtable_whole_key_filtering(true);
            }
            ColumnFamilyDescriptor::new(name, cf)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        let store = Store {
            db,
            path: path.to_owned(),
            fsync,
            dirty: AtomicBool::new(false),
            syncs: AtomicU64::new(0),
            written_bytes: AtomicU64::new(0),
            failed: std::sync::Mutex::new(None),
        };
        store.check_format()?;
        Ok(Arc::new(store))
    }

    /// Records [`FORMAT`] in a new store; refuses a store of another format.
    fn check_format(&self) -> Result<(), StorageError> {
        let found = match self.get_meta::<u64>(KEY_FORMAT)? {
            Some(FORMAT) => return Ok(()),
            Some(other) => other,
            None if self.is_empty()? => {
                let mut batch = WriteBatch::default();
                batch.put_cf(self.cf(CF_META), KEY_FORMAT, serde_json::to_vec(&FORMAT)?);
                self.write(batch)?;
                return self.sync();
            }
            None => 1,
        };
        Err(StorageError::OldFormat {
            path: self.path.display().to_string(),
            found,
        })
    }

    fn is_empty(&self) -> Result<bool, StorageError> {
        for cf in FAMILIES {
            let mut it = self.db.raw_iterator_cf(self.cf(cf));
            it.seek_to_first();
            it.status()?;
            if it.valid() {
                return Ok(false);
            }
        }
        Ok(true)
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
        self.write_unsynced(batch)?;
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    fn write_unsynced(&self, batch: WriteBatch) -> Result<(), StorageError> {
        self.check()?;
        self.written_bytes
            .fetch_add(batch.size_in_bytes() as u64, Ordering::Relaxed);
        let mut opts = WriteOptions::default();
        opts.set_sync(false);
        self.db.write_opt(batch, &opts).map_err(|e| self.fail(e))
    }

    /// Fails if an earlier call failed.
    fn check(&self) -> Result<(), StorageError> {
        match &*self.failed.lock().expect("not poisoned") {
            Some(why) => Err(StorageError::Failed(why.clone())),
            None => Ok(()),
        }
    }

    fn fail(&self, e: rocksdb::Error) -> StorageError {
        let mut failed = self.failed.lock().expect("not poisoned");
        failed.get_or_insert_with(|| e.to_string());
        StorageError::Rocks(e)
    }

    /// Writes a batch whose loss in a power failure is harmless, without asking for an fsync:
    /// the decided index (peers tell it again) and the applied state (re-applied from the log).
    /// It becomes durable with the next fsync, and since RocksDB recovers a prefix of its WAL,
    /// a later durable write (a compaction, say) implies it. Keeping it off the fsync path
    /// saves the leader one fsync per decision and the follower one per Decide.
    pub fn write_deferred(&self, batch: WriteBatch) -> Result<(), StorageError> {
        self.write_unsynced(batch)
    }

    /// Whether [`Store::sync`] would fsync: something was written since the last one, and
    /// fsync is on.
    pub fn needs_fsync(&self) -> bool {
        self.fsync && self.dirty.load(Ordering::Acquire)
    }

    /// Makes every earlier write durable (one fsync), if any write happened since the last sync.
    pub fn sync(&self) -> Result<(), StorageError> {
        self.check()?;
        if self.dirty.swap(false, Ordering::AcqRel) && self.fsync {
            self.db.flush_wal(true).map_err(|e| self.fail(e))?;
            self.syncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Claims the writes so far for one fsync ([`Store::sync_claimed`]), on the thread that
    /// writes, so that a write made while that fsync runs asks for the next one. False if
    /// there is nothing to sync.
    pub fn claim_sync(&self) -> bool {
        self.fsync && self.dirty.swap(false, Ordering::AcqRel)
    }

    /// The fsync of the writes [`Store::claim_sync`] claimed (and maybe of later ones).
    pub fn sync_claimed(&self) -> Result<(), StorageError> {
        self.check()?;
        self.db.flush_wal(true).map_err(|e| self.fail(e))?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Bytes free for this process on the store's filesystem.
    pub fn free_bytes(&self) -> std::io::Result<u64> {
        let stat = nix::sys::statvfs::statvfs(&self.path).map_err(std::io::Error::from)?;
        Ok(stat.blocks_available() as u64 * stat.fragment_size() as u64)
    }

    /// Bytes of write batches taken since the store opened.
    pub fn written_bytes(&self) -> u64 {
        self.written_bytes.load(Ordering::Relaxed)
    }

    pub fn sync_count(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// The table's applied index as committed.
    pub(crate) fn applied_idx(&self) -> Result<u64, StorageError> {
        Ok(self.get_meta(KEY_APPLIED_IDX)?.unwrap_or(0))
    }

    /// The table's applied index as of `snapshot`: a reader that takes the table from the same
    /// snapshot (`kv_pages`, `table_digest`) gets the table at exactly that index, because an
    /// entry's writes and the index it moves to are one batch.
    pub(crate) fn applied_idx_in(&self, snapshot: &Snapshot<'_>) -> Result<u64, StorageError> {
        match snapshot.get_cf(self.cf(CF_META), KEY_APPLIED_IDX)? {
            Some(bytes) => Ok(serde_json::from_slice(&bytes)?),
            None => Ok(0),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocksdb_writes_no_line_of_its_own_log_per_fsync() {
        // RocksDB's LOG of a store opened and closed, with `syncs` synced writes in between.
        let log_bytes = |syncs: u64| {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path(), true).unwrap();
            let syncs_before = store.sync_count();
            for i in 0..syncs {
                let mut batch = WriteBatch::default();
                batch.put_cf(store.cf(CF_LOG), index_key(i), "entry");
                store.write(batch).unwrap();
                store.sync().unwrap();
            }
            assert_eq!(store.sync_count() - syncs_before, syncs);
            drop(store);
            std::fs::metadata(dir.path().join("LOG")).unwrap().len()
        };
        let idle = log_bytes(0);
        let busy = log_bytes(1000);
        // Debian's build at its default (debug) level wrote a line per fsync: about 75 KB more here.
        assert!(
            busy < idle + 2000,
            "RocksDB's LOG: {idle} bytes with no fsync, {busy} after 1000"
        );
    }

    #[test]
    fn a_store_of_the_previous_format_is_refused_and_a_new_one_accepted_again() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path(), false).unwrap());
        drop(Store::open(dir.path(), false).unwrap());
        // What version 1 left: a value without its index, and no format record.
        let store = Store::open(dir.path(), false).unwrap();
        let mut batch = WriteBatch::default();
        batch.delete_cf(store.cf(CF_META), KEY_FORMAT);
        batch.put_cf(store.cf(CF_KV), "k", "v");
        store.write(batch).unwrap();
        drop(store);
        let err = Store::open(dir.path(), false).err().expect("refused");
        assert!(
            matches!(err, StorageError::OldFormat { found: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("empty data directory"), "{err}");
    }
}
