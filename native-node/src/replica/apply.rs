//! Applying decided entries to the state machine, and local snapshots.

use omnikv_core::{
    event::{event_takes_another, NodeEvent},
    session::Applied,
    KVCommand, KVSnapshot, RequestId,
};
use omnipaxos::util::LogEntry;
use tracing::{info, warn};

use super::ports::{ApplyWrites, Compaction, Platform, StateMachine};
use super::requests::Outcome;
use super::{Io, Replica, ReplicaError};
use crate::storage::SnapshotSummary;

/// Entries applied per write batch.
const APPLY_BATCH_MAX: u64 = 1024;

/// What one run of applications did, for answers and events.
#[derive(Default)]
struct Run {
    answers: Vec<(RequestId, Outcome)>,
    /// The first commands applied, for the event.
    commands: Vec<KVCommand>,
    /// Bytes of keys and values in `commands`.
    command_bytes: usize,
    skipped: u64,
    installed: Option<(u64, KVSnapshot)>,
}

impl<P: Platform> Replica<P> {
    pub(super) fn apply_decided(
        &mut self,
        now_us: u64,
        io: &mut Io<'_>,
    ) -> Result<(), ReplicaError> {
        let decided = self.omni.get_decided_idx() as u64;
        while self.applied_idx < decided {
            let from = self.applied_idx;
            let to = decided.min(from + APPLY_BATCH_MAX);
            let entries = self
                .omni
                .read_entries(from as usize..to as usize)
                .unwrap_or_default();
            if entries.is_empty() {
                return Err(ReplicaError::Unreadable { from, to });
            }
            let (run, applied_to) = self.apply_run(from, entries)?;
            self.publish_run(from, applied_to, &run, io);
            self.applied_idx = applied_to;
            for (id, outcome) in run.answers {
                self.answer_pending(id, outcome, now_us, io);
            }
        }
        Ok(())
    }

    /// Applies one run of entries starting at `from` in one batch; returns what it did and the
    /// new applied index.
    fn apply_run(
        &mut self,
        from: u64,
        entries: Vec<LogEntry<KVCommand>>,
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
                    if matches!(applied, Applied::Duplicate { .. } | Applied::Refused(_)) {
                        run.skipped += 1;
                    }
                    // Only a copy of the waiting command answers it: someone else may have used
                    // its id for another command, which must not pass for its outcome.
                    let waiting = self
                        .pending
                        .get(&cmd.id())
                        .is_some_and(|p| p.cmd.digest() == cmd.digest());
                    if waiting {
                        let outcome = match applied {
                            Applied::Read => (Ok(batch.read(cmd.key())?), Some(idx)),
                            Applied::Written | Applied::Opened { .. } => (Ok(None), Some(idx)),
                            // Answered as the first copy was: with its index.
                            Applied::Duplicate { index } => (Ok(None), Some(index)),
                            Applied::Refused(r) => (Err(r.into()), Some(idx)),
                        };
                        run.answers.push((cmd.id(), outcome));
                    }
                    idx += 1;
                    if event_takes_another(run.commands.len(), run.command_bytes) {
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

    fn publish_run(&self, from: u64, applied_to: u64, run: &Run, io: &mut Io<'_>) {
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
                keys: summary.keys,
                key_count: summary.key_count,
            });
        }
        if applied_to > first_applied {
            io.events.emit(NodeEvent::EntriesApplied {
                from_idx: first_applied,
                count: applied_to - first_applied,
                commands: run.commands.clone(),
                skipped_duplicates: run.skipped,
            });
        }
    }

    pub(super) fn maybe_snapshot(&mut self, io: &mut Io<'_>) {
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
                    io.events.emit(NodeEvent::SnapshotTaken {
                        compacted_idx: self.omni.get_compacted_idx() as u64,
                        keys: stored.keys,
                        key_count: stored.key_count,
                    });
                }
            }
            Err(e) => warn!(target, error = ?e, "snapshot failed"),
        }
    }
}
