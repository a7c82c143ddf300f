//! One replica's logic, without I/O: OmniPaxos, the applied state, client requests and their
//! answers, in turns.
//!
//! A host (the node process in `node`, the deterministic simulation in the tests) feeds it
//! [`Input`]s and drives each turn in this order:
//!
//! 1. [`Replica::handle`] each input of the turn (they may write storage, unsynced), then
//!    [`Replica::take_messages_before_sync`] and [`Replica::take_read_index_before_sync`]: the
//!    messages that may leave before the fsync (a leader's accepts, see `early_release`, and
//!    the read-index protocol's, see `read_index`), for the host to send at once;
//! 2. sync storage (the host's job: one fsync for everything the turn wrote), and meanwhile, if
//!    the host can, [`Replica::apply_during_sync`]: it applies what is decided, so that the
//!    apply's CPU time overlaps the disk's wait instead of following it. That is safe because
//!    the apply writes only what the log can rebuild (the table, with `Store::write_deferred`),
//!    a decided entry is durable on a majority whatever this fsync does, and everything the
//!    apply answers waits in the [`Effects`] until step 3 releases it;
//! 3. [`Replica::finish_turn`]: it takes OmniPaxos' outgoing messages, applies what is decided
//!    (unless step 2 did), snapshots, answers the turn's admin requests (so a dump never shows
//!    an entry decided and not applied), renews proposals after a leader change, and returns
//!    the [`Effects`]: messages to send and replies to deliver, all of them safe to release
//!    because step 2 made what they promise durable.
//!
//! A host that keeps handling inputs while its fsync runs (the node's default loop) calls
//! [`Replica::step`] instead of steps 1-3 after each batch, and tells the replica where its
//! fsyncs stand; `pipeline` decides what may leave before which fsync.
//!
//! Because the same code runs in both hosts, the simulation checks the node's real turn: its
//! apply loop, its session rule, its delta-snapshot fix and its re-proposals.

mod apply;
mod early_release;
mod late_sync;
mod own_ballot;
mod pipeline;
pub mod ports;
mod promise_repeats;
mod proposals;
mod read_index;
mod reads;
mod report;
mod requests;

use crate::changes::AppliedChanges;
use std::collections::{HashMap, VecDeque};

use omnikv_core::{
    admin::{AdminRequest, AdminResponse},
    client::ClientResponse,
    event::{BallotView, MessageInfo, MessageKind, NodeEvent, NodeStatus},
    peer::ReadIndexMsg,
    KVCommand, NodeId, RequestId,
};
use omnipaxos::{messages::Message, OmniPaxos};
use tracing::{debug, info, warn};

use crate::events::Detail;
use crate::input::Input;
use crate::snapshot_fix::{carries_delta_snapshot, complete_snapshot_sync, replace_delta_snapshot};
use crate::storage::{SnapshotSummary, StorageError};
pub use apply::compaction_phase;
pub use early_release::ReleaseBeforeSync;
use own_ballot::OwnBallotWatch;
use ports::{Compaction, StateMachine};
pub use ports::{Io, Platform};
use promise_repeats::{PromiseRepeats, PromiseResends};
use requests::Pending;

