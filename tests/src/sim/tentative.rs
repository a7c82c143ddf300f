//! The record of decided entries when nodes keep handling inputs while their fsync runs
//! (`SimConfig::overlap`).
//!
//! Such a node may decide on its own copy of an entry before an fsync covers it (OmniPaxos
//! counts a leader's copy as soon as it is appended), and a crash can take that copy back, so
//! what it decided is not yet decided for the cluster. The simulation notes each node's
//! decided entries as they appear, before its compaction trims them, and records them in the
//! cluster's decided log only once an fsync that started after they were decided has ended.
//! Entries a node learned only inside a snapshot leave a gap in its notes; its later entries
//! wait until another node's record fills the gap.

use std::collections::BTreeMap;

use omnikv_core::KVCommand;
use omnipaxos::util::LogEntry;

/// One node's decided entries not yet in the record.
#[derive(Default)]
pub(super) struct Tentative {
    /// The next index to read from the node's log.
    next: u64,
    entries: BTreeMap<u64, KVCommand>,
    /// Entries below this were decided when an fsync of this node that has ended started.
    confirmed_below: u64,
}

impl Tentative {
    /// Where to read the node's decided entries from next.
    pub(super) fn next(&self) -> u64 {
        self.next
    }

    /// Notes `entries`, read from the node's log from index `from`. Panics if an entry an
    /// ended fsync covered is replaced by another.
    pub(super) fn note(&mut self, from: u64, entries: Vec<LogEntry<KVCommand>>, context: &str) {
        let mut idx = from;
        for e in entries {
            match e {
                LogEntry::Snapshotted(s) => idx = s.trimmed_idx as u64,
                LogEntry::Decided(cmd) => {
                    if let Some(known) = self.entries.get(&idx) {
                        assert!(
                            idx >= self.confirmed_below || known == &cmd,
                            "{context}: decided a different entry at index {idx} than it had synced"
                        );
                    }
                    self.entries.insert(idx, cmd);
                    idx += 1;
                }
                other => panic!("{context}: unexpected {other:?} in the decided range"),
            }
        }
        self.next = self.next.max(idx);
    }

    /// An fsync that started when the node had decided the entries below `decided` ended.
    pub(super) fn confirm(&mut self, decided: u64) {
        self.confirmed_below = self.confirmed_below.max(decided);
    }

    /// The node crashed: what no ended fsync covered is gone, and it reads its log anew.
    pub(super) fn crashed(&mut self) {
        self.entries.split_off(&self.confirmed_below);
        self.next = 0;
    }

    /// Takes the first confirmed entry if the record reaches it (`record_len`).
    pub(super) fn take_confirmed(&mut self, record_len: u64) -> Option<(u64, KVCommand)> {
        let (&idx, _) = self.entries.first_key_value()?;
        if idx >= self.confirmed_below || idx > record_len {
            return None;
        }
        self.entries.pop_first()
    }

    /// Confirmed entries still waiting for the record to reach them.
    pub(super) fn waiting(&self) -> usize {
        self.entries.range(..self.confirmed_below).count()
    }
}
