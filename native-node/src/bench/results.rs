//! The files a benchmark run leaves behind, one JSON document per measurement, so that the
//! report can be rebuilt from them and every figure keeps the command that produced it.
//!
//! Layout of a results directory (written by `scripts/bench`): `load/*.json` ([`LoadResult`]),
//! `failover/*.json` ([`FailoverResult`]), `memory/*.json` ([`MemoryResult`], from an opt-in
//! run), `rocksdb.json` and `storage.json` (arrays), `machine.md` (a description of the machine
//! and versions, included verbatim) and `failover-failures.txt` (one line per failover trial in
//! which no write was acknowledged).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::backends::BackendKind;
use super::stats::Summary;
use super::workload::WorkloadKind;

/// One load run (`omnikv bench load`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadResult {
    /// Names the workload, the same for every backend (`put-c64`, `get-c64`, ...).
    pub label: String,
    pub backend: BackendKind,
    pub clients: usize,
    /// Endpoints the clients were spread over (0 in results from before it was recorded).
    #[serde(default)]
    pub endpoints: usize,
    /// Connections the clients used: one each, or fewer shared ones over gRPC.
    #[serde(default)]
    pub connections: usize,
    /// The offered rate of an open-loop run (latency counted from each request's due time);
    /// `None` for a closed loop.
    #[serde(default)]
    pub offered_per_s: Option<f64>,
    /// Which operations: puts and gets (`write_percent` puts), scans or CAS (put-get in
    /// results from before it was recorded).
    #[serde(default)]
    pub workload: WorkloadKind,
    pub key_space: u64,
    pub value_bytes: usize,
    pub write_percent: u8,
    /// `/events` subscribers held open during the run (one per endpoint, or none).
    pub events_subscribers: usize,
    /// Whether the subscribers asked for JSON rather than the page's postcard (results from
    /// before it was recorded: JSON, the only encoding their subscribers spoke).
    #[serde(default = "json_before_it_was_recorded")]
    pub events_json: bool,
    pub events_received: u64,
    /// Whether OmniKV's clients wrote JSON on `/client` rather than postcard (results from
    /// before it was recorded: JSON, the only encoding their clients spoke).
    #[serde(default = "json_before_it_was_recorded")]
    pub client_json: bool,
    pub summary: Summary,
    /// Whether the leader or its term changed between the start and the end of the
    /// measurement (`None`: could not tell).
    pub leader_changed: Option<bool>,
    pub command: String,
}

fn json_before_it_was_recorded() -> bool {
    true
}

/// One failover trial (`omnikv bench failover`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailoverResult {
    pub backend: BackendKind,
    pub killed_endpoint: String,
    pub killed_pid: u32,
    /// From SIGKILL of the leader to the first acknowledged write through a survivor.
    pub failover_ms: f64,
    pub command: String,
}

/// One RocksDB `db_bench` figure (written by `scripts/bench`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RocksdbResult {
    pub name: String,
    pub threads: u32,
    pub ops_per_s: f64,
    pub micros_per_op: f64,
    pub command: String,
}

/// One storage micro-benchmark (`omnikv bench storage`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MicroResult {
    pub name: String,
    /// What one iteration does.
    pub unit: String,
    pub iterations: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    /// Entries (or keys) processed per second across all iterations.
    pub items_per_s: f64,
    pub command: String,
}

/// The resident memory of a cluster's nodes after a number of puts (`omnikv bench memory`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemoryResult {
    pub backend: BackendKind,
    /// Puts acknowledged by the cluster since it started empty.
    pub puts: u64,
    /// VmRSS of each node's process, in node order.
    pub rss_kib: Vec<u64>,
    /// What each node's data directory holds, in node order (when given).
    #[serde(default)]
    pub disk: Vec<DiskUse>,
    /// From a follower's restart (SIGKILL, start) to its serving the last write from its own
    /// copy, when measured at this count.
    #[serde(default)]
    pub restart_to_serving_ms: Option<u64>,
    pub command: String,
}

