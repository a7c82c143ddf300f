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
    // Every replica, restarted ones included, applies every entry with no write after the run
    // to show it a gap (`replica::late_sync`; without it, 1 run in 60 stalled here).
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
            let stored = d.kv.get(&w.key).map(|v| &v.value);
            if stored != w.value.as_ref() {
                missing.insert(w.key.clone(), stored.cloned());
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
    // Whether copies are decided out of order depends on timing (which node re-proposes what,
    // how often the writer switches nodes): one run in ten here loses nothing. With three
    // runs this test fails spuriously about once in a thousand.
    for run in 1..=3 {
        let (cluster, report) = pipelined_run(&["--unsafe-highest-seq-dedup"]).await;
        let leader = cluster.current_leader().await.expect("a leader");
        let dump = cluster.dump(leader).await;
        let lost = report
            .acked
            .iter()
            .filter(|w| dump.kv.get(&w.key).map(|v| &v.value) != w.value.as_ref())
            .count();
        println!(
            "run {run}, with the highest-seq rule: {lost} of {} acknowledged writes lost",
            report.acked.len()
        );
        if lost > 0 {
            return;
        }
    }
    panic!("the broken rule lost no acknowledged write in 3 runs: the test would not catch it");
}

/// Session ids are visible to anyone watching `/events`. A stranger who writes under another
/// client's session gets clear errors and cannot make that client's writes vanish: it cannot
/// move the session's floor beyond the window, and a `seq` it takes first is refused to the
/// owner with an error, never acknowledged as a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_silence_another_clients_session() {
    use omnikv_core::client::{ClientError, ClientRequest, ClientResponse};
    use omnikv_core::RequestId;
    use omnikv_node::client::{open_session, Connection};

    let cluster = Cluster::start(3, &[]);
    cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let t = Duration::from_secs(5);
    let mut owner = Connection::open(&cluster.url(1), "client", t)
        .await
        .unwrap();
    let mut stranger = Connection::open(&cluster.url(2), "client", t)
        .await
        .unwrap();
    let session = open_session(&mut owner, t).await.unwrap();
    let put = |seq: u64, forget_below: u64, key: &str, value: &str| ClientRequest {
        id: RequestId {
            client: session,
            seq,
        },
        op: ClientOp::Put {
            key: key.into(),
            value: value.into(),
        },
        forget_below,
    };
    let error = |r: ClientResponse| match r {
        ClientResponse::Err { error, .. } => error,
        ok => panic!("expected an error, got {ok:?}"),
    };
    assert!(matches!(
        owner.request(&put(0, 0, "a", "owner-0"), t).await.unwrap(),
        ClientResponse::Ok { .. }
    ));
    // The old rule's attack: a huge seq that made every later write look like a duplicate.
    let refused = error(
        stranger
            .request(&put(u64::MAX, u64::MAX, "a", "x"), t)
            .await
            .unwrap(),
    );
    assert!(
        matches!(refused, ClientError::SessionExpired { .. }),
        "{refused:?}"
    );
    assert!(matches!(
        owner.request(&put(1, 1, "b", "owner-1"), t).await.unwrap(),
        ClientResponse::Ok { .. }
    ));
    // The stranger takes the owner's next seq with another command: the owner is told.
    assert!(matches!(
        stranger
            .request(&put(2, 0, "c", "stranger"), t)
            .await
            .unwrap(),
        ClientResponse::Ok { .. }
    ));
    let reused = error(owner.request(&put(2, 2, "c", "owner-2"), t).await.unwrap());
    assert!(
        matches!(reused, ClientError::BadRequest { .. }),
        "{reused:?}"
    );
    let mut reader = cluster.client_of(&[3]);
    for (key, value) in [("a", "owner-0"), ("b", "owner-1"), ("c", "stranger")] {
        let got = reader
            .get(key, omnikv_core::client::ReadMode::Linearizable)
            .await
            .unwrap();
        assert_eq!(got.as_deref(), Some(value), "{key}");
    }
}
