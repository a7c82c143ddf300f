//! The ledger: every acknowledged write, held against the decided log of every replica.
//!
//! Comparing replicas with each other cannot see a write that every replica lost; reads see
//! it only if one happens to land in the right place. So every write the cluster acknowledged
//! is recorded (session, seq, key, value, reply index) and checked after healing:
//!
//! - the entry decided at the reply's index is that write, on every replica whose log (as
//!   archived during the run, see [`LogArchive`]) holds that index, and no earlier entry is a
//!   copy of it (the reply names the first application);
//! - where a replica's session state still remembers the write, it names the same index;
//! - every replica decided that index, and each key's final value is the last acknowledged
//!   write to it (by index) or a write whose outcome is unknown.

use std::collections::BTreeMap;
use std::time::Duration;

use omnikv_core::{admin::NodeDump, KVCommand, NodeId};

use crate::pipeline::AckedWrite;
use crate::Cluster;

/// Decided entries seen in each replica's log during the run. Snapshots compact the log every
/// thousand entries, so the final dumps alone would hold only the last ones; the nemesis dumps
/// every replica that is up at each step and keeps what each showed.
#[derive(Debug, Default)]
pub struct LogArchive {
    logs: BTreeMap<NodeId, BTreeMap<u64, KVCommand>>,
    /// An index whose decided entry changed between two dumps of the same replica.
    rewritten: Vec<LedgerAnomaly>,
}

impl LogArchive {
    /// Dumps each of the `up` nodes (skipping one that does not answer quickly).
    pub async fn poll(&mut self, cluster: &Cluster, up: &[NodeId]) {
        for &id in up {
            let dump = cluster.admin(id, omnikv_core::admin::AdminRequest::Dump);
            if let Ok(Some(omnikv_core::admin::AdminResponse::Dump(d))) =
                tokio::time::timeout(Duration::from_millis(1000), dump).await
            {
                self.add(&d);
            }
        }
    }

    /// Keeps the decided entries `dump` shows.
    pub fn add(&mut self, dump: &NodeDump) {
        let log = self.logs.entry(dump.id).or_default();
        for (i, cmd) in dump.decided_suffix.iter().enumerate() {
            let index = dump.compacted_idx + i as u64;
            match log.get(&index) {
                Some(seen) if seen != cmd => self.rewritten.push(LedgerAnomaly::Rewritten {
                    node: dump.id,
                    index,
                    before: seen.clone(),
                    after: cmd.clone(),
                }),
                Some(_) => {}
                None => {
                    log.insert(index, cmd.clone());
                }
            }
        }
    }

    /// Entries archived, summed over replicas.
    pub fn entries(&self) -> usize {
        self.logs.values().map(BTreeMap::len).sum()
    }
}

/// A fact of the final state that contradicts an acknowledgement.
#[derive(Clone, Debug)]
pub enum LedgerAnomaly {
    /// The entry decided at the reply's index is not the acknowledged write.
    WrongEntry {
        node: NodeId,
        write: AckedWrite,
        found: KVCommand,
    },
    /// A copy of the write was decided before the index its reply named.
    EarlierCopy {
        node: NodeId,
        write: AckedWrite,
        index: u64,
    },
    /// The replica's session remembers the write at another index.
    SessionDisagrees {
        node: NodeId,
        write: AckedWrite,
        index: u64,
    },
    /// The replica never decided the reply's index.
    NotDecided { node: NodeId, write: AckedWrite },
    /// A key's final value is neither its last acknowledged write nor an unknown one.
    FinalValue {
        node: NodeId,
        key: String,
        value: Option<String>,
        last_acked: Option<AckedWrite>,
    },
    /// Two replicas decided different entries at one index.
    Diverged {
        index: u64,
        a: (NodeId, KVCommand),
        b: (NodeId, KVCommand),
    },
    /// One replica's decided entry changed.
    Rewritten {
        node: NodeId,
        index: u64,
        before: KVCommand,
        after: KVCommand,
    },
}

