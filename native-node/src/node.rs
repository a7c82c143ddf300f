//! One node process: a [`Replica`] over RocksDB, driven by one tokio event loop.
//!
//! Everything that can make the node act arrives as an [`Input`] on one bounded channel, or as a
//! tick. The loop keeps handling inputs while its fsync runs (`run_overlapped`, the default):
//! after each batch of inputs, or when an fsync ends, the replica takes a step (see
//! `replica::pipeline`), and what it produced leaves at once or waits for the fsync that makes
//! it safe to send; one fsync runs at a time on the blocking pool, and the next starts as soon
//! as something was written or waits for one.
//!
//! With `--turn-loop` (`run_turns`, kept to compare the two) each turn hands a batch of inputs
//! to the replica, then, in this order:
//!
//! 1. sends the messages that may leave before the fsync (a leader's accepts, so that the
//!    followers' fsyncs overlap its own: see `replica::early_release`),
//! 2. syncs storage (one fsync for everything the batch wrote), on the blocking pool, and
//!    meanwhile lets the replica apply what the batch decided (see `Replica::apply_during_sync`),
//! 3. lets the replica finish the turn (snapshot, answer reads, renew proposals),
//! 4. releases what the turn produced: the rest of OmniPaxos' messages (so no Promise or
//!    Accepted leaves before it is durable) and the replies to clients.
//!
//! The replica itself does no I/O; the deterministic simulation drives the same code.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use omnikv_core::{
    event::{MessageInfo, NodeEvent},
    peer::{PeerFrame, ReadIndexMsg},
    NodeId,
};
use omnipaxos::{ClusterConfig, ServerConfig};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api;
use crate::changes::ChangeFeed;
use crate::config::NodeConfig;
use crate::disk_guard::DiskGuard;
use crate::events::{now_ms, EventBus, EventPublisher};
use crate::input::{AdminReplyTx, ClientReplyTx, Input, NodeInput};
use crate::replica::{Effects, Io, Outgoing, Platform, ReleaseBeforeSync, Replica, ReplicaConfig};
use crate::snapshot_fix::carries_snapshot;
use crate::storage::identity::{self, Identity};
use crate::storage::{CompactionLease, KvTable, PaxosLog, StorageError, Store, StoreLimits};
use crate::transport::{self, Transport};
use crate::turn_timer::{Phase, TurnTimer};

/// Inputs queued before producers wait: the back-pressure point of the node.
pub const INPUT_QUEUE_LEN: usize = 4096;
/// Inputs handled per turn, after the one that started it, before the turn ends (and fsyncs,
/// sends, applies).
const TURN_INPUTS_MAX: usize = 1024;

/// The node process's plug-ins for the replica.
pub struct RocksPlatform;

impl Platform for RocksPlatform {
    type Log = PaxosLog;
    type Table = KvTable;
    type Compaction = CompactionLease;
    type Reply = ClientReplyTx;
    type AdminReply = AdminReplyTx;
}

