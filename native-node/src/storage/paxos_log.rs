//! OmniPaxos' `Storage` over RocksDB: the replicated log (column family `log`, keyed by absolute
//! index) and the Paxos state (promise, accepted round, decided and compacted index, stop-sign;
//! column family `meta`; the snapshot is in [`super::snapshot_store`]).
//!
//! Writes are not fsynced here: see [`Store::sync`] for the one-fsync-per-turn discipline that
//! makes them durable before OmniPaxos' replies leave the node.
//!
//! The snapshot is never held here. Once the node has compacted its own log, its KV table serves
//! as the snapshot ([`super::table_snapshot`]): while the node runs that compaction
//! ([`CompactionLease::run`]), `get_snapshot` lends an empty snapshot that already holds the
//! entries being folded, and the `SetSnapshot` that follows writes a marker, not the table.
//! A snapshot from the leader is stored whole on disk ([`super::snapshot_store`]) until the
//! next compaction; a compaction the table has not caught up with (only in tests of this
//! module, which have no table) is lent just the part of a stored snapshot that its entries
//! touch.
//!
//! Reads of the newest entries are served decoded from [`RecentEntries`], which every write
//! batch's changes to the log reach once the batch is written.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use omnikv_core::{limits::EVENT_SNAPSHOT_KEYS_MAX, KVCommand, KVSnapshot};
use omnipaxos::{
    ballot_leader_election::Ballot,
    storage::{StopSign, Storage, StorageOp, StorageResult},
};
use rocksdb::{Direction, IteratorMode, WriteBatch};

use super::db::{decode_index_key, index_key, StorageError, Store, CF_LOG, CF_META};
use super::kv_table::live_key_count;
use super::recent_entries::{RecentChange, RecentEntries};
use super::snapshot_store::{self, Loan};
use super::table_snapshot;

const KEY_PROMISE: &str = "promise";
const KEY_ACCEPTED_ROUND: &str = "accepted_round";
const KEY_DECIDED_IDX: &str = "decided_idx";
const KEY_COMPACTED_IDX: &str = "compacted_idx";
const KEY_TRIMMED_IDX: &str = "trimmed_idx";
const KEY_STOPSIGN: &str = "stopsign";

/// The bounds of the stored log, cached so that reads need no scan.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    /// Entries below this index were removed by a trim.
    trimmed_idx: u64,
    /// One past the last stored entry (absolute).
    end_idx: u64,
}

pub struct PaxosLog {
    store: Arc<Store>,
    bounds: Bounds,
    /// Live keys of the stored snapshot; `None` while no snapshot is stored.
    snapshot_keys: Option<u64>,
    /// The KV table serves as the snapshot.
    table_serves: bool,
    /// A compaction may make the table serve as the snapshot (see `keep_snapshot_copy`).
    table_may_serve: bool,
    lease: CompactionLease,
    /// What the running compaction was lent.
    lent: RefCell<Option<Lent>>,
    /// The last range read under the lease: the entries OmniPaxos is folding, whose keys are
    /// the part of the snapshot to lend.
    leased_read: RefCell<Option<LeasedRead>>,
    /// The newest entries, decoded (see `recent_entries`).
    recent: RecentEntries,
}

/// The entries read under the lease, `from` up to `to`, and the keys they read or write
/// (only when the table has not applied them: see [`Lent`]).
struct LeasedRead {
    from: u64,
    to: u64,
    keys: Option<Vec<String>>,
}

/// What a compaction was lent as the snapshot its entries are folded into.
enum Lent {
    /// Nothing to fold into: the table has applied the entries, and serves as the snapshot.
    Table,
    /// The part of the stored snapshot the entries touch.
    Keys(Loan),
}

/// Held by the node: while [`CompactionLease::run`] runs OmniPaxos' compaction, the log lends
/// it only the part of the snapshot its entries touch (see the module comment). Through it the node also
/// learns what the last stored snapshot holds, without reading (and copying) it back.
#[derive(Clone, Default)]
pub struct CompactionLease(Arc<LeaseState>);

#[derive(Default)]
struct LeaseState {
    active: AtomicBool,
    stored: Mutex<Option<SnapshotSummary>>,
}

/// A stored snapshot in brief, for the event stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotSummary {
    pub key_count: u64,
    /// The first keys in key order, at most [`EVENT_SNAPSHOT_KEYS_MAX`]; none when the table
    /// serves, which says them itself.
    pub keys: Vec<String>,
    /// The KV table serves as the snapshot: this summary is of the table when it was taken,
    /// and the table itself says what the snapshot holds now (its first keys are read from it
    /// only when someone asks: every compaction would read them otherwise).
    pub table_serves: bool,
}

