//! Micro-benchmarks of the storage layer on its own (no network, no consensus): appending
//! batches of log entries with one fsync each, applying decided entries to the KV table,
//! reading log ranges, and compaction (creating a snapshot of a run of entries, merging it
//! into the stored snapshot and writing it back, as OmniPaxos does on `snapshot`).

use std::path::Path;
use std::time::{Duration, Instant};

use omnikv_core::{KVCommand, KVSnapshot, RequestId};
use omnipaxos::storage::{Snapshot, Storage};

use super::results::{this_command, MicroResult};
use super::stats::Recorder;
use super::workload::key_name;
use crate::storage::{KvTable, PaxosLog, StorageError, Store};

#[derive(Debug, thiserror::Error)]
pub enum MicroError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("omnipaxos storage: {0}")]
    Paxos(String),
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
}

fn paxos(e: Box<dyn std::error::Error>) -> MicroError {
    MicroError::Paxos(e.to_string())
}

pub struct MicroPlan {
    pub fsync: bool,
    pub value_bytes: usize,
    /// Time spent on each benchmark (at least a few iterations run regardless).
    pub budget: Duration,
}

/// Client sessions the writes are spread over: sessions 0.. are opened by the first entries.
const SESSIONS: u64 = 64;

fn put(seq: u64, key_space: u64, value: &str) -> KVCommand {
    KVCommand::Put {
        id: RequestId {
            client: seq % SESSIONS,
            seq: seq / SESSIONS,
        },
        key: key_name(seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) % key_space),
        value: value.to_owned(),
        forget_below: seq / SESSIONS,
    }
}

/// Runs `iteration` until the budget is spent (at least 5 times); `items` per iteration.
fn measure(
    name: &str,
    unit: &str,
    items: u64,
    budget: Duration,
    mut iteration: impl FnMut(u64) -> Result<(), MicroError>,
) -> Result<MicroResult, MicroError> {
    let mut rec = Recorder::default();
    let started = Instant::now();
    let mut n = 0;
    while n < 5 || started.elapsed() < budget {
        let t0 = Instant::now();
        iteration(n)?;
        rec.ok(t0.elapsed());
        n += 1;
    }
    let s = rec.summary(started.elapsed());
    Ok(MicroResult {
        name: name.to_owned(),
        unit: unit.to_owned(),
        iterations: n,
        p50_us: s.p50_us,
        p99_us: s.p99_us,
        items_per_s: s.throughput_per_s * items as f64,
        command: this_command(),
    })
}

pub fn run(plan: &MicroPlan, dir: &Path) -> Result<Vec<MicroResult>, MicroError> {
    let value = "v".repeat(plan.value_bytes);
    let mut out = Vec::new();
    let key_space = 100_000;

    for batch in [1u64, 16, 64, 256] {
        let path = dir.join(format!("append-{batch}"));
        let store = Store::open(&path, plan.fsync)?;
        let mut log = PaxosLog::open(store.clone())?;
        let mut seq = 0;
        out.push(measure(
            &format!("append {batch} + fsync"),
            &format!("append {batch} entries of 256 B, then one fsync"),
            batch,
            plan.budget,
            |_| {
                let entries = (0..batch)
                    .map(|i| put(seq + i, key_space, &value))
                    .collect();
                seq += batch;
                log.append_entries(entries).map_err(paxos)?;
                store.sync()?;
                Ok(())
            },
        )?);
    }

    {
        let store = Store::open(&dir.join("apply"), plan.fsync)?;
        let mut table = KvTable::open(store)?;
        let mut b = table.batch();
        for nonce in 0..SESSIONS {
            b.apply(
                &KVCommand::OpenSession {
                    id: RequestId {
                        client: nonce,
                        seq: 0,
                    },
                },
                nonce,
            );
        }
        b.commit(SESSIONS)?;
        let batch = 1024;
        let mut seq = 0;
        out.push(measure(
            "apply 1024",
            "apply 1024 puts and the applied index in one write batch",
            batch,
            plan.budget,
            |n| {
                let mut b = table.batch();
                for i in 0..batch {
                    b.apply(&put(seq + i, key_space, &value), SESSIONS + seq + i);
                }
                seq += batch;
                b.commit(SESSIONS + (n + 1) * batch)?;
                Ok(())
            },
        )?);
    }

    {
        let store = Store::open(&dir.join("read"), plan.fsync)?;
        let mut log = PaxosLog::open(store.clone())?;
        let entries: Vec<KVCommand> = (0..10_240).map(|i| put(i, key_space, &value)).collect();
        log.append_entries(entries).map_err(paxos)?;
        out.push(measure(
            "read 1024",
            "read 1024 log entries",
            1024,
            plan.budget,
            |n| {
                let from = (n % 10) as usize * 1024;
                let got = log.get_entries(from, from + 1024).map_err(paxos)?;
                assert_eq!(got.len(), 1024);
                Ok(())
            },
        )?);
    }

    for keys in [1_000u64, 10_000, 100_000] {
        let store = Store::open(&dir.join(format!("snapshot-{keys}")), plan.fsync)?;
        let mut log = PaxosLog::open(store.clone())?;
        let mut base = KVSnapshot::default();
        for nonce in 0..SESSIONS {
            base.push(&KVCommand::OpenSession {
                id: RequestId {
                    client: nonce,
                    seq: 0,
                },
            });
        }
        for i in 0..keys {
            let KVCommand::Put {
                id,
                value,
                forget_below,
                ..
            } = put(i, keys, &value)
            else {
                unreachable!("put makes a Put")
            };
            base.push(&KVCommand::Put {
                id,
                key: key_name(i),
                value,
                forget_below,
            });
        }
        log.set_snapshot(Some(base)).map_err(paxos)?;
        let run: Vec<KVCommand> = (keys..keys + 1000).map(|i| put(i, keys, &value)).collect();
        out.push(measure(
            &format!("snapshot over {keys} keys"),
            &format!("create a snapshot of 1000 entries, merge into a stored snapshot of {keys} keys, write it, fsync"),
            1000,
            plan.budget,
            |_| {
                let delta = KVSnapshot::create(&run);
                let mut snap = log.get_snapshot().map_err(paxos)?.unwrap_or_default();
                snap.merge(delta);
                log.set_snapshot(Some(snap)).map_err(paxos)?;
                store.sync()?;
                Ok(())
            },
        )?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_benchmark_runs() {
        let dir = tempfile::tempdir().unwrap();
        let plan = MicroPlan {
            fsync: false,
            value_bytes: 8,
            budget: Duration::ZERO,
        };
        let results = run(&plan, dir.path()).unwrap();
        assert_eq!(results.len(), 9);
        assert!(results
            .iter()
            .all(|r| r.iterations >= 5 && r.items_per_s > 0.0));
    }
}