/// What a replica is told at start, besides its storage.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    pub id: NodeId,
    /// The other members (probed by the read-index protocol).
    pub peers: Vec<NodeId>,
    /// Time a request may wait to be decided before it gets a timeout reply.
    pub request_timeout_ms: u64,
    /// Requests in flight; more are refused with `overloaded`.
    pub pending_max: usize,
    /// Take a local snapshot every this many applied entries (0: never).
    pub snapshot_every: u64,
    /// Entries a local snapshot leaves in the log behind it: a follower at most this far
    /// behind the leader is caught up with entries; further, with the whole table.
    pub log_keep_entries: u64,
    /// Replace incoming delta snapshots by the entries they fold (off only to show the upstream
    /// bug).
    pub snapshot_fix: bool,
    /// Whether repeated promises whose answer is on its way are dropped (see
    /// `promise_repeats`); off only to show what they cost.
    pub drop_promise_repeats: bool,
    /// Whether a follower holds back repeats of a promise carrying a snapshot while its first
    /// copy is on its way (see `promise_repeats`); off only to show what they cost.
    pub hold_promise_resends: bool,
    /// Ticks in a heartbeat round (OmniPaxos' election timeout).
    pub election_ticks: u64,
    /// Whether a node stuck on its own ballot asks for a higher one (see `own_ballot`); off
    /// only to show the stall it prevents.
    pub own_ballot_watch: bool,
    /// Whether a follower that receives a `Prepare` or an `AcceptSync` of its ballot while
    /// already accepting asks to be synced again (see `late_sync`); off only to show the stall
    /// it prevents.
    pub late_sync_resync: bool,
    /// Whether an `AcceptSync` that starts below this node's decided index is dropped (see
    /// `late_sync`); off only to show what it prevents.
    pub drop_stale_syncs: bool,
    /// Whether a leader confirms with a majority that it still leads before it serves a
    /// linearizable read (see `read_index`); off only to show the stale reads it prevents.
    pub read_probe: bool,
    /// Which messages leave before the turn's fsync (see `early_release`).
    pub release_before_sync: ReleaseBeforeSync,
    /// For status reports.
    pub data_dir: String,
    pub pid: u32,
    pub started_at_ms: u64,
    /// A number drawn for this run of the node (random in the process), from which it numbers
    /// its read-index requests: an answer meant for an earlier run never matches one of this
    /// run's requests (see `read_index`).
    pub run_nonce: u64,
}

/// A failure that stops the replica: its storage can no longer be trusted.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("decided entries {from}..{to} are not readable")]
    Unreadable { from: u64, to: u64 },
    #[error("undecided entry below the decided index {0}")]
    UndecidedBelowDecided(u64),
    #[error("log trimmed to {0} without a snapshot")]
    TrimmedWithoutSnapshot(u64),
}

/// A message for a peer, numbered for the event stream.
pub struct Outgoing {
    pub to: NodeId,
    pub msg_id: u64,
    pub msg: Message<KVCommand>,
}

/// What a turn releases, once storage is synced.
pub struct Effects<P: Platform> {
    pub messages: Vec<Outgoing>,
    /// Messages of the read-index protocol.
    pub read_index: Vec<(NodeId, ReadIndexMsg)>,
    pub replies: Vec<(P::Reply, ClientResponse)>,
    pub admin_replies: Vec<(P::AdminReply, AdminResponse)>,
    /// What the turn's applied entries changed, run by run in log order (for watchers).
    pub changes: Vec<AppliedChanges>,
}

impl<P: Platform> Default for Effects<P> {
    fn default() -> Self {
        Effects {
            messages: Vec::new(),
            read_index: Vec::new(),
            replies: Vec::new(),
            admin_replies: Vec::new(),
            changes: Vec::new(),
        }
    }
}

/// What the event stream was last told, to report changes only.
#[derive(Default)]
struct Observed {
    accepted: u64,
    decided: u64,
    leader: Option<(NodeId, BallotView)>,
    /// Leader and whether it is in the accept phase: proposals are renewed when this changes.
    accepting: Option<(NodeId, bool)>,
    status: Option<NodeStatus>,
    status_at_us: u64,
    /// The leader as the read-index protocol last saw it.
    read_leader: Option<(NodeId, bool)>,
}

