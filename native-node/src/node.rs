//! One node: OmniPaxos over RocksDB, driven by one event loop.
//!
//! Everything that can make the node act arrives as an [`Input`] on one bounded channel, or as a
//! tick. Each turn of the loop handles a batch of inputs, then ends in a fixed order:
//!
//! 1. sync storage (one fsync for everything the batch wrote),
//! 2. send OmniPaxos' outgoing messages (so no Promise or Accepted leaves before it is durable),
//! 3. publish log events, apply decided entries to the KV table and answer waiting clients,
//! 4. take a local snapshot when another `snapshot_every` entries are applied.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use omnikv_core::{
    admin::{AdminRequest, AdminResponse, NodeDump},
    client::{ClientError, ClientRequest, ClientResponse},
    event::{BallotView, MessageInfo, NodeEvent, NodeStatus, PeerStatus, RequestOutcome, Role},
    limits::EVENT_COMMANDS_MAX,
    peer::PeerFrame,
    KVCommand, KVSnapshot, NodeId, RequestId,
};
use omnipaxos::{messages::Message, util::LogEntry, ClusterConfig, OmniPaxos, ServerConfig};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api;
use crate::config::NodeConfig;
use crate::events::{now_ms, Detail, EventBus, EventPublisher};
use crate::snapshot_fix::complete_delta_snapshot;
use crate::storage::{ApplyOutcome, CompactionLease, KvTable, PaxosLog, SnapshotSummary, Store};
use crate::transport::Transport;

/// Inputs queued before producers wait: the back-pressure point of the node.
pub const INPUT_QUEUE_LEN: usize = 4096;
/// Inputs handled per turn before the turn ends (and fsyncs, sends, applies).
const TURN_INPUTS_MAX: usize = 1024;
/// Entries applied per write batch.
const APPLY_BATCH_MAX: u64 = 1024;
/// Minimum spacing of status events when only indices change.
const STATUS_INTERVAL: Duration = Duration::from_millis(100);

/// Everything that can make the node act, besides its clock.
pub enum Input {
    Peer {
        from: NodeId,
        msg_id: u64,
        msg: Message<KVCommand>,
    },
    /// The outgoing stream to `peer` came up or went down.
    PeerLink { peer: NodeId, up: bool },
    Client {
        req: ClientRequest,
        reply: mpsc::Sender<ClientResponse>,
    },
    Admin {
        req: AdminRequest,
        reply: oneshot::Sender<AdminResponse>,
    },
}

struct Pending {
    reply: mpsc::Sender<ClientResponse>,
    started: Instant,
    /// Kept to propose again after a leader change: a proposal forwarded to a leader that died
    /// is lost silently, and deduplication makes a second copy harmless.
    cmd: KVCommand,
    /// Its request was published as an event, so its reply is too.
    traced: bool,
}

struct Node {
    id: NodeId,
    config: NodeConfig,
    omni: OmniPaxos<KVCommand, PaxosLog>,
    store: Arc<Store>,
    kv: KvTable,
    transport: Transport,
    events: EventPublisher,
    /// Requests proposed here and not yet answered, by identity.
    pending: HashMap<RequestId, Pending>,
    /// Request deadlines in arrival order (the timeout is the same for all).
    deadlines: VecDeque<(Instant, RequestId)>,
    applied_idx: u64,
    /// Peers whose stream has been up before: a later `up` is a reconnection.
    seen_up: BTreeMap<NodeId, bool>,
    next_msg_id: u64,
    outgoing: Vec<Message<KVCommand>>,
    observed_accepted: u64,
    observed_decided: u64,
    observed_leader: Option<(NodeId, BallotView)>,
    /// Leader and whether it is in the accept phase, as last seen: proposals are renewed when
    /// this changes.
    observed_accepting: Option<(NodeId, bool)>,
    last_status: Option<NodeStatus>,
    last_status_at: Instant,
    started_at_ms: u64,
    compaction: CompactionLease,
}

