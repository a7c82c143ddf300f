//! Deterministic simulation of OmniKV's consensus-and-apply logic.
//!
//! N OmniPaxos instances run in one thread over a simulated network, driven by a seeded
//! scheduler: every step delivers one message, ticks one node, submits one client request, or
//! injects a fault (crash and restart, a cut or healed link, a broken connection that loses the
//! messages in flight). Each node works like the real one in turns: act, sync storage, send,
//! apply, snapshot; and like the real one it replaces delta snapshots by complete ones before
//! OmniPaxos sees them (the node's own `snapshot_fix`). Storage models durability exactly: a
//! crash in the middle of a turn loses what the turn wrote and the messages it had not sent;
//! what was synced survives.
//!
//! Clients behave as the protocol allows: each opens a session through the log, then pipelines
//! up to [`WINDOW`] requests through random nodes, retrying a request that waited long through
//! another node (same id), so copies of one request are decided in any order.
//!
//! Invariants:
//! - no two different decided entries at one index, on any node, ever (every turn);
//! - every node's KV table equals the table an independent model ([`crate::model`]) gives
//!   for the decided log up to its applied index, and its whole state (sessions included) equals
//!   the sequential fold of that log, which checks snapshots, merges and restarts (every 100
//!   steps, where each check folds the whole log, and at the end);
//! - every snapshot plus decided suffix equals the fold of the decided log (as often);
//! - every request answered ok was applied exactly once: the model applied it first at the
//!   index the answer names, and every read saw the value the model read at its index (at the
//!   end, for every answer);
//! - no request of a client that follows the protocol is refused;
//! - after the faults stop, every node converges to the same decided index and state.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;

use omnikv_core::{
    client::{ClientOp, ClientRequest, ReadMode, SessionClient},
    session::Applied,
    KVCommand, KVSnapshot, NodeId, RequestId,
};

use crate::model::{Model, ModelOutcome};
use omnikv_node::snapshot_fix::{complete_delta_snapshot, decided_prefix};
use omnipaxos::{
    ballot_leader_election::Ballot,
    messages::Message,
    storage::{StopSign, Storage, StorageOp, StorageResult},
    util::LogEntry,
    ClusterConfig, OmniPaxos, ServerConfig,
};
use omnipaxos_storage::memory_storage::MemoryStorage;
use rand::{rngs::StdRng, Rng, SeedableRng};

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: u64,
    /// Steps with faults, before the healing phase.
    pub steps: u64,
    pub snapshot_every: u64,
    /// Replace delta snapshots as the node does. Off only to show the simulation catches the
    /// upstream bug.
    pub snapshot_fix: bool,
}

/// What a run did, for the test's summary line.
#[derive(Debug, Default, Clone, Copy)]
pub struct SimStats {
    pub decided: u64,
    pub acked: u64,
    /// Answers to a request whose copies had been sent to more than one node.
    pub acked_after_retry: u64,
    pub crashes: u64,
    pub cuts: u64,
    pub broken_sessions: u64,
    pub delta_snapshots_completed: u64,
}

