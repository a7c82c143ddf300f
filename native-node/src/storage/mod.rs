//! Durable state of a node, all in one RocksDB: the OmniPaxos log and Paxos state
//! ([`PaxosLog`]), the KV table with its deduplication sessions and applied index
//! ([`KvTable`]). Beside it, [`identity`] records whose directory it is.
//!
//! One database means one write-ahead log: applying decided entries and recording the applied
//! index go into one atomic write batch, and a crash recovers a prefix of all writes in the order
//! they were made.

mod db;
pub mod identity;
mod kv_pages;
mod kv_table;
mod live_keys;
mod paxos_log;
mod recent_entries;
mod session_journal;
mod snapshot_store;
mod table_digest;
mod table_snapshot;
mod versioned;

pub use db::{StorageError, Store, StoreLimits};
pub use kv_pages::read_page;
pub use kv_table::{ApplyBatch, KvTable};
pub use paxos_log::{CompactionLease, PaxosLog, SnapshotSummary};
