//! A nemesis run against a real cluster: concurrent clients on a small key set, some of them
//! pipelining, while overlapping faults are injected at random (SIGKILL and restart of one,
//! two or every node, SIGSTOP and SIGCONT, majority/minority partitions, the
//! partial-connectivity scenarios). The client history is then checked for linearizability,
//! every acknowledged write against the replicas' decided logs (the ledger), and the replicas
//! against each other.
//!
//! The fault schedule and the clients' choices come from one seed, printed at the start, so a
//! run can be repeated; the exact interleaving still depends on real processes and time. Each
//! run is written as a trace (history and faults) that the page opens.

mod faults;
mod holds;
mod ledger;
mod trace;
mod workload;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use omnikv_core::client::ReadMode;
use rand::{rngs::StdRng, Rng, SeedableRng};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use faults::Overlaps;
pub use ledger::{LedgerAnomaly, LedgerCoverage};

use crate::pipeline::PipelineReport;
use crate::Cluster;
use faults::Faults;
use ledger::LogArchive;
use omnikv_core::linearizability::{self, Op, Operation};
use trace::TraceWriter;
use workload::{Record, Sequential, Shared};

#[derive(Clone, Debug)]
pub struct NemesisConfig {
    pub nodes: u64,
    /// Clients with one request at a time.
    pub clients: u64,
    /// Clients with many writes in flight; each picks its window in `window_range`.
    pub pipelined: u64,
    pub window_range: std::ops::RangeInclusive<usize>,
    pub keys: u64,
    pub duration: Duration,
    pub seed: u64,
    /// Fraction of reads served locally (stale reads allowed): 0 for linearizable reads only.
    pub local_read_ratio: f64,
    /// Only partitions (no crashes or pauses): the faults that make local reads stale.
    pub partitions_only: bool,
    /// Extra flags for every node (a test switches a safeguard off this way).
    pub node_flags: Vec<String>,
}

impl NemesisConfig {
    /// Reads the seed and duration from `OMNIKV_NEMESIS_SEED` and `OMNIKV_NEMESIS_SECONDS`
    /// (or `OMNIKV_NEMESIS_LONG=1` for ten minutes); `short_secs` otherwise.
    pub fn from_env(nodes: u64, short_secs: u64) -> NemesisConfig {
        let seed = std::env::var("OMNIKV_NEMESIS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(rand::random);
        let secs = std::env::var("OMNIKV_NEMESIS_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(if std::env::var("OMNIKV_NEMESIS_LONG").is_ok() {
                600
            } else {
                short_secs
            });
        NemesisConfig {
            nodes,
            clients: 8,
            pipelined: 2,
            window_range: 16..=32,
            // 16 keys per 35 s: the pipelined writers keep many writes of a key concurrent,
            // and the checker's search grows faster than linearly with a key's history.
            keys: 16 * secs.div_ceil(35).max(1),
            duration: Duration::from_secs(secs),
            seed,
            local_read_ratio: 0.0,
            partitions_only: false,
            node_flags: Vec::new(),
        }
    }
}

#[derive(Debug, Default)]
pub struct Report {
    /// Reads answered (linearizable or local, as configured).
    pub ok_reads: u64,
    pub failed_reads: u64,
    /// Compare-and-swaps answered: that wrote, and whose comparison failed.
    pub cas_swapped: u64,
    pub cas_failed: u64,
    /// Writes acknowledged, by all clients; of which by pipelined ones.
    pub acked_writes: u64,
    pub acked_pipelined: u64,
    /// Writes whose outcome stayed unknown.
    pub indeterminate_writes: u64,
    /// The pipelined writers' windows.
    pub windows: Vec<usize>,
    /// Times a pipelined writer moved to another node and resent what was in flight.
    pub switches: u64,
    pub faults: BTreeMap<&'static str, u64>,
    pub overlaps: Overlaps,
    pub leader_changes: u64,
    pub anomalies: Vec<linearizability::Violation>,
    pub ledger: Vec<LedgerAnomaly>,
    pub coverage: LedgerCoverage,
    /// How the replicas differ after healing (KV table, sessions, decided log), if they do.
    pub replicas_differ: Option<String>,
    /// The run's trace (history and faults), for the page.
    pub trace: Option<std::path::PathBuf>,
}