/// Storage shared between a node's OmniPaxos and the simulator, which copies it at every sync
/// and restores that copy on a crash.
#[derive(Clone)]
struct SharedStorage(Rc<RefCell<MemoryStorage<KVCommand>>>);

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
    fn get_suffix(&self, from: usize) -> StorageResult<Vec<KVCommand>> {
        self.0.borrow().get_suffix(from)
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

/// The durable part of a node: its OmniPaxos storage and its applied state, as of the last sync.
#[derive(Clone)]
struct Durable {
    log: MemoryStorage<KVCommand>,
    kv: KVSnapshot,
    applied_idx: u64,
}

struct SimNode {
    id: NodeId,
    omni: Option<OmniPaxos<KVCommand, SharedStorage>>,
    disk: SharedStorage,
    synced: Durable,
    kv: KVSnapshot,
    applied_idx: u64,
    /// Requests submitted here and not yet applied here: id -> step submitted.
    pending: BTreeMap<RequestId, u64>,
}

pub struct Sim {
    config: SimConfig,
    rng: StdRng,
    nodes: BTreeMap<NodeId, SimNode>,
    /// FIFO per directed link: one TCP stream.
    links: BTreeMap<(NodeId, NodeId), VecDeque<Message<KVCommand>>>,
    cut: BTreeSet<(NodeId, NodeId)>,
    /// The decided log as first seen decided anywhere.
    decided: Vec<KVCommand>,
    /// The independent model, fed `decided` as it grows.
    model: Model,
    /// Index up to which each node's decided entries were compared with `decided`.
    checked: BTreeMap<NodeId, u64>,
    clients: Vec<SimClient>,
    /// Which client a request's `client` field names: a session id or an opening nonce.
    client_of: BTreeMap<u64, usize>,
    answers: Vec<Answer>,
    step: u64,
    pub stats: SimStats,
}

const CLIENTS: u64 = 4;
const KEYS: u64 = 3;
const RETRY_AFTER_STEPS: u64 = 300;
/// Requests one client keeps in flight.
pub const WINDOW: usize = 4;
/// Opening nonces start here, far from session ids (log indices).
const NONCE_BASE: u64 = 1 << 40;

/// One client, following the protocol with the real client rule ([`SessionClient`]).
#[derive(Default)]
struct SimClient {
    session: SessionClient,
    /// The `open_session` in flight, and the step it was last sent.
    opening: Option<(KVCommand, u64)>,
    /// Requests in flight by `seq`, and the step each was last sent.
    in_flight: BTreeMap<u64, (ClientRequest, u64)>,
    /// Nodes each request in flight was sent to.
    sent_to: BTreeMap<u64, BTreeSet<NodeId>>,
}

/// An answered request, to be checked against the model.
struct Answer {
    id: RequestId,
    is_write: bool,
    index: u64,
    value: Option<String>,
    retried: bool,
}

fn build(id: NodeId, nodes: u64, disk: SharedStorage) -> OmniPaxos<KVCommand, SharedStorage> {
    let server = ServerConfig {
        pid: id,
        election_tick_timeout: 5,
        resend_message_tick_timeout: 20,
        flush_batch_tick_timeout: 1,
        ..ServerConfig::default()
    };
    let cluster = ClusterConfig {
        configuration_id: 1,
        nodes: (1..=nodes).collect(),
        flexible_quorum: None,
    };
    cluster
        .build_for_server(server, disk)
        .expect("valid configuration")
}

impl Sim {
    pub fn new(config: SimConfig) -> Sim {
        let mut nodes = BTreeMap::new();
        for id in 1..=config.nodes {
            let disk = SharedStorage(Rc::new(RefCell::new(MemoryStorage::default())));
            let omni = build(id, config.nodes, disk.clone());
            nodes.insert(
                id,
                SimNode {
                    id,
                    omni: Some(omni),
                    disk,
                    synced: Durable {
                        log: MemoryStorage::default(),
                        kv: KVSnapshot::default(),
                        applied_idx: 0,
                    },
                    kv: KVSnapshot::default(),
                    applied_idx: 0,
                    pending: BTreeMap::new(),
                },
            );
        }
        let mut links = BTreeMap::new();
        for a in 1..=config.nodes {
            for b in 1..=config.nodes {
                if a != b {
                    links.insert((a, b), VecDeque::new());
                }
            }
        }
        Sim {
            rng: StdRng::seed_from_u64(config.seed),
            config,
            nodes,
            links,
            cut: BTreeSet::new(),
            decided: Vec::new(),
            model: Model::default(),
            checked: BTreeMap::new(),
            clients: (0..CLIENTS).map(|_| SimClient::default()).collect(),
            client_of: (0..CLIENTS as usize)
                .map(|c| (NONCE_BASE + c as u64, c))
                .collect(),
            answers: Vec::new(),
            step: 0,
            stats: SimStats::default(),
        }
    }

    fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    fn live(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.omni.is_some())
            .map(|n| n.id)
            .collect()
    }

    /// Runs the faulty phase, then heals and runs until convergence. Panics on any violated
    /// invariant, with the seed and step.
    pub fn run(mut self) -> SimStats {
        for _ in 0..self.config.steps {
            self.step(true);
        }
        // Heal: every node up, every link connected; then run without faults.
        for id in self.ids() {
            if self.nodes[&id].omni.is_none() {
                self.restart(id);
            }
        }
        for (a, b) in std::mem::take(&mut self.cut) {
            self.reconnect(a, b);
        }
        let mut quiet = 0;
        while !self.converged() {
            self.step(false);
            quiet += 1;
            assert!(
                quiet < 50_000,
                "seed {}: no convergence {quiet} steps after healing",
                self.config.seed
            );
        }
        self.check_states();
        self.check_answers();
        self.stats.decided = self.decided.len() as u64;
        self.stats.acked = self.answers.len() as u64;
        self.stats.acked_after_retry = self.answers.iter().filter(|a| a.retried).count() as u64;
        self.stats
    }

    /// Every answered write was applied exactly once, at the index its answer names; every
    /// answered read saw the model's value at its index.
    fn check_answers(&self) {
        let seed = self.config.seed;
        for a in &self.answers {
            if a.is_write {
                assert_eq!(
                    self.model.first_applied(a.id),
                    Some(a.index),
                    "seed {seed}: write {:?} was answered ok at index {} but the model applied it first at {:?}",
                    a.id,
                    a.index,
                    self.model.first_applied(a.id)
                );
            } else {
                assert_eq!(
                    self.model.outcomes.get(a.index as usize),
                    Some(&ModelOutcome::Read(a.value.clone())),
                    "seed {seed}: read {:?} at index {} answered {:?}",
                    a.id,
                    a.index,
                    a.value
                );
            }
        }
    }

    fn converged(&self) -> bool {
        let decided: BTreeSet<usize> = self
            .nodes
            .values()
            .map(|n| n.omni.as_ref().unwrap().get_decided_idx())
            .collect();
        decided.len() == 1
            && self
                .nodes
                .values()
                .all(|n| n.applied_idx as usize == *decided.first().unwrap())
            && self
                .clients
                .iter()
                .all(|c| c.in_flight.is_empty() && c.opening.is_none())
    }

    fn step(&mut self, faults: bool) {
        self.step += 1;
        let roll: f64 = self.rng.gen();
        if faults && roll < 0.02 {
            self.fault();
        } else if roll < 0.55 {
            self.deliver(faults);
        } else if roll < 0.85 {
            let live = self.live();
            if !live.is_empty() {
                let id = live[self.rng.gen_range(0..live.len())];
                self.act(id, |omni| omni.tick(), faults);
            }
        } else {
            self.client(faults);
        }
        if self.step.is_multiple_of(100) {
            self.check_states();
        }
    }

    fn fault(&mut self) {
        let ids = self.ids();
        let id = ids[self.rng.gen_range(0..ids.len())];
        match self.rng.gen_range(0..5) {
            0 => {
                if self.nodes[&id].omni.is_some() {
                    self.crash(id);
                } else {
                    self.restart(id);
                }
            }
            1 | 2 => {
                let peer = ids[self.rng.gen_range(0..ids.len())];
                if peer != id {
                    let l = (id.min(peer), id.max(peer));
                    if self.cut.remove(&l) {
                        self.reconnect(l.0, l.1);
                    } else {
                        self.cut.insert(l);
                        self.stats.cuts += 1;
                        self.links.get_mut(&(l.0, l.1)).unwrap().clear();
                        self.links.get_mut(&(l.1, l.0)).unwrap().clear();
                    }
                }
            }
            _ => {
                // A connection breaks: what was in flight on it is lost; both ends see it.
                let peer = ids[self.rng.gen_range(0..ids.len())];
                if peer != id {
                    self.stats.broken_sessions += 1;
                    self.links.get_mut(&(id, peer)).unwrap().clear();
                    self.reconnect(id, peer);
                }
            }
        }
    }

    fn reconnect(&mut self, a: NodeId, b: NodeId) {
        for (x, y) in [(a, b), (b, a)] {
            if self.nodes[&x].omni.is_some() {
                self.act(x, |omni| omni.reconnected(y), false);
            }
        }
    }

    /// A crash at an arbitrary point of a turn: everything since the last sync is lost.
    fn crash(&mut self, id: NodeId) {
        self.stats.crashes += 1;
        let node = self.nodes.get_mut(&id).unwrap();
        node.omni = None;
        node.pending.clear();
        for ((from, to), q) in self.links.iter_mut() {
            if *from == id || *to == id {
                q.clear();
            }
        }
        self.checked.remove(&id);
    }

    fn restart(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        *node.disk.0.borrow_mut() = node.synced.log.clone();
        node.kv = node.synced.kv.clone();
        node.applied_idx = node.synced.applied_idx;
        node.omni = Some(build(id, self.config.nodes, node.disk.clone()));
        for peer in self.ids() {
            if peer != id
                && self.nodes[&peer].omni.is_some()
                && !self.cut.contains(&(id.min(peer), id.max(peer)))
            {
                self.act(peer, |omni| omni.reconnected(id), false);
            }
        }
    }

    fn deliver(&mut self, faults: bool) {
        let ready: Vec<(NodeId, NodeId)> = self
            .links
            .iter()
            .filter(|((_, to), q)| !q.is_empty() && self.nodes[to].omni.is_some())
            .map(|(&k, _)| k)
            .collect();
        if ready.is_empty() {
            return;
        }
        let (from, to) = ready[self.rng.gen_range(0..ready.len())];
        let mut msg = self
            .links
            .get_mut(&(from, to))
            .unwrap()
            .pop_front()
            .unwrap();
        let node = self.nodes.get_mut(&to).unwrap();
        let omni = node.omni.as_mut().unwrap();
        if self.config.snapshot_fix && complete_delta_snapshot(omni, &mut msg) {
            self.stats.delta_snapshots_completed += 1;
        }
        self.act(to, move |omni| omni.handle_incoming(msg), faults);
    }

    fn client(&mut self, faults: bool) {
        let c = self.rng.gen_range(0..CLIENTS) as usize;
        let live = self.live();
        if live.is_empty() {
            return;
        }
        let target = live[self.rng.gen_range(0..live.len())];
        let step = self.step;
        let stale = |sent: u64| step - sent > RETRY_AFTER_STEPS;
        let client = &mut self.clients[c];
        let cmd = if client.session.session.is_none() {
            match &client.opening {
                Some((cmd, sent)) if stale(*sent) => cmd.clone(),
                Some(_) => return,
                None => SessionClient::open_request(NONCE_BASE + c as u64)
                    .to_command()
                    .expect("opening is logged"),
            }
        } else if let Some((req, _)) = client.in_flight.values().find(|(_, sent)| stale(*sent)) {
            // Retry with the same id, maybe through another node.
            client
                .session
                .retry(req)
                .to_command()
                .expect("simulated requests are logged")
        } else if client.in_flight.len() < WINDOW && client.session.can_send() && faults {
            let key = format!("k{}", self.rng.gen_range(0..KEYS));
            let req = match self.rng.gen_range(0..10) {
                0..=5 => client.session.write_request(ClientOp::Put {
                    value: format!("{c}-{}", self.rng.gen::<u32>()),
                    key,
                }),
                6..=7 => client.session.write_request(ClientOp::Delete { key }),
                _ => client.session.read_request(key, ReadMode::Linearizable),
            };
            client.in_flight.insert(req.id.seq, (req.clone(), step));
            req.to_command().expect("simulated requests are logged")
        } else {
            return;
        };
        if let KVCommand::OpenSession { .. } = cmd {
            client.opening = Some((cmd.clone(), step));
        } else if let Some((_, sent)) = client.in_flight.get_mut(&cmd.id().seq) {
            *sent = step;
            client
                .sent_to
                .entry(cmd.id().seq)
                .or_default()
                .insert(target);
        }
        self.nodes
            .get_mut(&target)
            .unwrap()
            .pending
            .insert(cmd.id(), step);
        self.act(
            target,
            move |omni| {
                let _ = omni.append(cmd);
            },
            faults,
        );
    }

    /// Node `id` answers the request `cmd` (pending there), applied at `index` with `applied`.
    fn answer(&mut self, cmd: &KVCommand, index: u64, applied: Applied, value: Option<String>) {
        let id = cmd.id();
        let Some(&c) = self.client_of.get(&id.client) else {
            return;
        };
        let client = &mut self.clients[c];
        match applied {
            Applied::Opened { .. } => {
                if client.opening.as_ref().is_some_and(|(o, _)| o.id() == id) {
                    client.opening = None;
                    client.session.opened(index);
                    self.client_of.insert(index, c);
                }
            }
            Applied::Refused(r) => {
                // Copies of requests already answered may be refused once forgotten.
                assert!(
                    !client.in_flight.contains_key(&id.seq),
                    "seed {} step {}: request {id:?} refused although its client follows the protocol: {r}",
                    self.config.seed,
                    self.step
                );
            }
            Applied::Written | Applied::Duplicate { .. } | Applied::Read => {
                if client.in_flight.remove(&id.seq).is_none() {
                    return; // already answered through another node
                }
                client.session.settled(id.seq);
                let retried = client.sent_to.remove(&id.seq).is_some_and(|n| n.len() > 1);
                // A copy is answered with the index of the first.
                let index = match applied {
                    Applied::Duplicate { index: first } => first,
                    _ => index,
                };
                self.answers.push(Answer {
                    id,
                    is_write: cmd.mutation().is_some(),
                    index,
                    value,
                    retried,
                });
            }
        }
    }

    /// One turn of node `id`: the action, then (unless it crashes mid-turn) sync, send, apply,
    /// snapshot, and the invariant checks.
    fn act(
        &mut self,
        id: NodeId,
        action: impl FnOnce(&mut OmniPaxos<KVCommand, SharedStorage>),
        faults: bool,
    ) {
        let node = self.nodes.get_mut(&id).unwrap();
        let Some(omni) = node.omni.as_mut() else {
            return;
        };
        action(omni);
        if faults && self.rng.gen_bool(0.002) {
            self.crash(id);
            return;
        }
        let node = self.nodes.get_mut(&id).unwrap();
        let omni = node.omni.as_mut().unwrap();
        node.synced.log = node.disk.0.borrow().clone();
        let mut out = Vec::new();
        omni.take_outgoing_messages(&mut out);
        for msg in out {
            let to = msg.get_receiver();
            let l = (id.min(to), id.max(to));
            if !self.cut.contains(&l) && self.nodes[&to].omni.is_some() {
                self.links.get_mut(&(id, to)).unwrap().push_back(msg);
            }
        }
        self.check_decided(id);
        self.apply(id);
        let node = self.nodes.get_mut(&id).unwrap();
        let omni = node.omni.as_mut().unwrap();
        let every = self.config.snapshot_every;
        let target = node.applied_idx / every * every;
        if target > omni.get_compacted_idx() as u64 {
            omni.snapshot(Some(target as usize), true)
                .expect("snapshot of an applied prefix");
        }
        node.synced = Durable {
            log: node.disk.0.borrow().clone(),
            kv: node.kv.clone(),
            applied_idx: node.applied_idx,
        };
    }

    fn check_decided(&mut self, id: NodeId) {
        let omni = self.nodes[&id].omni.as_ref().unwrap();
        let decided_idx = omni.get_decided_idx() as u64;
        let from = self
            .checked
            .get(&id)
            .copied()
            .unwrap_or(0)
            .max(omni.get_compacted_idx() as u64);
        if from >= decided_idx {
            return;
        }
        let entries = omni
            .read_entries(from as usize..decided_idx as usize)
            .unwrap_or_default();
        let mut idx = from;
        for e in entries {
            match e {
                LogEntry::Snapshotted(s) => idx = s.trimmed_idx as u64,
                LogEntry::Decided(cmd) => {
                    match self.decided.get(idx as usize) {
                        Some(known) => assert_eq!(
                            known, &cmd,
                            "seed {} step {}: node {id} decided a different entry at index {idx}",
                            self.config.seed, self.step
                        ),
                        None => {
                            assert_eq!(
                                idx as usize,
                                self.decided.len(),
                                "seed {}: decided log gap at {idx}",
                                self.config.seed
                            );
                            self.model.push(&cmd);
                            self.decided.push(cmd);
                        }
                    }
                    idx += 1;
                }
                other => panic!(
                    "seed {}: unexpected {other:?} in the decided range",
                    self.config.seed
                ),
            }
        }
        self.checked.insert(id, decided_idx);
    }

    fn apply(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        let omni = node.omni.as_ref().unwrap();
        let decided_idx = omni.get_decided_idx() as u64;
        if node.applied_idx >= decided_idx {
            return;
        }
        let mut answers = Vec::new();
        for e in omni
            .read_entries(node.applied_idx as usize..decided_idx as usize)
            .unwrap_or_default()
        {
            match e {
                LogEntry::Snapshotted(s) => {
                    node.kv = s.snapshot.resolved();
                    node.kv.len = s.trimmed_idx as u64;
                    node.applied_idx = s.trimmed_idx as u64;
                }
                LogEntry::Decided(cmd) => {
                    let index = node.applied_idx;
                    assert_eq!(
                        node.kv.len, index,
                        "seed {}: applied state out of step",
                        self.config.seed
                    );
                    let applied = node.kv.push(&cmd);
                    node.applied_idx += 1;
                    if node.pending.remove(&cmd.id()).is_some() {
                        let value = match applied {
                            Applied::Read => node.kv.snapshotted.get(cmd.key()).cloned(),
                            _ => None,
                        };
                        answers.push((cmd, index, applied, value));
                    }
                }
                other => panic!(
                    "seed {}: unexpected {other:?} while applying",
                    self.config.seed
                ),
            }
        }
        for (cmd, index, applied, value) in answers {
            self.answer(&cmd, index, applied, value);
        }
    }

    fn fold(&self, upto: u64) -> KVSnapshot {
        let mut s = KVSnapshot::default();
        for cmd in &self.decided[..upto as usize] {
            s.push(cmd);
        }
        s
    }

    fn check_states(&self) {
        for node in self.nodes.values() {
            let Some(omni) = &node.omni else { continue };
            assert_eq!(
                node.kv.snapshotted,
                Model::table_after(&self.decided, node.applied_idx),
                "seed {} step {}: node {} KV table differs from the model's",
                self.config.seed,
                self.step,
                node.id
            );
            assert_eq!(
                node.kv,
                self.fold(node.applied_idx),
                "seed {} step {}: node {} applied state differs from the fold of the decided log",
                self.config.seed,
                self.step,
                node.id
            );
            let decided_idx = omni.get_decided_idx() as u64;
            assert_eq!(
                decided_prefix(omni),
                self.fold(decided_idx),
                "seed {} step {}: node {} snapshot + suffix differs from the decided log",
                self.config.seed,
                self.step,
                node.id
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_seed_runs_to_convergence() {
        let stats = Sim::new(SimConfig {
            seed: 1,
            nodes: 3,
            steps: 3000,
            snapshot_every: 10,
            snapshot_fix: true,
        })
        .run();
        assert!(stats.decided > 20, "{stats:?}");
    }
}
