//! Watch: a stream of the changes to a range of keys, from a log index on, over a node's
//! `/watch` WebSocket.
//!
//! The watcher sends one [`WatchRequest`]; the node answers with [`WatchFrame`]s: first the
//! changes it still keeps from `from_index` on, then live ones, in log order, each with the
//! index of the entry that made it. The changes of one entry are never split across frames,
//! and each frame says up to which index the watcher has been served (`up_to`), so a watcher
//! that reconnects (to any node: indices are the same on every replica) with `from_index =
//! up_to` sees no change twice and misses none. A node keeps a bounded window of recent
//! changes; a watch from before it, or a watcher so slow that the window moved past it, gets
//! [`WatchFrame::Compacted`] and the connection ends: scan the range, then watch from the
//! scan's `index + 1`.

use serde::{Deserialize, Serialize};

use crate::scan::ScanRange;

/// Bytes of values and keys one frame carries (a frame holds at least one entry's changes).
pub const WATCH_FRAME_BYTES_MAX: usize = 512 * 1024;

/// The one frame a watcher sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchRequest {
    /// The keys watched: by `prefix`, or `[start, end)` (its `after` and `limit` are ignored).
    pub range: ScanRange,
    /// The first log index whose changes are wanted; `None`: from now on.
    #[serde(default)]
    pub from_index: Option<u64>,
}

/// One change: `value` `None` is a delete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub index: u64,
    pub key: String,
    pub value: Option<String>,
}

impl Change {
    /// How the CLIs print it: `INDEX<TAB>put<TAB>KEY<TAB>VALUE` or `INDEX<TAB>delete<TAB>KEY`.
    pub fn line(&self) -> String {
        match &self.value {
            Some(v) => format!("{}\tput\t{}\t{v}", self.index, self.key),
            None => format!("{}\tdelete\t{}", self.index, self.key),
        }
    }

    /// Bytes of key and value: what it costs to keep and to send.
    pub fn bytes(&self) -> usize {
        self.key.len() + self.value.as_ref().map_or(0, String::len)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum WatchFrame {
    /// Changes in log order (possibly none: progress only). Every change of the range at an
    /// index below `up_to` has been sent.
    Changes { changes: Vec<Change>, up_to: u64 },
    /// The node no longer keeps changes from the watcher's index: it keeps `oldest_index` on.
    /// The stream ends.
    Compacted { oldest_index: u64 },
    /// The request was malformed; the stream ends.
    Error { message: String },
}

impl ScanRange {
    /// Whether `key` is in the range (ignoring `after` and `limit`).
    pub fn contains(&self, key: &str) -> bool {
        let k = key.as_bytes();
        let prefix = self
            .prefix
            .as_ref()
            .is_none_or(|p| k.starts_with(p.as_bytes()));
        let start = self.start.as_ref().is_none_or(|s| k >= s.as_bytes());
        let end = self.end.as_ref().is_none_or(|e| k < e.as_bytes());
        prefix && start && end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_contains_its_prefix_or_half_open_interval() {
        let p = ScanRange {
            prefix: Some("a/".into()),
            ..ScanRange::default()
        };
        assert!(p.contains("a/1") && !p.contains("a") && !p.contains("b/1"));
        let r = ScanRange {
            start: Some("b".into()),
            end: Some("c".into()),
            ..ScanRange::default()
        };
        assert!(r.contains("b") && r.contains("bz") && !r.contains("c") && !r.contains("a"));
        assert!(ScanRange::default().contains("anything"));
    }
}