impl std::fmt::Display for LedgerAnomaly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = |w: &AckedWrite| {
            format!(
                "write {}/{} ({} = {:?}) acknowledged at index {}",
                w.id.client, w.id.seq, w.key, w.value, w.index
            )
        };
        match self {
            LedgerAnomaly::WrongEntry { node, write, found } => {
                write!(f, "node {node}: {}, but that entry is {found:?}", w(write))
            }
            LedgerAnomaly::EarlierCopy { node, write, index } => {
                write!(
                    f,
                    "node {node}: {}, but a copy was decided at {index}",
                    w(write)
                )
            }
            LedgerAnomaly::SessionDisagrees { node, write, index } => {
                write!(f, "node {node}: {}, but its session says {index}", w(write))
            }
            LedgerAnomaly::NotDecided { node, write } => {
                write!(f, "node {node}: {}, which it never decided", w(write))
            }
            LedgerAnomaly::FinalValue {
                node,
                key,
                value,
                last_acked,
            } => write!(
                f,
                "node {node}: {key} ends as {value:?}; last acknowledged: {}",
                last_acked.as_ref().map_or("none".into(), w)
            ),
            LedgerAnomaly::Diverged { index, a, b } => write!(
                f,
                "index {index}: node {} decided {:?}, node {} decided {:?}",
                a.0, a.1, b.0, b.1
            ),
            LedgerAnomaly::Rewritten {
                node,
                index,
                before,
                after,
            } => write!(
                f,
                "node {node}: index {index} was {before:?}, then {after:?}"
            ),
        }
    }
}

/// What the ledger check covered.
#[derive(Clone, Debug, Default)]
pub struct LedgerCoverage {
    /// Acknowledged writes found at their index in at least one replica's log.
    pub found_in_a_log: u64,
    /// Acknowledged writes whose index every replica's log still held or had shown.
    pub found_in_every_log: u64,
    /// Decided entries archived, summed over replicas.
    pub archived_entries: u64,
}

/// A write whose outcome is unknown: its key and value (`None`: a delete).
pub type UnknownWrite = (String, Option<String>);

/// Holds every acknowledged write in `acked` against the replicas' final `dumps` and the
/// logs archived during the run (to which the final dumps are added).
pub fn check(
    archive: &mut LogArchive,
    dumps: &[NodeDump],
    acked: &[AckedWrite],
    unknown: &[UnknownWrite],
) -> (Vec<LedgerAnomaly>, LedgerCoverage) {
    for d in dumps {
        archive.add(d);
    }
    let mut anomalies = std::mem::take(&mut archive.rewritten);
    anomalies.extend(diverged(archive));
    let mut coverage = LedgerCoverage {
        archived_entries: archive.entries() as u64,
        ..LedgerCoverage::default()
    };
    let first_copies: BTreeMap<NodeId, FirstCopies> = archive
        .logs
        .iter()
        .map(|(&node, log)| (node, first_copies(log)))
        .collect();
    for w in acked {
        let mut logs_holding = 0;
        for d in dumps {
            let log = archive.logs.get(&d.id).zip(first_copies.get(&d.id));
            if check_write(d, log, w, &mut anomalies) {
                logs_holding += 1;
            }
        }
        coverage.found_in_a_log += (logs_holding > 0) as u64;
        coverage.found_in_every_log += (logs_holding == dumps.len()) as u64;
    }
    anomalies.extend(final_values(dumps, acked, unknown));
    (anomalies, coverage)
}

/// Indices at which two replicas' archived logs differ (the first few).
fn diverged(archive: &LogArchive) -> Vec<LedgerAnomaly> {
    let mut first: BTreeMap<u64, (NodeId, &KVCommand)> = BTreeMap::new();
    let mut out = Vec::new();
    for (&node, log) in &archive.logs {
        for (&index, cmd) in log {
            match first.get(&index) {
                Some(&(other, seen)) if seen != cmd && out.len() < 10 => {
                    out.push(LedgerAnomaly::Diverged {
                        index,
                        a: (other, seen.clone()),
                        b: (node, cmd.clone()),
                    })
                }
                Some(_) => {}
                None => {
                    first.insert(index, (node, cmd));
                }
            }
        }
    }
    out
}

