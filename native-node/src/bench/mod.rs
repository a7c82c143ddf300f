//! `omnikv bench`: measuring OmniKV, and etcd with the same generator.
//!
//! - [`workload`]: the operations clients issue (keys, values, read/write mix, scans, CAS);
//!   [`preload`]: the keys scans and CAS expect, put before their runs.
//! - [`backends`]: OmniKV over its WebSocket protocol, etcd over gRPC (feature `etcd-grpc`) and
//!   over its v3 JSON gateway.
//! - [`load`]: N clients for a duration or an operation count; [`pacing`]: closed loop, or an
//!   open loop at a fixed offered rate.
//! - [`failover`]: SIGKILL the leader, time the first acknowledged write.
//! - [`storage_micro`]: micro-benchmarks of the storage layer alone.
//! - [`memory`]: the resident memory of every node after a number of puts.
//! - [`stats`]: latency histograms and summaries; [`results`]: the JSON files runs leave.
//! - [`report`], [`targets`], [`svg`] and [`svg_lines`]: tables, the target verdicts,
//!   BENCHMARKS.md and its chart.

pub mod backends;
pub mod failover;
pub mod load;
pub mod memory;
pub mod pacing;
pub mod preload;
pub mod report;
pub mod results;
pub mod rounds;
pub mod stats;
pub mod storage_micro;
pub mod svg;
pub mod svg_lines;
pub mod targets;
pub mod workload;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use omnikv_core::limits::TXN_PARTS_MAX;
use omnikv_core::wire::Encoding;

use backends::BackendKind;
use workload::WorkloadKind;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Drive a cluster with N concurrent clients and print throughput and latency.
    Load(LoadArgs),
    /// One failover trial: SIGKILL the leader and time the first acknowledged write.
    Failover(FailoverArgs),
    /// Micro-benchmarks of the storage layer (append + fsync, apply, read, snapshot).
    Storage(StorageArgs),
    /// Record the resident memory (VmRSS) of every node's process after a number of puts.
    Memory(MemoryArgs),
    /// Put every key of a key space once, each with a value of its own, many keys per request:
    /// a large table, quickly.
    Fill(FillArgs),
    /// Rebuild BENCHMARKS.md and its chart from a results directory.
    Report(ReportArgs),
}

#[derive(Args)]
pub struct Endpoints {
    /// The system under test.
    #[arg(long, value_enum, default_value = "omnikv")]
    pub backend: BackendKind,
    /// Endpoints: OmniKV `ws://host:port`, etcd `http://host:port` (repeat, or comma-separate).
    /// `--backend etcd` is etcd's gRPC API (a build with `--features etcd-grpc`),
    /// `etcd-gateway` its JSON gateway.
    #[arg(long = "endpoint", value_delimiter = ',', required = true)]
    pub endpoints: Vec<String>,
}

#[derive(Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub target: Endpoints,
    /// Concurrent clients, each with one request in flight, spread over the endpoints.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// gRPC connections shared by the clients (etcd), client i on connection i mod N, as
    /// etcd's own benchmark tool shares its `--conns`; 0: one per endpoint.
    #[arg(long, default_value_t = 0)]
    pub connections: usize,
    /// Open loop: offer this many operations per second in total, spread evenly over the
    /// clients, and count each latency from when its request was due (a closed loop without it).
    #[arg(long)]
    pub rate_per_s: Option<f64>,
    /// What the clients issue: puts and linearizable gets (see --write-percent), linearizable
    /// scans of a prefix that names 100 keys, or compare-and-puts that expect the value they
    /// put. Scans and CAS first put every key of the key space with one known value (untimed),
    /// and count a scan that misses keys or a CAS whose comparison fails as an error.
    #[arg(
        long,
        value_enum,
        default_value = "put-get",
        conflicts_with = "distinct_deletes"
    )]
    pub workload: WorkloadKind,
    #[arg(long, default_value_t = 256)]
    pub value_bytes: usize,
    #[arg(long, default_value_t = 100_000)]
    pub key_space: u64,
    /// Share of puts (the rest are linearizable gets) in the put-get workload.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub write_percent: u8,
    /// Measure for this long (default 10 s unless --ops is given).
    #[arg(long)]
    pub duration_s: Option<u64>,
    /// Stop after this many operations instead.
    #[arg(long, conflicts_with = "duration_s")]
    pub ops: Option<u64>,
    /// Run unmeasured for this long first.
    #[arg(long, default_value_t = 1000)]
    pub warmup_ms: u64,
    /// Hold an /events subscriber open on every endpoint (OmniKV), as a visualizer does: in
    /// postcard, decoding every event, as the page does.
    #[arg(long)]
    pub events: bool,
    /// The subscribers of --events ask for JSON instead (as `curl` or a script would), and only
    /// split frames into events.
    #[arg(long, requires = "events")]
    pub events_json: bool,
    /// OmniKV's clients write JSON on `/client` (as `omnikv put` and scripts do) rather than
    /// postcard, the page's binary encoding.
    #[arg(long)]
    pub client_json: bool,
    /// Open a new client session before every write, counted with it as one operation
    /// (OmniKV): as many client ids as writes, to check that the sessions the cluster keeps
    /// stay bounded.
    #[arg(long)]
    pub session_per_op: bool,
    /// Every operation puts a key never used before and deletes it: as many deleted keys as
    /// operations, to check that deleted keys leave nothing behind (no tombstones).
    /// Ignores --key-space and --write-percent.
    #[arg(long)]
    pub distinct_deletes: bool,
    /// Name of the workload in reports.
    #[arg(long, default_value = "custom")]
    pub label: String,
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the result as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Args)]
pub struct FailoverArgs {
    #[command(flatten)]
    pub target: Endpoints,
    /// Process ids in endpoint order (needed for etcd; OmniKV reports its own).
    #[arg(long, value_delimiter = ',')]
    pub pids: Vec<u32>,
    #[arg(long, default_value_t = 30_000)]
    pub give_up_ms: u64,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args)]
