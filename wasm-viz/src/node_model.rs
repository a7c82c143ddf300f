//! One node as the page knows it: its process state, role, log window, snapshot block and table,
//! and the map of nodes by id.
//!
//! Apart from [`crate::model`] because the story, which the model holds, reads nodes and nothing
//! else of it: the story depends on this module, and the model on both.

use std::collections::BTreeMap;

use omnikv_core::{
    control::ProcessState,
    event::{BallotView, PeerStatus, Role},
    session::Versioned,
    KVCommand, NodeId,
};

/// Log entries kept per node (the newest); older ones are summarised by the indices.
pub const LOG_WINDOW_ENTRIES: usize = 40;
/// Keys kept per node table; beyond this the table says it is truncated.
pub const KV_KEYS_MAX: usize = 2_000;
/// Snapshot keys kept for display.
pub const SNAPSHOT_KEYS_KEPT: usize = 32;

/// What the page shows as a node's state (`data-state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Up,
    Down,
    Paused,
    /// Up again after being down, and not yet caught up with the decided log.
    Recovering,
    /// Not reported by the launcher yet.
    Unknown,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Up => "up",
            NodeState::Down => "down",
            NodeState::Paused => "paused",
            NodeState::Recovering => "recovering",
            NodeState::Unknown => "unknown",
        }
    }
}

pub fn role_str(role: Option<Role>) -> &'static str {
    match role {
        Some(Role::Leader) => "leader",
        Some(Role::Candidate) => "candidate",
        Some(Role::Follower) => "follower",
        None => "none",
    }
}

/// A log entry's progress (`data-status`). Compacted entries are drawn as one snapshot block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryStatus {
    Accepted,
    Decided,
    Applied,
}

impl EntryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryStatus::Accepted => "accepted",
            EntryStatus::Decided => "decided",
            EntryStatus::Applied => "applied",
        }
    }
}

/// The newest entries of a node's log, by index, in ascending order.
///
/// A sorted vector rather than a map or a deque: appends come in order and truncations cut a
/// suffix; dropping the oldest shifts at most [`LOG_WINDOW_ENTRIES`] entries; and every
/// collection type fewer keeps the wasm smaller.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogWindow {
    entries: Vec<(u64, Option<KVCommand>)>,
}

impl LogWindow {
    /// Forgets the entries at `index` and after (a new append replaces them).
    pub fn truncate_from(&mut self, index: u64) {
        let keep = self.entries.partition_point(|(i, _)| *i < index);
        self.entries.truncate(keep);
    }

    /// Forgets the entries before `index` (compacted into a snapshot).
    pub fn drop_before(&mut self, index: u64) {
        let drop = self.entries.partition_point(|(i, _)| *i < index);
        self.entries.drain(..drop);
    }

    /// Appends entry `index`, replacing it and anything after it; keeps at most `max` entries.
    pub fn push(&mut self, index: u64, command: Option<KVCommand>, max: usize) {
        self.truncate_from(index);
        self.entries.push((index, command));
        let over = self.entries.len().saturating_sub(max);
        self.entries.drain(..over);
    }

    /// The command at `index`: `None` if the entry is not kept, `Some(None)` if not carried.
    pub fn get(&self, index: u64) -> Option<&Option<KVCommand>> {
        self.slot(index).map(|k| &self.entries[k].1)
    }

    pub fn get_mut(&mut self, index: u64) -> Option<&mut Option<KVCommand>> {
        self.slot(index).map(|k| &mut self.entries[k].1)
    }

