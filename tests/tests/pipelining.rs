//! Pipelined writes through a follower, across repeated leader SIGKILLs: every acknowledged
//! write is applied exactly once, at the index its reply named, on every replica. The same run
//! with the session rule this project replaced (`--unsafe-highest-seq-dedup`) loses
//! acknowledged writes, which shows the test can fail.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use omnikv_core::client::ClientOp;
use omnikv_tests::pipeline::{PipelineReport, PipelinedWriter};
use omnikv_tests::{assert_identical, Cluster};
use tokio::time::Instant;

const WRITES: usize = 3000;
const WINDOW: usize = 256;

/// Pipelines `WRITES` puts of distinct keys through a follower and SIGKILLs the leader after
/// each third of them (restarting it at once). Returns the cluster, settled, and the report.
async fn pipelined_run(flags: &[&str]) -> (Cluster, PipelineReport) {
    let mut cluster = Cluster::start(3, flags);
    let leader = cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let follower = cluster.others(leader)[0];
    let mut urls = vec![cluster.url(follower)];
    urls.extend(cluster.others(follower).iter().map(|&id| cluster.url(id)));
    let writer = PipelinedWriter::new(urls, WINDOW);
    let progress = writer.progress.clone();
    let ops = (0..WRITES)
        .map(|i| ClientOp::Put {
            key: format!("k{i:05}"),
            value: format!("v{i}"),
        })
        .collect();
    let run = tokio::spawn(writer.run(ops, Instant::now() + Duration::from_secs(120)));
    let mut kills = 0;
    for threshold in [WRITES / 3, 2 * WRITES / 3] {
        while progress.load(Ordering::Relaxed) < threshold && !run.is_finished() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let Some(leader) = cluster.current_leader().await else {
            continue;
        };
        cluster.kill(leader);
        kills += 1;
        println!(
            "SIGKILL of leader {leader} after {} acknowledged writes",
            progress.load(Ordering::Relaxed)
        );
        cluster
            .wait_leader(&cluster.others(leader), Duration::from_secs(10))
            .await;
        cluster.restart(leader);
    }
    let report = run.await.unwrap();
    assert_eq!(
        kills, 2,
        "both leader kills happened while writes were in flight"
    );
    println!(
        "{} acknowledged, {} indeterminate, {} node switches",
        report.acked.len(),
        report.indeterminate.len(),
        report.switches
    );
    let ids = cluster.ids();
    cluster.wait_leader(&ids, Duration::from_secs(10)).await;
    let leader = cluster.current_leader().await.expect("a leader");
    cluster
        .wait_caught_up(leader, &ids, Duration::from_secs(20))
        .await;
    (cluster, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_writes_through_a_follower_survive_repeated_leader_kills() {
    let (cluster, report) = pipelined_run(&[]).await;
    assert!(
        report.acked.len() >= WRITES * 9 / 10,
        "most writes were acknowledged: {} of {WRITES}",
        report.acked.len()
    );
    let mut dumps = Vec::new();
    for id in cluster.ids() {
        dumps.push(cluster.dump(id).await);
    }
    assert_identical(&dumps);
    for d in &dumps {
        let mut missing = BTreeMap::new();
        for w in &report.acked {
            if d.kv.get(&w.key) != w.value.as_ref() {
                missing.insert(w.key.clone(), d.kv.get(&w.key).cloned());
            }
            // Where the log still holds it, the entry at the answered index is this write.
            if let Some(i) = w.index.checked_sub(d.compacted_idx) {
                if let Some(entry) = d.decided_suffix.get(i as usize) {
                    assert_eq!(
                        entry.id(),
                        w.id,
                        "node {}: entry {} is not {:?}",
                        d.id,
                        w.index,
                        w.id
                    );
                }
            }
        }
        assert!(
            missing.is_empty(),
            "node {}: {} acknowledged writes are missing or wrong, e.g. {:?}",
            d.id,
            missing.len(),
            missing.iter().next()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_highest_seq_rule_loses_acknowledged_pipelined_writes() {
    let (cluster, report) = pipelined_run(&["--unsafe-highest-seq-dedup"]).await;
    let leader = cluster.current_leader().await.expect("a leader");
    let dump = cluster.dump(leader).await;
    let lost = report
        .acked
        .iter()
        .filter(|w| dump.kv.get(&w.key) != w.value.as_ref())
        .count();
    println!(
        "with the highest-seq rule: {lost} of {} acknowledged writes lost",
        report.acked.len()
    );
    assert!(
        lost > 0,
        "the broken rule lost no acknowledged write: the test would not catch it"
    );
}