struct Node {
    id: NodeId,
    /// Stops the node once its filesystem has less than `--disk-reserve-mb` free.
    disk: DiskGuard,
    replica: Replica<RocksPlatform>,
    store: Arc<Store>,
    transport: Transport,
    events: EventPublisher,
    /// Where applied changes go for watchers (after the turn's sync, like replies).
    changes: ChangeFeed,
    /// The clock the replica's deadlines are measured on.
    started: Instant,
    turn_timer: TurnTimer,
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
    if config.unsafe_highest_seq_dedup {
        warn!("UNSAFE: deduplicating by the highest seq per client (test only)");
        omnikv_core::session::set_unsafe_highest_seq_rule(true);
    }
    let identity = Identity {
        cluster_id: config.cluster_id.clone(),
        node_id: id,
        members: members.keys().copied().collect(),
    };
    identity::claim(&config.data_dir, &identity)?;
    let limits = StoreLimits {
        memtables_bytes: (config.memtables_mb << 20) as usize,
        wal_bytes: config.wal_max_mb << 20,
        block_cache_bytes: (config.block_cache_mb << 20) as usize,
    };
    let store = Store::open_with(&config.data_dir, !config.no_fsync, limits)
        .with_context(|| format!("opening RocksDB in {}", config.data_dir.display()))?;
    let mut log = PaxosLog::open(store.clone())?;
    if config.unsafe_snapshot_copy {
        log.keep_snapshot_copy();
    }
    let compaction = log.compaction_lease();
    let kv = KvTable::open(store.clone())?;
    let changes = ChangeFeed::new(kv.applied_idx()?);
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
        applied_idx = kv.applied_idx()?,
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
        crate::dump_pages::DumpPages::new(store.clone()),
        changes.clone(),
        shutdown.clone(),
    ));
    info!(id, peer = %own_addr, ws = %config.ws, "node ready");

    let replica_config = ReplicaConfig {
        id,
        peers: members.keys().copied().filter(|&p| p != id).collect(),
        request_timeout_ms: config.request_timeout_ms,
        pending_max: config.pending_max,
        snapshot_every: config.snapshot_every,
        log_keep_entries: config.log_keep_entries.unwrap_or(config.snapshot_every),
        snapshot_fix: !config.unsafe_no_snapshot_fix,
        drop_promise_repeats: !config.unsafe_answer_repeated_promises,
        hold_promise_resends: !config.unsafe_resend_snapshot_promises,
        election_ticks: config.election_ticks,
        own_ballot_watch: true,
        late_sync_resync: true,
        drop_stale_syncs: true,
        read_probe: true,
        release_before_sync: ReleaseBeforeSync::LeaderAccepts,
        data_dir: store.path().display().to_string(),
        pid: std::process::id(),
        started_at_ms: now_ms(),
        run_nonce: rand::random(),
    };
    let node = Node {
        id,
        disk: DiskGuard::new(store.path().to_owned(), config.disk_reserve_mb << 20),
        replica: Replica::new(replica_config, omni, kv, compaction)?,
        store,
        transport,
        events: publisher,
        changes,
        started: Instant::now(),
        // Half a heartbeat round: a turn that long leaves the other half for the network and
        // the peers' own turns.
        turn_timer: TurnTimer::new(Duration::from_millis(
            config.tick_ms * config.election_ticks / 2,
        )),
    };
    let tick_period = Duration::from_millis(config.tick_ms);
    if config.turn_loop {
        node.run_turns(inputs_rx, tick_period, shutdown).await
    } else {
        node.run_overlapped(inputs_rx, tick_period, shutdown).await
    }
}

/// A turn's fsync, running on the blocking pool.
type SyncTask = tokio::task::JoinHandle<Result<(), StorageError>>;