    fn slot(&self, index: u64) -> Option<usize> {
        let first = self.entries.first()?.0;
        let k = index.checked_sub(first)? as usize;
        // Entries are contiguous in the common case; fall back to a search when not.
        match self.entries.get(k) {
            Some((i, _)) if *i == index => Some(k),
            _ => self.entries.iter().position(|(i, _)| *i == index),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn last_index(&self) -> Option<u64> {
        self.entries.last().map(|(i, _)| *i)
    }
}

/// The compacted prefix of a node's log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotBlock {
    pub compacted_idx: u64,
    pub key_count: u64,
    pub keys: Vec<String>,
    /// Received from the leader (catch-up) rather than taken locally.
    pub installed: bool,
    pub at_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeModel {
    pub id: NodeId,
    /// As the launcher reports it; `None` before the first cluster view.
    pub process: Option<ProcessState>,
    /// The page's event stream from this node is open.
    pub stream_connected: bool,
    pub role: Option<Role>,
    pub leader: Option<NodeId>,
    pub ballot: Option<BallotView>,
    pub promise: Option<BallotView>,
    pub accepted_idx: u64,
    pub decided_idx: u64,
    pub applied_idx: u64,
    pub compacted_idx: u64,
    /// The newest log entries; a command is `None` when the event did not carry it.
    pub log: LogWindow,
    /// The node's table as far as the page knows it, with the log index of each key's last
    /// write, so that the table checks a transaction's guards by the node's rule. The map type
    /// the wire's tables use: another would cost the wasm its own tree code. A key in
    /// `kv_unknown` holds an empty value and index 0, and reads as absent.
    pub kv: BTreeMap<String, Versioned>,
    /// Keys that arrived in an installed snapshot, whose values the event stream does not carry;
    /// sorted. A sorted vector rather than a set: one tree type fewer keeps the wasm smaller.
    pub kv_unknown: Vec<String>,
    /// Client sessions, so the table applies each request once, by the node's own rule.
    pub sessions: omnikv_core::session::Sessions,
    /// Log index up to which `kv` reflects the node's table.
    pub kv_applied_idx: u64,
    /// Some applied entries were not seen (stream joined late, truncated events, gaps): a dump
    /// of the node's table would fix it.
    pub kv_partial: bool,
    /// The node's table holds more keys than the page keeps ([`KV_KEYS_MAX`]). A dump cannot
    /// fix that, so it is not a reason to ask for one.
    pub kv_truncated: bool,
    pub snapshot: Option<SnapshotBlock>,
    pub peers: Vec<PeerStatus>,
    /// The first messages this node holds for each held peer, oldest first, as its last
    /// held-messages event listed them.
    pub held_heads: Vec<(NodeId, Vec<omnikv_core::event::MessageInfo>)>,
    pub data_dir: String,
    pub pid: Option<u32>,
    pub started_at_ms: u64,
    pub ws: String,
    pub peer_addr: String,
    pub last_seq: u64,
    /// Message and client events the node counted instead of sending (it was busy).
    pub details_sampled: u64,
    pub last_event_ms: u64,
    /// While recovering: the decided index the node must reach to be caught up.
    pub recovering_target_idx: Option<u64>,
    /// The node's own digest of its table and the applied index it is for, from its status.
    pub digest: Option<(omnikv_core::digest::TableDigest, u64)>,
}

impl NodeModel {
    pub fn new(id: NodeId) -> NodeModel {
        NodeModel {
            id,
            ..NodeModel::default()
        }
    }

    pub fn state(&self) -> NodeState {
        match self.process {
            None => NodeState::Unknown,
            Some(ProcessState::Down) => NodeState::Down,
            Some(ProcessState::Paused) => NodeState::Paused,
            Some(ProcessState::Up) if self.recovering_target_idx.is_some() => NodeState::Recovering,
            Some(ProcessState::Up) => NodeState::Up,
        }
    }

    /// The role to show: a dead process has none, whatever it said last.
    pub fn shown_role(&self) -> Option<Role> {
        match self.process {
            Some(ProcessState::Down) => None,
            _ => self.role,
        }
    }

    /// Whether the value of `key` is not known (it came in an installed snapshot).
    pub fn value_unknown(&self, key: &str) -> bool {
        self.kv_unknown
            .binary_search_by(|k| k.as_str().cmp(key))
            .is_ok()
    }

    /// The messages held for `peer` that the page knows of, oldest first.
    pub fn held_head(&self, peer: NodeId) -> &[omnikv_core::event::MessageInfo] {
        (self.held_heads.iter())
            .find(|(p, _)| *p == peer)
            .map_or(&[], |(_, head)| head.as_slice())
    }

    pub fn peer(&self, id: NodeId) -> Option<&PeerStatus> {
        self.peers.iter().find(|p| p.id == id)
    }

    pub fn entry_status(&self, index: u64) -> EntryStatus {
        if index < self.applied_idx {
            EntryStatus::Applied
        } else if index < self.decided_idx {
            EntryStatus::Decided
        } else {
            EntryStatus::Accepted
        }
    }
}

/// The nodes by id, in id order: a sorted vector with the few map methods the page uses. A
/// cluster has a handful of nodes, and another tree type would cost the wasm about 10 KB.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeMap(Vec<NodeModel>);

impl NodeMap {
    fn slot(&self, id: NodeId) -> Result<usize, usize> {
        self.0.binary_search_by_key(&id, |n| n.id)
    }

    pub fn get(&self, id: &NodeId) -> Option<&NodeModel> {
        self.slot(*id).ok().map(|k| &self.0[k])
    }

    pub fn get_mut(&mut self, id: &NodeId) -> Option<&mut NodeModel> {
        self.slot(*id).ok().map(|k| &mut self.0[k])
    }

    /// Node `id`, added if it is new.
    pub fn get_or_insert(&mut self, id: NodeId) -> &mut NodeModel {
        let k = match self.slot(id) {
            Ok(k) => k,
            Err(k) => {
                self.0.insert(k, NodeModel::new(id));
                k
            }
        };
        &mut self.0[k]
    }

    pub fn keys(&self) -> impl Iterator<Item = &NodeId> {
        self.0.iter().map(|n| &n.id)
    }

    pub fn values(&self) -> std::slice::Iter<'_, NodeModel> {
        self.0.iter()
    }

    pub fn values_mut(&mut self) -> std::slice::IterMut<'_, NodeModel> {
        self.0.iter_mut()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::ops::Index<&NodeId> for NodeMap {
    type Output = NodeModel;
    fn index(&self, id: &NodeId) -> &NodeModel {
        self.get(id).expect("no such node")
    }
}
