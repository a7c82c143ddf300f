//! The simulation's host for the node's real [`Replica`]: memory storage that the simulator can
//! snapshot at every sync and restore on a crash, an in-memory state machine, and links that
//! follow the simulated network.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use omnikv_core::{
    digest::TableDigest,
    event::PeerStatus,
    scan::{self, ScanEntry, ScanPage, ScanRange},
    session::{self, Applied, Sessions, Versioned},
    KVCommand, KVSnapshot, NodeId,
};
use omnikv_node::replica::ports::{ApplyWrites, Compaction, Links, Platform, StateMachine};
use omnikv_node::storage::{SnapshotSummary, StorageError};
use omnipaxos::{
    ballot_leader_election::Ballot,
    storage::{StopSign, Storage, StorageOp, StorageResult},
};
use omnipaxos_storage::memory_storage::MemoryStorage;

pub struct SimPlatform;

impl Platform for SimPlatform {
    type Log = SharedStorage;
    type Table = SimTable;
    type Compaction = PlainCompaction;
    /// Replies carry their request's id; the simulator routes them to the client.
    type Reply = ();
    type AdminReply = ();
}

/// Storage shared between a node's OmniPaxos and the simulator, which copies it at every sync
/// and restores that copy on a crash.
#[derive(Clone)]
pub struct SharedStorage(pub Rc<RefCell<MemoryStorage<KVCommand>>>);

impl Storage<KVCommand> for SharedStorage {
    fn write_atomically(&mut self, ops: Vec<StorageOp<KVCommand>>) -> StorageResult<()> {
        self.0.borrow_mut().write_atomically(ops)
    }
    fn append_entry(&mut self, entry: KVCommand) -> StorageResult<()> {
        self.0.borrow_mut().append_entry(entry)
    }
    fn append_entries(&mut self, entries: Vec<KVCommand>) -> StorageResult<()> {
        self.0.borrow_mut().append_entries(entries)
    }
    fn append_on_prefix(&mut self, from_idx: usize, entries: Vec<KVCommand>) -> StorageResult<()> {
        self.0.borrow_mut().append_on_prefix(from_idx, entries)
    }
    fn set_promise(&mut self, n_prom: Ballot) -> StorageResult<()> {
        self.0.borrow_mut().set_promise(n_prom)
    }
    fn set_decided_idx(&mut self, ld: usize) -> StorageResult<()> {
        self.0.borrow_mut().set_decided_idx(ld)
    }
    fn get_decided_idx(&self) -> StorageResult<usize> {
        self.0.borrow().get_decided_idx()
    }
    fn set_accepted_round(&mut self, na: Ballot) -> StorageResult<()> {
        self.0.borrow_mut().set_accepted_round(na)
    }
    fn get_accepted_round(&self) -> StorageResult<Option<Ballot>> {
        self.0.borrow().get_accepted_round()
    }
    fn get_entries(&self, from: usize, to: usize) -> StorageResult<Vec<KVCommand>> {
        self.0.borrow().get_entries(from, to)
    }
    fn get_log_len(&self) -> StorageResult<usize> {
        self.0.borrow().get_log_len()
    }
    /// From the compacted prefix on, as the node's `PaxosLog` answers: OmniPaxos asks for a
    /// suffix from below it when it syncs a follower that is further behind, and
    /// `MemoryStorage` would underflow.
    fn get_suffix(&self, from: usize) -> StorageResult<Vec<KVCommand>> {
        let storage = self.0.borrow();
        storage.get_suffix(from.max(storage.get_compacted_idx()?))
    }
    fn get_promise(&self) -> StorageResult<Option<Ballot>> {
        self.0.borrow().get_promise()
    }
    fn set_stopsign(&mut self, s: Option<StopSign>) -> StorageResult<()> {
        self.0.borrow_mut().set_stopsign(s)
    }
    fn get_stopsign(&self) -> StorageResult<Option<StopSign>> {
        self.0.borrow().get_stopsign()
    }
    fn trim(&mut self, idx: usize) -> StorageResult<()> {
        self.0.borrow_mut().trim(idx)
    }
    fn set_compacted_idx(&mut self, idx: usize) -> StorageResult<()> {
        self.0.borrow_mut().set_compacted_idx(idx)
    }
    fn get_compacted_idx(&self) -> StorageResult<usize> {
        self.0.borrow().get_compacted_idx()
    }
    fn set_snapshot(&mut self, snapshot: Option<KVSnapshot>) -> StorageResult<()> {
        self.0.borrow_mut().set_snapshot(snapshot)
    }
    fn get_snapshot(&self) -> StorageResult<Option<KVSnapshot>> {
        self.0.borrow().get_snapshot()
    }
}