impl SnapshotSummary {
    pub fn of(snapshot: &KVSnapshot) -> SnapshotSummary {
        let summarise = |s: &KVSnapshot| SnapshotSummary {
            table_serves: false,
            key_count: s.snapshotted.len() as u64,
            keys: s
                .snapshotted
                .keys()
                .take(EVENT_SNAPSHOT_KEYS_MAX)
                .cloned()
                .collect(),
        };
        if snapshot.unresolved.is_empty() {
            summarise(snapshot)
        } else {
            summarise(&snapshot.clone().resolved())
        }
    }

    /// The summary of the snapshot stored in `store` (or of the table that serves as one),
    /// which holds `key_count` live keys.
    fn stored(
        store: &Store,
        key_count: u64,
        table_serves: bool,
    ) -> Result<SnapshotSummary, StorageError> {
        let keys = if table_serves {
            Vec::new()
        } else {
            snapshot_store::first_keys(store, EVENT_SNAPSHOT_KEYS_MAX)?
        };
        Ok(SnapshotSummary {
            key_count,
            keys,
            table_serves,
        })
    }
}

impl CompactionLease {
    /// Runs `compaction` with the snapshot on loan; [`CompactionLease::take_stored`] then tells
    /// what it stored.
    pub fn run<R>(&self, compaction: impl FnOnce() -> R) -> R {
        self.take_stored();
        self.0.active.store(true, Ordering::Release);
        let result = compaction();
        self.0.active.store(false, Ordering::Release);
        result
    }

    /// The snapshot stored since the last call (or [`CompactionLease::run`]), if any.
    pub fn take_stored(&self) -> Option<SnapshotSummary> {
        self.0.stored.lock().expect("not poisoned").take()
    }

    fn active(&self) -> bool {
        self.0.active.load(Ordering::Acquire)
    }

    fn stored(&self, summary: SnapshotSummary) {
        *self.0.stored.lock().expect("not poisoned") = Some(summary);
    }
}

/// The state a batch of operations will leave once written.
struct Staged {
    bounds: Bounds,
    /// `Some` when the batch replaces the snapshot: the live keys it will hold, if any.
    snapshot_keys: Option<Option<u64>>,
    /// `Some` when the batch replaces the snapshot: whether the table will serve as it.
    table_serves: Option<bool>,
    /// What the batch does to the log, for the recent entries once it is written.
    recent: Vec<RecentChange>,
}

impl Staged {
    /// Adds `entry` at the end of the log.
    fn append(
        &mut self,
        batch: &mut WriteBatch,
        log: &rocksdb::ColumnFamily,
        entry: KVCommand,
    ) -> Result<(), StorageError> {
        let idx = self.bounds.end_idx;
        let encoded = serde_json::to_vec(&entry)?;
        let bytes = encoded.len();
        batch.put_cf(log, index_key(idx), encoded);
        self.bounds.end_idx += 1;
        self.recent.push(RecentChange::Append { idx, entry, bytes });
        Ok(())
    }
}

impl PaxosLog {
    pub fn open(store: Arc<Store>) -> Result<PaxosLog, StorageError> {
        let trimmed_idx: u64 = store.get_meta(KEY_TRIMMED_IDX)?.unwrap_or(0);
        let last = store
            .db()
            .iterator_cf(store.cf(CF_LOG), IteratorMode::End)
            .next()
            .transpose()?;
        let end_idx = match last {
            Some((key, _)) => decode_index_key(&key)? + 1,
            None => trimmed_idx,
        }
        .max(trimmed_idx);
        let table_serves = snapshot_store::table_serves(&store)?;
        let snapshot_keys = if table_serves {
            Some(live_key_count(&store)?)
        } else {
            snapshot_store::key_count(&store)?
        };
        // Reported as if just stored, so the node knows what it recovered without reading it.
        let lease = CompactionLease::default();
        if let Some(n) = snapshot_keys {
            lease.stored(SnapshotSummary::stored(&store, n, table_serves)?);
        }
        Ok(PaxosLog {
            store,
            bounds: Bounds {
                trimmed_idx,
                end_idx,
            },
            snapshot_keys,
            table_serves,
            table_may_serve: true,
            lease,
            lent: RefCell::new(None),
            leased_read: RefCell::new(None),
            recent: RecentEntries::new(end_idx),
        })
    }

    /// Keeps the snapshot as a copy of the table, folded by each compaction, as OmniPaxos
    /// expects of its storage (`omnikv node --unsafe-snapshot-copy`: only for a test that
    /// reproduces an OmniPaxos bug the table hides).
    pub fn keep_snapshot_copy(&mut self) {
        self.table_may_serve = false;
    }

    /// The handle the node uses to run its compactions.
    pub fn compaction_lease(&self) -> CompactionLease {
        self.lease.clone()
    }

