//! Applying decided entries to the state machine, and local snapshots.

use std::collections::VecDeque;

use omnikv_core::{
    client::Answer,
    event::{event_takes_another, NodeEvent},
    limits::EVENT_SNAPSHOT_KEYS_MAX,
    scan::ScanRange,
    session::Applied,
    txn::TxnResult,
    watch::Change,
    KVCommand, KVSnapshot, NodeId, RequestId,
};
use omnipaxos::util::LogEntry;
use tracing::{info, warn};

use super::ports::{ApplyWrites, Compaction, Platform, StateMachine};
use super::requests::Outcome;
use super::{Io, Replica, ReplicaError};
use crate::changes::AppliedChanges;
use crate::storage::SnapshotSummary;

/// Entries applied per write batch.
const APPLY_BATCH_MAX: u64 = 256;
/// Keys written per turn, after which the rest of the decided entries wait for the next turn
/// (at most a tick away). A node far behind, or fed large transactions, would otherwise spend
/// one turn applying them all, and its peers elect another leader meanwhile: 4096 keys of 256 B
/// take about 10 ms to apply here.
const APPLY_TURN_KEYS_MAX: u64 = 4096;
/// Keys a local snapshot folds at most (besides the whole of one entry): a snapshot is taken
/// early once the entries since the last wrote this many. Folding costs time in proportion to
/// the keys, in one turn: at 4096 keys of 256 B a fold held a turn for 20-115 ms during a fill
/// (docs/performance-notes.md, section 15), against a 50 ms heartbeat round.
const SNAPSHOT_KEYS_MAX: u64 = 1024;

/// Cuts kept: more are not needed while an entry writes at most
/// [`TXN_PARTS_MAX`](omnikv_core::limits::TXN_PARTS_MAX) keys and the
/// log keeps fewer than `CUTS_KEPT_MAX * SNAPSHOT_KEYS_MAX / TXN_PARTS_MAX` entries; beyond,
/// the oldest go and snapshots are taken at the others.
const CUTS_KEPT_MAX: usize = 4096;

/// Where in every `every` applied entries node `id` of a cluster of `cluster_size` takes its
/// local snapshot: the members spread evenly over the interval. A compaction holds its node's
/// loop for milliseconds (about 10 ms for 1,000 entries on two cores), and the members apply the
/// same index within a turn of each other: compacting at the same index, all three held their
/// loops at once and, sharing the cores, each for longer, the leader's included. Spread, a
/// follower's compaction delays no write (the leader needs one follower's answer, not both),
/// and the leader's runs alone.
pub fn compaction_phase(id: NodeId, cluster_size: usize, every: u64) -> u64 {
    let n = cluster_size.max(1) as u64;
    (id.saturating_sub(1) % n) * every / n
}

/// Where a local snapshot may end before `snapshot_every` entries: counts the keys the entries
/// applied since the last cut wrote, and remembers where they reached [`SNAPSHOT_KEYS_MAX`]
/// until a snapshot may end there (the log keeps `log_keep_entries` behind a snapshot).
#[derive(Default)]
pub(super) struct CompactionCut {
    keys: u64,
    /// Ends of the entries that brought `keys` to [`SNAPSHOT_KEYS_MAX`], oldest first.
    cuts: VecDeque<u64>,
}

impl CompactionCut {
    fn applied(&mut self, end_idx: u64, keys: u64) {
        self.keys += keys;
        if self.keys >= SNAPSHOT_KEYS_MAX {
            self.keys = 0;
            if self.cuts.len() == CUTS_KEPT_MAX {
                self.cuts.pop_front();
            }
            self.cuts.push_back(end_idx);
        }
    }

    /// The last cut at or below `idx` (0 if none), forgetting those it passes.
    fn last_at_or_below(&mut self, idx: u64) -> u64 {
        let mut last = 0;
        while let Some(&cut) = self.cuts.front().filter(|&&c| c <= idx) {
            last = cut;
            self.cuts.pop_front();
        }
        last
    }
}

/// What one run of applications did, for answers and events.
#[derive(Default)]
struct Run {
    answers: Vec<(RequestId, Outcome)>,
    /// Linearizable scans applied in this run, answered once it is committed.
    scans: Vec<(RequestId, ScanRange)>,
    /// What the run's writes changed, for watchers.
    changes: Vec<Change>,
    /// The first commands applied, for the event.
    commands: Vec<KVCommand>,
    /// Bytes of keys and values in `commands`.
    command_bytes: usize,
    skipped: u64,
    installed: Option<(u64, KVSnapshot)>,
    /// Keys the run's entries wrote (or would have: a failed guard costs its reads).
    keys_written: u64,
}

