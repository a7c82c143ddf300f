//! Linearizability under faults, checked on real processes. Short by default (CI); set
//! `OMNIKV_NEMESIS_LONG=1` (ten minutes each) or `OMNIKV_NEMESIS_SECONDS=N`, and
//! `OMNIKV_NEMESIS_SEED=S` to repeat a run's schedule.

use omnikv_tests::nemesis::{run, NemesisConfig};

fn assert_linearizable(report: &omnikv_tests::nemesis::Report, seed: u64) {
    assert!(
        report.anomalies.is_empty(),
        "seed {seed}: {} key(s) not linearizable; first:\n{}",
        report.anomalies.len(),
        report.anomalies[0]
    );
    assert!(
        report.ok > 100,
        "seed {seed}: too little progress: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_stay_linearizable_under_faults() {
    let config = NemesisConfig::from_env(3, 35);
    let seed = config.seed;
    let report = run(config).await;
    assert_linearizable(&report, seed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_stay_linearizable_under_faults() {
    let config = NemesisConfig::from_env(5, 35);
    let seed = config.seed;
    let report = run(config).await;
    assert_linearizable(&report, seed);
}

/// The checker bites: local reads are allowed to be stale, and under partitions they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_reads_under_partitions_are_caught_stale() {
    let mut config = NemesisConfig::from_env(3, 25);
    config.local_read_ratio = 1.0;
    config.partitions_only = true;
    let seed = config.seed;
    let report = run(config).await;
    assert!(
        !report.anomalies.is_empty(),
        "seed {seed}: no stale read found: {report}"
    );
}
