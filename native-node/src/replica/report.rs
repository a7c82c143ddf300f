//! What a replica tells about itself: log and status events, and the admin requests (link
//! control, status, dump heads, full dumps).

use omnikv_core::{
    admin::{AdminRequest, AdminResponse, NodeDump, NodeHead},
    event::{event_takes_another, BallotView, NodeEvent, NodeStatus, Role},
    limits::{
        DUMP_HEAD_BYTES_MAX, DUMP_HEAD_KEYS_MAX, DUMP_HEAD_LOG_BYTES_MAX, DUMP_HEAD_LOG_MAX,
        DUMP_HEAD_SNAPSHOT_KEYS_MAX, DUMP_KEYS_MAX, EVENT_COMMANDS_MAX,
    },
    scan::ScanRange,
    session::Versioned,
    KVCommand, NodeId,
};
use omnipaxos::util::LogEntry;
use std::collections::BTreeMap;
use tracing::info;

use super::ports::{Platform, StateMachine};
use super::{Io, Replica, ReplicaError};
use crate::events::Detail;
use crate::storage::SnapshotSummary;

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
                self.link_changed(peer);
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
            AdminRequest::DumpHead { keys, log_entries } => {
                AdminResponse::DumpHead(Box::new(self.head(keys, log_entries)?))
            }
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

    /// The head of this replica's state: bounded work on the event loop whatever the table
    /// holds (at most `keys` keys read, the sessions the session rule bounds, a summary of the
    /// stored snapshot kept in memory, and at most `log_entries` entries and about 1 MiB read
    /// from the log).
    pub fn head(&self, keys: u32, log_entries: u32) -> Result<NodeHead, ReplicaError> {
        let keys = keys.clamp(1, DUMP_HEAD_KEYS_MAX) as usize;
        let log_entries = log_entries.min(DUMP_HEAD_LOG_MAX) as usize;
        let (kv, kv_complete) = self.first_keys(keys, DUMP_HEAD_BYTES_MAX)?;
        let compacted_idx = self.omni.get_compacted_idx();
        let decided_idx = self.omni.get_decided_idx();
        let (tail_from_idx, decided_tail) = self.decided_tail(log_entries);
        let summary = self.snapshot_summary.as_ref().filter(|_| compacted_idx > 0);
        let (snapshot_key_count, snapshot_keys) = match summary {
            // The table is the snapshot: what it holds now.
            Some(s) if s.table_serves => (
                self.table.key_count(),
                self.snapshot_first_keys(s, DUMP_HEAD_SNAPSHOT_KEYS_MAX)?,
            ),
            Some(s) => (
                s.key_count,
                self.snapshot_first_keys(s, DUMP_HEAD_SNAPSHOT_KEYS_MAX)?,
            ),
            None => (0, Vec::new()),
        };
        Ok(NodeHead {
            id: self.config.id,
            applied_idx: self.applied_idx,
            decided_idx: decided_idx as u64,
            compacted_idx: compacted_idx as u64,
            kv,
            kv_complete,
            sessions: self.table.sessions().clone(),
            snapshot_key_count,
            snapshot_keys,
            tail_from_idx,
            decided_tail,
        })
    }

    /// The last decided entries, at most `entries_max` of them and about
    /// [`DUMP_HEAD_LOG_BYTES_MAX`] bytes of keys and values (one entry at least), newest last,
    /// with the index of the first. Read one at a time from the newest, so the work is that of
    /// the entries returned.
    fn decided_tail(&self, entries_max: usize) -> (u64, Vec<KVCommand>) {
        let compacted_idx = self.omni.get_compacted_idx();
        let decided_idx = self.omni.get_decided_idx();
        let mut tail = Vec::new();
        let mut bytes = 0;
        let mut from_idx = decided_idx;
        while from_idx > compacted_idx && tail.len() < entries_max {
            // A range reaching into the compacted prefix would be read as the compacted entry:
            // a copy of the whole snapshot. This one never does.
            let entry = self.omni.read_entries(from_idx - 1..from_idx);
            let Some(LogEntry::Decided(cmd)) = entry.and_then(|mut e| e.pop()) else {
                break;
            };
            bytes += cmd.payload_bytes();
            if !tail.is_empty() && bytes > DUMP_HEAD_LOG_BYTES_MAX {
                break;
            }
            tail.push(cmd);
            from_idx -= 1;
        }
        tail.reverse();
        (from_idx as u64, tail)
    }

    /// The first keys (at most `keys_max`) of the snapshot `summary` describes: read from the
    /// table when the table serves as the snapshot (the summary holds none then), else the
    /// summary's own.
    pub(super) fn snapshot_first_keys(
        &self,
        summary: &SnapshotSummary,
        keys_max: usize,
    ) -> Result<Vec<String>, ReplicaError> {
        if summary.table_serves {
            let (first, _) = self.first_keys(keys_max, usize::MAX)?;
            Ok(first.into_keys().collect())
        } else {
            Ok(summary.keys.iter().take(keys_max).cloned().collect())
        }
    }

    /// The table's first keys, stopping before `keys_max` keys or `bytes_max` bytes of keys and
    /// values (one entry at least), and whether that is all of it. Read by scan pages, so the
    /// work is that of the keys returned.
    pub(super) fn first_keys(
        &self,
        keys_max: usize,
        bytes_max: usize,
    ) -> Result<(BTreeMap<String, Versioned>, bool), ReplicaError> {
        let mut kv = BTreeMap::new();
        let mut bytes = 0;
        let mut after = None;
        loop {
            // A page of only the keys still wanted: a snapshot event wants 256 of a page's 1,000.
            let range = ScanRange {
                after: after.take(),
                limit: u32::try_from((keys_max - kv.len()).max(1)).unwrap_or(u32::MAX),
                ..ScanRange::default()
            };
            let page = self.table.scan(&range)?;
            for e in page.entries {
                let size = e.key.len() + e.value.len();
                if kv.len() == keys_max || (!kv.is_empty() && bytes + size > bytes_max) {
                    return Ok((kv, false));
                }
                bytes += size;
                let versioned = Versioned {
                    value: e.value,
                    mod_index: e.mod_index,
                };
                kv.insert(e.key, versioned);
            }
            match page.next_after {
                None => return Ok((kv, true)),
                Some(_) if kv.len() == keys_max => return Ok((kv, false)),
                Some(last) => after = Some(last),
            }
        }
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
        let digest = self.table.digest();
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
            kv_digest: digest.map(|(d, _)| d),
            kv_digest_idx: digest.map(|(_, idx)| idx),
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