/// The bytes of one data directory, by kind of file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskUse {
    /// Write-ahead logs (RocksDB's `*.log`, etcd's `*.wal`).
    pub wal_bytes: u64,
    /// RocksDB's sorted tables (`*.sst`).
    pub sst_bytes: u64,
    /// Everything else (manifests, info logs, etcd's bbolt database and snapshots).
    pub other_bytes: u64,
}

/// The command line of this process, for the record.
pub fn this_command() -> String {
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(first) = args.first_mut() {
        if let Some(name) = std::path::Path::new(first.as_str()).file_name() {
            *first = name.to_string_lossy().into_owned();
        }
    }
    args.join(" ")
}

#[cfg(test)]
impl LoadResult {
    /// A closed-loop put run of 64 clients over 3 nodes with these figures, for tests.
    pub fn sample(backend: BackendKind, label: &str, tput: f64, p50_us: u64) -> LoadResult {
        LoadResult {
            label: label.into(),
            backend,
            clients: 64,
            endpoints: 3,
            connections: 64,
            offered_per_s: None,
            workload: WorkloadKind::PutGet,
            key_space: 100_000,
            value_bytes: 256,
            write_percent: 100,
            events_subscribers: 0,
            events_json: false,
            events_received: 0,
            client_json: false,
            summary: Summary {
                ops: 1,
                errors: 0,
                elapsed_ms: 120_000,
                throughput_per_s: tput,
                mean_us: 1.0,
                p50_us,
                p99_us: p50_us * 2,
                p999_us: p50_us * 3,
                max_us: p50_us * 4,
            },
            leader_changed: Some(false),
            command: format!("omnikv bench load --label {label}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("reading {path}: {reason}")]
    Read { path: String, reason: String },
}

/// Everything found in a results directory.
#[derive(Clone, Default)]
pub struct Results {
    pub load: Vec<LoadResult>,
    pub failover: Vec<FailoverResult>,
    pub memory: Vec<MemoryResult>,
    pub rocksdb: Vec<RocksdbResult>,
    pub storage: Vec<MicroResult>,
    pub machine: String,
    pub failover_failures: Vec<String>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ReportError> {
    let err = |reason: String| ReportError::Read {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| err(e.to_string()))
}

fn read_dir_json<T: serde::de::DeserializeOwned>(dir: &Path) -> Result<Vec<T>, ReportError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths.iter().map(|p| read_json(p)).collect()
}

impl Results {
    pub fn load_dir(dir: &Path) -> Result<Results, ReportError> {
        let optional = |name: &str| {
            let p = dir.join(name);
            p.exists().then_some(p)
        };
        Ok(Results {
            load: read_dir_json(&dir.join("load"))?,
            failover: read_dir_json(&dir.join("failover"))?,
            memory: read_dir_json(&dir.join("memory"))?,
            rocksdb: optional("rocksdb.json")
                .map(|p| read_json(&p))
                .transpose()?
                .unwrap_or_default(),
            storage: optional("storage.json")
                .map(|p| read_json(&p))
                .transpose()?
                .unwrap_or_default(),
            machine: optional("machine.md")
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default(),
            failover_failures: optional("failover-failures.txt")
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect(),
        })
    }

    /// The last run of `label` on `backend`.
    pub fn run(&self, backend: BackendKind, label: &str) -> Option<&LoadResult> {
        self.load
            .iter()
            .rfind(|r| r.backend == backend && r.label == label)
    }

    /// The last open-loop run of each label and backend, OmniKV's first.
    pub fn open_loop_runs(&self) -> Vec<&LoadResult> {
        let mut runs: Vec<&LoadResult> = self
            .load
            .iter()
            .filter(|x| x.offered_per_s.is_some() && self.run(x.backend, &x.label) == Some(*x))
            .collect();
        runs.sort_by_key(|x| BackendKind::ALL.iter().position(|b| *b == x.backend));
        runs
    }

    pub fn failover_ms(&self, backend: BackendKind) -> Vec<f64> {
        self.failover
            .iter()
            .filter(|f| f.backend == backend)
            .map(|f| f.failover_ms)
            .collect()
    }
}