impl Node {
    async fn run_turns(
        mut self,
        mut inputs: mpsc::Receiver<NodeInput>,
        tick_period: Duration,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(tick_period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => Input::Tick,
                input = inputs.recv() => match input {
                    Some(input) => input,
                    None => break,
                },
            };
            self.turn_timer.begin();
            let batch = !matches!(first, Input::Tick);
            let mut handled = self.handle(first);
            // A tick ends its turn at once; an input brings whatever queued behind it.
            if batch {
                for _ in 0..TURN_INPUTS_MAX {
                    match inputs.try_recv() {
                        Ok(input) if handled.is_ok() => handled = self.handle(input),
                        _ => break,
                    }
                }
            }
            self.turn_timer.ended(Phase::Inputs);
            let turn = match handled {
                Ok(()) => self.end_turn().await,
                Err(e) => Err(e),
            };
            // A storage failure ends the process here and now (see `fatal`).
            if let Err(e) = turn {
                crate::fatal::stop(self.id, &format!("{e:#}"));
            }
            self.turn_timer.end();
        }
        let effects = self.replica.shut_down();
        self.release(effects);
        self.store.sync()?;
        info!("node stopped");
        Ok(())
    }

    /// The event loop that keeps handling inputs while its fsync runs (see
    /// `replica::pipeline`): one fsync at a time, the next started as soon as something was
    /// written or waits for one. A step that takes as long as a turn warns as a turn would.
    async fn run_overlapped(
        mut self,
        mut inputs: mpsc::Receiver<NodeInput>,
        tick_period: Duration,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(tick_period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut syncing: Option<SyncTask> = None;
        loop {
            let stepped = tokio::select! {
                _ = shutdown.cancelled() => break,
                res = async {
                    match syncing.as_mut() {
                        Some(task) => task.await,
                        None => std::future::pending().await,
                    }
                } => {
                    syncing = None;
                    self.turn_timer.begin();
                    let synced = res
                        .context("the fsync task")
                        .and_then(|r| r.context("syncing the log"));
                    self.replica.sync_finished();
                    synced.and_then(|()| self.step())
                }
                _ = tick.tick() => {
                    self.turn_timer.begin();
                    self.handle(Input::Tick).and_then(|()| self.step())
                }
                input = inputs.recv() => match input {
                    Some(input) => {
                        self.turn_timer.begin();
                        let mut handled = self.handle(input);
                        for _ in 0..TURN_INPUTS_MAX {
                            match inputs.try_recv() {
                                Ok(input) if handled.is_ok() => handled = self.handle(input),
                                _ => break,
                            }
                        }
                        self.turn_timer.ended(Phase::Inputs);
                        handled.and_then(|()| self.step())
                    }
                    None => break,
                },
            };
            let started = stepped.and_then(|()| self.start_next_sync(&mut syncing));
            // A storage failure ends the process here and now (see `fatal`).
            if let Err(e) = started {
                crate::fatal::stop(self.id, &format!("{e:#}"));
            }
        }
        if let Some(task) = syncing.take() {
            task.await
                .context("the fsync task")?
                .context("syncing the log")?;
            self.replica.sync_finished();
            self.step()?;
        }
        let effects = self.replica.shut_down();
        self.release(effects);
        self.store.sync()?;
        info!("node stopped");
        Ok(())
    }

    /// A step of the overlapped loop: the turn's work on what was handled so far (or on what
    /// the fsync that just ended made durable), and what may leave now.
    fn step(&mut self) -> anyhow::Result<()> {
        let now_us = self.now_us();
        let mut io = Io {
            links: &mut self.transport,
            events: &mut self.events,
        };
        let effects = self.replica.step(now_us, &mut io)?;
        self.release(effects);
        self.events.flush_due();
        self.turn_timer.ended(Phase::Finish);
        self.turn_timer.end();
        Ok(())
    }

    /// Starts an fsync if none runs and something was written or waits for one.
    fn start_next_sync(&mut self, syncing: &mut Option<SyncTask>) -> anyhow::Result<()> {
        if syncing.is_some() {
            return Ok(());
        }
        let dirty = self.store.claim_sync();
        if !dirty && !self.replica.wants_sync() {
            return Ok(());
        }
        self.check_disk()?;
        self.replica.sync_started();
        let store = self.store.clone();
        *syncing = Some(tokio::task::spawn_blocking(move || {
            if dirty {
                store.sync_claimed()
            } else {
                Ok(())
            }
        }));
        Ok(())
    }

    fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    fn handle(&mut self, input: NodeInput) -> anyhow::Result<()> {
        self.turn_timer.input();
        let now_us = self.now_us();
        let mut io = Io {
            links: &mut self.transport,
            events: &mut self.events,
        };
        self.replica.handle(input, now_us, &mut io)?;
        Ok(())
    }

    async fn end_turn(&mut self) -> anyhow::Result<()> {
        self.check_disk()?;
        let now_us = self.now_us();
        let mut io = Io {
            links: &mut self.transport,
            events: &mut self.events,
        };
        let before_sync = self.replica.take_messages_before_sync(now_us, &mut io);
        let reads = self.replica.take_read_index_before_sync(&mut io);
        self.send_messages(before_sync);
        self.send_read_index(reads);
        let syncing = self.start_sync()?;
        let mut io = Io {
            links: &mut self.transport,
            events: &mut self.events,
        };
        self.replica.apply_during_sync(now_us, &mut io)?;
        self.turn_timer.ended(Phase::Apply);
        Self::synced(syncing).await?;
        self.turn_timer.ended(Phase::Sync);
        let now_us = self.now_us();
        let mut io = Io {
            links: &mut self.transport,
            events: &mut self.events,
        };
        let effects = self.replica.finish_turn(now_us, &mut io)?;
        self.release(effects);
        self.events.flush_due();
        self.turn_timer.ended(Phase::Finish);
        Ok(())
    }

    /// Starts making the turn's writes durable. The fsync runs on the blocking pool so that
    /// this thread, which the node's sockets share, applies the turn's decided entries and
    /// reads what arrives meanwhile. No input is handled before the fsync ends
    /// ([`Self::synced`]).
    fn start_sync(&self) -> anyhow::Result<Option<SyncTask>> {
        if !self.store.needs_fsync() {
            // Nothing to write: `sync` only checks that no earlier write failed.
            self.store.sync()?;
            return Ok(None);
        }
        let store = self.store.clone();
        Ok(Some(tokio::task::spawn_blocking(move || store.sync())))
    }

    /// Waits for the fsync [`Self::start_sync`] began, if it began one.
    async fn synced(syncing: Option<SyncTask>) -> anyhow::Result<()> {
        match syncing {
            Some(task) => task
                .await
                .context("the fsync task")?
                .context("syncing the log"),
            None => Ok(()),
        }
    }

    /// Stops the node before its filesystem fills up (see `disk_guard`).
    fn check_disk(&mut self) -> anyhow::Result<()> {
        let store = &self.store;
        self.disk
            .check(Instant::now(), store.written_bytes(), || store.free_bytes())?;
        Ok(())
    }

    /// Sends what a synced turn produced.
    fn release(&mut self, effects: Effects<RocksPlatform>) {
        self.send_messages(effects.messages);
        self.send_read_index(effects.read_index);
        for (reply, resp) in effects.replies {
            reply.send(resp);
        }
        for (reply, resp) in effects.admin_replies {
            let _ = reply.send(resp);
        }
        self.changes.record(effects.changes);
    }

    fn send_read_index(&mut self, messages: Vec<(NodeId, ReadIndexMsg)>) {
        for (to, msg) in messages {
            let frame = transport::encode(&PeerFrame::ReadIndex(msg));
            if !self.transport.send_read_index(to, frame) {
                self.replica.message_lost(to);
            }
        }
    }

    fn send_messages(&mut self, messages: Vec<Outgoing>) {
        for out in messages {
            // Summarised only for a held link, where the page lists what waits.
            let (held, _) = self.transport.held(out.to);
            // A snapshot can take longer to encode than an election timeout: off the loop.
            let later = carries_snapshot(&out.msg);
            let info = (held || later).then(|| MessageInfo::of(out.msg_id, &out.msg));
            let frame = PeerFrame::Paxos {
                msg_id: out.msg_id,
                msg: out.msg,
            };
            let sent = match (later, info) {
                (true, Some(info)) => self.transport.send_encoded_later(out.to, frame, info),
                (_, info) => self.transport.send(out.to, transport::encode(&frame), info),
            };
            if !sent {
                self.replica.message_lost(out.to);
            }
        }
        for held in self.transport.take_held_changes() {
            self.events.emit(NodeEvent::HeldMessages {
                peer: held.peer,
                held: held.held,
                waiting: held.waiting,
                head: held.head,
            });
        }
    }
}
