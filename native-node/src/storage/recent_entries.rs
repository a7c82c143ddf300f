//! The log's newest entries, kept decoded beside RocksDB.
//!
//! OmniPaxos reads back what it just appended: the apply loop reads each decided entry, and a
//! compaction reads the same entries again a thousand entries later to fold them into the
//! snapshot. Reading them from RocksDB decodes each one from JSON every time (about 6% of a
//! node's CPU under load, docs/performance-notes.md section 22). The log keeps its newest entries
//! here as it writes them, bounded in count and bytes, and serves a read from here when the
//! whole range is here; any other read goes to RocksDB.
//!
//! The one rule: every index held here holds what RocksDB holds at that index. The log applies
//! to this window exactly the changes its write batch made (appends, truncations, trims), and
//! only after the batch is written.

use std::collections::VecDeque;

use omnikv_core::KVCommand;

/// Entries held at most: a compaction folds entries from about `--snapshot-every` plus
/// `--log-keep-entries` (2,000 by default) behind the log's end, and under load some hundreds
/// more are appended and not yet applied.
pub(crate) const RECENT_ENTRIES_MAX: usize = 8192;
/// Encoded bytes of the entries held at most (large transactions leave fewer entries here).
pub(crate) const RECENT_BYTES_MAX: usize = 8 << 20;

/// One change a write batch made to the log, to be made here once the batch is written.
pub(crate) enum RecentChange {
    /// `entry`, `bytes` long when encoded, stored at `idx`.
    Append {
        idx: u64,
        entry: KVCommand,
        bytes: usize,
    },
    /// Every entry from this index on was removed.
    TruncateFrom(u64),
    /// Every entry below this index was removed.
    TrimTo(u64),
}

/// Entries `start_idx..start_idx + entries.len()` of the log, with their encoded sizes.
pub(crate) struct RecentEntries {
    start_idx: u64,
    entries: VecDeque<(KVCommand, usize)>,
    bytes: usize,
}

impl RecentEntries {
    /// An empty window at the log's end.
    pub(crate) fn new(end_idx: u64) -> RecentEntries {
        RecentEntries {
            start_idx: end_idx,
            entries: VecDeque::new(),
            bytes: 0,
        }
    }

    fn end_idx(&self) -> u64 {
        self.start_idx + self.entries.len() as u64
    }

    pub(crate) fn apply(&mut self, change: RecentChange) {
        match change {
            RecentChange::Append { idx, entry, bytes } => self.append(idx, entry, bytes),
            RecentChange::TruncateFrom(idx) => self.truncate_from(idx),
            RecentChange::TrimTo(idx) => self.trim_to(idx),
        }
    }

    fn append(&mut self, idx: u64, entry: KVCommand, bytes: usize) {
        if idx != self.end_idx() {
            // Not next to what is held (after a trim past the end, say): start again there.
            self.entries.clear();
            self.bytes = 0;
            self.start_idx = idx;
        }
        self.entries.push_back((entry, bytes));
        self.bytes += bytes;
        while self.entries.len() > RECENT_ENTRIES_MAX || self.bytes > RECENT_BYTES_MAX {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some((_, bytes)) = self.entries.pop_front() {
            self.bytes -= bytes;
            self.start_idx += 1;
        }
    }

    fn truncate_from(&mut self, idx: u64) {
        if idx <= self.start_idx {
            self.entries.clear();
            self.bytes = 0;
            self.start_idx = idx;
            return;
        }
        while self.end_idx() > idx {
            let (_, bytes) = self.entries.pop_back().expect("end_idx > idx > start_idx");
            self.bytes -= bytes;
        }
    }

    fn trim_to(&mut self, idx: u64) {
        while self.start_idx < idx && !self.entries.is_empty() {
            self.pop_front();
        }
        if self.entries.is_empty() {
            self.start_idx = self.start_idx.max(idx);
        }
    }

    /// Entries `from..to`, if every one of them is held here.
    pub(crate) fn get(&self, from: u64, to: u64) -> Option<Vec<KVCommand>> {
        if from < self.start_idx || to > self.end_idx() || from > to {
            return None;
        }
        let skip = (from - self.start_idx) as usize;
        let take = (to - from) as usize;
        Some(
            (self.entries.iter().skip(skip).take(take))
                .map(|(entry, _)| entry.clone())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnikv_core::RequestId;

    fn cmd(n: u64) -> KVCommand {
        KVCommand::Delete {
            id: RequestId { client: 1, seq: n },
            key: format!("k{n}"),
            forget_below: 0,
        }
    }

    fn seqs(v: Option<Vec<KVCommand>>) -> Option<Vec<u64>> {
        v.map(|v| v.iter().map(|c| c.id().seq).collect())
    }

    #[test]
    fn serves_only_ranges_it_holds_whole() {
        let mut r = RecentEntries::new(10);
        for i in 10..15 {
            r.apply(RecentChange::Append {
                idx: i,
                entry: cmd(i),
                bytes: 1,
            });
        }
        assert_eq!(seqs(r.get(11, 14)), Some(vec![11, 12, 13]));
        assert_eq!(seqs(r.get(12, 12)), Some(vec![]));
        assert_eq!(r.get(9, 12), None, "below what is held");
        assert_eq!(r.get(12, 16), None, "past the end");
        r.apply(RecentChange::TruncateFrom(13));
        assert_eq!(r.get(12, 14), None, "truncated");
        r.apply(RecentChange::Append {
            idx: 13,
            entry: cmd(99),
            bytes: 1,
        });
        assert_eq!(seqs(r.get(12, 14)), Some(vec![12, 99]));
        r.apply(RecentChange::TrimTo(13));
        assert_eq!(r.get(12, 14), None, "trimmed");
        assert_eq!(seqs(r.get(13, 14)), Some(vec![99]));
        // A trim past the end leaves nothing, and the next append starts there.
        r.apply(RecentChange::TrimTo(20));
        r.apply(RecentChange::Append {
            idx: 20,
            entry: cmd(20),
            bytes: 1,
        });
        assert_eq!(seqs(r.get(20, 21)), Some(vec![20]));
        assert_eq!(r.get(14, 21), None);
    }

    #[test]
    fn holds_at_most_its_bounds() {
        let mut r = RecentEntries::new(0);
        for i in 0..(RECENT_ENTRIES_MAX as u64 + 10) {
            r.apply(RecentChange::Append {
                idx: i,
                entry: cmd(i),
                bytes: 1,
            });
        }
        assert_eq!(r.entries.len(), RECENT_ENTRIES_MAX);
        assert_eq!(r.get(9, 11), None);
        assert!(r.get(10, 12).is_some());
        r.apply(RecentChange::Append {
            idx: r.end_idx(),
            entry: cmd(0),
            bytes: RECENT_BYTES_MAX,
        });
        assert_eq!(r.entries.len(), 1, "one entry as large as the byte bound");
        assert_eq!(r.bytes, RECENT_BYTES_MAX);
    }
}
