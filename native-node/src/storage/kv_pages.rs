//! Pages of the KV table read beside the event loop.
//!
//! A page is read from a RocksDB snapshot, so its entries and its applied index belong to one
//! state of the table even while the event loop keeps applying entries. The reader never takes
//! the whole table: a page is bounded in keys and in bytes, and the next one starts after its
//! last key.

use omnikv_core::{
    admin::DumpPage,
    limits::{DUMP_PAGE_BYTES_MAX, DUMP_PAGE_KEYS_MAX},
    scan::{self, ScanEntry, ScanRange},
    session::Versioned,
};
use rocksdb::{Direction, IteratorMode, ReadOptions};

use super::db::{StorageError, Store, CF_KV};
use super::versioned;

// The scan's rule caps a page at its own key count: a dump page must not ask for more.
const _: () = assert!(DUMP_PAGE_KEYS_MAX <= scan::SCAN_KEYS_MAX);

/// Reads up to `limit` entries (at most [`DUMP_PAGE_KEYS_MAX`], and about
/// [`DUMP_PAGE_BYTES_MAX`] bytes) after the key `after`, cut by the scan's one page rule.
pub fn read_page(store: &Store, after: Option<&str>, limit: u32) -> Result<DumpPage, StorageError> {
    let limit = limit.clamp(1, DUMP_PAGE_KEYS_MAX);
    let snapshot = store.db().snapshot();
    let applied_idx = store.applied_idx_in(&snapshot)?;
    // The scan's page rule over the whole key space; a limit of 0 is one key here (a scan
    // reads 0 as the most), and pages may be as large as a dump page.
    let range = ScanRange {
        after: after.map(str::to_owned),
        limit,
        ..ScanRange::default()
    };
    // Pages walk the table once: keep their blocks out of the cache the hot keys live in.
    let mut read = ReadOptions::default();
    read.fill_cache(false);
    let mode = IteratorMode::From(range.seek(), Direction::Forward);
    let entries = snapshot
        .iterator_cf_opt(store.cf(CF_KV), read, mode)
        .map(|item| {
            let (k, v) = item?;
            let (key, Versioned { value, mod_index }) = versioned::decode_entry(&k, &v)?;
            Ok::<_, StorageError>(ScanEntry {
                key,
                value,
                mod_index,
            })
        });
    let page = scan::page_within(&range, DUMP_PAGE_BYTES_MAX, entries)?;
    Ok(DumpPage {
        applied_idx,
        entries: page.entries.into_iter().map(|e| (e.key, e.value)).collect(),
        next_after: page.next_after,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use omnikv_core::{KVCommand, RequestId};

    use super::*;
    use crate::storage::KvTable;

    fn table_with(keys: usize, value: &str) -> (tempfile::TempDir, std::sync::Arc<Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let mut table = KvTable::open(store.clone()).unwrap();
        let mut b = table.batch();
        b.apply(
            &KVCommand::OpenSession {
                id: RequestId {
                    client: 1 << 40,
                    seq: 0,
                },
            },
            0,
        );
        for i in 0..keys {
            let put = KVCommand::Put {
                id: RequestId {
                    client: 0,
                    seq: i as u64 + 1,
                },
                key: format!("k{i:05}"),
                value: value.into(),
                // Each put lets the session forget the ones before it.
                forget_below: i as u64,
            };
            b.apply(&put, i as u64 + 1);
        }
        b.commit(keys as u64 + 1).unwrap();
        (dir, store)
    }

    fn walk(store: &Store, limit: u32) -> (Vec<DumpPage>, BTreeMap<String, String>) {
        let (mut pages, mut seen) = (Vec::new(), BTreeMap::new());
        let mut after = None;
        loop {
            let page = read_page(store, after.as_deref(), limit).unwrap();
            for (k, v) in &page.entries {
                assert!(seen.insert(k.clone(), v.clone()).is_none(), "{k} twice");
            }
            after = page.next_after.clone();
            pages.push(page);
            if after.is_none() {
                return (pages, seen);
            }
        }
    }

    #[test]
    fn pages_walk_the_table_once_in_key_order() {
        let (_dir, store) = table_with(2500, "v");
        let (pages, seen) = walk(&store, 1000);
        assert_eq!(pages.len(), 3);
        assert_eq!(pages[0].entries.len(), 1000);
        assert_eq!(pages[2].entries.len(), 500);
        assert!(pages.iter().all(|p| p.applied_idx == 2501));
        assert_eq!(seen.len(), 2500);
        let keys: Vec<_> = pages
            .iter()
            .flat_map(|p| &p.entries)
            .map(|(k, _)| k)
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_page_is_bounded_in_keys_and_bytes() {
        let (_dir, store) = table_with(1500, "v");
        let page = read_page(&store, None, u32::MAX).unwrap();
        assert_eq!(page.entries.len(), DUMP_PAGE_KEYS_MAX as usize);
        // 100 KiB values: a page of 1 MiB holds 10 of them.
        let (_dir, store) = table_with(30, &"x".repeat(100 << 10));
        let page = read_page(&store, None, 1000).unwrap();
        assert_eq!(page.entries.len(), 10);
        let (pages, seen) = walk(&store, 1000);
        assert_eq!((pages.len(), seen.len()), (3, 30));
    }

    #[test]
    fn a_page_starts_after_a_key_that_is_gone() {
        let (_dir, store) = table_with(10, "v");
        let page = read_page(&store, Some("k00003x"), 2).unwrap();
        let keys: Vec<_> = page.entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["k00004", "k00005"]);
        assert_eq!(page.next_after.as_deref(), Some("k00005"));
        let page = read_page(&store, Some("k00009"), 2).unwrap();
        assert_eq!((page.entries.len(), page.next_after), (0, None));
    }
}
