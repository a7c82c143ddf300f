//! Deterministic simulation of OmniKV nodes: the node's real turn ([`Replica`]) over memory.
//!
//! N replicas run in one thread over a simulated network, driven by a seeded scheduler: every
//! step delivers one message, ticks one node, lets one client act, or injects a fault (crash
//! and restart, a cut or healed link, a broken connection that loses the messages in flight).
//! Each node's turn is the node process's turn, the same code: `Replica::handle`, then the
//! host's sync (with `Replica::apply_during_sync` before it at even steps, after it at odd ones,
//! as the node's fsync may or may not keep the apply's writes), then `Replica::finish_turn` and
//! the release of its messages and replies.
//!
//! Storage models power loss: what a node wrote is durable only once its turn synced it
//! (OmniPaxos' log and state, and the applied table, together, as one RocksDB WAL would keep
//! them). A crash can strike anywhere in a turn: between two of the messages it sends before
//! the sync (a leader's accepts), before the sync, after it, between two sends, before the
//! replies. Half the crashes let the messages the node had sent reach their peers (they had
//! left the machine), so a peer can act on a message whose sender then lost what it wrote. With [`SimConfig::sync`] off nothing becomes durable, as with a node
//! that never fsyncs and loses power, and the simulation must catch it.
//!
//! Three options, off in the standard runs so that their seeds stay as they were, each model
//! what the real transport does and was found to matter: a restarted node's links come up one
//! by one at later steps (`staggered_link_ups`); what a peer had queued for a node that
//! crashed reaches its next run (`queued_outlive_crash`); a leader's sync reaches a follower
//! again behind later messages, as an answer to an older promise would (`sync_replays`).
//!
//! Clients follow the protocol ([`clients`]): sessions, pipelining, retries through other
//! nodes, so copies of one request are decided in any order.
//!
//! Invariants:
//! - no two different decided entries at one index, on any node, ever (every turn);
//! - every answer is right when it arrives: a write was first applied, by an independent model
//!   ([`crate::model`]), at the index its answer names; a read saw the model's value there
//!   (every reply);
//! - every node's table equals the model's table for the decided log up to its applied index,
//!   its whole state (sessions included) equals the sequential fold of that log, and its
//!   snapshot plus decided suffix equals the fold of the decided log (every 100 steps, because
//!   each check folds the whole log, and at the end);
//! - no request of a client that follows the protocol is refused;
//! - after the faults stop, every node converges to the same decided index and state.

mod clients;
pub mod platform;
mod tentative;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;

use omnikv_core::{peer::ReadIndexMsg, KVCommand, KVSnapshot, NodeId};
use omnikv_node::input::Input;
use omnikv_node::replica::{
    ports::NoEvents, Effects, Io, ReleaseBeforeSync, Replica, ReplicaConfig,
};
use omnikv_node::snapshot_fix::{carries_delta_snapshot, decided_prefix};
use omnipaxos::{
    messages::{
        sequence_paxos::{PaxosMessage, PaxosMsg},
        Message,
    },
    util::LogEntry,
    ClusterConfig, OmniPaxos, ServerConfig,
};
use omnipaxos_storage::memory_storage::MemoryStorage;
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::model::Model;
use clients::Clients;
pub use clients::WINDOW;
use platform::{PlainCompaction, SharedStorage, SimLinks, SimPlatform, SimTable};

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: u64,
    /// Steps with faults, before the healing phase.
    pub steps: u64,
    pub snapshot_every: u64,
    pub log_keep_entries: u64,
    /// Replace delta snapshots as the node does. Off only to show the simulation catches the
    /// upstream bug.
    pub snapshot_fix: bool,
    /// Sync each turn before releasing its messages and replies, as the node does. Off only to
    /// show the simulation catches a node whose writes never become durable (a node without
    /// fsync that loses power).
    pub sync: bool,
    /// Which messages a turn sends before its sync: as the node does, or, only to show the
    /// simulation catches it, every message.
    pub release_before_sync: ReleaseBeforeSync,
    /// Whether a node stuck on its own ballot asks for a higher one, as the node does. Off only
    /// to show the simulation catches the stall.
    pub own_ballot_watch: bool,
    /// Whether a follower that receives a `Prepare` or an `AcceptSync` of its ballot while
    /// already accepting asks to be synced again, as the node does. Off only to show what it
    /// prevents.
    pub late_sync_resync: bool,
    /// Whether a node drops an `AcceptSync` built for an older promise of its own, as the node
    /// does. Off only to show what it prevents.
    pub drop_stale_syncs: bool,
    /// Whether a leader confirms that it still leads before serving a linearizable read, as
    /// the node does. Off only to show the simulation catches the stale reads.
    pub read_probe: bool,
    /// Chance that a turn of the faulty phase crashes at each of its crash points.
    pub crash_point_chance: f64,
    /// Whether a restarted node's links come up one by one at later steps, as the real
    /// transport's streams connect, rather than all at its restart. Off in the standard runs,
    /// whose seeds stay as they were.
    pub staggered_link_ups: bool,
    /// Whether what a peer had queued for a node that crashes is, half the time, kept and
    /// delivered to the node's next run, as the real transport's per-peer queue does (it
    /// outlives the stream). Off in the standard runs, whose seeds stay as they were.
    pub queued_outlive_crash: bool,
    /// Whether each run of a node numbers its read-index requests from a number drawn for that
    /// run, as the node does. Off (every run from 0) only to show the stale reads it prevents.
    pub read_seq_per_run: bool,
    /// Whether a leader's `AcceptSync` is, now and then, delivered once more after the messages
    /// sent behind it: a sync built for a promise the follower has since replaced, as a leader
    /// answering a repeated promise sends one. Off in the standard runs.
    pub sync_replays: bool,
    /// Whether nodes keep handling inputs while an fsync runs (`Replica::step`), each fsync
    /// keeping what was written when it started and ending at a later step, rather than turns
    /// that end with their fsync.
    pub overlap: bool,
    /// Whether now and then several clients' requests reach a node in one turn, so that the
    /// node proposes them as one batch. Off in the standard configuration, so that the runs
    /// showing that a broken variant fails keep their seeds; the invariant runs turn it on.
    pub clients_together: bool,
}