pub struct Replica<P: Platform> {
    config: ReplicaConfig,
    omni: OmniPaxos<KVCommand, P::Log>,
    table: P::Table,
    compaction: P::Compaction,
    /// Requests proposed here and not yet answered, by identity.
    pending: HashMap<RequestId, Pending<P::Reply>>,
    /// Linearizable reads in flight (see `read_index`).
    reads: read_index::ReadIndex<P::Reply>,
    /// Request deadlines in arrival order (the timeout is the same for all), microseconds.
    deadlines: VecDeque<(u64, RequestId)>,
    applied_idx: u64,
    next_msg_id: u64,
    outgoing: Vec<Message<KVCommand>>,
    observed: Observed,
    /// Promises answered, so that their repeats are not answered with another snapshot.
    promise_repeats: PromiseRepeats,
    /// Promises with a snapshot sent, so that their repeats are not sent while on their way.
    promise_resends: PromiseResends,
    /// Notices a promise of its own ballot that leads nowhere (see `own_ballot`).
    own_ballot: OwnBallotWatch,
    /// The stored snapshot in brief, as last stored or installed (for dump heads).
    snapshot_summary: Option<SnapshotSummary>,
    /// Where the next local snapshot may end though `snapshot_every` entries have not been
    /// applied since the last: the entries since then wrote many keys (see `apply`).
    compaction_cut: apply::CompactionCut,
    /// Admin requests of this turn, answered at its end.
    admin_waiting: Vec<(AdminRequest, P::AdminReply)>,
    /// Whether this turn's decided entries were applied while its fsync ran.
    applied_during_sync: bool,
    /// The turn's proposals, proposed together when its messages are taken.
    proposals: proposals::ProposalBatch,
    /// For a host that keeps handling inputs while its fsync runs (see `pipeline`).
    pipeline: pipeline::Pipeline<P>,
    effects: Effects<P>,
}

impl<P: Platform> Replica<P> {
    /// A replica over recovered storage: OmniPaxos built on its log, and the applied state.
    pub fn new(
        config: ReplicaConfig,
        omni: OmniPaxos<KVCommand, P::Log>,
        table: P::Table,
        compaction: P::Compaction,
    ) -> Result<Replica<P>, ReplicaError> {
        let applied_idx = table.applied_idx()?;
        let read_probe = config.read_probe;
        let run_nonce = config.run_nonce;
        let observed = Observed {
            accepted: omni.get_accepted_idx() as u64,
            decided: omni.get_decided_idx() as u64,
            ..Observed::default()
        };
        // The log reports the snapshot it recovered as stored (see `PaxosLog::open`).
        let snapshot_summary = compaction.take_stored();
        Ok(Replica {
            config,
            omni,
            table,
            compaction,
            promise_repeats: PromiseRepeats::default(),
            promise_resends: PromiseResends::default(),
            own_ballot: OwnBallotWatch::default(),
            snapshot_summary,
            compaction_cut: apply::CompactionCut::default(),
            pending: HashMap::new(),
            reads: read_index::ReadIndex::new(read_probe, run_nonce),
            deadlines: VecDeque::new(),
            applied_idx,
            next_msg_id: 0,
            outgoing: Vec::new(),
            observed,
            admin_waiting: Vec::new(),
            applied_during_sync: false,
            proposals: proposals::ProposalBatch::default(),
            pipeline: pipeline::Pipeline::default(),
            effects: Effects::default(),
        })
    }

    pub fn omni(&self) -> &OmniPaxos<KVCommand, P::Log> {
        &self.omni
    }

    pub fn table(&self) -> &P::Table {
        &self.table
    }

    pub fn applied_idx(&self) -> u64 {
        self.applied_idx
    }

    /// Requests waiting for their entry to be decided and applied here.
    pub fn pending_len(&self) -> usize {
        self.pending.len() + self.reads.len()
    }

