//! OmniKV's live visualizer, compiled to WebAssembly for the page and for Node.js.
//!
//! The pure parts (model, reducer, timeline, client session, control requests, text) build and
//! are tested on the host; only [`dom`] touches the browser, and only on wasm32. [`api`] exposes
//! the decoding and request building to JavaScript so the Node.js client decodes with the same
//! core types as the page.

pub mod api;
pub mod client;
pub mod control;
pub mod describe;
pub mod health;
pub mod history;
pub mod model;
pub mod node_model;
pub mod observer;
pub mod record;
pub mod reducer;
pub mod story;
pub mod timeline;

#[cfg(all(target_arch = "wasm32", feature = "page"))]
mod dom;

pub use model::ClusterModel;
pub use record::Record;
pub use timeline::Timeline;
