//! The KV table as OmniPaxos' snapshot.
//!
//! A compaction used to fold its entries into a second copy of the table (`snapshot_store`):
//! every put was written to the log, to the table and, at the next compaction, to that copy,
//! which the compaction first read back. The table already holds the fold of the log up to its
//! applied index, and a compaction never passes that index, so once a node compacts, its table
//! serves as the snapshot and the copy is dropped:
//!
//! - a compaction writes only the log's trim and a marker ([`super::snapshot_store`]);
//! - anything that reads the snapshot (a follower's catch-up, a dump) reads the table, which is
//!   *ahead* of the compacted prefix OmniPaxos knows it as: it is lent with `len` the compacted
//!   index and `state_len` its applied index, and `KVSnapshot::merge` and the apply loop skip
//!   the entries it already holds.
//!
//! Crash safety rests on RocksDB recovering a prefix of its one write-ahead log: a trim that
//! survives a crash was written after the table's writes up to the compacted index, so they
//! survive too (ARCHITECTURE.md, "The KV table is the snapshot").

use omnikv_core::KVSnapshot;
use rocksdb::IteratorMode;

use super::db::{StorageError, Store, CF_KV};
use super::session_journal::stored_sessions;
use super::versioned;

/// The committed table as the snapshot of the first `len` entries of the log (which it holds,
/// and more: its `state_len` is its applied index).
pub(crate) fn lend(store: &Store, len: u64, applied_idx: u64) -> Result<KVSnapshot, StorageError> {
    let mut snapshot = KVSnapshot {
        sessions: stored_sessions(store)?,
        len,
        state_len: applied_idx,
        ..KVSnapshot::default()
    };
    for item in store.db().iterator_cf(store.cf(CF_KV), IteratorMode::Start) {
        let (k, v) = item?;
        let (key, value) = versioned::decode_entry(&k, &v)?;
        snapshot.snapshotted.insert(key, value);
    }
    Ok(snapshot)
}