pub struct StorageArgs {
    /// Where the benchmark databases go (a fresh subdirectory is made and removed).
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 256)]
    pub value_bytes: usize,
    /// Time spent on each benchmark.
    #[arg(long, default_value_t = 2000)]
    pub budget_ms: u64,
    #[arg(long)]
    pub no_fsync: bool,
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args)]
pub struct MemoryArgs {
    #[arg(long, value_enum, default_value = "omnikv")]
    pub backend: BackendKind,
    /// The nodes' process ids, in node order.
    #[arg(long, value_delimiter = ',', required = true)]
    pub pids: Vec<u32>,
    /// Puts the cluster has acknowledged since it started empty (for the record).
    #[arg(long)]
    pub puts: u64,
    /// The nodes' data directories, in node order, to split into WAL, SST and the rest.
    #[arg(long, value_delimiter = ',')]
    pub data_dirs: Vec<PathBuf>,
    /// A restart-to-serving time measured at this count (by `scripts/bench`), for the record.
    #[arg(long)]
    pub restart_ms: Option<u64>,
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args)]
pub struct FillArgs {
    #[command(flatten)]
    pub target: Endpoints,
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Keys `bench-00000000` onwards, as `bench load` names them.
    #[arg(long)]
    pub keys: u64,
    #[arg(long, default_value_t = 256)]
    pub value_bytes: usize,
    /// Keys per request (one transaction, one log entry), at most 128 (a transaction's limit).
    #[arg(
        long,
        default_value_t = TXN_PARTS_MAX as u64,
        value_parser = clap::value_parser!(u64).range(1..=TXN_PARTS_MAX as u64)
    )]
    pub batch_keys: u64,
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
}

