//! What the replica needs from the machine it runs on, as traits: the node process implements
//! them over RocksDB, TCP and the event bus; the simulation over memory and a simulated network.

use std::collections::BTreeMap;

use omnikv_core::{
    digest::TableDigest,
    event::{NodeEvent, NodeStatus, PeerStatus},
    scan::{ScanPage, ScanRange},
    session::{Applied, Sessions, Versioned},
    KVCommand, KVSnapshot, NodeId,
};
use omnipaxos::storage::Storage;

use crate::events::{Detail, EventPublisher};
use crate::storage::{ApplyBatch, CompactionLease, KvTable, SnapshotSummary, StorageError};
use crate::transport::Transport;

/// The types one kind of host plugs into a [`super::Replica`].
pub trait Platform {
    /// OmniPaxos' log and Paxos state.
    type Log: Storage<KVCommand>;
    /// The applied state.
    type Table: StateMachine;
    /// How a local compaction is run (the node lends its stored snapshot; see `paxos_log`).
    type Compaction: Compaction;
    /// Where a client reply goes.
    type Reply;
    /// Where an admin reply goes.
    type AdminReply;
}

/// The applied state: the KV table and the client sessions, with its applied index.
pub trait StateMachine {
    type Batch<'a>: ApplyWrites
    where
        Self: 'a;
    fn applied_idx(&self) -> Result<u64, StorageError>;
    fn get(&self, key: &str) -> Result<Option<Versioned>, StorageError>;
    /// One page of a scan, in key order (see `omnikv_core::scan`).
    fn scan(&self, range: &ScanRange) -> Result<ScanPage, StorageError>;
    /// The whole table (for dumps), or `None` if it holds more than `keys_max` keys.
    fn entries(&self, keys_max: usize)
        -> Result<Option<BTreeMap<String, Versioned>>, StorageError>;
    fn sessions(&self) -> &Sessions;
    /// Live keys, as committed.
    fn key_count(&self) -> u64;
    /// The last digest of the table (`omnikv_core::digest`) and the applied index it is at.
    fn digest(&self) -> Option<(TableDigest, u64)>;
    /// Computes the digest again if someone watches and it is due; called once a turn.
    fn refresh_digest(&mut self, applied_idx: u64, watched: bool);
    /// A run of applications committed together with the new applied index.
    fn batch(&mut self) -> Self::Batch<'_>;
}

/// One atomic run of applications.
pub trait ApplyWrites {
    fn apply(&mut self, cmd: &KVCommand, index: u64) -> Applied;
    fn read(&self, key: &str) -> Result<Option<Versioned>, StorageError>;
    /// Replaces the whole state by a complete (resolved) snapshot.
    fn install(&mut self, snapshot: &KVSnapshot);
    fn commit(self, applied_idx: u64) -> Result<(), StorageError>;
}

/// Runs OmniPaxos' local compaction.
pub trait Compaction {
    fn run<R>(&self, compaction: impl FnOnce() -> R) -> R;
    /// The snapshot the last compaction stored, in brief, if it reports one.
    fn take_stored(&self) -> Option<SnapshotSummary>;
}

/// The peer links as the replica sees them.
pub trait Links {
    /// Not cut by the operator.
    fn link_enabled(&self, peer: NodeId) -> bool;
    /// Neither cut nor down.
    fn link_up(&self, peer: NodeId) -> bool;
    /// Cuts or heals the link; false if `peer` is not a peer.
    fn set_link(&mut self, peer: NodeId, enabled: bool) -> bool;
    fn peers(&self) -> Vec<PeerStatus>;
    /// Holds or releases the messages to `peer`; false if it is not a peer or this host
    /// cannot hold messages (the simulation's network does its own faults).
    fn hold(&mut self, _peer: NodeId, _held: bool) -> bool {
        false
    }
    /// Delivers up to `count` held messages; `None` if the link is not held.
    fn deliver(&mut self, _peer: NodeId, _count: u32) -> Option<u32> {
        None
    }
    /// Drops the first held message and breaks the stream; `None` if the link is not held.
    fn drop_held(&mut self, _peer: NodeId) -> Option<bool> {
        None
    }
}

/// Where the replica's events go.
pub trait EventSink {
    /// Someone is watching: events are worth building.
    fn active(&self) -> bool;
    fn emit(&mut self, event: NodeEvent);
    /// Whether a detail event of this kind fits the budget now.
    fn wants_detail(&mut self, kind: Detail) -> bool;
    /// A detail event of this kind was left out.
    fn skip_detail(&mut self, kind: Detail);
    /// Whether the next applied event may carry its commands (they are gathered only then).
    fn wants_applied_commands(&mut self) -> bool;
    fn status(&mut self, status: NodeStatus);
}