    /// Adds one operation to `batch`, updating `staged` as the batch will once written.
    fn stage(
        &self,
        batch: &mut WriteBatch,
        staged: &mut Staged,
        op: StorageOp<KVCommand>,
    ) -> Result<(), StorageError> {
        let log = self.store.cf(CF_LOG);
        let meta = self.store.cf(CF_META);
        let put_meta = |batch: &mut WriteBatch, key: &str, value: &dyn erased::Json| {
            value.to_json().map(|bytes| batch.put_cf(meta, key, bytes))
        };
        match op {
            StorageOp::AppendEntry(entry) => staged.append(batch, log, entry)?,
            StorageOp::AppendEntries(entries) => {
                for entry in entries {
                    staged.append(batch, log, entry)?;
                }
            }
            StorageOp::AppendOnPrefix(from_idx, entries) => {
                let from_idx = from_idx as u64;
                if from_idx < staged.bounds.end_idx {
                    let end = index_key(staged.bounds.end_idx);
                    batch.delete_range_cf(log, index_key(from_idx), end);
                    staged.recent.push(RecentChange::TruncateFrom(from_idx));
                }
                staged.bounds.end_idx = from_idx.max(staged.bounds.trimmed_idx);
                for entry in entries {
                    staged.append(batch, log, entry)?;
                }
            }
            StorageOp::SetPromise(b) => put_meta(batch, KEY_PROMISE, &b)?,
            StorageOp::SetDecidedIndex(idx) => put_meta(batch, KEY_DECIDED_IDX, &(idx as u64))?,
            StorageOp::SetAcceptedRound(b) => put_meta(batch, KEY_ACCEPTED_ROUND, &b)?,
            StorageOp::SetCompactedIdx(idx) => put_meta(batch, KEY_COMPACTED_IDX, &(idx as u64))?,
            StorageOp::Trim(idx) => {
                let bounds = &mut staged.bounds;
                let idx = idx as u64;
                if idx > bounds.trimmed_idx {
                    let to = idx.min(bounds.end_idx);
                    if to > bounds.trimmed_idx {
                        batch.delete_range_cf(log, index_key(bounds.trimmed_idx), index_key(to));
                    }
                    bounds.trimmed_idx = idx;
                    bounds.end_idx = bounds.end_idx.max(idx);
                    put_meta(batch, KEY_TRIMMED_IDX, &idx)?;
                    staged.recent.push(RecentChange::TrimTo(idx));
                }
            }
            StorageOp::SetStopsign(ss) => put_meta(batch, KEY_STOPSIGN, &ss)?,
            StorageOp::SetSnapshot(s) => self.stage_snapshot(batch, staged, s)?,
        }
        Ok(())
    }

    /// Stages a new snapshot: a compaction's result, or a snapshot from the leader.
    fn stage_snapshot(
        &self,
        batch: &mut WriteBatch,
        staged: &mut Staged,
        snapshot: Option<KVSnapshot>,
    ) -> Result<(), StorageError> {
        let lent = self.lent.borrow_mut().take();
        let again = staged.snapshot_keys.is_some();
        if again && lent.is_some() {
            return Err(StorageError::Corrupt(
                "a compaction's snapshot follows another in one batch".into(),
            ));
        }
        let (keys, table_serves) = match (lent, snapshot) {
            // A compaction of entries the table holds: the table serves as its result.
            (Some(Lent::Table), Some(_)) if self.lease.active() => {
                // Once the table serves, a compaction writes nothing here: a range deletion per
                // compaction would pile up in the snapshot's column family for nothing.
                if !self.table_serves {
                    snapshot_store::stage_table(&self.store, batch);
                }
                (Some(live_key_count(&self.store)?), true)
            }
            // The result of a compaction that was lent a part of the stored snapshot.
            (Some(Lent::Keys(lent)), Some(new)) if self.lease.active() => {
                let n = snapshot_store::stage_keys(&self.store, batch, &new, &lent)?;
                (Some(n), false)
            }
            // Anything else (a snapshot from the leader, say) replaces it whole.
            (_, s) => {
                let present = s.is_some();
                let n = snapshot_store::stage_replacement(&self.store, batch, s, again)?;
                (present.then_some(n), false)
            }
        };
        staged.snapshot_keys = Some(keys);
        staged.table_serves = Some(table_serves);
        Ok(())
    }

