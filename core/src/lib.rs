//! The vocabulary shared by every OmniKV process: native nodes, the launcher, the CLI, the
//! browser visualizer (wasm32) and the Node.js client.
//!
//! Everything that crosses a process boundary is defined here, once, so that both ends of every
//! wire agree by construction. This crate knows nothing of tokio, RocksDB or the DOM: it must
//! build for `wasm32-unknown-unknown`.
//!
//! Layout:
//! - [`digest`]: [`digest::TableDigest`], how replicas show they hold the same table.
//! - [`command`]: [`KVCommand`], the replicated log entry, and its request identity.
//! - [`session`]: client sessions, the one rule that applies every write exactly once.
//! - [`txn`]: transactions (compare-and-swap, batches): guards and writes in one entry.
//! - [`snapshot`]: [`KVSnapshot`], the compacted form of a log prefix.
//! - [`scan`]: ordered scans: the range a scan names and one page of its answer.
//! - [`watch`]: the change stream of a range of keys from a log index.
//! - [`client`]: the client protocol (requests, responses, errors).
//! - [`admin`]: node administration (link control, state dumps) used by the launcher and tests.
//! - [`event`]: the event stream a node publishes for the visualizer.
//! - [`peer`]: frames exchanged between nodes.
//! - [`control`]: the launcher's HTTP control API.
//! - [`limits`]: size limits every decoder enforces.
//! - [`linearizability`]: the checker of KV histories the nemesis tests and the page share.
//! - [`wire`]: the schema's two encodings, JSON and postcard, and how a client picks one.
//!
//! Every enum on a wire is externally tagged (`{"put":{"key":"k",...}}`, `"status"` for a unit
//! variant). serde's internally tagged form (`{"type":"put",...}`) buffers each value before
//! decoding it: that is slower on the nodes' hot path and cannot read integer map keys back from
//! JSON.
//!
//! Each wire type is described once, by its serde derives here, and written in one of two
//! encodings of that schema ([`wire`]): JSON, which the nodes, the launcher, the CLI, the tests
//! and the Node.js client speak, and postcard, which the visualizer's page asks for. Frames from
//! outside go through [`decode_json`] or [`wire::decode_postcard`], which check their size first.
//! `tests/round_trip.rs` round-trips every type through both.

pub mod admin;
pub mod client;
pub mod command;
pub mod control;
pub mod digest;
pub mod event;
pub mod limits;
pub mod linearizability;
pub mod peer;
pub mod scan;
pub mod session;
pub mod snapshot;
pub mod txn;
pub mod versioned;
pub mod watch;
pub mod wire;

pub use command::{KVCommand, RequestId};
pub use snapshot::KVSnapshot;

/// A node's identity in the cluster: dense, starting at 1 (OmniPaxos sizes leader state by the
/// largest id).
pub type NodeId = u64;

/// Decoding failure of any wire type: the message says what was wrong, for the error reply.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("malformed postcard frame: {0}")]
    Postcard(String),
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// Decodes a JSON frame after checking its size, so an oversized frame is refused before any
/// parsing work is spent on it. serde_json refuses text nested deeper than 128 levels, so no
/// frame can exhaust the stack (`tests/decoders.rs`).
pub fn decode_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    limit: usize,
) -> Result<T, DecodeError> {
    wire::check_size(bytes, limit)?;
    serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))
}
