//! Ordered scans: which keys a scan names, and one page of its answer.
//!
//! A scan walks the table in key (byte) order, by prefix or over `[start, end)`, a page at a
//! time: a page holds at most [`SCAN_KEYS_MAX`] keys and about [`SCAN_PAGE_BYTES_MAX`] bytes,
//! so one request bounds both the reply and the work the node does for it; `next_after` (the
//! page's last key) continues it. Each page is its own read: pages of one scan may see
//! different states of the table if writes land in between.

use serde::{Deserialize, Serialize};

use crate::limits::{KEY_BYTES_MAX, VALUE_BYTES_MAX};

/// Keys in one scan page.
pub const SCAN_KEYS_MAX: u32 = 1000;
/// Bytes of keys and values in one scan page (a page holds at least one entry).
pub const SCAN_PAGE_BYTES_MAX: usize = 512 * 1024;
/// The largest scan reply: a full page (its first entry, at most a key and a value, always
/// fits in it) and each entry's JSON and `mod_index`.
pub const SCAN_REPLY_BYTES_MAX: usize = SCAN_PAGE_BYTES_MAX + SCAN_KEYS_MAX as usize * 64;
const _: () = assert!(KEY_BYTES_MAX + VALUE_BYTES_MAX <= SCAN_PAGE_BYTES_MAX);

/// The keys a scan visits, and where this page starts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanRange {
    /// Keys starting with this (exclusive with `start`/`end`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// First key, inclusive (`None`: from the first key).
    #[serde(default)]
    pub start: Option<String>,
    /// Last key, exclusive (`None`: to the last key).
    #[serde(default)]
    pub end: Option<String>,
    /// Continue after this key: the previous page's `next_after`.
    #[serde(default)]
    pub after: Option<String>,
    /// Keys wanted in this page: clamped to 1..=[`SCAN_KEYS_MAX`] (0: the maximum).
    #[serde(default)]
    pub limit: u32,
}

impl ScanRange {
    /// Why the range is malformed, if it is.
    pub fn problem(&self) -> Option<String> {
        let keys = [&self.prefix, &self.start, &self.end, &self.after];
        if keys
            .iter()
            .any(|k| k.as_ref().is_some_and(|k| k.len() > KEY_BYTES_MAX))
        {
            return Some(format!("a scan bound exceeds {KEY_BYTES_MAX} bytes"));
        }
        if self.prefix.is_some() && (self.start.is_some() || self.end.is_some()) {
            return Some("a scan takes a prefix or a start/end range, not both".into());
        }
        None
    }

    /// Keys in this page: the request's limit, clamped.
    pub fn keys_max(&self) -> usize {
        match self.limit {
            0 => SCAN_KEYS_MAX as usize,
            n => n.min(SCAN_KEYS_MAX) as usize,
        }
    }

    /// The first key to look at (inclusive), as bytes.
    pub fn seek(&self) -> &[u8] {
        let lower = self.prefix.as_ref().or(self.start.as_ref());
        match (&self.after, lower) {
            (Some(a), Some(l)) if a < l => l.as_bytes(),
            (Some(a), _) => a.as_bytes(),
            (None, Some(l)) => l.as_bytes(),
            (None, None) => b"",
        }
    }

    /// Whether `key` (met in order from [`ScanRange::seek`]) is in this page's range; `None`
    /// once the range is over, so the walk can stop.
    pub fn admits(&self, key: &[u8]) -> Option<bool> {
        if let Some(p) = &self.prefix {
            if !key.starts_with(p.as_bytes()) {
                return (key < p.as_bytes()).then_some(false);
            }
        }
        if self.end.as_ref().is_some_and(|e| key >= e.as_bytes()) {
            return None;
        }
        Some(self.after.as_ref().is_none_or(|a| key > a.as_bytes()))
    }
}

/// One key of a scan page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanEntry {
    pub key: String,
    pub value: String,
    pub mod_index: u64,
}

/// A page of a scan's answer, in key order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanPage {
    pub entries: Vec<ScanEntry>,
    /// More keys may follow: send the scan again with `after` set to this.
    #[serde(default)]
    pub next_after: Option<String>,
}

/// Builds a page from entries met in key order from [`ScanRange::seek`], within the range's
/// bounds: the one page rule of every reader (RocksDB's iterator, memory tables).
pub fn page<I, E>(range: &ScanRange, entries: I) -> Result<ScanPage, E>
where
    I: IntoIterator<Item = Result<ScanEntry, E>>,
{
    page_within(range, SCAN_PAGE_BYTES_MAX, entries)
}

/// As [`page`], with pages of about `bytes_max` bytes instead (an admin dump's pages are
/// larger than a client's).
pub fn page_within<I, E>(range: &ScanRange, bytes_max: usize, entries: I) -> Result<ScanPage, E>
where
    I: IntoIterator<Item = Result<ScanEntry, E>>,
{
    let keys_max = range.keys_max();
    let mut page = ScanPage::default();
    let mut bytes = 0;
    for entry in entries {
        let entry = entry?;
        match range.admits(entry.key.as_bytes()) {
            None => break,
            Some(false) => continue,
            Some(true) => {}
        }
        let size = entry.key.len() + entry.value.len();
        if page.entries.len() == keys_max || (!page.entries.is_empty() && bytes + size > bytes_max)
        {
            page.next_after = page.entries.last().map(|e| e.key.clone());
            break;
        }
        bytes += size;
        page.entries.push(entry);
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(keys: &[&str]) -> Vec<Result<ScanEntry, ()>> {
        keys.iter()
            .map(|k| {
                Ok(ScanEntry {
                    key: (*k).into(),
                    value: "v".into(),
                    mod_index: 1,
                })
            })
            .collect()
    }

    fn keys(range: &ScanRange, all: &[&str]) -> (Vec<String>, Option<String>) {
        let from = range.seek();
        let met: Vec<_> = table(all)
            .into_iter()
            .filter(|e| e.as_ref().unwrap().key.as_bytes() >= from)
            .collect();
        let p = page(range, met).unwrap();
        (p.entries.into_iter().map(|e| e.key).collect(), p.next_after)
    }

    const ALL: &[&str] = &["a", "b", "b/1", "b/2", "b/3", "ba", "c"];

    #[test]
    fn a_prefix_scan_pages_through_its_keys_only() {
        let mut r = ScanRange {
            prefix: Some("b/".into()),
            limit: 2,
            ..ScanRange::default()
        };
        assert_eq!(
            keys(&r, ALL),
            (vec!["b/1".into(), "b/2".into()], Some("b/2".into()))
        );
        r.after = Some("b/2".into());
        assert_eq!(keys(&r, ALL), (vec!["b/3".into()], None));
    }

    #[test]
    fn a_range_is_half_open() {
        let r = ScanRange {
            start: Some("b".into()),
            end: Some("ba".into()),
            ..ScanRange::default()
        };
        assert_eq!(keys(&r, ALL).0, ["b", "b/1", "b/2", "b/3"]);
        let everything = ScanRange::default();
        assert_eq!(keys(&everything, ALL).0.len(), ALL.len());
    }

    #[test]
    fn limits_are_clamped_and_bounds_checked() {
        assert_eq!(ScanRange::default().keys_max(), SCAN_KEYS_MAX as usize);
        let huge = ScanRange {
            limit: u32::MAX,
            ..ScanRange::default()
        };
        assert_eq!(huge.keys_max(), SCAN_KEYS_MAX as usize);
        let both = ScanRange {
            prefix: Some("a".into()),
            end: Some("b".into()),
            ..ScanRange::default()
        };
        assert!(both.problem().is_some());
    }
}