    fn write_ops(&mut self, ops: Vec<StorageOp<KVCommand>>) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        let mut staged = Staged {
            bounds: self.bounds,
            snapshot_keys: None,
            table_serves: None,
            recent: Vec::new(),
        };
        // A decided index alone need not be fsynced before anything is sent (see
        // `Store::write_deferred`); promises, accepted rounds and entries must.
        let deferrable = ops
            .iter()
            .all(|op| matches!(op, StorageOp::SetDecidedIndex(_)));
        for op in ops {
            self.stage(&mut batch, &mut staged, op)?;
        }
        if deferrable {
            self.store.write_deferred(batch)?;
        } else {
            self.store.write(batch)?;
        }
        self.bounds = staged.bounds;
        for change in staged.recent {
            self.recent.apply(change);
        }
        if let Some(table_serves) = staged.table_serves {
            self.table_serves = table_serves;
        }
        if let Some(keys) = staged.snapshot_keys {
            self.snapshot_keys = keys;
            if let Some(n) = keys {
                let summary = SnapshotSummary::stored(&self.store, n, self.table_serves)?;
                self.lease.stored(summary);
            }
        }
        Ok(())
    }

    fn read_range(&self, from: u64, to: u64) -> Result<Vec<KVCommand>, StorageError> {
        if from >= to || from < self.bounds.trimmed_idx || to > self.bounds.end_idx {
            return Ok(Vec::new());
        }
        if let Some(entries) = self.recent.get(from, to) {
            return Ok(entries);
        }
        let start = index_key(from);
        let iter = self.store.db().iterator_cf(
            self.store.cf(CF_LOG),
            IteratorMode::From(&start, Direction::Forward),
        );
        let mut out = Vec::with_capacity((to - from) as usize);
        for item in iter {
            let (key, value) = item?;
            let idx = decode_index_key(&key)?;
            if idx >= to {
                break;
            }
            if idx != from + out.len() as u64 {
                return Err(StorageError::Corrupt(format!(
                    "log gap: expected index {}, found {idx}",
                    from + out.len() as u64
                )));
            }
            out.push(serde_json::from_slice(&value)?);
        }
        if out.len() as u64 != to - from {
            return Err(StorageError::Corrupt(format!(
                "log ends at {} but bounds say {to}",
                from + out.len() as u64
            )));
        }
        Ok(out)
    }
}

/// Object-safe JSON encoding for the `put_meta` helper above.
mod erased {
    pub trait Json {
        fn to_json(&self) -> Result<Vec<u8>, serde_json::Error>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
            serde_json::to_vec(self)
        }
    }
}

/// Keys read or written by `entries`.
fn touched_keys<'a>(entries: impl IntoIterator<Item = &'a KVCommand>) -> Vec<String> {
    entries
        .into_iter()
        .flat_map(snapshot_store::touched_keys)
        .map(str::to_owned)
        .collect()
}

fn boxed(e: StorageError) -> Box<dyn std::error::Error> {
    Box::new(e)
}

impl Storage<KVCommand> for PaxosLog {
    fn write_atomically(&mut self, ops: Vec<StorageOp<KVCommand>>) -> StorageResult<()> {
        self.write_ops(ops).map_err(boxed)
    }

    fn append_entry(&mut self, entry: KVCommand) -> StorageResult<()> {
        self.write_ops(vec![StorageOp::AppendEntry(entry)])
            .map_err(boxed)
    }

    fn append_entries(&mut self, entries: Vec<KVCommand>) -> StorageResult<()> {
        self.write_ops(vec![StorageOp::AppendEntries(entries)])
            .map_err(boxed)
    }

    fn append_on_prefix(&mut self, from_idx: usize, entries: Vec<KVCommand>) -> StorageResult<()> {
        self.write_ops(vec![StorageOp::AppendOnPrefix(from_idx, entries)])
            .map_err(boxed)
    }

    fn set_promise(&mut self, n_prom: Ballot) -> StorageResult<()> {
        self.write_ops(vec![StorageOp::SetPromise(n_prom)])
            .map_err(boxed)
    }

    fn set_decided_idx(&mut self, ld: usize) -> StorageResult<()> {
        self.write_ops(vec![StorageOp::SetDecidedIndex(ld)])
            .map_err(boxed)
    }

    fn get_decided_idx(&self) -> StorageResult<usize> {
        Ok(self
            .store
            .get_meta::<u64>(KEY_DECIDED_IDX)
            .map_err(boxed)?
            .unwrap_or(0) as usize)
    }

    fn set_accepted_round(&mut self, na: Ballot) -> StorageResult<()> {
        self.write_ops(vec![StorageOp::SetAcceptedRound(na)])
            .map_err(boxed)
    }

    fn get_accepted_round(&self) -> StorageResult<Option<Ballot>> {
        self.store.get_meta(KEY_ACCEPTED_ROUND).map_err(boxed)
    }

