//! What a replica tells about itself: log and status events, and the admin requests (link
//! control, status, full dumps).

use omnikv_core::{
    admin::{AdminRequest, AdminResponse, NodeDump},
    event::{event_takes_another, BallotView, NodeEvent, NodeStatus, Role},
    limits::{DUMP_KEYS_MAX, EVENT_COMMANDS_MAX},
    NodeId,
};
use omnipaxos::util::LogEntry;
use tracing::info;

use super::ports::{Platform, StateMachine};
use super::{Io, Replica, ReplicaError};
use crate::events::Detail;

/// Minimum spacing of status events when only indices change.
const STATUS_INTERVAL_US: u64 = 100_000;
/// Longest silence between status events.
const STATUS_HEARTBEAT_US: u64 = 1_000_000;

fn not_a_peer(peer: NodeId, me: NodeId) -> AdminResponse {
    AdminResponse::Error {
        message: format!("node {peer} is not a peer of node {me}"),
    }
}

fn not_held(peer: NodeId, me: NodeId) -> AdminResponse {
    AdminResponse::Error {
        message: format!("node {me} does not hold its messages to node {peer}"),
    }
}

impl<P: Platform> Replica<P> {
    pub(super) fn handle_admin(
        &mut self,
        req: AdminRequest,
        io: &mut Io<'_>,
    ) -> Result<AdminResponse, ReplicaError> {
        Ok(match req {
            AdminRequest::SetLink { peer, connected } => {
                if !io.links.set_link(peer, connected) {
                    return Ok(not_a_peer(peer, self.config.id));
                }
                if connected {
                    self.omni.reconnected(peer);
                }
                io.events.emit(NodeEvent::LinkChanged { peer, connected });
                AdminResponse::Ok
            }
            AdminRequest::Status => AdminResponse::Status(self.status(io)),
            AdminRequest::HoldLink { peer, held } => match io.links.hold(peer, held) {
                true => AdminResponse::Ok,
                false => not_a_peer(peer, self.config.id),
            },
            AdminRequest::DeliverHeld { peer, count } => match io.links.deliver(peer, count) {
                Some(count) => AdminResponse::Held { count },
                None => not_held(peer, self.config.id),
            },
            AdminRequest::DropHeld { peer } => match io.links.drop_held(peer) {
                Some(dropped) => AdminResponse::Held {
                    count: dropped as u32,
                },
                None => not_held(peer, self.config.id),
            },
            AdminRequest::Dump => match self.dump()? {
                Some(dump) => AdminResponse::Dump(Box::new(dump)),
                None => AdminResponse::Error {
                    message: format!(
                        "the table holds more than {DUMP_KEYS_MAX} keys: read it with dump_page"
                    ),
                },
            },
            // Served by the connection from a RocksDB snapshot, not by the event loop.
            AdminRequest::DumpPage { .. } => AdminResponse::Error {
                message: "dump pages are served by the connection".into(),
            },
        })
    }

    /// Everything this replica holds, to compare replicas; `None` for a table too large to
    /// copy on the event loop.
    pub fn dump(&self) -> Result<Option<NodeDump>, ReplicaError> {
        let Some(kv) = self.table.entries(DUMP_KEYS_MAX)? else {
            return Ok(None);
        };
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
        Ok(Some(NodeDump {
            id: self.config.id,
            applied_idx: self.applied_idx,
            decided_idx: decided_idx as u64,
            compacted_idx: compacted_idx as u64,
            kv,
            sessions: self.table.sessions().clone(),
            snapshot,
            decided_suffix,
        }))
    }

    pub(super) fn observe_log(&mut self, io: &mut Io<'_>) {
        let accepted = self.omni.get_accepted_idx() as u64;
        if accepted > self.observed.accepted && io.events.active() {
            let from = self
                .observed
                .accepted
                .max(self.omni.get_compacted_idx() as u64);
            // Reading the new entries back costs a log read per turn; a busy node leaves them
            // out, and watchers learn the commands when they are applied.
            let commands = if io.events.wants_detail(Detail::Commands) {
                let to = accepted.min(from + EVENT_COMMANDS_MAX as u64);
                self.omni
                    .read_entries(from as usize..to as usize)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|e| match e {
                        LogEntry::Decided(c) | LogEntry::Undecided(c) => Some(c),
                        _ => None,
                    })
                    .scan(0, |bytes, c| {
                        // `count` stays within EVENT_COMMANDS_MAX by the range read.
                        let takes = event_takes_another(0, *bytes);
                        *bytes += c.payload_bytes();
                        takes.then_some(c)
                    })
                    .collect()
            } else {
                Vec::new()
            };
            io.events.emit(NodeEvent::EntriesAppended {
                from_idx: from,
                count: accepted - from,
                commands,
            });
        }
        self.observed.accepted = accepted;
        let decided = self.omni.get_decided_idx() as u64;
        if decided != self.observed.decided {
            io.events.emit(NodeEvent::EntriesDecided {
                from_idx: self.observed.decided,
                to_idx: decided,
            });
            self.observed.decided = decided;
        }
    }

    pub fn status(&self, io: &Io<'_>) -> NodeStatus {
        let id = self.config.id;
        let promise: BallotView = self.omni.get_promise().into();
        let (leader, role) = match self.omni.get_current_leader() {
            Some((l, true)) if l == id => (Some(l), Role::Leader),
            Some((l, false)) if l == id => (Some(l), Role::Candidate),
            Some((l, _)) => (Some(l), Role::Follower),
            None => (None, Role::Follower),
        };
        NodeStatus {
            id,
            role,
            leader,
            ballot: promise,
            promise,
            accepted_idx: self.omni.get_accepted_idx() as u64,
            decided_idx: self.omni.get_decided_idx() as u64,
            compacted_idx: self.omni.get_compacted_idx() as u64,
            applied_idx: self.applied_idx,
            kv_digest: self.table.digest(),
            peers: io.links.peers(),
            data_dir: self.config.data_dir.clone(),
            started_at_ms: self.config.started_at_ms,
            pid: self.config.pid,
        }
    }

    pub(super) fn observe_status(&mut self, now_us: u64, io: &mut Io<'_>) {
        let status = self.status(io);
        let leader = status.leader.map(|l| (l, status.ballot));
        if leader != self.observed.leader {
            info!(leader = ?status.leader, ballot = ?status.ballot, "leader changed");
            io.events.emit(NodeEvent::LeaderChanged {
                leader: status.leader,
                ballot: status.ballot,
            });
            self.observed.leader = leader;
        }
        let due = match &self.observed.status {
            None => true,
            Some(last) => {
                let shape_changed = last.role != status.role
                    || last.leader != status.leader
                    || last.ballot != status.ballot
                    || last.peers != status.peers;
                let elapsed = now_us.saturating_sub(self.observed.status_at_us);
                shape_changed
                    || (*last != status && elapsed >= STATUS_INTERVAL_US)
                    || elapsed >= STATUS_HEARTBEAT_US
            }
        };
        if due {
            self.observed.status = Some(status.clone());
            self.observed.status_at_us = now_us;
            io.events.status(status);
        }
    }
}
