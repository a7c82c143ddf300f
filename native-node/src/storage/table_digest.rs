//! The KV table's digest (`omnikv_core::digest`), folded from a RocksDB snapshot beside the
//! event loop while someone watches the node.
//!
//! Keeping the digest write by write costs a read of every written key's old value: under a
//! write load, a sixth of a follower's event-loop time, paid whether anyone looks or not. A fold
//! instead reads the table from a RocksDB snapshot on a thread of its own, and reads the applied
//! index from the same snapshot: a run of entries and its applied index are one write batch, so
//! the digest is exactly that of the table at that index. Folds run only while an `/events`
//! subscriber watches, one at a time, only when the applied index moved, and at most a tenth of
//! the time (a fold of 100k keys takes tens of milliseconds): under load the digest trails the
//! table by about a second, and once writes stop every replica reports the digest of the same
//! table at the same index.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use omnikv_core::digest::TableDigest;
use rocksdb::IteratorMode;

use super::db::{StorageError, Store, CF_KV};
use super::versioned;

/// Shortest time from the end of one fold to the start of the next.
const FOLD_GAP_MIN: Duration = Duration::from_secs(1);
/// A fold that took `d` is followed by a gap of at least `FOLD_GAP_PER_FOLD * d`.
const FOLD_GAP_PER_FOLD: u32 = 9;

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
    next_at: Option<Instant>,
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
            let took = now - running.started;
            self.next_at = Some(now + FOLD_GAP_MIN.max(took * FOLD_GAP_PER_FOLD));
            self.running = None;
            if folded.is_some() {
                self.last = folded;
            }
        }
        let due = self.next_at.is_none_or(|at| now >= at);
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
    for item in snapshot.iterator_cf(store.cf(CF_KV), IteratorMode::Start) {
        let (k, v) = item?;
        // The bytes as stored: every key and value was checked as UTF-8 when it was written, and
        // the digest of a string is that of its bytes.
        let (_, value) = versioned::split(&k, &v)?;
        digest.toggle(&k, value);
    }
    Ok((digest, applied_idx))
}
