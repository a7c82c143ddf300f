//! Replaces delta snapshots in incoming log-synchronisation messages by the entries they fold.
//!
//! OmniPaxos 0.2.4 merges a received delta snapshot into a snapshot of the receiver's decided
//! prefix, but advances the decided index before building that snapshot, so it is built over
//! the wrong range: a caught-up follower can revert decided writes, resurrect deleted keys or
//! lose entries. A delta made by `KVSnapshot::create` holds every command of its slice of the
//! log, each with its offset, and the slice's length. So before OmniPaxos sees an `AcceptSync`
//! or `Promise` that carries `Delta(d)`, the node puts those commands back in front of the
//! message's suffix, at the delta's start, as if the sender had sent the entries: the path
//! without a snapshot has no ordering problem, and it costs what the delta holds, not what the
//! table holds.
//!
//! A delta that is not a whole slice of entries, or does not fit its message (longer than the
//! index it ends at), is rewritten the costly way, into `Complete(p ⊕ d)`, where `p` is the
//! receiver's own decided prefix.

use omnikv_core::{KVCommand, KVSnapshot};
use omnipaxos::{
    messages::{sequence_paxos::PaxosMsg, Message},
    storage::{Snapshot, SnapshotType, Storage},
    util::{LogEntry, LogSync},
    OmniPaxos,
};

/// Rewrites a delta snapshot in `msg`, if it carries one. Returns whether it did.
pub fn replace_delta_snapshot<B: Storage<KVCommand>>(
    omni: &OmniPaxos<KVCommand, B>,
    msg: &mut Message<KVCommand>,
) -> bool {
    match log_sync_mut(msg) {
        Some(sync) => rewrite(omni, sync),
        None => false,
    }
}

/// Whether `msg` carries a delta snapshot, i.e. whether [`replace_delta_snapshot`] would
/// rewrite it. Lets a node run with the fix off still say when the fix would have acted.
pub fn carries_delta_snapshot(msg: &Message<KVCommand>) -> bool {
    log_sync(msg).is_some_and(|s| matches!(s.decided_snapshot, Some(SnapshotType::Delta(_))))
}

/// Whether `msg` carries a snapshot of either kind (costly to encode and to send).
pub fn carries_snapshot(msg: &Message<KVCommand>) -> bool {
    log_sync(msg).is_some_and(|s| s.decided_snapshot.is_some())
}

/// The log synchronisation of `msg` if it carries a complete snapshot (the costly way a
/// follower is caught up, worth a line in the log).
pub fn complete_snapshot_sync(msg: &Message<KVCommand>) -> Option<&LogSync<KVCommand>> {
    log_sync(msg).filter(|s| matches!(s.decided_snapshot, Some(SnapshotType::Complete(_))))
}

fn log_sync(msg: &Message<KVCommand>) -> Option<&LogSync<KVCommand>> {
    let Message::SequencePaxos(p) = msg else {
        return None;
    };
    match &p.msg {
        PaxosMsg::AcceptSync(a) => Some(&a.log_sync),
        PaxosMsg::Promise(pr) => pr.log_sync.as_ref(),
        _ => None,
    }
}

/// The log synchronisation part of the only messages that carry a snapshot.
fn log_sync_mut(msg: &mut Message<KVCommand>) -> Option<&mut LogSync<KVCommand>> {
    let Message::SequencePaxos(p) = msg else {
        return None;
    };
    match &mut p.msg {
        PaxosMsg::AcceptSync(a) => Some(&mut a.log_sync),
        PaxosMsg::Promise(pr) => pr.log_sync.as_mut(),
        _ => None,
    }
}

fn rewrite<B: Storage<KVCommand>>(
    omni: &OmniPaxos<KVCommand, B>,
    sync: &mut LogSync<KVCommand>,
) -> bool {
    match sync.decided_snapshot.take() {
        Some(SnapshotType::Delta(delta)) if is_whole_slice(&delta, sync.sync_idx) => {
            sync.sync_idx -= delta.len as usize;
            let mut entries: Vec<KVCommand> =
                (delta.unresolved.into_iter()).map(|u| u.command).collect();
            entries.append(&mut sync.suffix);
            sync.suffix = entries;
            true
        }
        Some(SnapshotType::Delta(delta)) => {
            let mut complete = decided_prefix(omni);
            complete.merge(delta);
            sync.decided_snapshot = Some(SnapshotType::Complete(complete.resolved()));
            true
        }
        Some(SnapshotType::Complete(c)) => {
            // A sender whose compacted index passed its decided index (OmniPaxos 0.2.4) sends
            // its stored snapshot, names its decided index as the sync index, and reads the
            // suffix from its compacted index: placed at the named index, the suffix would land
            // too early. The snapshot knows where it ends, and the suffix starts there.
            let ends = c.len as usize;
            if ends > sync.sync_idx {
                sync.sync_idx = ends;
            }
            sync.decided_snapshot = Some(SnapshotType::Complete(c));
            false
        }
        other => {
            sync.decided_snapshot = other;
            false
        }
    }
}

/// Whether `delta` holds every entry of a slice of the log that ends at `sync_idx`, in order.
fn is_whole_slice(delta: &KVSnapshot, sync_idx: usize) -> bool {
    let dense = (delta.unresolved.iter().enumerate()).all(|(i, u)| u.at == i as u64);
    dense && delta.unresolved.len() as u64 == delta.len && delta.len as usize <= sync_idx
}

/// The fold of this node's decided log: its stored snapshot plus the decided entries after it.
pub fn decided_prefix<B: Storage<KVCommand>>(omni: &OmniPaxos<KVCommand, B>) -> KVSnapshot {
    let mut state = KVSnapshot::default();
    let decided_idx = omni.get_decided_idx();
    if decided_idx == 0 {
        return state;
    }
    // The log position of the next entry read.
    let mut pos = 0u64;
    for entry in omni.read_entries(0..decided_idx).unwrap_or_default() {
        match entry {
            LogEntry::Snapshotted(s) => {
                pos = s.trimmed_idx as u64;
                state = s.snapshot.resolved();
                // A snapshot may cover more than the index OmniPaxos names for it (see the
                // apply loop in `replica`): its own length says where it ends.
                state.len = state.len.max(pos);
            }
            // Already in the snapshot.
            LogEntry::Decided(_) | LogEntry::Undecided(_) if pos < state.len => pos += 1,
            LogEntry::Decided(cmd) | LogEntry::Undecided(cmd) => {
                state.push(&cmd);
                pos += 1;
            }
            LogEntry::Trimmed(idx) => {
                panic!("log trimmed to {idx} without a snapshot: the decided prefix is lost")
            }
            LogEntry::StopSign(..) => {}
        }
    }
    state
}
