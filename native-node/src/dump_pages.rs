//! Pages of the KV table for `/admin` readers, served beside the event loop.
//!
//! A full copy of a large table on the event loop stalls consensus (a 1M-key dump took half a
//! second, long enough to lose the leadership several times over). Pages are read from a RocksDB
//! snapshot on the blocking pool instead, one at a time for the whole node and at most one per
//! [`DUMP_PAGE_INTERVAL`]: however many readers ask, dumping costs the node at most one core's
//! share of disk reads, and never its turn.

use std::sync::Arc;
use std::time::Duration;

use omnikv_core::admin::AdminResponse;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::storage::{read_page, Store};

/// Shortest spacing of two pages node-wide: 50 pages (50,000 keys) a second at most.
pub const DUMP_PAGE_INTERVAL: Duration = Duration::from_millis(20);

pub struct DumpPages {
    store: Arc<Store>,
    /// When the next page may be read. Held while a page is read, so pages are read one at a
    /// time, in the order they were asked for.
    next_at: Mutex<Instant>,
}

impl DumpPages {
    pub fn new(store: Arc<Store>) -> DumpPages {
        DumpPages {
            store,
            next_at: Mutex::new(Instant::now()),
        }
    }

    pub async fn page(&self, after: Option<String>, limit: u32) -> AdminResponse {
        let mut next_at = self.next_at.lock().await;
        tokio::time::sleep_until(*next_at).await;
        let store = self.store.clone();
        let read = tokio::task::spawn_blocking(move || read_page(&store, after.as_deref(), limit));
        let answer = match read.await {
            Ok(Ok(page)) => AdminResponse::DumpPage(page),
            Ok(Err(e)) => AdminResponse::Error {
                message: format!("reading the table: {e}"),
            },
            Err(e) => AdminResponse::Error {
                message: format!("reading the table: {e}"),
            },
        };
        *next_at = Instant::now() + DUMP_PAGE_INTERVAL;
        answer
    }
}
