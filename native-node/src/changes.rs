//! The node's window of recent changes, shared with its watchers (`/watch`).
//!
//! After each turn the node records the changes its applied entries made (key, new value or
//! delete, and the entry's index). The window covers every change from `start` (an index) to
//! the applied index, with nothing missing in between: it starts at the applied index the node
//! recovered to, and a snapshot install (which names no changes) starts it again after the
//! snapshot. It is bounded in changes and bytes; the oldest entries' changes go first, whole.
//! Watchers copy from it under a short lock, a bounded batch at a time, so a slow watcher
//! costs the node nothing: it falls out of the window and is told so.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use omnikv_core::scan::ScanRange;
use omnikv_core::watch::{Change, WATCH_FRAME_BYTES_MAX};
use tokio::sync::Notify;

/// Changes kept.
pub const CHANGES_KEPT_MAX: usize = 100_000;
/// Bytes of keys and values kept.
pub const CHANGE_BYTES_KEPT_MAX: usize = 64 << 20;
/// Changes a watcher examines per read: the time it holds the lock.
const EXAMINED_PER_READ_MAX: usize = 4096;

/// What one run of applied entries changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppliedChanges {
    /// The first index applied by the run, and the applied index after it.
    pub from: u64,
    pub to: u64,
    /// The run installed a snapshot: its changes are not known one by one.
    pub installed: bool,
    pub changes: Vec<Change>,
}

#[derive(Debug)]
struct Window {
    /// Every change at an index in `start..end` is in `changes`.
    start: u64,
    end: u64,
    changes: VecDeque<Change>,
    bytes: usize,
}

/// A read from the window.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// Matching changes at indices `from..up_to` (an entry's changes are never split).
    Changes { changes: Vec<Change>, up_to: u64 },
    /// The window no longer reaches back to the index asked for: it starts here.
    Compacted { oldest_index: u64 },
}

/// The window, shared by the node (writer) and its watchers (readers).
#[derive(Clone, Debug)]
pub struct ChangeFeed {
    window: Arc<Mutex<Window>>,
    /// Woken when changes are recorded.
    pub recorded: Arc<Notify>,
}

impl ChangeFeed {
    /// An empty window at `applied_idx`, the index the node recovered to.
    pub fn new(applied_idx: u64) -> ChangeFeed {
        ChangeFeed {
            window: Arc::new(Mutex::new(Window {
                start: applied_idx,
                end: applied_idx,
                changes: VecDeque::new(),
                bytes: 0,
            })),
            recorded: Arc::new(Notify::new()),
        }
    }

    /// The applied index: where a watch "from now" starts.
    pub fn end(&self) -> u64 {
        self.window.lock().expect("not poisoned").end
    }

    /// Records runs applied in a turn, in order.
    pub fn record(&self, runs: Vec<AppliedChanges>) {
        if runs.is_empty() {
            return;
        }
        let mut w = self.window.lock().expect("not poisoned");
        for run in runs {
            if run.installed || run.from != w.end {
                // Changes before `run.to` are not all known: the window starts again there.
                w.changes.clear();
                w.bytes = 0;
                w.start = run.to;
            } else {
                for c in run.changes {
                    w.bytes += c.bytes();
                    w.changes.push_back(c);
                }
            }
            w.end = run.to;
        }
        while w.changes.len() > CHANGES_KEPT_MAX || w.bytes > CHANGE_BYTES_KEPT_MAX {
            let index = w.changes.front().expect("over a bound, so not empty").index;
            while w.changes.front().is_some_and(|c| c.index == index) {
                let c = w.changes.pop_front().expect("checked");
                w.bytes -= c.bytes();
            }
            w.start = index + 1;
        }
        drop(w);
        self.recorded.notify_waiters();
    }

    /// The changes of `range` from index `from` on: a bounded batch (at most about
    /// [`WATCH_FRAME_BYTES_MAX`] of matching changes, and a bounded number examined).
    pub fn read(&self, range: &ScanRange, from: u64) -> Read {
        let w = self.window.lock().expect("not poisoned");
        if from < w.start {
            return Read::Compacted {
                oldest_index: w.start,
            };
        }
        let first = w.changes.partition_point(|c| c.index < from);
        let (mut changes, mut bytes) = (Vec::new(), 0);
        let mut up_to = w.end.max(from);
        for (n, c) in w.changes.range(first..).enumerate() {
            // Stop only between entries, so that no entry's changes are split.
            let boundary = n > 0 && w.changes[first + n - 1].index != c.index;
            if boundary && (bytes >= WATCH_FRAME_BYTES_MAX || n >= EXAMINED_PER_READ_MAX) {
                up_to = c.index;
                break;
            }
            if range.contains(&c.key) {
                bytes += c.bytes();
                changes.push(c.clone());
            }
        }
        Read::Changes { changes, up_to }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(index: u64, key: &str) -> Change {
        Change {
            index,
            key: key.into(),
            value: Some("v".into()),
        }
    }

    fn run(from: u64, to: u64, changes: Vec<Change>) -> AppliedChanges {
        AppliedChanges {
            from,
            to,
            installed: false,
            changes,
        }
    }

    fn all() -> ScanRange {
        ScanRange::default()
    }

    #[test]
    fn reads_resume_where_they_stopped_and_filter_by_range() {
        let feed = ChangeFeed::new(5);
        feed.record(vec![run(5, 8, vec![change(5, "a/1"), change(7, "b/1")])]);
        feed.record(vec![run(8, 9, vec![change(8, "a/2")])]);
        let prefix = ScanRange {
            prefix: Some("a/".into()),
            ..ScanRange::default()
        };
        let Read::Changes { changes, up_to } = feed.read(&prefix, 5) else {
            panic!()
        };
        assert_eq!(changes, [change(5, "a/1"), change(8, "a/2")]);
        assert_eq!(up_to, 9);
        assert_eq!(
            feed.read(&all(), 9),
            Read::Changes {
                changes: vec![],
                up_to: 9
            }
        );
        assert_eq!(feed.read(&all(), 4), Read::Compacted { oldest_index: 5 });
    }

    #[test]
    fn a_gap_or_a_snapshot_starts_the_window_again() {
        let feed = ChangeFeed::new(0);
        feed.record(vec![run(0, 2, vec![change(1, "a")])]);
        let mut installed = run(2, 10, vec![change(9, "a")]);
        installed.installed = true;
        feed.record(vec![installed]);
        assert_eq!(feed.read(&all(), 1), Read::Compacted { oldest_index: 10 });
        feed.record(vec![run(12, 13, vec![change(12, "a")])]);
        assert_eq!(feed.read(&all(), 10), Read::Compacted { oldest_index: 13 });
    }

    #[test]
    fn the_window_is_bounded_and_drops_whole_entries() {
        let feed = ChangeFeed::new(0);
        let changes: Vec<_> = (0..CHANGES_KEPT_MAX as u64 + 2)
            .map(|i| change(i / 2, "k"))
            .collect();
        let to = changes.last().unwrap().index + 1;
        feed.record(vec![run(0, to, changes)]);
        assert_eq!(feed.read(&all(), 0), Read::Compacted { oldest_index: 1 });
        let Read::Changes { changes, up_to } = feed.read(&all(), 1) else {
            panic!()
        };
        assert_eq!(changes.len(), EXAMINED_PER_READ_MAX, "a bounded batch");
        assert_eq!(
            up_to,
            1 + EXAMINED_PER_READ_MAX as u64 / 2,
            "ends between entries"
        );
    }
}
