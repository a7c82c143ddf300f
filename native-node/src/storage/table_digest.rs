//! The KV table's digest (`omnikv_core::digest`), folded from a RocksDB snapshot beside the
//! event loop while someone watches the node.
//!
//! Keeping the digest write by write costs a read of every written key's old value: under a
//! write load, a sixth of a follower's event-loop time, paid whether anyone looks or not. A fold
//! instead reads the table from a RocksDB snapshot on a thread of its own, and reads the applied
//! index from the same snapshot: a run of entries and its applied index are one write batch, so
//! the digest is exactly that of the table at that index. Folds run only while an `/events`
//! subscriber watches, one at a time, and only when the applied index moved.
//!
//! A fold reads the whole table, memtables included. At 100k keys under 5,000 writes a second
//! a fold took roughly 250 ms (estimated from a profile), so folds ran about 2.5 s apart and
//! took 10-14% of three nodes' CPU (`perf record`, one subscriber per node), most of a watched
//! cluster's loss of throughput. Under writes the replicas fold at different
//! indices, so their digests differ whatever the rate, and a digest that trails the table by a
//! few seconds tells as much: a table that keeps changing is folded every
//! [`FOLD_GAP_UNDER_WRITES`]. What a person watches for is the replicas agreeing once writes
//! stop, so a table unchanged for [`SETTLED_AFTER`] is folded at once.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use omnikv_core::digest::TableDigest;
use rocksdb::ReadOptions;

use super::db::{StorageError, Store, CF_KV};
use super::versioned;

/// Shortest time from the end of one fold to the start of the next while the table changes.
const FOLD_GAP_UNDER_WRITES: Duration = Duration::from_secs(10);
/// A fold that took `d` is followed by a gap of at least `FOLD_GAP_PER_FOLD * d`.
const FOLD_GAP_PER_FOLD: u32 = 9;
/// A table whose applied index stayed put this long is folded without waiting for the gap.
const SETTLED_AFTER: Duration = Duration::from_millis(300);
/// What a fold's scan reads ahead of where it is, from table files.
const FOLD_READAHEAD_BYTES: usize = 2 << 20;

/// A digest and the applied index of the table it is the digest of.
pub type DigestAt = (TableDigest, u64);

struct Running {
    started: Instant,
    result: mpsc::Receiver<Result<DigestAt, StorageError>>,
}

#[derive(Default)]
pub(super) struct DigestFolds {
    last: Option<DigestAt>,
    running: Option<Running>,
    /// When the last fold ended, and how long it took: the next one waits a gap in proportion
    /// (folds take at most a tenth of the time), and at least [`FOLD_GAP_UNDER_WRITES`] while
    /// the table changes.
    last_fold: Option<(Instant, Duration)>,
    /// The applied index of the last refresh, and since when it has been that.
    seen: Option<(u64, Instant)>,
}

impl DigestFolds {
    pub(super) fn last(&self) -> Option<DigestAt> {
        self.last
    }

    /// Collects a finished fold and starts the next one if it is due (called once a turn).
    pub(super) fn refresh(&mut self, store: &Arc<Store>, applied_idx: u64, watched: bool) {
        let now = Instant::now();
        if let Some(running) = &self.running {
            let finished = match running.result.try_recv() {
                Ok(Ok(at)) => Some(Some(at)),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "kv digest: the fold failed");
                    Some(None)
                }
                Err(mpsc::TryRecvError::Empty) => None,
                Err(mpsc::TryRecvError::Disconnected) => Some(None),
            };
            let Some(folded) = finished else { return };
            self.last_fold = Some((now, now - running.started));
            self.running = None;
            if folded.is_some() {
                self.last = folded;
            }
        }
        let since = match self.seen {
            Some((idx, since)) if idx == applied_idx => since,
            _ => {
                self.seen = Some((applied_idx, now));
                now
            }
        };
        let settled = now - since >= SETTLED_AFTER;
        let due = self.last_fold.is_none_or(|(ended, took)| {
            let mut gap = took * FOLD_GAP_PER_FOLD;
            if !settled {
                gap = gap.max(FOLD_GAP_UNDER_WRITES);
            }
            now >= ended + gap
        });
        let moved = self.last.is_none_or(|(_, idx)| idx != applied_idx);
        if watched && due && moved {
            match start_fold(store) {
                Ok(result) => {
                    self.running = Some(Running {
                        started: now,
                        result,
                    })
                }
                Err(e) => tracing::warn!(error = %e, "kv digest: cannot start a fold"),
            }
        }
    }
}

/// Starts a thread that folds the table from a RocksDB snapshot.
fn start_fold(
    store: &Arc<Store>,
) -> std::io::Result<mpsc::Receiver<Result<DigestAt, StorageError>>> {
    let (result_tx, result_rx) = mpsc::sync_channel(1);
    let store = store.clone();
    std::thread::Builder::new()
        .name("kv-digest".into())
        .spawn(move || {
            let _ = result_tx.send(fold(&store));
        })?;
    Ok(result_rx)
}

/// The digest of the table in one snapshot, and the applied index in the same snapshot.
fn fold(store: &Store) -> Result<DigestAt, StorageError> {
    let snapshot = store.db().snapshot();
    let applied_idx = store.applied_idx_in(&snapshot)?;
    let mut digest = TableDigest::default();
    // A raw iterator lends each key and value where RocksDB holds them (the ordinary one copies
    // both into new allocations, most of a fold's time beside RocksDB's own); a scan of the
    // whole table must not evict the blocks the event loop's reads use, and reads ahead.
    let mut read = ReadOptions::default();
    read.fill_cache(false);
    read.set_readahead_size(FOLD_READAHEAD_BYTES);
    let mut items = snapshot.raw_iterator_cf_opt(store.cf(CF_KV), read);
    items.seek_to_first();
    while let Some((k, v)) = items.item() {
        // The bytes as stored: every key and value was checked as UTF-8 when it was written, and
        // the digest of a string is that of its bytes.
        let (_, value) = versioned::split(k, v)?;
        digest.toggle(k, value);
        items.next();
    }
    items.status()?;
    Ok((digest, applied_idx))
}