impl Report {
    /// Share of the writes whose outcome stayed unknown.
    pub fn indeterminate_share(&self) -> f64 {
        let writes = self.acked_writes + self.indeterminate_writes;
        self.indeterminate_writes as f64 / writes.max(1) as f64
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let faults: u64 = self.faults.values().sum();
        let o = &self.overlaps;
        write!(
            f,
            "writes: {} acknowledged ({} pipelined, windows {:?}, {} node switches), {} indeterminate ({:.2}%); compare-and-swaps: {} swapped, {} failed; reads: {} ok, {} failed; \
             faults: {} {:?}; overlaps: {} kills during cuts, at most {} nodes down at once, {} whole-cluster crashes; leader changes: {}; \
             ledger: {} acknowledged writes found at their index in a log ({} in every replica's; {} entries archived); anomalies: {} linearizability, {} ledger",
            self.acked_writes,
            self.acked_pipelined,
            self.windows,
            self.switches,
            self.indeterminate_writes,
            100.0 * self.indeterminate_share(),
            self.cas_swapped,
            self.cas_failed,
            self.ok_reads,
            self.failed_reads,
            faults,
            self.faults,
            o.kills_during_cuts,
            o.most_down_at_once,
            o.cluster_crashes,
            self.leader_changes,
            self.coverage.found_in_a_log,
            self.coverage.found_in_every_log,
            self.coverage.archived_entries,
            self.anomalies.len(),
            self.ledger.len(),
        )
    }
}

/// The clients' tasks.
struct Workload {
    stop: Arc<AtomicBool>,
    record: Shared,
    sequential: Vec<JoinHandle<()>>,
    pipelined: Vec<(usize, JoinHandle<PipelineReport>)>,
}

