//! One recorded input to the model: the timeline's unit, and the trace file's schema.
//!
//! Apart from [`crate::reducer`] because the story, the timeline and the trace import and export
//! all name a record without applying it.

use omnikv_core::{
    admin::{NodeDump, NodeHead},
    control::ClusterView,
    event::EventEnvelope,
    linearizability::Operation,
    NodeId,
};
use serde::{Deserialize, Serialize};

/// One input to the model, as recorded on the timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
// The trace file's schema (export and import): externally tagged, like every enum on a wire.
#[serde(rename_all = "snake_case")]
pub enum Record {
    /// A frame from a node's `/events` stream.
    Event(EventEnvelope),
    /// A poll of the launcher's `/api/cluster`.
    Cluster { at_ms: u64, view: ClusterView },
    /// The page's event stream to a node opened or closed.
    Stream {
        at_ms: u64,
        node: NodeId,
        connected: bool,
    },
    /// A node's full state (`/admin` dump): what pages recorded before heads existed asked for.
    Dump { at_ms: u64, dump: NodeDump },
    /// The head of a node's state (`/admin` dump head), used to seed its table when the page
    /// joins late.
    Head { at_ms: u64, head: NodeHead },
    /// Something the page wants kept in the record (bad frame, failed action).
    Notice { at_ms: u64, text: String },
    /// A control request the launcher carried out (`/api/...` path), such as a scenario. A
    /// node action (kill, pause, resume, restart) changes the node's state from here on.
    Control { at_ms: u64, path: String },
    /// A client operation and its outcome, recorded when it completed (or when its client gave
    /// up: then its outcome is unknown): the history the History panel checks.
    Operation { at_ms: u64, operation: Operation },
}

impl Record {
    pub fn at_ms(&self) -> u64 {
        match self {
            Record::Event(e) => e.time_ms,
            Record::Cluster { at_ms, .. }
            | Record::Stream { at_ms, .. }
            | Record::Dump { at_ms, .. }
            | Record::Head { at_ms, .. }
            | Record::Notice { at_ms, .. }
            | Record::Control { at_ms, .. }
            | Record::Operation { at_ms, .. } => *at_ms,
        }
    }
}