impl SimConfig {
    /// The configuration of the CI runs, for `seed` and `nodes`.
    pub fn standard(seed: u64, nodes: u64) -> SimConfig {
        SimConfig {
            seed,
            nodes,
            steps: 3000,
            snapshot_every: 10,
            log_keep_entries: 0,
            snapshot_fix: true,
            sync: true,
            release_before_sync: ReleaseBeforeSync::LeaderAccepts,
            own_ballot_watch: true,
            late_sync_resync: true,
            drop_stale_syncs: true,
            read_probe: true,
            crash_point_chance: 0.0007,
            staggered_link_ups: false,
            queued_outlive_crash: false,
            read_seq_per_run: true,
            sync_replays: false,
            overlap: false,
            clients_together: false,
        }
    }
}

/// Runs seeds from 0 with `config` until one breaks an invariant; returns the seed and the
/// invariant's message, for tests that show a safeguard matters.
pub fn first_failure(seeds: u64, config: impl Fn(u64) -> SimConfig) -> (u64, String) {
    (0..seeds)
        .find_map(|seed| {
            let config = config(seed);
            std::panic::catch_unwind(move || {
                Sim::new(config).run();
            })
            .err()
            .map(|payload| (seed, panic_message(payload)))
        })
        .unwrap_or_else(|| panic!("no seed in 0..{seeds} broke an invariant"))
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// What a run did, for the test's summary line.
#[derive(Debug, Default, Clone, Copy)]
pub struct SimStats {
    pub decided: u64,
    pub acked: u64,
    /// Answers to a request whose copies had been sent to more than one node.
    pub acked_after_retry: u64,
    pub crashes: u64,
    /// Crashes after a turn's sync (between sends, or before its replies).
    pub crashes_after_sync: u64,
    /// Crashes after a turn sent messages before its sync, and before the sync.
    pub crashes_after_early_sends: u64,
    pub cuts: u64,
    pub broken_sessions: u64,
    pub delta_snapshots_completed: u64,
}

/// One directed TCP stream: messages in flight, in order, with their event ids.
type Stream = VecDeque<Frame>;

/// What a stream carries: an OmniPaxos message with its event id, or one of the read-index
/// protocol.
// As in the node's `Input`: boxing the common, large variant would allocate once more per
// message to shrink the rare ones.
#[allow(clippy::large_enum_variant)]
enum Frame {
    Paxos(u64, Message<KVCommand>),
    ReadIndex(ReadIndexMsg),
}

/// What a node keeps across a crash: its storage as of its last sync.
#[derive(Clone)]
struct Durable {
    log: MemoryStorage<KVCommand>,
    table: SimTable,
}

impl Durable {
    /// What node storage `disk` and its replica's table hold now.
    fn of(disk: &SharedStorage, replica: &Replica<SimPlatform>) -> Durable {
        Durable {
            log: disk.0.borrow().clone(),
            table: replica.table().clone(),
        }
    }
}

struct SimNode {
    id: NodeId,
    replica: Option<Replica<SimPlatform>>,
    disk: SharedStorage,
    synced: Durable,
    /// With `overlap`: what the fsync in flight will make durable, taken when it started.
    in_flight: Option<Durable>,
}

pub struct Sim {
    config: SimConfig,
    rng: StdRng,
    nodes: BTreeMap<NodeId, SimNode>,
    /// FIFO per directed link: one TCP stream.
    links: BTreeMap<(NodeId, NodeId), Stream>,
    cut: BTreeSet<(NodeId, NodeId)>,
    /// The decided log as first seen decided anywhere.
    decided: Vec<KVCommand>,
    /// The independent model, fed `decided` as it grows.
    model: Model,
    /// Index up to which each node's decided entries were compared with `decided`.
    checked: BTreeMap<NodeId, u64>,
    /// With `overlap`: each node's decided entries not yet in `decided` (see `tentative`).
    tentative: BTreeMap<NodeId, tentative::Tentative>,
    clients: Clients,
    /// Links of restarted nodes not yet up (`staggered_link_ups`), as (restarted, peer).
    link_ups_waiting: Vec<(NodeId, NodeId)>,
    step: u64,
    pub stats: SimStats,
}

/// Messages in flight per link beyond which the network delivers before anyone ticks again.
const BACKLOG_MAX_PER_LINK: usize = 4;
/// The most messages of one link a turn takes in: bursts of a few, as a node's turn sees under
/// load, without letting one turn swallow a whole exchange.
const BURST_PER_LINK_MAX: usize = 4;
/// Ticks per heartbeat round, as the node's default.
const ELECTION_TICKS: u64 = 5;
/// Simulated time per step.
const STEP_US: u64 = 1000;

/// The entries `omni` has decided from index `at_least` (or its compacted index, if later), and
/// where they start: nothing if it has decided no more.
fn decided_entries(
    omni: &OmniPaxos<KVCommand, SharedStorage>,
    at_least: u64,
) -> (u64, Vec<LogEntry<KVCommand>>) {
    let from = at_least.max(omni.get_compacted_idx() as u64);
    let decided_idx = omni.get_decided_idx() as u64;
    if from >= decided_idx {
        return (from, Vec::new());
    }
    let entries = omni
        .read_entries(from as usize..decided_idx as usize)
        .unwrap_or_default();
    (from, entries)
}

fn build(id: NodeId, nodes: u64, disk: SharedStorage) -> OmniPaxos<KVCommand, SharedStorage> {
    let server = ServerConfig {
        pid: id,
        election_tick_timeout: ELECTION_TICKS,
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
        let mut links = BTreeMap::new();
        for a in 1..=config.nodes {
            for b in 1..=config.nodes {
                if a != b {
                    links.insert((a, b), VecDeque::new());
                }
            }
        }
        let mut sim = Sim {
            rng: StdRng::seed_from_u64(config.seed),
            nodes: BTreeMap::new(),
            links,
            cut: BTreeSet::new(),
            decided: Vec::new(),
            model: Model::default(),
            checked: BTreeMap::new(),
            tentative: BTreeMap::new(),
            clients: Clients::new(),
            link_ups_waiting: Vec::new(),
            step: 0,
            stats: SimStats::default(),
            config,
        };
        for id in 1..=sim.config.nodes {
            let disk = SharedStorage(Rc::new(RefCell::new(MemoryStorage::default())));
            let synced = Durable {
                log: MemoryStorage::default(),
                table: SimTable::default(),
            };
            sim.nodes.insert(
                id,
                SimNode {
                    id,
                    replica: None,
                    disk,
                    synced,
                    in_flight: None,
                },
            );
        }
        for id in sim.ids() {
            sim.restart(id);
        }
        sim
    }

    fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    fn live(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.replica.is_some())
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
            if self.nodes[&id].replica.is_none() {
                self.restart(id);
            }
        }
        for (a, b) in std::mem::take(&mut self.cut) {
            self.set_link(a, b, true);
        }
        let mut quiet = 0;
        while !self.converged() {
            self.step(false);
            quiet += 1;
            assert!(
                quiet < 50_000,
                "seed {}: no convergence {quiet} steps after healing: {}",
                self.config.seed,
                self.progress()
            );
        }
        if self.config.overlap {
            self.settle_syncs();
            for (id, t) in &self.tentative {
                assert_eq!(
                    t.waiting(),
                    0,
                    "seed {}: node {id} synced decided entries the record never reached",
                    self.config.seed
                );
            }
        }
        self.check_states();
        self.check_answers();
        self.stats.decided = self.decided.len() as u64;
        self.stats.acked = self.clients.answers.len() as u64;
        self.stats.acked_after_retry =
            self.clients.answers.iter().filter(|a| a.retried).count() as u64;
        self.stats
    }

    /// Where each node and client stands, for a failure message.
    fn progress(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .values()
            .map(|n| match &n.replica {
                Some(r) => format!(
                    "node {}: decided {} applied {} leader {:?} pending {} promise {:?}",
                    n.id,
                    r.omni().get_decided_idx(),
                    r.applied_idx(),
                    r.omni().get_current_leader(),
                    r.pending_len(),
                    r.omni().get_promise(),
                ),
                None => format!("node {}: down", n.id),
            })
            .collect();
        let queued: usize = self.links.values().map(|q| q.len()).sum();
        format!(
            "{}; {queued} messages queued; clients: {}",
            nodes.join("; "),
            self.clients.describe()
        )
    }

    fn converged(&self) -> bool {
        let decided: BTreeSet<usize> = self
            .nodes
            .values()
            .map(|n| n.replica.as_ref().unwrap().omni().get_decided_idx())
            .collect();
        decided.len() == 1
            && self.nodes.values().all(|n| {
                n.replica.as_ref().unwrap().applied_idx() as usize == *decided.first().unwrap()
            })
            && self.clients.all.iter().all(|c| c.idle())
    }

    fn step(&mut self, faults: bool) {
        self.step += 1;
        let roll: f64 = self.rng.gen();
        // The network is much faster than the clock on a real cluster (a 10 ms tick against a
        // round trip well under 1 ms), and OmniPaxos counts on it: a heartbeat reply that
        // arrives after the next round has started is discarded. A backlog grows with the
        // cluster's size, so past a bound the step delivers instead of ticking.
        let backlog: usize = self.links.values().map(VecDeque::len).sum();
        let congested = backlog > BACKLOG_MAX_PER_LINK * self.links.len();
        if !self.link_ups_waiting.is_empty() && self.rng.gen_bool(0.2) {
            let k = self.rng.gen_range(0..self.link_ups_waiting.len());
            let (id, peer) = self.link_ups_waiting.swap_remove(k);
            if self.nodes[&id].replica.is_some() && self.nodes[&peer].replica.is_some() {
                self.link_event(id, peer, true);
            }
        }
        if faults && roll < 0.02 {
            self.fault();
        } else if self.config.overlap && roll < 0.2 {
            self.finish_a_sync(faults);
        } else if roll < 0.55 || congested {
            self.deliver(faults);
        } else if roll < 0.85 {
            let live = self.live();
            if !live.is_empty() {
                let id = live[self.rng.gen_range(0..live.len())];
                self.act(id, Input::Tick, faults);
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
                if self.nodes[&id].replica.is_some() {
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
                        self.set_link(l.0, l.1, true);
                    } else {
                        self.cut.insert(l);
                        self.stats.cuts += 1;
                        self.links.get_mut(&(l.0, l.1)).unwrap().clear();
                        self.links.get_mut(&(l.1, l.0)).unwrap().clear();
                        self.set_link(l.0, l.1, false);
                    }
                }
            }
            _ => {
                // A connection breaks: what was in flight on it is lost; both ends see it.
                let peer = ids[self.rng.gen_range(0..ids.len())];
                if peer != id {
                    self.stats.broken_sessions += 1;
                    self.links.get_mut(&(id, peer)).unwrap().clear();
                    self.link_event(id, peer, false);
                    self.reconnect(id, peer);
                }
            }
        }
    }

    fn link_event(&mut self, a: NodeId, b: NodeId, up: bool) {
        for (x, y) in [(a, b), (b, a)] {
            if self.nodes[&x].replica.is_some() {
                self.act(x, Input::PeerLink { peer: y, up }, false);
            }
        }
    }

    fn reconnect(&mut self, a: NodeId, b: NodeId) {
        self.link_event(a, b, true);
    }

    /// The operator cuts or heals a link, through both nodes' admin endpoint as the launcher
    /// does (`self.cut` already says which).
    fn set_link(&mut self, a: NodeId, b: NodeId, connected: bool) {
        for (x, y) in [(a, b), (b, a)] {
            if self.nodes[&x].replica.is_some() {
                let req = omnikv_core::admin::AdminRequest::SetLink { peer: y, connected };
                self.act(x, Input::Admin { req, reply: () }, false);
            }
        }
    }

    /// A crash: everything since the node's last sync is lost, with the messages on their way
    /// to it (unless `queued_outlive_crash` keeps them), and, half the time, with those it sent.
    fn crash(&mut self, id: NodeId) {
        self.stats.crashes += 1;
        let sent_arrive = self.rng.gen_bool(0.5);
        let queued_kept = self.config.queued_outlive_crash && self.rng.gen_bool(0.5);
        let node = self.nodes.get_mut(&id).unwrap();
        node.replica = None;
        node.in_flight = None;
        for ((from, to), q) in self.links.iter_mut() {
            if (*to == id && !queued_kept) || (*from == id && !sent_arrive) {
                q.clear();
            }
        }
        self.checked.remove(&id);
        if let Some(t) = self.tentative.get_mut(&id) {
            t.crashed();
        }
    }

    /// Starts node `id` on what it last synced, as the node process does after a crash.
    fn restart(&mut self, id: NodeId) {
        let config = ReplicaConfig {
            id,
            peers: self.ids().into_iter().filter(|&p| p != id).collect(),
            request_timeout_ms: 2 * clients::RETRY_AFTER_STEPS * STEP_US / 1000,
            pending_max: 1024,
            snapshot_every: self.config.snapshot_every,
            log_keep_entries: self.config.log_keep_entries,
            snapshot_fix: self.config.snapshot_fix,
            drop_promise_repeats: true,
            hold_promise_resends: true,
            election_ticks: ELECTION_TICKS,
            own_ballot_watch: self.config.own_ballot_watch,
            late_sync_resync: self.config.late_sync_resync,
            drop_stale_syncs: self.config.drop_stale_syncs,
            read_probe: self.config.read_probe,
            release_before_sync: self.config.release_before_sync,
            data_dir: format!("sim/{id}"),
            pid: id as u32,
            started_at_ms: 0,
            // Drawn from the step, not the generator, so that the seeds' runs stay as they were.
            run_nonce: if self.config.read_seq_per_run {
                (self.step ^ id << 56).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            } else {
                0
            },
        };
        let node = self.nodes.get_mut(&id).unwrap();
        *node.disk.0.borrow_mut() = node.synced.log.clone();
        let omni = build(id, self.config.nodes, node.disk.clone());
        let replica = Replica::new(config, omni, node.synced.table.clone(), PlainCompaction)
            .expect("memory storage does not fail");
        node.replica = Some(replica);
        for peer in self.ids() {
            if peer != id && self.nodes[&peer].replica.is_some() {
                // Both ends see the stream come up (a cut link is enforced above the stream);
                // a peer that saw it before reconnects.
                if self.config.staggered_link_ups {
                    self.link_ups_waiting.push((id, peer));
                } else {
                    self.link_event(id, peer, true);
                }
            }
        }
    }

    /// Delivers a burst to one node in one turn: the node's turn drains every input waiting
    /// (up to a bound), so a reply can meet the messages that arrived just after it, each link's
    /// messages in order.
    fn deliver(&mut self, faults: bool) {
        let ready: Vec<(NodeId, NodeId)> = self
            .links
            .iter()
            .filter(|((_, to), q)| !q.is_empty() && self.nodes[to].replica.is_some())
            .map(|(&k, _)| k)
            .collect();
        if ready.is_empty() {
            return;
        }
        let (_, to) = ready[self.rng.gen_range(0..ready.len())];
        let mut inputs = Vec::new();
        for &(from, _) in ready.iter().filter(|(_, t)| *t == to) {
            let take = if inputs.is_empty() || self.rng.gen_bool(0.5) {
                self.rng.gen_range(1..=BURST_PER_LINK_MAX)
            } else {
                0
            };
            let queue = self.links.get_mut(&(from, to)).unwrap();
            for _ in 0..take.min(queue.len()) {
                inputs.push((from, queue.pop_front().unwrap()));
            }
            if self.config.sync_replays {
                self.replay_syncs(from, to, &inputs);
            }
        }
        let inputs = inputs
            .into_iter()
            .map(|(from, frame)| match frame {
                Frame::Paxos(msg_id, msg) => {
                    if self.config.snapshot_fix && carries_delta_snapshot(&msg) {
                        self.stats.delta_snapshots_completed += 1;
                    }
                    Input::Peer {
                        from,
                        msg_id,
                        msg,
                        charge: omnikv_node::budget::Charge::none(),
                    }
                }
                Frame::ReadIndex(msg) => Input::ReadIndex { from, msg },
            })
            .collect();
        self.act_on(to, inputs, faults);
    }

    /// Queues again, behind what the link holds, a sync in `inputs` from `from`, as its leader
    /// would build it now for the same promise: from the same index, with the leader's log and
    /// decided index as they stand (see `sync_replays`).
    fn replay_syncs(&mut self, from: NodeId, to: NodeId, inputs: &[(NodeId, Frame)]) {
        for (sender, frame) in inputs {
            let Frame::Paxos(msg_id, Message::SequencePaxos(p)) = frame else {
                continue;
            };
            let PaxosMsg::AcceptSync(sync) = &p.msg else {
                continue;
            };
            if *sender != from
                || sync.log_sync.decided_snapshot.is_some()
                || !self.rng.gen_bool(0.3)
            {
                continue;
            }
            let Some(leader) = self.nodes[&from].replica.as_ref().map(|r| r.omni()) else {
                continue;
            };
            if leader.get_promise() != sync.n || leader.get_compacted_idx() > sync.log_sync.sync_idx
            {
                continue;
            }
            let suffix = leader
                .read_entries(sync.log_sync.sync_idx..leader.get_accepted_idx())
                .unwrap_or_default()
                .into_iter()
                .map(|e| match e {
                    LogEntry::Decided(c) | LogEntry::Undecided(c) => Some(c),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>();
            let Some(suffix) = suffix else { continue };
            let mut again = sync.clone();
            again.log_sync.suffix = suffix;
            again.decided_idx = leader.get_decided_idx();
            let copy = Frame::Paxos(
                *msg_id,
                Message::SequencePaxos(PaxosMessage {
                    msg: PaxosMsg::AcceptSync(again),
                    ..p.clone()
                }),
            );
            self.links.get_mut(&(from, to)).unwrap().push_back(copy);
        }
    }

    /// Whether a crash strikes at this point of a turn.
    fn crash_here(&mut self, faults: bool) -> bool {
        faults && self.rng.gen_bool(self.config.crash_point_chance)
    }

    /// One turn of node `id` with one input.
    fn act(&mut self, id: NodeId, input: Input<(), ()>, faults: bool) {
        self.act_on(id, vec![input], faults);
    }

    /// One turn of node `id` with `inputs`: handle each, sync, finish, release. A crash may
    /// strike at any point.
    pub(super) fn act_on(&mut self, id: NodeId, inputs: Vec<Input<(), ()>>, faults: bool) {
        let now_us = self.step * STEP_US;
        if self.nodes[&id].replica.is_none() {
            return;
        }
        if self.config.overlap {
            return self.act_overlapped(id, inputs, faults);
        }
        let peers: Vec<NodeId> = self.ids().into_iter().filter(|&p| p != id).collect();
        let alive: BTreeSet<NodeId> = self.live().into_iter().collect();
        let seed = self.config.seed;
        let handled = self.with_replica(id, &peers, &alive, |replica, io| {
            for input in inputs {
                replica
                    .handle(input, now_us, io)
                    .expect("memory storage does not fail");
            }
        });
        if handled.is_none() {
            return;
        }
        // What the input decided, before the turn's apply and compaction trim it from the log.
        self.check_decided(id);
        let (messages, reads) = self
            .with_replica(id, &peers, &alive, |replica, io| {
                let messages = replica.take_messages_before_sync(now_us, io);
                (messages, replica.take_read_index_before_sync(io))
            })
            .expect("the node is up");
        let sent_early = !messages.is_empty();
        let before_sync = messages
            .into_iter()
            .map(|out| (out.to, Frame::Paxos(out.msg_id, out.msg)))
            .chain(
                reads
                    .into_iter()
                    .map(|(to, msg)| (to, Frame::ReadIndex(msg))),
            );
        if !self.send(id, before_sync, faults) {
            self.stats.crashes_after_early_sends += 1;
            return;
        }
        if self.crash_here(faults) {
            self.stats.crashes_after_early_sends += u64::from(sent_early);
            return self.crash(id);
        }
        // The node applies while its fsync runs, so what the fsync keeps of the table is either
        // side of the apply; alternate steps take each side.
        if self.step.is_multiple_of(2) {
            self.with_replica(id, &peers, &alive, |replica, io| {
                replica.apply_during_sync(now_us, io)
            })
            .expect("the node is up")
            .unwrap_or_else(|e| panic!("seed {seed}: node {id}: {e}"));
        }
        self.sync(id);
        let effects = self
            .with_replica(id, &peers, &alive, |replica, io| {
                replica.finish_turn(now_us, io)
            })
            .expect("the node is up")
            .unwrap_or_else(|e| panic!("seed {seed}: node {id}: {e}"));
        if !self.release(id, effects, faults) {
            return;
        }
        self.check_decided(id);
    }

    /// With `overlap`: node `id` handles `inputs` and sends what may leave now; the rest waits
    /// for its fsyncs. A crash may strike between two sends.
    fn act_overlapped(&mut self, id: NodeId, inputs: Vec<Input<(), ()>>, faults: bool) {
        let now_us = self.step * STEP_US;
        let peers: Vec<NodeId> = self.ids().into_iter().filter(|&p| p != id).collect();
        let alive: BTreeSet<NodeId> = self.live().into_iter().collect();
        let seed = self.config.seed;
        self.with_replica(id, &peers, &alive, |replica, io| {
            for input in inputs {
                replica
                    .handle(input, now_us, io)
                    .expect("memory storage does not fail");
            }
        });
        // What the inputs decided, before the step's compaction trims it.
        self.note_decided(id);
        let effects = self
            .with_replica(id, &peers, &alive, |replica, io| replica.step(now_us, io))
            .expect("the node is up")
            .unwrap_or_else(|e| panic!("seed {seed}: node {id}: {e}"));
        if self.release(id, effects, faults) {
            self.start_sync(id);
        }
    }

    /// With `overlap`: ends the fsync in flight of a node picked at random, which makes what
    /// it kept durable and releases what waited for it.
    fn finish_a_sync(&mut self, faults: bool) {
        let syncing: Vec<NodeId> = self
            .nodes
            .values()
            .filter(|n| n.replica.is_some() && n.in_flight.is_some())
            .map(|n| n.id)
            .collect();
        if syncing.is_empty() {
            return;
        }
        let id = syncing[self.rng.gen_range(0..syncing.len())];
        self.finish_sync(id, faults);
    }

    /// With `overlap`: ends node `id`'s fsync in flight and releases what waited for it.
    fn finish_sync(&mut self, id: NodeId, faults: bool) {
        let node = self.nodes.get_mut(&id).unwrap();
        let kept = node.in_flight.take().expect("an fsync in flight");
        // What the node had decided when the fsync started is now on its disk.
        let decided =
            omnipaxos::storage::Storage::get_decided_idx(&kept.log).expect("memory storage") as u64;
        self.tentative.entry(id).or_default().confirm(decided);
        self.record_confirmed();
        let node = self.nodes.get_mut(&id).unwrap();
        if self.config.sync {
            node.synced = kept;
        }
        let now_us = self.step * STEP_US;
        let peers: Vec<NodeId> = self.ids().into_iter().filter(|&p| p != id).collect();
        let alive: BTreeSet<NodeId> = self.live().into_iter().collect();
        let seed = self.config.seed;
        let effects = self
            .with_replica(id, &peers, &alive, |replica, io| {
                replica.sync_finished();
                replica.step(now_us, io)
            })
            .expect("the node is up")
            .unwrap_or_else(|e| panic!("seed {seed}: node {id}: {e}"));
        if self.release(id, effects, faults) {
            self.start_sync(id);
        }
    }

    /// With `overlap`: starts an fsync of node `id` if none runs. Memory has no dirty flag, so
    /// one always starts; it keeps the log and the table as they are now.
    fn start_sync(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        let Some(replica) = node.replica.as_mut() else {
            return;
        };
        if node.in_flight.is_some() {
            return;
        }
        replica.sync_started();
        node.in_flight = Some(Durable::of(&node.disk, replica));
    }

    /// With `overlap`, once the cluster converged: ends every fsync in flight, then syncs each
    /// node once more, so that everything decided is recorded before the final checks.
    fn settle_syncs(&mut self) {
        for _ in 0..2 {
            for id in self.ids() {
                self.start_sync(id);
                if self.nodes[&id].in_flight.is_some() {
                    self.finish_sync(id, false);
                }
            }
        }
    }

    /// Runs `f` on node `id`'s replica with its view of the network, if the node is up.
    fn with_replica<R>(
        &mut self,
        id: NodeId,
        peers: &[NodeId],
        alive: &BTreeSet<NodeId>,
        f: impl FnOnce(&mut Replica<SimPlatform>, &mut Io<'_>) -> R,
    ) -> Option<R> {
        let replica = self.nodes.get_mut(&id)?.replica.as_mut()?;
        let mut links = SimLinks {
            me: id,
            peers,
            cut: &self.cut,
            alive,
        };
        let mut io = Io {
            links: &mut links,
            events: &mut NoEvents,
        };
        Some(f(replica, &mut io))
    }

    /// Makes what node `id` wrote durable.
    fn sync(&mut self, id: NodeId) {
        if !self.config.sync {
            return;
        }
        let node = self.nodes.get_mut(&id).unwrap();
        let Some(replica) = node.replica.as_ref() else {
            return;
        };
        node.synced = Durable::of(&node.disk, replica);
    }

    /// Sends a turn's messages, then its replies; false if the node crashed on the way.
    fn release(
        &mut self,
        id: NodeId,
        effects: Effects<platform::SimPlatform>,
        faults: bool,
    ) -> bool {
        let frames = effects.messages.into_iter().map(|out| {
            let frame = Frame::Paxos(out.msg_id, out.msg);
            (out.to, frame)
        });
        let reads = effects.read_index.into_iter();
        let frames = frames.chain(reads.map(|(to, msg)| (to, Frame::ReadIndex(msg))));
        if !self.send(id, frames, faults) {
            self.stats.crashes_after_sync += 1;
            return false;
        }
        if self.crash_here(faults) {
            self.stats.crashes_after_sync += 1;
            self.crash(id);
            return false;
        }
        // The replies' entries are decided: the model must know them before they are checked.
        self.check_decided(id);
        for ((), resp) in effects.replies {
            self.on_reply(resp);
        }
        true
    }

    /// Puts messages on their links in order; false if the node crashed between two of them.
    fn send(
        &mut self,
        id: NodeId,
        frames: impl IntoIterator<Item = (NodeId, Frame)>,
        faults: bool,
    ) -> bool {
        for (to, frame) in frames {
            if self.crash_here(faults) {
                self.crash(id);
                return false;
            }
            let l = (id.min(to), id.max(to));
            if !self.cut.contains(&l) && self.nodes[&to].replica.is_some() {
                self.links.get_mut(&(id, to)).unwrap().push_back(frame);
            }
        }
        true
    }

    /// Records (or compares with the record) the entries node `id` has decided beyond those
    /// already compared. With `overlap`, a node may decide on its own copy before its fsync
    /// covers it, so its entries count only once an ended fsync covers them (`note_decided`,
    /// `record_confirmed`).
    fn check_decided(&mut self, id: NodeId) {
        if self.config.overlap {
            return;
        }
        let Some(replica) = self.nodes[&id].replica.as_ref() else {
            return;
        };
        let checked = self.checked.get(&id).copied().unwrap_or(0);
        let (from, entries) = decided_entries(replica.omni(), checked);
        let end = self.record_decided(id, from, entries);
        if end > from {
            self.checked.insert(id, end);
        }
    }

    /// With `overlap`: notes what node `id` has decided (see `tentative`).
    fn note_decided(&mut self, id: NodeId) {
        let Some(replica) = self.nodes[&id].replica.as_ref() else {
            return;
        };
        let t = self.tentative.entry(id).or_default();
        let (from, entries) = decided_entries(replica.omni(), t.next());
        let context = format!("seed {} step {}: node {id}", self.config.seed, self.step);
        t.note(from, entries, &context);
    }

    /// With `overlap`: moves the entries fsyncs have confirmed into the record, as far as the
    /// record reaches, comparing those it holds.
    fn record_confirmed(&mut self) {
        loop {
            let mut moved = false;
            let ids: Vec<NodeId> = self.tentative.keys().copied().collect();
            for id in ids {
                let len = self.decided.len() as u64;
                let Some((idx, cmd)) = self.tentative.get_mut(&id).unwrap().take_confirmed(len)
                else {
                    continue;
                };
                moved = true;
                self.record_decided(id, idx, vec![LogEntry::Decided(cmd)]);
            }
            if !moved {
                return;
            }
        }
    }

    /// Compares node `id`'s decided `entries`, read from index `from`, with the record and
    /// extends it; returns the index after the last.
    fn record_decided(&mut self, id: NodeId, from: u64, entries: Vec<LogEntry<KVCommand>>) -> u64 {
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
        idx
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
            let Some(replica) = &node.replica else {
                continue;
            };
            let table = replica.table();
            // A node that installed a wrong snapshot can claim entries the cluster never
            // decided (the upstream catch-up bug, without `snapshot_fix`).
            let decided_len = self.decided.len() as u64;
            // With `overlap`, a node applies what it decided before its fsync covers it, and
            // the record holds only what fsyncs kept: its table is compared once the record
            // reaches it (at the end, every node's is).
            if self.config.overlap && table.applied_idx > decided_len {
                continue;
            }
            assert!(
                table.applied_idx <= decided_len,
                "seed {} step {}: node {} applied state differs from the decided log: applied to {}, past its {decided_len} entries",
                self.config.seed,
                self.step,
                node.id,
                table.applied_idx
            );
            assert_eq!(
                table.kv,
                Model::table_after(&self.decided, table.applied_idx),
                "seed {} step {}: node {} KV table differs from the model's",
                self.config.seed,
                self.step,
                node.id
            );
            let fold = self.fold(table.applied_idx);
            assert_eq!(
                (&table.kv, &table.sessions),
                (&fold.snapshotted, &fold.sessions),
                "seed {} step {}: node {} applied state differs from the fold of the decided log",
                self.config.seed,
                self.step,
                node.id
            );
            // Up to where the node's snapshot and decided suffix reach: a snapshot handed over
            // by OmniPaxos can end beyond the node's decided index (see `decided_prefix`).
            let prefix = decided_prefix(replica.omni());
            // With `overlap`, the same: compared once the record reaches it.
            if self.config.overlap && prefix.len > decided_len {
                continue;
            }
            assert!(
                prefix.len <= decided_len,
                "seed {} step {}: node {} snapshot + suffix differs from the decided log: it ends at {}, past its {decided_len} entries",
                self.config.seed,
                self.step,
                node.id,
                prefix.len
            );
            let fold = self.fold(prefix.len);
            assert_eq!(
                (&prefix.snapshotted, &prefix.sessions),
                (&fold.snapshotted, &fold.sessions),
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
        let stats = Sim::new(SimConfig::standard(1, 3)).run();
        assert!(stats.decided > 20, "{stats:?}");
    }
}
