//! The client sessions on disk: each one whole under its id (column family `sessions`), and the
//! changes since then as one record per applied batch (column family `session_journal`).
//!
//! A batch of applied entries changes the session of every client it serves. Writing each of
//! those sessions whole was one more RocksDB insert per put, about a tenth of the put rate at
//! 64 clients (docs/performance-notes.md, section 36). So a batch writes one record holding
//! every session it changed, and once the records since the last fold hold
//! [`JOURNAL_CHANGES_MAX`] changes or [`JOURNAL_BYTES_MAX`] bytes, the batch that passes either
//! bound instead writes the sessions changed since whole and deletes the records (a fold).
//!
//! Either way the writes go into the batch's one atomic write with the table and its applied
//! index, so the sessions on disk are always those of the table's applied index: the whole
//! sessions with the records replayed over them in order. The bounds keep what a restart or a
//! lent snapshot replays small.

use std::collections::BTreeSet;

use omnikv_core::{
    session::{Session, Sessions},
    wire,
};
use rocksdb::{IteratorMode, WriteBatch};

use super::db::{
    decode_index_key, index_key, StorageError, Store, CF_SESSIONS, CF_SESSION_JOURNAL,
};

/// Session changes the records may hold before a batch folds them.
pub(crate) const JOURNAL_CHANGES_MAX: usize = 4096;
/// Bytes the records may hold before a batch folds them.
pub(crate) const JOURNAL_BYTES_MAX: usize = 4 << 20;

/// The records written since the last fold, as far as the next fold needs them.
#[derive(Debug, Default)]
pub(crate) struct SessionJournal {
    /// Key of the next record.
    next_seq: u64,
    /// Keys of the records since the last fold (every record in the family), which it deletes.
    records: Vec<u64>,
    /// Sessions changed since the last fold, which it writes whole (or deletes).
    changed: BTreeSet<u64>,
    /// Changes in the records (a session changed by two records counts twice).
    changes: usize,
    /// Bytes of the records.
    bytes: usize,
}

/// One record: each session a batch changed, as it left it (`None`: evicted).
type Record<'a> = Vec<(u64, Option<&'a Session>)>;
type StoredRecord = Vec<(u64, Option<Session>)>;

/// The client sessions as committed.
pub(crate) fn stored_sessions(store: &Store) -> Result<Sessions, StorageError> {
    load(store).map(|(sessions, _)| sessions)
}

/// The client sessions as committed, and the journal's records since its last fold.
pub(crate) fn load(store: &Store) -> Result<(Sessions, SessionJournal), StorageError> {
    let mut sessions = Sessions::default();
    for item in store
        .db()
        .iterator_cf(store.cf(CF_SESSIONS), IteratorMode::Start)
    {
        let (k, v) = item?;
        let session: Session = serde_json::from_slice(&v).map_err(|_| {
            StorageError::Corrupt(
                "unreadable client session (a data directory of an older version?)".into(),
            )
        })?;
        sessions.insert(decode_index_key(&k)?, session);
    }
    let mut journal = SessionJournal::default();
    for item in store
        .db()
        .iterator_cf(store.cf(CF_SESSION_JOURNAL), IteratorMode::Start)
    {
        let (k, v) = item?;
        let seq = decode_index_key(&k)?;
        let record: StoredRecord = wire::decode_postcard(&v, JOURNAL_BYTES_MAX)
            .map_err(|e| StorageError::Corrupt(format!("session journal record {seq}: {e}")))?;
        journal.noted(seq, record.iter().map(|(client, _)| *client), v.len());
        for (client, session) in record {
            match session {
                Some(s) => sessions.insert(client, s),
                None => {
                    sessions.remove(client);
                }
            }
        }
    }
    Ok((sessions, journal))
}

impl SessionJournal {
    /// Stages the sessions named in `dirty`, as `sessions` holds them now: one record, or a
    /// fold if the record would pass a bound or `whole` asks for one (the batch replaced every
    /// session, and `dirty` names them all: the family is cleared before they are written).
    /// Called once per batch, just before its write; a batch that is then not written must end
    /// the process, as the sessions in memory have moved on too.
    pub(crate) fn stage(
        &mut self,
        store: &Store,
        batch: &mut WriteBatch,
        sessions: &Sessions,
        dirty: BTreeSet<u64>,
        whole: bool,
    ) -> Result<(), StorageError> {
        if dirty.is_empty() && !whole {
            return Ok(());
        }
        let record: Record = dirty.iter().map(|&c| (c, sessions.get(c))).collect();
        let bytes = wire::encode_postcard(&record);
        let over = self.changes + record.len() > JOURNAL_CHANGES_MAX
            || self.bytes + bytes.len() > JOURNAL_BYTES_MAX;
        if whole {
            // Sessions written whole at earlier folds are not all among those changed since:
            // clear the family, so that only the new ones are left.
            batch.delete_range_cf(store.cf(CF_SESSIONS), &index_key(0)[..], &[0xFF; 9][..]);
        }
        if whole || over {
            self.changed.extend(dirty);
            return self.fold(store, batch, sessions);
        }
        batch.put_cf(
            store.cf(CF_SESSION_JOURNAL),
            index_key(self.next_seq),
            &bytes,
        );
        self.noted(self.next_seq, dirty, bytes.len());
        Ok(())
    }

    /// Counts a record written (or found at load).
    fn noted(&mut self, seq: u64, clients: impl IntoIterator<Item = u64>, bytes: usize) {
        let mut n = 0;
        for client in clients {
            self.changed.insert(client);
            n += 1;
        }
        self.records.push(seq);
        self.next_seq = seq + 1;
        self.changes += n;
        self.bytes += bytes;
    }