/// Checks one acknowledged write on one replica; true if its log showed the write's index.
fn check_write(
    d: &NodeDump,
    log: Option<(&BTreeMap<u64, KVCommand>, &FirstCopies)>,
    w: &AckedWrite,
    anomalies: &mut Vec<LedgerAnomaly>,
) -> bool {
    let node = d.id;
    let write = || w.clone();
    if w.index >= d.decided_idx {
        anomalies.push(LedgerAnomaly::NotDecided {
            node,
            write: write(),
        });
        return false;
    }
    if let Some(index) = d
        .sessions
        .get(w.id.client)
        .and_then(|s| s.applied(w.id.seq))
        .map(|a| a.index)
        .filter(|&i| i != w.index)
    {
        anomalies.push(LedgerAnomaly::SessionDisagrees {
            node,
            write: write(),
            index,
        });
    }
    let Some((log, first_copies)) = log else {
        return false;
    };
    if let Some(&index) = first_copies
        .get(&(w.id.client, w.id.seq))
        .filter(|&&i| i < w.index)
    {
        anomalies.push(LedgerAnomaly::EarlierCopy {
            node,
            write: write(),
            index,
        });
    }
    let Some(found) = log.get(&w.index) else {
        return false;
    };
    if !is_the_write(found, w) {
        anomalies.push(LedgerAnomaly::WrongEntry {
            node,
            write: write(),
            found: found.clone(),
        });
    }
    true
}

/// The index of the first archived copy of each write, by (session, seq).
type FirstCopies = BTreeMap<(u64, u64), u64>;

fn first_copies(log: &BTreeMap<u64, KVCommand>) -> FirstCopies {
    let mut first = BTreeMap::new();
    for (&index, cmd) in log {
        if let KVCommand::Put { id, .. }
        | KVCommand::Delete { id, .. }
        | KVCommand::Txn { id, .. } = cmd
        {
            first.entry((id.client, id.seq)).or_insert(index);
        }
    }
    first
}

fn is_the_write(cmd: &KVCommand, w: &AckedWrite) -> bool {
    match cmd {
        KVCommand::Put { id, key, value, .. } => {
            *id == w.id && *key == w.key && Some(value) == w.value.as_ref()
        }
        KVCommand::Delete { id, key, .. } => *id == w.id && *key == w.key && w.value.is_none(),
        // A compare-and-swap that succeeded: its one write is this one.
        KVCommand::Txn { id, ops, .. } => {
            let writes: Vec<_> = ops.iter().map(|o| (o.key(), o.value())).collect();
            *id == w.id && writes == [(w.key.as_str(), w.value.as_deref())]
        }
        _ => false,
    }
}

/// Each key's final value, on every replica, is its last acknowledged write (by index) or
/// a write whose outcome is unknown (which may have been applied after it).
fn final_values(
    dumps: &[NodeDump],
    acked: &[AckedWrite],
    unknown: &[UnknownWrite],
) -> Vec<LedgerAnomaly> {
    let mut last: BTreeMap<&str, &AckedWrite> = BTreeMap::new();
    for w in acked {
        let slot = last.entry(&w.key).or_insert(w);
        if w.index > slot.index {
            *slot = w;
        }
    }
    let mut keys: Vec<&str> = last.keys().copied().collect();
    keys.extend(unknown.iter().map(|(k, _)| k.as_str()));
    keys.extend(dumps.iter().flat_map(|d| d.kv.keys().map(String::as_str)));
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for d in dumps {
        for &key in &keys {
            let value = d.kv.get(key).map(|v| &v.value);
            let last_acked = last.get(key).copied();
            let expected = last_acked.and_then(|w| w.value.as_ref());
            let unknown_match = || unknown.iter().any(|(k, v)| k == key && v.as_ref() == value);
            if value != expected && !unknown_match() {
                out.push(LedgerAnomaly::FinalValue {
                    node: d.id,
                    key: key.to_string(),
                    value: value.cloned(),
                    last_acked: last_acked.cloned(),
                });
            }
        }
    }
    out
}