    fn get_entries(&self, from: usize, to: usize) -> StorageResult<Vec<KVCommand>> {
        let (from, to) = (from as u64, to as u64);
        let entries = self.read_range(from, to).map_err(boxed)?;
        if self.lease.active() {
            let table_holds_them =
                self.table_may_serve && self.store.applied_idx().map_err(boxed)? >= to;
            let keys = (!table_holds_them).then(|| touched_keys(&entries));
            *self.leased_read.borrow_mut() = Some(LeasedRead { from, to, keys });
        }
        Ok(entries)
    }

    fn get_log_len(&self) -> StorageResult<usize> {
        Ok((self.bounds.end_idx - self.bounds.trimmed_idx) as usize)
    }

    fn get_suffix(&self, from: usize) -> StorageResult<Vec<KVCommand>> {
        let from = (from as u64).max(self.bounds.trimmed_idx);
        self.read_range(from, self.bounds.end_idx).map_err(boxed)
    }

    fn get_promise(&self) -> StorageResult<Option<Ballot>> {
        self.store.get_meta(KEY_PROMISE).map_err(boxed)
    }

    fn set_stopsign(&mut self, s: Option<StopSign>) -> StorageResult<()> {
        self.write_ops(vec![StorageOp::SetStopsign(s)])
            .map_err(boxed)
    }

    fn get_stopsign(&self) -> StorageResult<Option<StopSign>> {
        Ok(self
            .store
            .get_meta::<Option<StopSign>>(KEY_STOPSIGN)
            .map_err(boxed)?
            .flatten())
    }

    fn trim(&mut self, idx: usize) -> StorageResult<()> {
        self.write_ops(vec![StorageOp::Trim(idx)]).map_err(boxed)
    }

    fn set_compacted_idx(&mut self, idx: usize) -> StorageResult<()> {
        self.write_ops(vec![StorageOp::SetCompactedIdx(idx)])
            .map_err(boxed)
    }

    fn get_compacted_idx(&self) -> StorageResult<usize> {
        Ok(self
            .store
            .get_meta::<u64>(KEY_COMPACTED_IDX)
            .map_err(boxed)?
            .unwrap_or(0) as usize)
    }

    fn set_snapshot(&mut self, snapshot: Option<KVSnapshot>) -> StorageResult<()> {
        self.write_ops(vec![StorageOp::SetSnapshot(snapshot)])
            .map_err(boxed)
    }