    /// Writes every session changed since the last fold whole, and deletes the records.
    fn fold(
        &mut self,
        store: &Store,
        batch: &mut WriteBatch,
        sessions: &Sessions,
    ) -> Result<(), StorageError> {
        let cf = store.cf(CF_SESSIONS);
        for client in std::mem::take(&mut self.changed) {
            let key = index_key(client);
            match sessions.get(client) {
                Some(s) => batch.put_cf(cf, key, serde_json::to_vec(s)?),
                None => batch.delete_cf(cf, key),
            }
        }
        // One point deletion per record: a range deletion per fold measured slower (performance
        // notes, section 36).
        let journal = store.cf(CF_SESSION_JOURNAL);
        for seq in std::mem::take(&mut self.records) {
            batch.delete_cf(journal, index_key(seq));
        }
        self.changes = 0;
        self.bytes = 0;
        Ok(())
    }

    /// Records since the last fold.
    #[cfg(test)]
    pub(crate) fn records(&self) -> usize {
        self.records.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnikv_core::session::AppliedWrite;

    fn session(last_index: u64, seq: u64) -> Session {
        Session {
            floor: seq,
            last_index,
            applied: vec![AppliedWrite {
                seq,
                index: last_index,
                digest: last_index * 31,
                guards_failed: false,
            }],
        }
    }

    /// Stages `dirty` as `sessions` holds them and writes the batch, as a commit does.
    fn commit(
        store: &Store,
        journal: &mut SessionJournal,
        sessions: &Sessions,
        dirty: &[u64],
        whole: bool,
    ) {
        let mut batch = WriteBatch::default();
        let dirty = dirty.iter().copied().collect();
        journal
            .stage(store, &mut batch, sessions, dirty, whole)
            .unwrap();
        store.write(batch).unwrap();
    }

    fn whole_sessions(store: &Store) -> Vec<u64> {
        store
            .db()
            .iterator_cf(store.cf(CF_SESSIONS), IteratorMode::Start)
            .map(|item| decode_index_key(&item.unwrap().0).unwrap())
            .collect()
    }

    #[test]
    fn each_batch_adds_one_record_and_a_reopen_replays_them_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let (mut sessions, mut journal) = load(&store).unwrap();
        sessions.insert(1, session(1, 0));
        sessions.insert(2, session(2, 0));
        commit(&store, &mut journal, &sessions, &[1, 2], false);
        // The second batch changes 1 and evicts 2: the replay must take both, in this order.
        sessions.insert(1, session(3, 1));
        sessions.remove(2);
        sessions.insert(4, session(4, 0));
        commit(&store, &mut journal, &sessions, &[1, 2, 4], false);
        commit(&store, &mut journal, &sessions, &[], false);
        assert_eq!(
            journal.records(),
            2,
            "a batch that changed no session adds nothing"
        );
        assert!(
            whole_sessions(&store).is_empty(),
            "nothing is written whole"
        );
        drop(journal);

        let (reloaded, mut journal) = load(&store).unwrap();
        assert_eq!(reloaded, sessions);
        // Records after a reopen take new keys, so none overwrites one of before.
        sessions.insert(4, session(5, 1));
        commit(&store, &mut journal, &sessions, &[4], false);
        assert_eq!(journal.records(), 3);
        assert_eq!(stored_sessions(&store).unwrap(), sessions);
    }

    #[test]
    fn past_its_bound_a_batch_writes_the_changed_sessions_whole_and_deletes_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let (mut sessions, mut journal) = load(&store).unwrap();
        let clients: Vec<u64> = (0..64).collect();
        for &c in &clients {
            sessions.insert(c, session(c, 0));
        }
        commit(&store, &mut journal, &sessions, &clients, false);
        sessions.remove(7);
        commit(&store, &mut journal, &sessions, &[7], false);
        let mut batches = 2;
        while journal.records() == batches {
            for &c in &clients[8..] {
                sessions.insert(c, session(1000 + batches as u64, batches as u64));
            }
            commit(&store, &mut journal, &sessions, &clients[8..], false);
            batches += 1;
        }
        assert_eq!(journal.records(), 0, "the fold deleted every record");
        // The first two records hold 65 changes, the others 56 each.
        let records_that_fit = 2 + (JOURNAL_CHANGES_MAX - 65) / 56;
        assert_eq!(
            batches,
            records_that_fit + 1,
            "folded at the batch that passed the bound of changes"
        );
        let mut whole = clients.clone();
        whole.retain(|&c| c != 7);
        assert_eq!(whole_sessions(&store), whole, "the evicted session is gone");
        let (reloaded, journal) = load(&store).unwrap();
        assert_eq!(reloaded, sessions);
        assert_eq!(journal.records(), 0);
    }

    #[test]
    fn a_batch_that_replaces_every_session_writes_them_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let (mut sessions, mut journal) = load(&store).unwrap();
        sessions.insert(3, session(3, 0));
        commit(&store, &mut journal, &sessions, &[3], false);
        sessions.insert(9, session(9, 0));
        commit(&store, &mut journal, &sessions, &[9], true);
        assert_eq!(journal.records(), 0);
        assert_eq!(whole_sessions(&store), vec![3, 9]);
        assert_eq!(stored_sessions(&store).unwrap(), sessions);
        // Replaced again, by sessions that share none with those written whole before: those
        // go too, though no record since the last fold names them.
        let mut replaced = Sessions::default();
        replaced.insert(5, session(5, 0));
        commit(&store, &mut journal, &replaced, &[5], true);
        assert_eq!(whole_sessions(&store), vec![5]);
        assert_eq!(stored_sessions(&store).unwrap(), replaced);
    }
}
