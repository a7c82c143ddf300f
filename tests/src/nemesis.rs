//! A nemesis run against a real cluster: concurrent clients on a small key set while faults
//! are injected at random (SIGKILL and restart, SIGSTOP and SIGCONT, majority/minority
//! partitions, the partial-connectivity scenarios); the client history is then checked for
//! linearizability and the replicas compared.
//!
//! The fault schedule and the clients' choices come from one seed, printed at the start, so a
//! run can be repeated; the exact interleaving still depends on real processes and time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use omnikv_core::{client::ReadMode, control::Scenario, event::Role, NodeId};
use omnikv_node::client::CallError;
use omnikv_node::launcher::scenarios::{self, Link};
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::linearizability::{self, Op, Operation};
use crate::Cluster;

#[derive(Clone, Debug)]
pub struct NemesisConfig {
    pub nodes: u64,
    pub clients: u64,
    pub keys: u64,
    pub duration: Duration,
    pub seed: u64,
    /// Fraction of reads served locally (stale reads allowed): 0 for linearizable reads only.
    pub local_read_ratio: f64,
    /// Only partitions (no crashes or pauses): the faults that make local reads stale.
    pub partitions_only: bool,
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
            keys: 5,
            duration: Duration::from_secs(secs),
            seed,
            local_read_ratio: 0.0,
            partitions_only: false,
        }
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub ok: u64,
    pub failed_reads: u64,
    pub indeterminate_writes: u64,
    pub faults: BTreeMap<&'static str, u64>,
    pub leader_changes: u64,
    pub anomalies: Vec<linearizability::Violation>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let faults: u64 = self.faults.values().sum();
        write!(
            f,
            "operations: {} ok, {} indeterminate writes, {} failed reads; faults injected: {} {:?}; leader changes: {}; anomalies: {}",
            self.ok,
            self.indeterminate_writes,
            self.failed_reads,
            faults,
            self.faults,
            self.leader_changes,
            self.anomalies.len()
        )
    }
}

type History = Arc<Mutex<Vec<Operation>>>;