/// The answer to the waiting request whose command `cmd`, decided at `idx`, did `applied`.
fn answer(
    cmd: &KVCommand,
    applied: Applied,
    idx: u64,
    batch: &impl ApplyWrites,
) -> Result<Outcome, ReplicaError> {
    let txn = |succeeded, found| {
        matches!(cmd, KVCommand::Txn { .. }).then_some(TxnResult { succeeded, found })
    };
    let (answer, index) = match applied {
        Applied::Read => {
            let current = batch.read(cmd.key())?;
            let answer = Answer {
                mod_index: current.as_ref().map(|v| v.mod_index),
                value: current.map(|v| v.value),
                ..Answer::default()
            };
            (answer, idx)
        }
        Applied::Written | Applied::Opened { .. } => (
            Answer {
                txn: txn(true, Vec::new()),
                ..Answer::default()
            },
            idx,
        ),
        // A failed comparison is an answer, not an error: it says what was found.
        Applied::GuardsFailed { found } => (
            Answer {
                txn: txn(false, found),
                ..Answer::default()
            },
            idx,
        ),
        // Answered as the first copy was: with its index, and whether its guards held.
        Applied::Duplicate {
            index,
            guards_failed,
        } => (
            Answer {
                txn: txn(!guards_failed, Vec::new()),
                ..Answer::default()
            },
            index,
        ),
        Applied::Refused(r) => return Ok((Err(r.into()), Some(idx))),
    };
    Ok((Ok(answer), Some(index)))
}

impl<P: Platform> Replica<P> {
    pub(super) fn apply_decided(
        &mut self,
        now_us: u64,
        io: &mut Io<'_>,
    ) -> Result<(), ReplicaError> {
        let decided = self.omni.get_decided_idx() as u64;
        let mut keys_this_turn = 0;
        while self.applied_idx < decided && keys_this_turn < APPLY_TURN_KEYS_MAX {
            let from = self.applied_idx;
            let to = decided.min(from + APPLY_BATCH_MAX);
            let entries = self
                .omni
                .read_entries(from as usize..to as usize)
                .unwrap_or_default();
            if entries.is_empty() {
                return Err(ReplicaError::Unreadable { from, to });
            }
            let gather_commands = io.events.wants_applied_commands();
            let (mut run, applied_to) = self.apply_run(from, entries, gather_commands)?;
            keys_this_turn += run.keys_written;
            self.publish_run(from, applied_to, &mut run, io);
            self.applied_idx = applied_to;
            self.effects.changes.push(AppliedChanges {
                from,
                to: applied_to,
                installed: run.installed.is_some(),
                changes: std::mem::take(&mut run.changes),
            });
            for (id, outcome) in std::mem::take(&mut run.answers) {
                self.answer_pending(id, outcome, now_us, io);
            }
            // A scan is answered from the table as the run left it, not at its own position:
            // the run is applied in one batch, and reading a range through the batch's
            // uncommitted writes would take a merge of two ordered sources. This is still a
            // linearizable answer. Every entry between the scan's and the run's end was decided
            // after the scan was proposed (it is later in the log), so it was invoked before
            // the scan's reply and none of them completed before the scan was invoked: they are
            // all concurrent with the scan, which may take effect after them, at the run's end.
            for (id, range) in run.scans {
                let answer = Answer {
                    scan: Some(self.table.scan(&range)?),
                    ..Answer::default()
                };
                let outcome = (Ok(answer), Some(applied_to - 1));
                self.answer_pending(id, outcome, now_us, io);
            }
        }
        Ok(())
    }