/// Runs the workload and the nemesis, heals, and checks. Panics (with the seed) if the
/// replicas differ at the end; returns the report with any linearizability or ledger
/// anomalies.
pub async fn run(config: NemesisConfig) -> Report {
    println!(
        "nemesis: seed {} ({} nodes, {} sequential and {} pipelined clients, {} keys, {:?}, flags {:?})",
        config.seed,
        config.nodes,
        config.clients,
        config.pipelined,
        config.keys,
        config.duration,
        config.node_flags
    );
    // Snapshots every 1000 entries: nodes that were away catch up by snapshot, and the log
    // still holds what was decided since the archive's last look at it.
    let mut flags = vec!["--snapshot-every", "1000", "--request-timeout-ms", "1000"];
    flags.extend(config.node_flags.iter().map(String::as_str));
    let mut cluster = Cluster::start(config.nodes, &flags);
    cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(15))
        .await;
    let start = Instant::now();
    let workload = start_clients(&cluster, &config, start);
    let mut faults = Faults::new(&config, cluster.ids(), start);
    let mut archive = LogArchive::default();
    let mut trace = TraceWriter::new(start, cluster.ids());
    while start.elapsed() < config.duration {
        faults.step(&mut cluster).await;
        trace.faults(&faults.state_now());
        archive.poll(&cluster, &up_nodes(&cluster)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    faults.heal_all(&mut cluster).await;
    trace.faults(&faults.state_now());
    println!("nemesis: faults healed at {:?}", start.elapsed());
    let mut report = Report {
        faults: faults.counts.clone(),
        overlaps: faults.overlaps.clone(),
        leader_changes: faults.leader_changes,
        ..Report::default()
    };
    let record = stop_clients(workload, &mut report, start).await;
    println!("nemesis: clients stopped at {:?}", start.elapsed());
    let history = check(&mut cluster, &config, record, archive, start, &mut report).await;
    match trace.write(&history, config.seed) {
        Ok(path) => {
            println!("nemesis: trace {}", path.display());
            report.trace = Some(path);
        }
        Err(e) => println!("nemesis: trace not written: {e}"),
    }
    println!("nemesis: seed {}: {report}", config.seed);
    for v in report.anomalies.iter().take(3) {
        println!("{v}");
    }
    for a in report.ledger.iter().take(5) {
        println!("ledger: {a}");
    }
    report
}

fn up_nodes(cluster: &Cluster) -> Vec<omnikv_core::NodeId> {
    let up = |id: &omnikv_core::NodeId| cluster.is_running(*id);
    cluster.ids().into_iter().filter(up).collect()
}

fn start_clients(cluster: &Cluster, config: &NemesisConfig, start: Instant) -> Workload {
    let stop = Arc::new(AtomicBool::new(false));
    let record: Shared = Arc::new(Mutex::new(Record::default()));
    let urls = cluster.urls();
    let sequential = (0..config.clients)
        .map(|c| {
            let client = Sequential::new(c, &urls, config, start, record.clone());
            tokio::spawn(client.run(stop.clone()))
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(config.seed ^ 0x5EED);
    // Writers get the whole run plus time to drain what is in flight after healing.
    let deadline = start + config.duration + Duration::from_secs(60);
    let pipelined = (0..config.pipelined)
        .map(|w| {
            let window = rng.gen_range(config.window_range.clone());
            let (urls, config, stop) = (urls.clone(), config.clone(), stop.clone());
            let task =
                async move { workload::pipelined(w, &urls, &config, window, stop, deadline).await };
            (window, tokio::spawn(task))
        })
        .collect();
    Workload {
        stop,
        record,
        sequential,
        pipelined,
    }
}

/// Stops the clients (pipelined writers first wait for what they have in flight) and gathers
/// what they saw.
async fn stop_clients(workload: Workload, report: &mut Report, start: Instant) -> Record {
    workload.stop.store(true, Ordering::Relaxed);
    for task in workload.sequential {
        task.await.expect("a sequential client panicked");
    }
    let mut record = std::mem::take(&mut *workload.record.lock().unwrap());
    let acked_sequential = record.acked.len() as u64;
    for (w, (window, task)) in workload.pipelined.into_iter().enumerate() {
        let pipeline = task.await.expect("a pipelined client panicked");
        report.windows.push(window);
        report.switches += pipeline.switches;
        workload::add_pipelined(&mut record, w as u64, pipeline, start);
    }
    report.acked_writes = record.acked.len() as u64;
    report.acked_pipelined = report.acked_writes - acked_sequential;
    report.indeterminate_writes = record.unknown.len() as u64;
    report.ok_reads = record.ok_reads;
    report.failed_reads = record.failed_reads;
    report.cas_swapped = record.cas_swapped;
    report.cas_failed = record.cas_failed;
    record
}

/// With every fault healed: final linearizable reads of every key join the history (so a
/// write lost at the very end is caught too), the replicas catch up and are compared, and
/// the history and the ledger are checked. Returns the history.
async fn check(
    cluster: &mut Cluster,
    config: &NemesisConfig,
    mut record: Record,
    mut archive: LogArchive,
    start: Instant,
    report: &mut Report,
) -> Vec<Operation> {
    let ids = cluster.ids();
    let leader = cluster.wait_leader(&ids, Duration::from_secs(20)).await;
    let mut reader = cluster.client_of(&ids);
    for k in 0..config.keys {
        let key = format!("k{k}");
        let call = workload::micros(start, Instant::now());
        let v = reader
            .get(&key, ReadMode::Linearizable)
            .await
            .expect("final read after healing");
        let ret = workload::micros(start, Instant::now());
        record.history.push(Operation {
            client: 999,
            key,
            op: Op::Get(v),
            call_us: call,
            ret_us: Some(ret),
        });
    }
    cluster
        .wait_caught_up(leader, &ids, Duration::from_secs(20))
        .await;
    let mut dumps = Vec::new();
    for &id in &ids {
        dumps.push(cluster.dump(id).await);
    }
    // Reported, not asserted here: a run with a deliberately broken rule must still get to
    // the ledger, which names the writes it lost.
    report.replicas_differ = std::panic::catch_unwind(|| crate::assert_identical(&dumps))
        .err()
        .map(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "replicas differ".into())
        });
    let (anomalies, coverage) = ledger::check(&mut archive, &dumps, &record.acked, &record.unknown);
    report.ledger = anomalies;
    report.coverage = coverage;
    println!(
        "nemesis: ledger checked at {:?}: {} ops in the history, {} unknown writes",
        start.elapsed(),
        record.history.len(),
        record.unknown.len()
    );
    report.anomalies = linearizability::check(&record.history);
    println!("nemesis: history checked at {:?}", start.elapsed());
    record.history
}