/// The host's links and event sink, lent to the replica for one call.
pub struct Io<'a> {
    pub links: &'a mut dyn Links,
    pub events: &'a mut dyn EventSink,
}

impl StateMachine for KvTable {
    type Batch<'a> = ApplyBatch<'a>;
    fn applied_idx(&self) -> Result<u64, StorageError> {
        KvTable::applied_idx(self)
    }
    fn get(&self, key: &str) -> Result<Option<Versioned>, StorageError> {
        KvTable::get(self, key)
    }
    fn scan(&self, range: &ScanRange) -> Result<ScanPage, StorageError> {
        KvTable::scan(self, range)
    }
    fn entries(
        &self,
        keys_max: usize,
    ) -> Result<Option<BTreeMap<String, Versioned>>, StorageError> {
        KvTable::entries(self, keys_max)
    }
    fn sessions(&self) -> &Sessions {
        KvTable::sessions(self)
    }
    fn key_count(&self) -> u64 {
        KvTable::key_count(self)
    }
    fn digest(&self) -> Option<(TableDigest, u64)> {
        KvTable::digest(self)
    }
    fn refresh_digest(&mut self, applied_idx: u64, watched: bool) {
        KvTable::refresh_digest(self, applied_idx, watched)
    }
    fn batch(&mut self) -> ApplyBatch<'_> {
        KvTable::batch(self)
    }
}

impl ApplyWrites for ApplyBatch<'_> {
    fn apply(&mut self, cmd: &KVCommand, index: u64) -> Applied {
        ApplyBatch::apply(self, cmd, index)
    }
    fn read(&self, key: &str) -> Result<Option<Versioned>, StorageError> {
        ApplyBatch::read(self, key)
    }
    fn install(&mut self, snapshot: &KVSnapshot) {
        ApplyBatch::install(self, snapshot)
    }
    fn commit(self, applied_idx: u64) -> Result<(), StorageError> {
        ApplyBatch::commit(self, applied_idx)
    }
}

impl Compaction for CompactionLease {
    fn run<R>(&self, compaction: impl FnOnce() -> R) -> R {
        CompactionLease::run(self, compaction)
    }
    fn take_stored(&self) -> Option<SnapshotSummary> {
        CompactionLease::take_stored(self)
    }
}

impl Links for Transport {
    fn link_enabled(&self, peer: NodeId) -> bool {
        Transport::link_enabled(self, peer)
    }
    fn link_up(&self, peer: NodeId) -> bool {
        Transport::link_up(self, peer)
    }
    fn set_link(&mut self, peer: NodeId, enabled: bool) -> bool {
        Transport::set_link(self, peer, enabled)
    }
    fn peers(&self) -> Vec<PeerStatus> {
        Transport::peers(self)
            .map(|(id, connected, link_enabled)| {
                let (held, waiting) = Transport::held(self, id);
                PeerStatus {
                    id,
                    connected,
                    link_enabled,
                    held,
                    waiting,
                }
            })
            .collect()
    }
    fn hold(&mut self, peer: NodeId, held: bool) -> bool {
        Transport::hold(self, peer, held)
    }
    fn deliver(&mut self, peer: NodeId, count: u32) -> Option<u32> {
        Transport::deliver(self, peer, count)
    }
    fn drop_held(&mut self, peer: NodeId) -> Option<bool> {
        Transport::drop_held(self, peer)
    }
}

impl EventSink for EventPublisher {
    fn active(&self) -> bool {
        EventPublisher::active(self)
    }
    fn emit(&mut self, event: NodeEvent) {
        EventPublisher::emit(self, event)
    }
    fn wants_detail(&mut self, kind: Detail) -> bool {
        EventPublisher::wants_detail(self, kind)
    }
    fn skip_detail(&mut self, kind: Detail) {
        EventPublisher::skip_detail(self, kind)
    }
    fn wants_applied_commands(&mut self) -> bool {
        EventPublisher::wants_applied_commands(self)
    }
    fn status(&mut self, status: NodeStatus) {
        EventPublisher::status(self, status)
    }
}

/// An event sink for hosts nobody watches (the simulation).
pub struct NoEvents;

impl EventSink for NoEvents {
    fn active(&self) -> bool {
        false
    }
    fn emit(&mut self, _: NodeEvent) {}
    fn wants_detail(&mut self, _: Detail) -> bool {
        false
    }
    fn skip_detail(&mut self, _: Detail) {}
    fn wants_applied_commands(&mut self) -> bool {
        false
    }
    fn status(&mut self, _: NodeStatus) {}
}