    /// Handles one input. `now_us`: the host's monotonic clock, in microseconds.
    pub fn handle(
        &mut self,
        input: Input<P::Reply, P::AdminReply>,
        now_us: u64,
        io: &mut Io<'_>,
    ) -> Result<(), ReplicaError> {
        match input {
            Input::Peer {
                from, msg_id, msg, ..
            } => self.handle_peer(from, msg_id, msg, now_us, io),
            Input::ReadIndex { from, msg } => {
                if io.links.link_enabled(from) {
                    self.handle_read_index(from, msg);
                }
            }
            Input::PeerLink { peer, up } => {
                debug!(peer, up, "peer link event");
                self.link_changed(peer);
                if !up {
                    self.reads.link_down(peer);
                }
                // Every stream that comes up asks the peer to sync us if it leads (a
                // `PrepareReq`), the first one too: a node started on an empty data directory
                // holds no promise, so OmniPaxos would not ask on its own, and it would wait
                // for a leader change that a stable cluster never has.
                if up && io.links.link_enabled(peer) {
                    self.omni.reconnected(peer);
                }
                let connected = up && io.links.link_enabled(peer);
                io.events.emit(NodeEvent::LinkChanged { peer, connected });
            }
            Input::Client { req, reply } => self.handle_client(req, reply, now_us, io)?,
            // Answered once the turn has applied what it decided: a dump or a status taken in
            // the middle of a turn would show entries decided and not yet applied.
            Input::Admin { req, reply } => self.admin_waiting.push((req, reply)),
            Input::Tick => {
                self.omni.tick();
                let cluster_size = self.config.peers.len() + 1;
                let (me, round_ticks) = (self.config.id, self.config.election_ticks);
                let stalled = self.config.own_ballot_watch.then(|| {
                    self.own_ballot
                        .tick(&mut self.omni, me, cluster_size, round_ticks)
                });
                if let Some(Some(rounds)) = stalled {
                    warn!(
                        promise = ?self.omni.get_promise(),
                        "held my own ballot for {rounds} heartbeat rounds without leading: asked for a higher one",
                    );
                }
                self.expire_requests(now_us, io);
                self.expire_reads(now_us, io);
            }
        }
        Ok(())
    }

    fn handle_peer(
        &mut self,
        from: NodeId,
        msg_id: u64,
        mut msg: Message<KVCommand>,
        now_us: u64,
        io: &mut Io<'_>,
    ) {
        if !io.links.link_enabled(from) {
            return;
        }
        if !self.promise_repeats.admit(from, &msg, now_us) && self.config.drop_promise_repeats {
            debug!(from, "a repeated promise: its answer is on its way");
            return;
        }
        trace_round_message("received", msg_id, &msg);
        if io.events.wants_detail(Detail::Message) {
            io.events
                .emit(NodeEvent::MessageReceived(MessageInfo::of(msg_id, &msg)));
        }
        if self.config.late_sync_resync && late_sync::is_ignored_sync(&self.omni, from, &msg) {
            info!(
                from,
                "a prepare or sync of its ballot reached this node accepting: asked for a new sync"
            );
            self.omni.reconnected(from);
            return;
        }
        if !self.config.snapshot_fix {
            if carries_delta_snapshot(&msg) {
                warn!(from, "kept a delta snapshot, the fix being off");
            }
        } else if replace_delta_snapshot(&self.omni, &mut msg) {
            info!(from, "replaced a delta snapshot by its entries");
        }
        if self.config.drop_stale_syncs && late_sync::is_stale_sync(&self.omni, &msg) {
            info!(
                from,
                "dropped a sync built for an older promise of this node"
            );
            return;
        }
        self.omni.handle_incoming(msg);
    }

    /// Takes the messages of the turn so far that may leave before the host syncs (see
    /// `early_release`); the rest wait for [`Replica::finish_turn`].
    pub fn take_messages_before_sync(&mut self, now_us: u64, io: &mut Io<'_>) -> Vec<Outgoing> {
        self.take_outgoing(now_us, io);
        let (now, after_sync) = early_release::split(
            std::mem::take(&mut self.effects.messages),
            self.config.release_before_sync,
        );
        self.effects.messages = after_sync;
        now
    }

    /// The host could not send a message to `peer` (its queue was full, or a snapshot was
    /// already on its way there): whatever answer it carried may be lost.
    pub fn message_lost(&mut self, peer: NodeId) {
        debug!(peer, "a message to the peer was lost");
        self.link_changed(peer);
    }

    /// What was sent on the link to `peer` may be lost (its stream went up or down, a message
    /// was not queued, the operator cut or healed it): promises are answered and sent again.
    pub(super) fn link_changed(&mut self, peer: NodeId) {
        self.promise_repeats.link_changed(peer);
        self.promise_resends.link_changed(peer);
    }

    /// Applies what the turn's inputs decided, while the host's fsync of the turn runs: see
    /// the module comment. Optional; `finish_turn` applies if this was not called.
    pub fn apply_during_sync(&mut self, now_us: u64, io: &mut Io<'_>) -> Result<(), ReplicaError> {
        self.observe_log(io);
        self.apply_decided(now_us, io)?;
        self.applied_during_sync = true;
        Ok(())
    }