/// Binds the node's sockets, recovers its state from RocksDB and runs until `shutdown`.
pub async fn run(config: NodeConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let id = config.id;
    let members: BTreeMap<NodeId, _> = config.members.iter().copied().collect();
    let own_addr = *members
        .get(&id)
        .with_context(|| format!("--member list has no entry for this node ({id})"))?;
    anyhow::ensure!(members.len() >= 2, "a cluster needs at least 2 members");
    anyhow::ensure!(
        config.tick_ms > 0 && config.election_ticks > 0,
        "tick values must be > 0"
    );
    let secret = config.cluster_secret()?;
    let peer_listener = TcpListener::bind(own_addr)
        .await
        .with_context(|| format!("binding peer address {own_addr}"))?;
    let ws_listener = TcpListener::bind(config.ws)
        .await
        .with_context(|| format!("binding WebSocket address {}", config.ws))?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let store = Store::open(&config.data_dir, !config.no_fsync)
        .with_context(|| format!("opening RocksDB in {}", config.data_dir.display()))?;
    let log = PaxosLog::open(store.clone())?;
    let compaction = log.compaction_lease();
    let kv = KvTable::new(store.clone());
    let applied_idx = kv.applied_idx()?;
    let server = ServerConfig {
        pid: id,
        election_tick_timeout: config.election_ticks,
        resend_message_tick_timeout: config.election_ticks * 4,
        flush_batch_tick_timeout: 1,
        ..ServerConfig::default()
    };
    let cluster = ClusterConfig {
        configuration_id: 1,
        nodes: members.keys().copied().collect(),
        flexible_quorum: None,
    };
    let omni = cluster
        .build_for_server(server, log)
        .map_err(|e| anyhow::anyhow!("invalid OmniPaxos configuration: {e:?}"))?;
    info!(
        id,
        applied_idx,
        decided_idx = omni.get_decided_idx(),
        compacted_idx = omni.get_compacted_idx(),
        "recovered from {}",
        config.data_dir.display()
    );

    let (inputs_tx, inputs_rx) = mpsc::channel(INPUT_QUEUE_LEN);
    let peers = members
        .iter()
        .filter(|(&p, _)| p != id)
        .map(|(&p, &a)| (p, a))
        .collect();
    let transport = Transport::start(
        id,
        config.cluster_id.clone(),
        secret.clone(),
        peer_listener,
        peers,
        &config.cut_peers,
        inputs_tx.clone(),
        shutdown.clone(),
    );
    let (bus, publisher) = EventBus::new(id);
    let policy = crate::ws_access::UpgradePolicy::new(&config.allowed_origins, secret.clone());
    tokio::spawn(api::serve(
        ws_listener,
        policy,
        inputs_tx,
        bus,
        shutdown.clone(),
    ));
    info!(id, peer = %own_addr, ws = %config.ws, "node ready");

    let observed_accepted = omni.get_accepted_idx() as u64;
    let observed_decided = omni.get_decided_idx() as u64;
    let node = Node {
        id,
        omni,
        store,
        kv,
        transport,
        events: publisher,
        pending: HashMap::new(),
        deadlines: VecDeque::new(),
        applied_idx,
        seen_up: BTreeMap::new(),
        next_msg_id: 0,
        outgoing: Vec::new(),
        observed_accepted,
        observed_decided,
        observed_leader: None,
        observed_accepting: None,
        last_status: None,
        last_status_at: Instant::now(),
        started_at_ms: now_ms(),
        compaction,
        config,
    };
    node.run(inputs_rx, shutdown).await
}