#[derive(Args)]
pub struct ReportArgs {
    /// The results directory written by scripts/bench.
    #[arg(long)]
    pub dir: PathBuf,
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub markdown: PathBuf,
    /// The chart, written next to the markdown file.
    #[arg(long, default_value = "benchmarks.svg")]
    pub svg: PathBuf,
    /// Hand-written notes (before/after figures, analysis) to include.
    #[arg(long)]
    pub notes: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Backend(#[from] backends::BackendError),
    #[error(transparent)]
    Load(#[from] load::LoadError),
    #[error(transparent)]
    Failover(#[from] failover::FailoverError),
    #[error(transparent)]
    Micro(#[from] storage_micro::MicroError),
    #[error(transparent)]
    Report(#[from] results::ReportError),
    #[error(transparent)]
    Memory(#[from] memory::MemoryError),
    #[error(transparent)]
    Fill(#[from] preload::PreloadError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn write_file(path: &Path, text: &str) -> Result<(), BenchError> {
    std::fs::write(path, text).map_err(|source| BenchError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("results serialise")
}

pub async fn run(cmd: BenchCommand) -> Result<(), BenchError> {
    match cmd {
        BenchCommand::Load(a) => {
            let duration = match (a.duration_s, a.ops) {
                (Some(s), _) => Some(Duration::from_secs(s)),
                (None, None) => Some(Duration::from_secs(10)),
                (None, Some(_)) => None,
            };
            let plan = load::LoadPlan {
                label: a.label,
                kind: a.target.backend,
                endpoints: a.target.endpoints,
                clients: a.clients.max(1),
                connections: a.connections,
                rate_per_s: a.rate_per_s,
                workload: workload::Workload {
                    kind: a.workload,
                    key_space: a.key_space,
                    value_bytes: a.value_bytes,
                    write_percent: a.write_percent,
                    distinct_deletes: a.distinct_deletes,
                },
                session_per_op: a.session_per_op,
                client_encoding: if a.client_json {
                    Encoding::Json
                } else {
                    Encoding::Postcard
                },
                duration,
                ops: a.ops,
                warmup: Duration::from_millis(if a.ops.is_some() { 0 } else { a.warmup_ms }),
                events: a.events.then_some(if a.events_json {
                    Encoding::Json
                } else {
                    Encoding::Postcard
                }),
                request_timeout: Duration::from_millis(a.timeout_ms),
                progress: !a.no_progress,
            };
            let result = load::run(plan).await?;
            if let Some(out) = &a.out {
                write_file(out, &to_json(&result))?;
            }
            if a.json {
                println!("{}", to_json(&result));
            } else {
                print!("{}", report::text_table(std::slice::from_ref(&result)));
            }
        }
        BenchCommand::Failover(a) => {
            let result = failover::trial(
                a.target.backend,
                &a.target.endpoints,
                &a.pids,
                Duration::from_millis(a.give_up_ms),
            )
            .await?;
            if let Some(out) = &a.out {
                write_file(out, &to_json(&result))?;
            }
            println!(
                "{}: leader (pid {}) killed, first write acknowledged after {:.1} ms",
                result.backend.name(),
                result.killed_pid,
                result.failover_ms
            );
        }
        BenchCommand::Storage(a) => {
            let dir = a
                .dir
                .join(format!("omnikv-storage-bench-{}", std::process::id()));
            let plan = storage_micro::MicroPlan {
                fsync: !a.no_fsync,
                value_bytes: a.value_bytes,
                budget: Duration::from_millis(a.budget_ms),
            };
            let results = tokio::task::spawn_blocking(move || {
                let r = storage_micro::run(&plan, &dir);
                let _ = std::fs::remove_dir_all(&dir);
                r
            })
            .await
            .expect("storage benchmark does not panic")?;
            for r in &results {
                println!(
                    "{:<26} {:>6} iterations  p50 {:>8.2} ms  p99 {:>8.2} ms  {:>10.0} entries/s",
                    r.name,
                    r.iterations,
                    r.p50_us as f64 / 1e3,
                    r.p99_us as f64 / 1e3,
                    r.items_per_s
                );
            }
            if let Some(out) = &a.out {
                write_file(out, &to_json(&results))?;
            }
        }
        BenchCommand::Memory(a) => {
            let mut result = memory::sample(a.backend, &a.pids, &a.data_dirs, a.puts)?;
            result.restart_to_serving_ms = a.restart_ms;
            let mib: Vec<String> = result
                .rss_kib
                .iter()
                .map(|k| format!("{:.0} MiB", *k as f64 / 1024.0))
                .collect();
            println!(
                "{} after {} puts: {}",
                a.backend.name(),
                a.puts,
                mib.join(", ")
            );
            if let Some(out) = &a.out {
                write_file(out, &to_json(&result))?;
            }
        }
        BenchCommand::Fill(a) => fill(a).await?,
        BenchCommand::Report(a) => {
            let results = results::Results::load_dir(&a.dir)?;
            let notes = match &a.notes {
                Some(p) => std::fs::read_to_string(p).map_err(|source| BenchError::Io {
                    path: p.display().to_string(),
                    source,
                })?,
                None => String::new(),
            };
            let chart_name = a
                .svg
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            write_file(&a.svg, &report::chart(&results))?;
            write_file(
                &a.markdown,
                &report::markdown(&results, &chart_name, &notes),
            )?;
            println!("wrote {} and {}", a.markdown.display(), a.svg.display());
        }
    }
    Ok(())
}

const FILL_PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// `omnikv bench fill`: prints its progress every [`FILL_PROGRESS_EVERY`], then the rate.
async fn fill(a: FillArgs) -> Result<(), BenchError> {
    let (sessions, _) = backends::open_sessions(&backends::SessionPlan {
        kind: a.target.backend,
        endpoints: &a.target.endpoints,
        clients: a.clients.max(1),
        connections: 0,
        timeout: Duration::from_millis(a.timeout_ms),
        session_per_op: false,
        encoding: Encoding::Postcard,
    })
    .await?;
    let plan = preload::Fill {
        key_space: a.keys,
        value_bytes: a.value_bytes,
        batch_keys: a.batch_keys,
        distinct_values: true,
    };
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let filling = preload::preload(sessions, &plan, done.clone());
    tokio::pin!(filling);
    let mut ticks = tokio::time::interval(FILL_PROGRESS_EVERY);
    ticks.tick().await;
    let result = loop {
        tokio::select! {
            result = &mut filling => break result,
            _ = ticks.tick() => {
                let (n, s) = (done.load(Ordering::Relaxed), started.elapsed().as_secs_f64());
                eprintln!("{n} of {} keys put in {s:.0} s ({:.0} keys/s)", a.keys, n as f64 / s);
            }
        }
    };
    result?;
    let s = started.elapsed().as_secs_f64();
    let rate = a.keys as f64 / s;
    println!(
        "filled {} keys of {} B in {s:.1} s ({rate:.0} keys/s)",
        a.keys, a.value_bytes
    );
    Ok(())
}