    /// Ends a turn whose writes the host has synced: see the module comment.
    pub fn finish_turn(
        &mut self,
        now_us: u64,
        io: &mut Io<'_>,
    ) -> Result<Effects<P>, ReplicaError> {
        self.take_outgoing(now_us, io);
        if !std::mem::take(&mut self.applied_during_sync) {
            self.observe_log(io);
            self.apply_decided(now_us, io)?;
        }
        self.finish_reads(now_us, io)?;
        self.table
            .refresh_digest(self.applied_idx, io.events.active());
        self.maybe_snapshot(io)?;
        for (req, reply) in std::mem::take(&mut self.admin_waiting) {
            let resp = self.handle_admin(req, io)?;
            self.effects.admin_replies.push((reply, resp));
        }
        self.renew_proposals();
        self.observe_status(now_us, io);
        Ok(std::mem::take(&mut self.effects))
    }

    /// Answers every waiting request `unavailable` (the host is stopping).
    pub fn shut_down(&mut self) -> Effects<P> {
        for (id, p) in std::mem::take(&mut self.pending) {
            let resp = ClientResponse::Err {
                id: Some(id),
                error: omnikv_core::client::ClientError::Unavailable {
                    reason: "node shutting down".into(),
                },
            };
            self.effects.replies.push((p.reply, resp));
        }
        // Every read, whatever it waits for.
        for read in self.reads.expire(u64::MAX) {
            let resp = ClientResponse::Err {
                id: Some(read.id),
                error: omnikv_core::client::ClientError::Unavailable {
                    reason: "node shutting down".into(),
                },
            };
            self.effects.replies.push((read.reply, resp));
        }
        std::mem::take(&mut self.effects)
    }

    /// Hands the turn's proposals to OmniPaxos as one (see `proposals`).
    fn propose_batched(&mut self) {
        if let Some(proposal) = self.proposals.take(self.config.id) {
            self.omni.handle_incoming(proposal);
        }
    }

    fn take_outgoing(&mut self, now_us: u64, io: &mut Io<'_>) {
        self.propose_batched();
        self.omni.take_outgoing_messages(&mut self.outgoing);
        for msg in self.outgoing.drain(..) {
            self.next_msg_id += 1;
            let msg_id = self.next_msg_id;
            let to = msg.get_receiver();
            self.promise_repeats.sent(&msg);
            self.own_ballot.sent(&msg);
            trace_round_message("sent", msg_id, &msg);
            if !io.links.link_enabled(to) {
                continue;
            }
            if self.config.hold_promise_resends && !self.promise_resends.admit(&msg, now_us) {
                debug!(
                    to,
                    "a repeat of a promise with a snapshot: its first copy is on its way"
                );
                continue;
            }
            if let Some(sync) = complete_snapshot_sync(&msg) {
                // The kind and the ballot tell a round's answer from a repeat of it.
                let info = MessageInfo::of(msg_id, &msg);
                let ballot = (info.ballot).map_or("-".to_owned(), |b| format!("{}.{}", b.n, b.pid));
                info!(
                    to,
                    sync_idx = sync.sync_idx,
                    kind = ?info.kind,
                    %ballot,
                    "sending a complete snapshot"
                );
            }
            if io.events.wants_detail(Detail::Message) {
                io.events
                    .emit(NodeEvent::MessageSent(MessageInfo::of(msg_id, &msg)));
            }
            self.effects.messages.push(Outgoing { to, msg_id, msg });
        }
    }
}

/// Logs, at debug level, the messages that form a round (rare, unlike the accepts that
/// follow): enough to follow an election or a catch-up from the log alone.
fn trace_round_message(direction: &str, msg_id: u64, msg: &Message<KVCommand>) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let info = MessageInfo::of(msg_id, msg);
    if matches!(
        info.kind,
        MessageKind::PrepareReq
            | MessageKind::Prepare
            | MessageKind::Promise
            | MessageKind::AcceptSync
    ) {
        debug!(
            direction,
            kind = ?info.kind,
            from = info.from,
            to = info.to,
            ballot = ?info.ballot,
            "round message"
        );
    }
}