impl Node {
    async fn run(
        mut self,
        mut inputs: mpsc::Receiver<Input>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(Duration::from_millis(self.config.tick_ms));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    self.omni.tick();
                    self.expire_requests();
                }
                input = inputs.recv() => {
                    let Some(input) = input else { break };
                    self.handle(input)?;
                    for _ in 0..TURN_INPUTS_MAX {
                        match inputs.try_recv() {
                            Ok(input) => self.handle(input)?,
                            Err(_) => break,
                        }
                    }
                }
            }
            self.end_turn()?;
        }
        for (_, p) in self.pending.drain() {
            let _ = p.reply.try_send(ClientResponse::Err {
                id: None,
                error: ClientError::Unavailable {
                    reason: "node shutting down".into(),
                },
            });
        }
        self.store.sync()?;
        info!(id = self.id, "node stopped");
        Ok(())
    }

    fn handle(&mut self, input: Input) -> anyhow::Result<()> {
        match input {
            Input::Peer {
                from,
                msg_id,
                mut msg,
            } => {
                if !self.transport.link_enabled(from) {
                    return Ok(());
                }
                if self.events.wants_detail(Detail::Message) {
                    self.events
                        .emit(NodeEvent::MessageReceived(MessageInfo::of(msg_id, &msg)));
                }
                if complete_delta_snapshot(&self.omni, &mut msg) {
                    info!(from, "replaced a delta snapshot by a complete one");
                }
                self.omni.handle_incoming(msg);
            }
            Input::PeerLink { peer, up } => {
                let seen = self.seen_up.entry(peer).or_insert(false);
                if up && *seen && self.transport.link_enabled(peer) {
                    self.omni.reconnected(peer);
                }
                *seen |= up;
                let connected = up && self.transport.link_enabled(peer);
                self.events.emit(NodeEvent::LinkChanged { peer, connected });
            }
            Input::Client { req, reply } => self.handle_client(req, reply)?,
            Input::Admin { req, reply } => {
                let resp = self.handle_admin(req)?;
                let _ = reply.send(resp);
            }
        }
        Ok(())
    }

    fn handle_client(
        &mut self,
        req: ClientRequest,
        reply: mpsc::Sender<ClientResponse>,
    ) -> anyhow::Result<()> {
        let id = req.id;
        let traced = self.events.wants_detail(Detail::Client);
        if traced {
            self.events.emit(NodeEvent::ClientRequest {
                id,
                op: req.op.clone(),
            });
        }
        let started = Instant::now();
        if let Err(error) = req.validate() {
            self.answer(&reply, id, started, traced, Err(error), None);
            return Ok(());
        }
        let Some(cmd) = req.to_command() else {
            // A local read: served from this node's table, possibly stale.
            let value = self.kv.get(cmd_key(&req))?;
            self.answer(&reply, id, started, traced, Ok(value), None);
            return Ok(());
        };
        if let Some(old) = self.pending.remove(&id) {
            let _ = old.reply.try_send(ClientResponse::Err {
                id: Some(id),
                error: ClientError::Unavailable {
                    reason: "superseded by a retry".into(),
                },
            });
        } else if self.pending.len() >= self.config.pending_max {
            let error = ClientError::Overloaded {
                in_flight: self.pending.len(),
            };
            self.answer(&reply, id, started, traced, Err(error), None);
            return Ok(());
        }
        // A follower cut off from the leader would forward into the void and make the client
        // wait for a timeout; saying so at once lets it retry through another node.
        if let Some((leader, _)) = self.omni.get_current_leader() {
            if leader != self.id && !self.transport.link_up(leader) {
                let error = ClientError::Unavailable {
                    reason: format!(
                        "node {} cannot reach leader {leader}; try another node",
                        self.id
                    ),
                };
                self.answer(&reply, id, started, traced, Err(error), None);
                return Ok(());
            }
        }
        if let Err(e) = self.omni.append(cmd.clone()) {
            let error = ClientError::Unavailable {
                reason: format!("proposal refused: {e:?}"),
            };
            self.answer(&reply, id, started, traced, Err(error), None);
            return Ok(());
        }
        let deadline = started + Duration::from_millis(self.config.request_timeout_ms);
        self.deadlines.push_back((deadline, id));
        self.pending.insert(
            id,
            Pending {
                reply,
                started,
                cmd,
                traced,
            },
        );
        Ok(())
    }

    /// Sends one reply, and its event if the request's was sent.
    fn answer(
        &mut self,
        reply: &mpsc::Sender<ClientResponse>,
        id: RequestId,
        started: Instant,
        traced: bool,
        result: Result<Option<String>, ClientError>,
        index: Option<u64>,
    ) {
        let latency_us = started.elapsed().as_micros() as u64;
        let outcome = traced.then(|| match &result {
            Ok(value) => RequestOutcome::Ok {
                value: value.clone(),
            },
            Err(error) => RequestOutcome::Err {
                error: error.clone(),
            },
        });
        let resp = match result {
            Ok(value) => ClientResponse::Ok {
                id,
                value,
                node: self.id,
                index,
            },
            Err(error) => ClientResponse::Err {
                id: Some(id),
                error,
            },
        };
        // A full reply queue means the client stopped reading; it loses its reply, not us time.
        let _ = reply.try_send(resp);
        match outcome {
            Some(outcome) => self.events.emit(NodeEvent::ClientReply {
                id,
                outcome,
                latency_us,
            }),
            None => self.events.skip_detail(Detail::Client),
        }
    }

    fn expire_requests(&mut self) {
        let now = Instant::now();
        while let Some(&(deadline, id)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            let expired = self.pending.get(&id).is_some_and(|p| {
                p.started + Duration::from_millis(self.config.request_timeout_ms) <= now
            });
            if expired {
                let p = self.pending.remove(&id).expect("checked above");
                let error = ClientError::Timeout {
                    timeout_ms: self.config.request_timeout_ms,
                };
                self.answer(&p.reply, id, p.started, p.traced, Err(error), None);
            }
        }
    }

    fn handle_admin(&mut self, req: AdminRequest) -> anyhow::Result<AdminResponse> {
        Ok(match req {
            AdminRequest::SetLink { peer, connected } => {
                if !self.transport.set_link(peer, connected) {
                    return Ok(AdminResponse::Error {
                        message: format!("node {peer} is not a peer of node {}", self.id),
                    });
                }
                if connected {
                    self.omni.reconnected(peer);
                }
                self.events.emit(NodeEvent::LinkChanged { peer, connected });
                AdminResponse::Ok
            }
            AdminRequest::Status => AdminResponse::Status(self.status()),
            AdminRequest::Dump => AdminResponse::Dump(Box::new(self.dump()?)),
        })
    }

    fn dump(&self) -> anyhow::Result<NodeDump> {
        let compacted_idx = self.omni.get_compacted_idx();
        let decided_idx = self.omni.get_decided_idx();
        let mut snapshot = None;
        let mut decided_suffix = Vec::new();
        if decided_idx > 0 {
            for entry in self.omni.read_entries(0..decided_idx).unwrap_or_default() {
                match entry {
                    LogEntry::Snapshotted(s) => snapshot = Some(s.snapshot.resolved()),
                    LogEntry::Decided(cmd) => decided_suffix.push(cmd),
                    _ => {}
                }
            }
        }
        Ok(NodeDump {
            id: self.id,
            applied_idx: self.applied_idx,
            decided_idx: decided_idx as u64,
            compacted_idx: compacted_idx as u64,
            kv: self.kv.entries()?,
            sessions: self.kv.sessions()?,
            snapshot,
            decided_suffix,
        })
    }

    fn end_turn(&mut self) -> anyhow::Result<()> {
        self.store.sync().context("syncing the log")?;
        self.send_outgoing();
        self.observe_log();
        self.apply_decided()?;
        self.maybe_snapshot();
        self.observe_status();
        self.events.flush_due();
        Ok(())
    }

    fn send_outgoing(&mut self) {
        self.omni.take_outgoing_messages(&mut self.outgoing);
        let mut outgoing = std::mem::take(&mut self.outgoing);
        for msg in outgoing.drain(..) {
            self.next_msg_id += 1;
            let msg_id = self.next_msg_id;
            let to = msg.get_receiver();
            if !self.transport.link_enabled(to) {
                continue;
            }
            if self.events.wants_detail(Detail::Message) {
                self.events
                    .emit(NodeEvent::MessageSent(MessageInfo::of(msg_id, &msg)));
            }
            let frame = serde_json::to_vec(&PeerFrame::Paxos { msg_id, msg })
                .expect("peer frames serialise");
            self.transport.send(to, Bytes::from(frame));
        }
        self.outgoing = outgoing;
    }

    fn observe_log(&mut self) {
        let accepted = self.omni.get_accepted_idx() as u64;
        if accepted > self.observed_accepted && self.events.active() {
            let from = self
                .observed_accepted
                .max(self.omni.get_compacted_idx() as u64);
            // Reading the new entries back costs a log read per turn; a busy node leaves them
            // out, and watchers learn the commands when they are applied.
            let commands = if self.events.wants_detail(Detail::Commands) {
                let to = accepted.min(from + EVENT_COMMANDS_MAX as u64);
                self.omni
                    .read_entries(from as usize..to as usize)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|e| match e {
                        LogEntry::Decided(c) | LogEntry::Undecided(c) => Some(c),
                        _ => None,
                    })
                    .collect()
            } else {
                Vec::new()
            };
            self.events.emit(NodeEvent::EntriesAppended {
                from_idx: from,
                count: accepted - from,
                commands,
            });
        }
        self.observed_accepted = accepted;
        let decided = self.omni.get_decided_idx() as u64;
        if decided != self.observed_decided {
            self.events.emit(NodeEvent::EntriesDecided {
                from_idx: self.observed_decided,
                to_idx: decided,
            });
            self.observed_decided = decided;
        }
    }

    fn apply_decided(&mut self) -> anyhow::Result<()> {
        let decided = self.omni.get_decided_idx() as u64;
        while self.applied_idx < decided {
            let from = self.applied_idx;
            let to = decided.min(from + APPLY_BATCH_MAX);
            let entries = self
                .omni
                .read_entries(from as usize..to as usize)
                .unwrap_or_default();
            anyhow::ensure!(
                !entries.is_empty(),
                "decided entries {from}..{to} are not readable"
            );
            let mut batch = self.kv.batch();
            let mut idx = from;
            let mut answers = Vec::new();
            let mut applied = Vec::new();
            let mut skipped = 0;
            let mut installed: Option<(u64, KVSnapshot)> = None;
            for entry in entries {
                match entry {
                    LogEntry::Snapshotted(s) => {
                        let snapshot = s.snapshot.resolved();
                        batch.install(&snapshot);
                        idx = s.trimmed_idx as u64;
                        installed = Some((idx, snapshot));
                    }
                    LogEntry::Decided(cmd) => {
                        let outcome = batch.apply(&cmd)?;
                        let index = idx;
                        idx += 1;
                        if outcome == ApplyOutcome::Duplicate {
                            skipped += 1;
                        }
                        let value = match outcome {
                            ApplyOutcome::Read(v) => v,
                            _ => None,
                        };
                        if self.pending.contains_key(&cmd.id()) {
                            answers.push((cmd.id(), value, index));
                        }
                        if applied.len() < EVENT_COMMANDS_MAX {
                            applied.push(cmd);
                        }
                    }
                    LogEntry::StopSign(..) => idx += 1,
                    LogEntry::Undecided(_) => {
                        anyhow::bail!("undecided entry below the decided index")
                    }
                    LogEntry::Trimmed(t) => anyhow::bail!("log trimmed to {t} without a snapshot"),
                }
            }
            batch.commit(idx)?;
            let first_applied = self
                .applied_idx
                .max(installed.as_ref().map_or(0, |(i, _)| *i));
            self.applied_idx = idx;
            if let Some((compacted_idx, snapshot)) = installed {
                info!(
                    compacted_idx,
                    keys = snapshot.snapshotted.len(),
                    "installed a snapshot"
                );
                let summary = SnapshotSummary::of(&snapshot);
                self.events.emit(NodeEvent::SnapshotInstalled {
                    compacted_idx,
                    keys: summary.keys,
                    key_count: summary.key_count,
                });
            }
            if idx > first_applied {
                self.events.emit(NodeEvent::EntriesApplied {
                    from_idx: first_applied,
                    count: idx - first_applied,
                    commands: applied,
                    skipped_duplicates: skipped,
                });
            }
            for (id, value, index) in answers {
                if let Some(p) = self.pending.remove(&id) {
                    self.answer(&p.reply, id, p.started, p.traced, Ok(value), Some(index));
                }
            }
        }
        Ok(())
    }

    fn maybe_snapshot(&mut self) {
        let every = self.config.snapshot_every;
        if every == 0 {
            return;
        }
        let target = self.applied_idx / every * every;
        if target == 0 || target <= self.omni.get_compacted_idx() as u64 {
            return;
        }
        let omni = &mut self.omni;
        let result = self
            .compaction
            .run(|| omni.snapshot(Some(target as usize), true));
        match result {
            Ok(()) => {
                if let Some(stored) = self.compaction.take_stored() {
                    self.events.emit(NodeEvent::SnapshotTaken {
                        compacted_idx: self.omni.get_compacted_idx() as u64,
                        keys: stored.keys,
                        key_count: stored.key_count,
                    });
                }
            }
            Err(e) => warn!(target, error = ?e, "snapshot failed"),
        }
    }

    fn status(&self) -> NodeStatus {
        let promise: BallotView = self.omni.get_promise().into();
        let (leader, role) = match self.omni.get_current_leader() {
            Some((l, true)) if l == self.id => (Some(l), Role::Leader),
            Some((l, false)) if l == self.id => (Some(l), Role::Candidate),
            Some((l, _)) => (Some(l), Role::Follower),
            None => (None, Role::Follower),
        };
        NodeStatus {
            id: self.id,
            role,
            leader,
            ballot: promise,
            promise,
            accepted_idx: self.omni.get_accepted_idx() as u64,
            decided_idx: self.omni.get_decided_idx() as u64,
            compacted_idx: self.omni.get_compacted_idx() as u64,
            applied_idx: self.applied_idx,
            peers: self
                .transport
                .peers()
                .map(|(id, connected, link_enabled)| PeerStatus {
                    id,
                    connected,
                    link_enabled,
                })
                .collect(),
            data_dir: self.store.path().display().to_string(),
            started_at_ms: self.started_at_ms,
            pid: std::process::id(),
        }
    }

    /// Proposes every waiting request again when a new leader starts accepting.
    fn renew_proposals(&mut self) {
        let accepting = self.omni.get_current_leader();
        if accepting == self.observed_accepting {
            return;
        }
        self.observed_accepting = accepting;
        if !matches!(accepting, Some((_, true))) || self.pending.is_empty() {
            return;
        }
        let mut renewed = 0;
        for p in self.pending.values() {
            if self.omni.append(p.cmd.clone()).is_ok() {
                renewed += 1;
            }
        }
        info!(renewed, leader = ?accepting, "proposals renewed after a leader change");
    }

    fn observe_status(&mut self) {
        self.renew_proposals();
        let status = self.status();
        let leader = status.leader.map(|l| (l, status.ballot));
        if leader != self.observed_leader {
            info!(leader = ?status.leader, ballot = ?status.ballot, "leader changed");
            self.events.emit(NodeEvent::LeaderChanged {
                leader: status.leader,
                ballot: status.ballot,
            });
            self.observed_leader = leader;
        }
        let Some(last) = &self.last_status else {
            self.publish_status(status);
            return;
        };
        let shape_changed = last.role != status.role
            || last.leader != status.leader
            || last.ballot != status.ballot
            || last.peers != status.peers;
        let elapsed = self.last_status_at.elapsed();
        if shape_changed
            || (*last != status && elapsed >= STATUS_INTERVAL)
            || elapsed >= Duration::from_secs(1)
        {
            self.publish_status(status);
        }
    }

    fn publish_status(&mut self, status: NodeStatus) {
        self.last_status = Some(status.clone());
        self.last_status_at = Instant::now();
        self.events.status(status);
    }
}

fn cmd_key(req: &ClientRequest) -> &str {
    match &req.op {
        omnikv_core::client::ClientOp::Put { key, .. }
        | omnikv_core::client::ClientOp::Get { key, .. }
        | omnikv_core::client::ClientOp::Delete { key } => key,
    }
}