/// The applied state in memory. A batch applies in place: nothing here can fail half-way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimTable {
    pub kv: BTreeMap<String, Versioned>,
    pub sessions: Sessions,
    pub applied_idx: u64,
}

impl StateMachine for SimTable {
    type Batch<'a> = &'a mut SimTable;
    fn applied_idx(&self) -> Result<u64, StorageError> {
        Ok(self.applied_idx)
    }
    fn get(&self, key: &str) -> Result<Option<Versioned>, StorageError> {
        Ok(self.kv.get(key).cloned())
    }
    fn key_count(&self) -> u64 {
        self.kv.len() as u64
    }
    fn scan(&self, range: &ScanRange) -> Result<ScanPage, StorageError> {
        // The node's page rule over the ordered map, as RocksDB's iterator feeds it.
        let from = String::from_utf8_lossy(range.seek()).into_owned();
        let entries = self.kv.range(from..).map(|(k, v)| {
            Ok(ScanEntry {
                key: k.clone(),
                value: v.value.clone(),
                mod_index: v.mod_index,
            })
        });
        scan::page(range, entries)
    }
    fn entries(
        &self,
        keys_max: usize,
    ) -> Result<Option<BTreeMap<String, Versioned>>, StorageError> {
        Ok((self.kv.len() <= keys_max).then(|| self.kv.clone()))
    }
    fn sessions(&self) -> &Sessions {
        &self.sessions
    }
    /// Computed whole: simulated tables are small.
    fn digest(&self) -> Option<(TableDigest, u64)> {
        Some((TableDigest::of(&self.kv), self.applied_idx))
    }
    fn refresh_digest(&mut self, _applied_idx: u64, _watched: bool) {}
    fn batch(&mut self) -> &mut SimTable {
        self
    }
}

impl ApplyWrites for &mut SimTable {
    fn apply(&mut self, cmd: &KVCommand, index: u64) -> Applied {
        session::apply(&mut self.sessions, &mut self.kv, cmd, index)
    }
    fn read(&self, key: &str) -> Result<Option<Versioned>, StorageError> {
        Ok(self.kv.get(key).cloned())
    }
    fn install(&mut self, snapshot: &KVSnapshot) {
        self.kv = snapshot.snapshotted.clone();
        self.sessions = snapshot.sessions.clone();
    }
    fn commit(self, applied_idx: u64) -> Result<(), StorageError> {
        self.applied_idx = applied_idx;
        Ok(())
    }
}

/// Compaction without the node's snapshot lending (a RocksDB optimisation covered by its own
/// tests in `paxos_log`).
pub struct PlainCompaction;

impl Compaction for PlainCompaction {
    fn run<R>(&self, compaction: impl FnOnce() -> R) -> R {
        compaction()
    }
    fn take_stored(&self) -> Option<SnapshotSummary> {
        None
    }
}

/// One node's view of the simulated network.
pub struct SimLinks<'a> {
    pub me: NodeId,
    pub peers: &'a [NodeId],
    pub cut: &'a BTreeSet<(NodeId, NodeId)>,
    pub alive: &'a BTreeSet<NodeId>,
}

impl SimLinks<'_> {
    fn pair(&self, peer: NodeId) -> (NodeId, NodeId) {
        (self.me.min(peer), self.me.max(peer))
    }
}

impl Links for SimLinks<'_> {
    fn link_enabled(&self, peer: NodeId) -> bool {
        !self.cut.contains(&self.pair(peer))
    }
    fn link_up(&self, peer: NodeId) -> bool {
        self.link_enabled(peer) && self.alive.contains(&peer)
    }
    fn set_link(&mut self, peer: NodeId, _: bool) -> bool {
        // The simulator has already cut or healed the link in its network.
        self.peers.contains(&peer)
    }
    fn peers(&self) -> Vec<PeerStatus> {
        self.peers
            .iter()
            .map(|&id| PeerStatus {
                id,
                connected: self.link_up(id),
                link_enabled: self.link_enabled(id),
                held: false,
                waiting: 0,
            })
            .collect()
    }
}