    /// Applies one run of entries starting at `from` in one batch; returns what it did and the
    /// new applied index. The run keeps its first commands for the event only if
    /// `gather_commands`.
    fn apply_run(
        &mut self,
        from: u64,
        entries: Vec<LogEntry<KVCommand>>,
        gather_commands: bool,
    ) -> Result<(Run, u64), ReplicaError> {
        let mut batch = self.table.batch();
        let mut run = Run::default();
        let mut idx = from;
        // Where the last installed snapshot really ends (see below).
        let mut covered = from;
        for entry in entries {
            match entry {
                LogEntry::Snapshotted(s) => {
                    let snapshot = s.snapshot.resolved();
                    batch.install(&snapshot);
                    idx = s.trimmed_idx as u64;
                    // OmniPaxos 0.2.4 can hand over a snapshot that covers more than the index
                    // it names (a leader whose compacted index passed its decided index sends
                    // its stored snapshot with the decided index; the simulation found it). The
                    // snapshot knows its own length: entries it already holds are skipped, so
                    // the table never runs ahead of its applied index.
                    covered = idx.max(snapshot.len);
                    run.installed = Some((idx, snapshot));
                }
                LogEntry::Decided(_) if idx < covered => idx += 1,
                LogEntry::Decided(cmd) => {
                    let applied = batch.apply(&cmd, idx);
                    let keys = cmd.writes().len().max(1) as u64;
                    run.keys_written += keys;
                    self.compaction_cut.applied(idx + 1, keys);
                    if matches!(applied, Applied::Duplicate { .. } | Applied::Refused(_)) {
                        run.skipped += 1;
                    }
                    if applied == Applied::Written {
                        run.changes
                            .extend(cmd.writes().into_iter().map(|(k, v)| Change {
                                index: idx,
                                key: k.to_owned(),
                                value: v.map(str::to_owned),
                            }));
                    }
                    // Only a copy of the waiting command answers it: someone else may have used
                    // its id for another command, which must not pass for its outcome.
                    let waiting = self
                        .pending
                        .get(&cmd.id())
                        .is_some_and(|p| p.cmd.digest() == cmd.digest());
                    if waiting {
                        if let KVCommand::Scan { id, range } = &cmd {
                            run.scans.push((*id, (**range).clone()));
                        } else {
                            let outcome = answer(&cmd, applied, idx, &batch)?;
                            run.answers.push((cmd.id(), outcome));
                        }
                    }
                    idx += 1;
                    if gather_commands && event_takes_another(run.commands.len(), run.command_bytes)
                    {
                        run.command_bytes += cmd.payload_bytes();
                        run.commands.push(cmd);
                    }
                }
                LogEntry::StopSign(..) => idx += 1,
                LogEntry::Undecided(_) => return Err(ReplicaError::UndecidedBelowDecided(idx)),
                LogEntry::Trimmed(t) => return Err(ReplicaError::TrimmedWithoutSnapshot(t as u64)),
            }
        }
        // A snapshot that covers more than the log has decided yet is applied all the same.
        let applied_to = idx.max(covered);
        batch.commit(applied_to)?;
        Ok((run, applied_to))
    }

    fn publish_run(&mut self, from: u64, applied_to: u64, run: &mut Run, io: &mut Io<'_>) {
        let first_applied = from.max(run.installed.as_ref().map_or(0, |(i, _)| *i));
        if let Some((compacted_idx, snapshot)) = &run.installed {
            info!(
                compacted_idx,
                keys = snapshot.snapshotted.len(),
                "installed a snapshot"
            );
            let summary = SnapshotSummary::of(snapshot);
            io.events.emit(NodeEvent::SnapshotInstalled {
                compacted_idx: *compacted_idx,
                keys: summary.keys.clone(),
                key_count: summary.key_count,
            });
            self.snapshot_summary = Some(summary);
        }
        if applied_to > first_applied {
            io.events.emit(NodeEvent::EntriesApplied {
                from_idx: first_applied,
                count: applied_to - first_applied,
                commands: std::mem::take(&mut run.commands),
                skipped_duplicates: run.skipped,
            });
        }
    }

    pub(super) fn maybe_snapshot(&mut self, io: &mut Io<'_>) -> Result<(), ReplicaError> {
        let every = self.config.snapshot_every;
        if every == 0 {
            return Ok(());
        }
        let upto = self
            .applied_idx
            .saturating_sub(self.config.log_keep_entries);
        let cluster_size = self.config.peers.len() + 1;
        let phase = compaction_phase(self.config.id, cluster_size, every);
        let on_schedule = match upto.checked_sub(phase) {
            Some(past) => past / every * every + phase,
            None => 0,
        };
        let target = on_schedule.max(self.compaction_cut.last_at_or_below(upto));
        if target == 0 || target <= self.omni.get_compacted_idx() as u64 {
            return Ok(());
        }
        let omni = &mut self.omni;
        let result = self
            .compaction
            .run(|| omni.snapshot(Some(target as usize), true));
        match result {
            Ok(()) => {
                if let Some(stored) = self.compaction.take_stored() {
                    // Only while someone listens: for the table, the keys are a read.
                    if io.events.active() {
                        let keys = self.snapshot_first_keys(&stored, EVENT_SNAPSHOT_KEYS_MAX)?;
                        io.events.emit(NodeEvent::SnapshotTaken {
                            compacted_idx: self.omni.get_compacted_idx() as u64,
                            keys,
                            key_count: stored.key_count,
                        });
                    }
                    self.snapshot_summary = Some(stored);
                }
            }
            Err(e) => warn!(target, error = ?e, "snapshot failed"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::compaction_phase;

    #[test]
    fn members_snapshot_at_distinct_points_of_the_interval() {
        let phases: Vec<u64> = (1..=3).map(|id| compaction_phase(id, 3, 1000)).collect();
        assert_eq!(phases, [0, 333, 666]);
        let five: Vec<u64> = (1..=5).map(|id| compaction_phase(id, 5, 8)).collect();
        assert_eq!(five, [0, 1, 3, 4, 6]);
        assert_eq!(compaction_phase(1, 1, 1000), 0, "a single node");
        assert!((1..=7).all(|id| compaction_phase(id, 7, 5) < 5));
    }
}
