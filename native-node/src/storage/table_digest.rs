//! The KV table's digest (`omnikv_core::digest`), kept only while someone watches the node.
//!
//! Keeping the digest costs a read of every written key's old value: under a write load, a
//! sixth of a follower's event-loop time. Nobody sees the digest unless an `/events` subscriber
//! is there, so the table keeps it only then:
//!
//! - **Off**: writes read nothing and no digest is stored. Leaving `Known` deletes the stored
//!   digest before any write goes uncounted (RocksDB recovers a prefix of its WAL, so a stored
//!   digest always belongs to the applied index stored with it).
//! - **Folding**: a watcher arrived. A thread folds a RocksDB snapshot of the table taken before
//!   the next write; the writes from then on are counted into `since`. The digest is an XOR of
//!   one hash per pair, so the fold and `since` combine in either order.
//! - **Known**: the digest of the table at its applied index, stored with every applied batch.

use std::sync::mpsc;
use std::sync::Arc;

use omnikv_core::digest::TableDigest;
use rocksdb::IteratorMode;

use super::db::{StorageError, Store, CF_KV};
use super::versioned;

pub(super) enum DigestState {
    Off,
    Folding {
        since: TableDigest,
        fold: mpsc::Receiver<Result<TableDigest, StorageError>>,
    },
    Known(TableDigest),
}

impl DigestState {
    /// The digest to start a batch from, if writes must be counted.
    pub(super) fn counting(&self) -> Option<TableDigest> {
        match self {
            DigestState::Off => None,
            DigestState::Folding { since, .. } => Some(*since),
            DigestState::Known(d) => Some(*d),
        }
    }

    /// A batch counted its writes up to `digest`; true if the result is the table's digest.
    pub(super) fn counted(&mut self, digest: TableDigest) -> bool {
        match self {
            DigestState::Off => false,
            DigestState::Folding { since, .. } => {
                *since = digest;
                false
            }
            DigestState::Known(d) => {
                *d = digest;
                true
            }
        }
    }

    pub(super) fn known(&self) -> Option<TableDigest> {
        match self {
            DigestState::Known(d) => Some(*d),
            _ => None,
        }
    }

    /// Moves towards keeping the digest (`watched`) or dropping it. Returns true when the
    /// stored digest must be deleted (the table stops counting).
    pub(super) fn watch(&mut self, store: &Arc<Store>, watched: bool) -> bool {
        match (&*self, watched) {
            (DigestState::Off, false) | (DigestState::Known(_), true) => false,
            (DigestState::Off, true) => {
                match start_fold(store) {
                    Ok(fold) => {
                        *self = DigestState::Folding {
                            since: TableDigest::default(),
                            fold,
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "kv digest: cannot start a fold"),
                }
                false
            }
            (DigestState::Folding { since, fold }, true) => {
                match fold.try_recv() {
                    Ok(Ok(folded)) => *self = DigestState::Known(TableDigest(folded.0 ^ since.0)),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "kv digest: the fold failed");
                        *self = DigestState::Off;
                    }
                    Err(mpsc::TryRecvError::Empty) => {}
                    Err(mpsc::TryRecvError::Disconnected) => *self = DigestState::Off,
                }
                false
            }
            (DigestState::Folding { .. }, false) => {
                *self = DigestState::Off;
                false
            }
            (DigestState::Known(_), false) => {
                *self = DigestState::Off;
                true
            }
        }
    }
}

/// Starts a thread that folds the table as it stands now: this returns once the thread holds
/// its RocksDB snapshot, so no later write is in it.
fn start_fold(
    store: &Arc<Store>,
) -> std::io::Result<mpsc::Receiver<Result<TableDigest, StorageError>>> {
    let (taken_tx, taken_rx) = mpsc::sync_channel(1);
    let (result_tx, result_rx) = mpsc::sync_channel(1);
    let store = store.clone();
    std::thread::Builder::new()
        .name("kv-digest".into())
        .spawn(move || {
            let snapshot = store.db().snapshot();
            let _ = taken_tx.send(());
            let mut digest = TableDigest::default();
            let folded = (|| {
                for item in snapshot.iterator_cf(store.cf(CF_KV), IteratorMode::Start) {
                    let (k, v) = item?;
                    let value = versioned::decode(&k, &v)?;
                    digest.write(&String::from_utf8_lossy(&k), None, Some(&value.value));
                }
                Ok(digest)
            })();
            let _ = result_tx.send(folded);
        })?;
    // The thread sends once it holds the snapshot, or drops the sender if it died first.
    let _ = taken_rx.recv();
    Ok(result_rx)
}