/// Runs the workload and the nemesis, heals, and checks. Panics (with the seed) if the
/// replicas differ at the end; returns the report with any linearizability anomalies.
pub async fn run(config: NemesisConfig) -> Report {
    println!(
        "nemesis: seed {} ({} nodes, {} clients, {:?})",
        config.seed, config.nodes, config.clients, config.duration
    );
    let mut cluster = Cluster::start(
        config.nodes,
        &["--snapshot-every", "100", "--request-timeout-ms", "1000"],
    );
    cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(15))
        .await;
    let start = Instant::now();
    let history: History = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut report = Report::default();

    let mut workers = Vec::new();
    for c in 0..config.clients {
        let urls = cluster.urls();
        let history = history.clone();
        let stop = stop.clone();
        let config = config.clone();
        workers.push(tokio::spawn(async move {
            let mut rng =
                StdRng::seed_from_u64(config.seed ^ (c + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut client = omnikv_node::client::Client::new(urls.clone());
            client.attempt_timeout = Duration::from_millis(1500);
            client.total_timeout = Duration::from_secs(3);
            let mut local_clients: Vec<_> = urls
                .iter()
                .map(|u| {
                    let mut one = omnikv_node::client::Client::new(vec![u.clone()]);
                    one.total_timeout = Duration::from_millis(500);
                    one
                })
                .collect();
            let mut counts = (0u64, 0u64, 0u64);
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let key = format!("k{}", rng.gen_range(0..config.keys));
                let roll: f64 = rng.gen();
                let call = start.elapsed().as_micros() as u64;
                let (op, result) = if roll < 0.45 {
                    let v = format!("c{c}-{n}");
                    let r = client.put(&key, &v).await.map(|_| None);
                    (Op::Put(v), r)
                } else if roll < 0.55 {
                    (Op::Delete, client.delete(&key).await.map(|_| None))
                } else {
                    let local = rng.gen::<f64>() < config.local_read_ratio;
                    let mode = if local {
                        ReadMode::Local
                    } else {
                        ReadMode::Linearizable
                    };
                    if local {
                        // A local read is served by one node: pick it at random.
                        let one = &mut local_clients[rng.gen_range(0..urls.len())];
                        (Op::Get(None), one.get(&key, mode).await.map(Some))
                    } else {
                        (Op::Get(None), client.get(&key, mode).await.map(Some))
                    }
                };
                let ret = start.elapsed().as_micros() as u64;
                let record = match (op, result) {
                    (Op::Get(_), Ok(Some(v))) => {
                        counts.0 += 1;
                        Some(Operation {
                            client: c,
                            key,
                            op: Op::Get(v),
                            call,
                            ret: Some(ret),
                        })
                    }
                    (op, Ok(_)) => {
                        counts.0 += 1;
                        Some(Operation {
                            client: c,
                            key,
                            op,
                            call,
                            ret: Some(ret),
                        })
                    }
                    (Op::Get(_), Err(_)) => {
                        counts.2 += 1;
                        None
                    }
                    (op, Err(CallError::Unavailable { .. })) => {
                        counts.1 += 1;
                        Some(Operation {
                            client: c,
                            key,
                            op,
                            call,
                            ret: None,
                        })
                    }
                    (_, Err(e @ CallError::Rejected(_))) => panic!("request rejected: {e}"),
                };
                if let Some(r) = record {
                    history.lock().unwrap().push(r);
                }
            }
            counts
        }));
    }

    // Leader observer: counts changes of the leader's ballot.
    let leader_changes = Arc::new(std::sync::atomic::AtomicU64::new(0));

    let mut rng = StdRng::seed_from_u64(config.seed);
    let ids = cluster.ids();
    let mut last_leader = None;
    while start.elapsed() < config.duration {
        let leader = current_leader(&cluster).await;
        if leader.is_some() && leader != last_leader {
            if last_leader.is_some() {
                leader_changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            last_leader = leader;
        }
        let target = match leader {
            Some((l, _)) if rng.gen_bool(0.6) => l,
            _ => ids[rng.gen_range(0..ids.len())],
        };
        let hold = Duration::from_millis(rng.gen_range(300..1500));
        let kinds: &[&'static str] = if config.partitions_only {
            &["partition", "isolate", "chained", "quorum-loss"]
        } else {
            &[
                "kill",
                "pause",
                "partition",
                "isolate",
                "quorum-loss",
                "constrained",
                "chained",
            ]
        };
        let kind = kinds[rng.gen_range(0..kinds.len())];
        *report.faults.entry(kind).or_default() += 1;
        match kind {
            "kill" => {
                cluster.kill(target);
                observe(&cluster, &mut last_leader, &leader_changes, hold).await;
                cluster.restart(target);
            }
            "pause" => {
                cluster.signal(target, "STOP");
                observe(&cluster, &mut last_leader, &leader_changes, hold).await;
                cluster.signal(target, "CONT");
            }
            _ => {
                let cut = match kind {
                    "partition" => {
                        let mut shuffled = ids.clone();
                        for i in (1..shuffled.len()).rev() {
                            shuffled.swap(i, rng.gen_range(0..=i));
                        }
                        let minority: BTreeSet<NodeId> =
                            shuffled[..(ids.len() - 1) / 2].iter().copied().collect();
                        scenarios::all_links(&ids)
                            .into_iter()
                            .filter(|(a, b)| minority.contains(a) != minority.contains(b))
                            .collect()
                    }
                    "isolate" => scenarios::isolate(&ids, target),
                    other => {
                        let scenario = Scenario::parse(other).expect("known scenario");
                        scenarios::plan(scenario, &ids, leader.map(|(l, _)| l)).unwrap_or_default()
                    }
                };
                set_links(&cluster, &cut, false).await;
                observe(&cluster, &mut last_leader, &leader_changes, hold).await;
                set_links(&cluster, &cut, true).await;
            }
        }
        observe(
            &cluster,
            &mut last_leader,
            &leader_changes,
            Duration::from_millis(rng.gen_range(200..800)),
        )
        .await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        let (ok, indeterminate, failed) = w.await.unwrap();
        report.ok += ok;
        report.indeterminate_writes += indeterminate;
        report.failed_reads += failed;
    }
    report.leader_changes = leader_changes.load(std::sync::atomic::Ordering::Relaxed);

    // Everything healed: every node up, every link connected. Final linearizable reads of every
    // key join the history, so a write lost at the very end is caught too.
    for id in cluster.ids() {
        set_links(&cluster, &scenarios::isolate(&ids, id), true).await;
    }
    let leader = cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(20))
        .await;
    let mut reader = cluster.client_of(&cluster.ids());
    for k in 0..config.keys {
        let key = format!("k{k}");
        let call = start.elapsed().as_micros() as u64;
        let v = reader
            .get(&key, ReadMode::Linearizable)
            .await
            .expect("final read after healing");
        let ret = start.elapsed().as_micros() as u64;
        history.lock().unwrap().push(Operation {
            client: 999,
            key,
            op: Op::Get(v),
            call,
            ret: Some(ret),
        });
    }
    cluster
        .wait_caught_up(leader, &cluster.ids(), Duration::from_secs(20))
        .await;
    cluster.assert_replicas_identical().await;

    let history = history.lock().unwrap().clone();
    report.anomalies = linearizability::check(&history);
    println!("nemesis: seed {}: {report}", config.seed);
    for v in report.anomalies.iter().take(3) {
        println!("{v}");
    }
    report
}

async fn current_leader(cluster: &Cluster) -> Option<(NodeId, omnikv_core::event::BallotView)> {
    let mut best = None;
    for id in cluster.ids() {
        if let Some(s) = cluster.status(id).await {
            if s.role == Role::Leader && best.is_none_or(|(_, b)| s.ballot > b) {
                best = Some((id, s.ballot));
            }
        }
    }
    best
}

/// Waits `hold`, sampling the leader to count changes.
async fn observe(
    cluster: &Cluster,
    last: &mut Option<(NodeId, omnikv_core::event::BallotView)>,
    changes: &std::sync::atomic::AtomicU64,
    hold: Duration,
) {
    let until = Instant::now() + hold;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let leader = tokio::time::timeout(Duration::from_millis(500), current_leader(cluster))
            .await
            .ok()
            .flatten();
        if leader.is_some() && leader != *last {
            if last.is_some() {
                changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            *last = leader;
        }
    }
}

async fn set_links(cluster: &Cluster, links: &BTreeSet<Link>, connected: bool) {
    for &(a, b) in links {
        cluster.set_link(a, b, connected).await;
    }
}