    fn get_snapshot(&self) -> StorageResult<Option<KVSnapshot>> {
        // A loan lasts one compaction: one that never stored its result left the disk as it was.
        self.lent.borrow_mut().take();
        let leased_read = self.leased_read.borrow_mut().take();
        let compacted_idx = self.get_compacted_idx()? as u64;
        // OmniPaxos folds the entries from the compacted index on into the snapshot.
        if let Some(read) = leased_read.filter(|r| self.lease.active() && r.from == compacted_idx) {
            match (read.keys, self.snapshot_keys) {
                (None, _) => {
                    *self.lent.borrow_mut() = Some(Lent::Table);
                    let holds_them = KVSnapshot {
                        len: read.from,
                        state_len: read.to,
                        ..KVSnapshot::default()
                    };
                    return Ok(Some(holds_them));
                }
                (Some(_), _) if self.table_serves => {
                    return Err(boxed(StorageError::Corrupt(format!(
                        "a compaction to {} past the table's applied index",
                        read.to
                    ))));
                }
                (Some(keys), Some(key_count)) => {
                    let (snapshot, loan) =
                        snapshot_store::load_keys(&self.store, keys, key_count).map_err(boxed)?;
                    *self.lent.borrow_mut() = Some(Lent::Keys(loan));
                    return Ok(Some(snapshot));
                }
                (Some(_), None) => return Ok(None),
            }
        }
        if self.table_serves {
            let applied_idx = self.store.applied_idx().map_err(boxed)?;
            return table_snapshot::lend(&self.store, compacted_idx, applied_idx)
                .map(Some)
                .map_err(boxed);
        }
        if self.snapshot_keys.is_none() {
            return Ok(None);
        }
        snapshot_store::load(&self.store).map_err(boxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnikv_core::{scan::ScanRange, RequestId};

    fn cmd(seq: u64) -> KVCommand {
        KVCommand::Put {
            id: RequestId { client: 1, seq },
            key: format!("k{seq}"),
            value: "v".into(),
            forget_below: 0,
        }
    }

    #[test]
    fn survives_reopen_with_trim_and_prefix_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), true).unwrap();
            let mut log = PaxosLog::open(store.clone()).unwrap();
            log.append_entries((0..10).map(cmd).collect()).unwrap();
            log.append_on_prefix(8, vec![cmd(80)]).unwrap();
            log.write_atomically(vec![StorageOp::Trim(3), StorageOp::SetCompactedIdx(3)])
                .unwrap();
            log.set_decided_idx(7).unwrap();
            log.set_promise(Ballot {
                config_id: 1,
                n: 4,
                priority: 0,
                pid: 2,
            })
            .unwrap();
            store.sync().unwrap();
        }
        let store = Store::open(dir.path(), true).unwrap();
        let log = PaxosLog::open(store).unwrap();
        assert_eq!(log.get_log_len().unwrap(), 6);
        assert_eq!(log.get_entries(3, 5).unwrap(), vec![cmd(3), cmd(4)]);
        assert_eq!(
            log.get_entries(2, 5).unwrap(),
            vec![],
            "range reaching into the trimmed prefix"
        );
        assert_eq!(
            log.get_entries(7, 10).unwrap(),
            vec![],
            "range past the end"
        );
        assert_eq!(log.get_suffix(7).unwrap(), vec![cmd(7), cmd(80)]);
        assert_eq!(log.get_decided_idx().unwrap(), 7);
        assert_eq!(log.get_compacted_idx().unwrap(), 3);
        assert_eq!(log.get_promise().unwrap().unwrap().n, 4);
        assert_eq!(log.get_snapshot().unwrap(), None);
        assert_eq!(log.get_stopsign().unwrap(), None);
    }

    /// Reads served from the recent entries equal reads from RocksDB (a log opened on the same
    /// store holds none yet), whatever appends, prefix overwrites and trims came before.
    #[test]
    fn recent_entries_read_as_the_stored_log_does() {
        use rand::{rngs::StdRng, Rng, SeedableRng};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let mut log = PaxosLog::open(store.clone()).unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let mut next = 0;
        let mut fresh = |n: usize| -> Vec<KVCommand> {
            next += n as u64;
            (next - n as u64..next).map(cmd).collect()
        };
        for step in 0..1000 {
            let end = log.bounds.end_idx as usize;
            let trimmed = log.bounds.trimmed_idx as usize;
            match rng.gen_range(0..10) {
                0..=4 => log.append_entry(fresh(1).pop().unwrap()).unwrap(),
                5..=6 => log.append_entries(fresh(rng.gen_range(1..40))).unwrap(),
                7 => {
                    // OmniPaxos overwrites from within its log or at its end, never past it.
                    let from = rng.gen_range(trimmed.saturating_sub(3)..=end);
                    log.append_on_prefix(from, fresh(rng.gen_range(0..20)))
                        .unwrap()
                }
                8 => log.trim(rng.gen_range(trimmed..=end + 2)).unwrap(),
                _ => log
                    .write_atomically(vec![
                        StorageOp::AppendEntries(fresh(5)),
                        StorageOp::Trim(trimmed + rng.gen_range(0..8)),
                        StorageOp::AppendOnPrefix(end + rng.gen_range(0..4), fresh(3)),
                    ])
                    .unwrap(),
            }
            let from_disk = PaxosLog::open(store.clone()).unwrap();
            let (lo, hi) = (log.bounds.trimmed_idx, log.bounds.end_idx);
            assert_eq!(
                (lo, hi),
                (from_disk.bounds.trimmed_idx, from_disk.bounds.end_idx)
            );
            for _ in 0..4 {
                let from = rng.gen_range(lo.saturating_sub(2)..=hi + 1) as usize;
                let to = rng.gen_range(from..=hi as usize + 2);
                assert_eq!(
                    log.get_entries(from, to).unwrap(),
                    from_disk.get_entries(from, to).unwrap(),
                    "step {step}: entries {from}..{to} of {lo}..{hi}"
                );
            }
            assert_eq!(log.get_suffix(0).unwrap(), from_disk.get_suffix(0).unwrap());
        }
    }

    #[test]
    fn trim_beyond_the_end_empties_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let mut log = PaxosLog::open(store.clone()).unwrap();
        log.append_entries((0..3).map(cmd).collect()).unwrap();
        log.trim(5).unwrap();
        assert_eq!(log.get_log_len().unwrap(), 0);
        log.append_entry(cmd(5)).unwrap();
        assert_eq!(log.get_entries(5, 6).unwrap(), vec![cmd(5)]);
        drop(log);
        let log = PaxosLog::open(store).unwrap();
        assert_eq!(log.get_suffix(0).unwrap(), vec![cmd(5)]);
    }

    fn put(client: u64, seq: u64, key: &str, value: &str) -> KVCommand {
        KVCommand::Put {
            id: RequestId { client, seq },
            key: key.into(),
            value: value.into(),
            forget_below: 0,
        }
    }

    fn del(client: u64, seq: u64, key: &str) -> KVCommand {
        KVCommand::Delete {
            id: RequestId { client, seq },
            key: key.into(),
            forget_below: 0,
        }
    }

    fn open(nonce: u64) -> KVCommand {
        KVCommand::OpenSession {
            id: RequestId {
                client: nonce,
                seq: 0,
            },
        }
    }

    /// What OmniPaxos' `try_snapshot` does, in its order of calls.
    fn compact(log: &mut PaxosLog, to: usize) {
        let from = log.get_compacted_idx().unwrap();
        let entries = log.get_entries(from, to).unwrap();
        let delta = <KVSnapshot as omnipaxos::storage::Snapshot<KVCommand>>::create(&entries);
        let snapshot = match log.get_snapshot().unwrap() {
            Some(mut s) => {
                omnipaxos::storage::Snapshot::merge(&mut s, delta);
                s
            }
            None => delta,
        };
        log.write_atomically(vec![
            StorageOp::Trim(to),
            StorageOp::SetCompactedIdx(to),
            StorageOp::SetSnapshot(Some(snapshot)),
        ])
        .unwrap();
    }

    #[test]
    fn compactions_under_the_lease_store_what_copies_would() {
        // Sessions 0, 1 and 2 are the indices of the entries that open them.
        let commands = vec![
            open(11),
            open(12),
            open(13),
            put(0, 1, "a", "1"),
            put(1, 1, "b", "1"),
            del(0, 2, "a"),
            put(0, 2, "a", "reuse of a delete's id: refused"),
            put(2, 1, "c", "1"),
            put(1, 2, "a", "2"),
            del(2, 2, "b"),
            put(1, 3, "d", "1"),
            put(0, 3, "b", "3"),
            // Guards read keys the entry does not write: a lent part must hold them too.
            txn(2, 3, &[("c", "1")], "e", "guarded by c"),
            txn(2, 4, &[("d", "2")], "f", "refused: d is 1"),
            put(1, 4, "g", "1"),
        ];
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let mut results = Vec::new();
        for (leased, dir) in [false, true].into_iter().zip(&dirs) {
            let store = Store::open(dir.path(), false).unwrap();
            let mut log = PaxosLog::open(store.clone()).unwrap();
            let lease = log.compaction_lease();
            log.append_entries(commands.clone()).unwrap();
            // The first compaction stores a snapshot with unresolved writes; later ones fold.
            for to in [2, 3, 6, 9, 12, 14, 15] {
                if leased {
                    lease.run(|| compact(&mut log, to));
                } else {
                    compact(&mut log, to);
                }
                let in_memory = log.get_snapshot().unwrap();
                let reopened = PaxosLog::open(store.clone())
                    .unwrap()
                    .get_snapshot()
                    .unwrap();
                assert_eq!(
                    in_memory, reopened,
                    "stored snapshot after compacting to {to}"
                );
            }
            results.push(log.get_snapshot().unwrap().unwrap().resolved());
        }
        assert_eq!(results[0], results[1]);
        let table = &results[1].snapshotted;
        assert_eq!(table.get("a").map(|v| v.value.as_str()), Some("2"));
        assert_eq!(table.get("b").map(|v| v.value.as_str()), Some("3"));
        assert_eq!(
            table.get("e").map(|v| v.value.as_str()),
            Some("guarded by c")
        );
        assert_eq!(table.get("f"), None);
        assert_eq!(results[1].sessions.get(0).unwrap().applied.len(), 3);
        assert_eq!(results[1].len, 15);
    }

    fn txn(client: u64, seq: u64, guards: &[(&str, &str)], key: &str, value: &str) -> KVCommand {
        use omnikv_core::txn::{Guard, TxnOp};
        KVCommand::Txn {
            id: RequestId { client, seq },
            guards: guards
                .iter()
                .map(|(k, v)| Guard::Value {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
            ops: vec![TxnOp::Put {
                key: key.into(),
                value: value.into(),
            }],
            forget_below: 0,
        }
    }

    #[test]
    fn a_compaction_is_lent_only_the_keys_its_entries_touch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let mut log = PaxosLog::open(store).unwrap();
        let mut commands = vec![open(1)];
        commands.extend((1..=50).map(|i| put(0, i, &format!("k{i:02}"), "v")));
        commands.push(put(0, 51, "k07", "w"));
        commands.push(txn(0, 52, &[("k09", "v")], "new", "x"));
        log.append_entries(commands).unwrap();
        compact(&mut log, 51);
        let lease = log.compaction_lease();
        let lent = lease.run(|| {
            log.get_entries(51, 53).unwrap();
            log.get_snapshot().unwrap().unwrap()
        });
        let keys: Vec<_> = lent.snapshotted.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            vec!["k07", "k09"],
            "only what entries 51 and 52 touch"
        );
        assert_eq!(lent.len, 51);
        // The loan ended unused: a later reader gets the whole snapshot.
        assert_eq!(log.get_snapshot().unwrap().unwrap().snapshotted.len(), 50);
        lease.run(|| compact(&mut log, 53));
        let stored = log.get_snapshot().unwrap().unwrap();
        assert_eq!(stored.snapshotted.len(), 51);
        assert_eq!(stored.snapshotted["k07"].value, "w");
        assert_eq!(stored.snapshotted["new"].value, "x");
        assert_eq!(lease.take_stored().unwrap().key_count, 51);
    }

    #[test]
    fn a_snapshot_lent_to_a_failed_compaction_is_read_back_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let mut log = PaxosLog::open(store).unwrap();
        log.append_entries(vec![put(1, 1, "a", "1"), put(1, 2, "b", "2")])
            .unwrap();
        compact(&mut log, 2);
        let stored = log.get_snapshot().unwrap();
        assert!(stored.is_some());
        let lease = log.compaction_lease();
        let lent = lease.run(|| log.get_snapshot().unwrap());
        assert_eq!(lent, stored, "lent, not emptied");
        // The compaction stopped before storing anything; the next reader still sees it.
        assert_eq!(log.get_snapshot().unwrap(), stored);
        assert_eq!(log.get_snapshot().unwrap(), stored);
    }

    /// Once the table has applied what a compaction folds, the compaction stores a marker and
    /// the table is lent as the snapshot, ahead of its length; a snapshot from the leader is
    /// stored whole again.
    #[test]
    fn a_compaction_of_entries_the_table_holds_lends_the_table_from_then_on() {
        use crate::storage::KvTable;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let mut log = PaxosLog::open(store.clone()).unwrap();
        let mut table = KvTable::open(store.clone()).unwrap();
        let entries = vec![
            open(7),
            put(0, 1, "a", "1"),
            put(0, 2, "b", "2"),
            put(0, 3, "a", "3"),
            del(0, 4, "b"),
            put(0, 5, "c", "5"),
        ];
        let mut fold = KVSnapshot::default();
        let mut batch = table.batch();
        for (idx, cmd) in entries.iter().enumerate() {
            batch.apply(cmd, idx as u64);
            fold.push(cmd);
        }
        batch.commit(entries.len() as u64).unwrap();
        log.append_entries(entries.clone()).unwrap();
        let lease = log.compaction_lease();
        lease.run(|| compact(&mut log, 4));
        let summary = lease.take_stored().unwrap();
        assert_eq!(summary.key_count, 2);
        assert!(summary.keys.is_empty(), "the table says its keys itself");
        assert!(summary.table_serves);
        let scanned = table.scan(&ScanRange::default()).unwrap();
        let keys: Vec<&str> = scanned.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a", "c"]);
        assert!(snapshot_store::table_serves(&store).unwrap());
        assert!(
            snapshot_store::first_keys(&store, 10).unwrap().is_empty(),
            "no second copy of the table"
        );
        let lent = log.get_snapshot().unwrap().unwrap();
        assert_eq!((lent.len, lent.state_len), (4, 6));
        assert_eq!(lent.clone().resolved(), fold);
        // What OmniPaxos makes of it for a follower: the same table, each entry applied once.
        let mut caught_up = lent;
        omnipaxos::storage::Snapshot::merge(
            &mut caught_up,
            <KVSnapshot as omnipaxos::storage::Snapshot<KVCommand>>::create(&entries[4..]),
        );
        assert_eq!(caught_up, fold);
        // It survives a restart.
        drop(log);
        let mut log = PaxosLog::open(store.clone()).unwrap();
        let lease = log.compaction_lease();
        assert_eq!(lease.take_stored().unwrap().key_count, 2);
        assert_eq!(log.get_snapshot().unwrap().unwrap().resolved(), fold);
        // The next compaction writes nothing but the trim.
        lease.run(|| compact(&mut log, 6));
        assert_eq!(lease.take_stored().unwrap().key_count, 2);
        let lent = log.get_snapshot().unwrap().unwrap();
        assert_eq!((lent.len, lent.state_len), (6, 6));
        assert_eq!(lent.resolved(), fold);
        // A compaction the table has not applied is refused, not folded into nothing.
        log.append_entries(vec![put(0, 6, "d", "6")]).unwrap();
        let refused = lease.run(|| {
            let entries = log.get_entries(6, 7).unwrap();
            assert_eq!(entries.len(), 1);
            log.get_snapshot()
        });
        assert!(refused.is_err());
        // A snapshot from the leader replaces it whole.
        let from_leader = fold.clone();
        log.set_snapshot(Some(from_leader.clone())).unwrap();
        assert!(!snapshot_store::table_serves(&store).unwrap());
        assert_eq!(log.get_snapshot().unwrap(), Some(from_leader));
    }
}
