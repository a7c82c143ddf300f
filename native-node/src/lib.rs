//! An OmniKV node and the tools around it.
//!
//! Layout:
//! - [`node`]: the node process: its tokio event loop over RocksDB and TCP.
//! - [`replica`]: one replica's logic without I/O (OmniPaxos, apply, client requests), driven
//!   by `node` and by the deterministic simulation.
//! - [`input`]: the closed set of inputs of the event loop.
//! - [`budget`]: byte budgets that bound what queued requests and messages hold.
//! - [`fatal`]: how a node stops when its storage fails (one line, then exit).
//! - [`storage`]: RocksDB: the OmniPaxos log and Paxos state, the KV table.
//! - [`transport`]: peer links (TCP, length-delimited JSON frames, reconnecting).
//! - [`peer_auth`]: how a peer stream opens (Hello; challenge and proof with a secret).
//! - [`peer_chunks`]: peer messages of any size as pieces of bounded frames.
//! - [`handshakes`]: the bounded pool of connections still in their handshake.
//! - [`snapshot_fix`]: completes delta snapshots before OmniPaxos sees them.
//! - [`api`]: the node's WebSocket endpoint (`/client`, `/events`, `/admin`, `/watch`).
//! - [`changes`]: the window of recent changes that `/watch` serves.
//! - [`watchers`]: one `/watch` connection.
//! - [`dump_pages`]: pages of the KV table for `/admin`, read beside the event loop.
//! - [`ws_access`]: which upgrades the endpoint accepts (origins) and `/admin` rights.
//! - `ws_frames`: a connection's frames in the encoding it chose (JSON or postcard).
//! - [`secret`]: the cluster secret (file, bearer check, peer proofs).
//! - [`events`]: the bounded event bus behind `/events`.
//! - [`client`]: client side of the protocols, with exactly-once retries.
//! - [`launcher`]: `omnikv demo`, a supervised local cluster with an HTTP control API.
//! - [`config`]: command-line configuration of a node.
//! - [`bench`]: `omnikv bench`, the load generator (OmniKV and etcd) and storage benchmarks.
//! - [`porcupine`]: a client history in Porcupine's JSON (`omnikv history --porcupine`).

pub mod api;
pub mod bench;
pub mod budget;
pub mod changes;
pub mod client;
pub mod config;
pub mod disk_guard;
pub mod dump_pages;
pub mod event_rate;
pub mod events;
pub mod fatal;
pub mod handshakes;
pub mod input;
pub mod launcher;
pub mod node;
pub mod peer_auth;
pub mod peer_chunks;
pub mod porcupine;
pub mod replica;
pub mod secret;
pub mod snapshot_fix;
pub mod storage;
pub mod transport;
pub mod turn_timer;
pub mod watchers;
pub mod ws_access;
pub mod ws_conn;
pub(crate) mod ws_frames;
