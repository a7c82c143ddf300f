//! Whole-cluster crash: every acknowledged write survives SIGKILL of every node at once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use omnikv_core::client::ReadMode;
use omnikv_tests::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_a_full_cluster_sigkill() {
    let mut cluster = Cluster::start(3, &["--snapshot-every", "40"]);
    cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;

    // Several writers; the cluster is killed while they are still writing, so some writes are
    // in flight. Only the acknowledged ones are promised.
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    // Requests sent and not yet answered, across writers.
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..4 {
        let mut client = cluster.client_of(&cluster.ids());
        client.total_timeout = Duration::from_secs(2);
        let in_flight = in_flight.clone();
        writers.push(tokio::spawn(async move {
            let mut done = Vec::new();
            for i in 0..1000 {
                let (k, v) = (format!("w{w}-{}", i % 37), format!("{i}"));
                in_flight.fetch_add(1, Ordering::SeqCst);
                let result = client.put(&k, &v).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                match result {
                    Ok(()) => done.push((k, v)),
                    Err(_) => break,
                }
            }
            done
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let in_flight_at_kill = in_flight.load(Ordering::SeqCst);
    cluster.kill_all();
    // Otherwise the writers could have finished or given up before the crash, and the test
    // would only show that a cleanly idle cluster survives SIGKILL.
    assert!(
        in_flight_at_kill > 0,
        "no write was in flight when the cluster was killed"
    );
    for w in writers {
        for (k, v) in w.await.unwrap() {
            acked.insert(k, v);
        }
    }
    assert!(
        acked.len() > 20,
        "writers made progress before the crash ({} keys)",
        acked.len()
    );

    for id in cluster.ids() {
        cluster.restart(id);
    }
    cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let mut reader = cluster.client_of(&cluster.ids());
    for (k, v) in &acked {
        // The last acknowledged write of each key, or a later in-flight one of the same writer.
        let got = reader
            .get(k, ReadMode::Linearizable)
            .await
            .unwrap()
            .expect("acknowledged key present");
        let got: u64 = got.parse().unwrap();
        assert!(
            got >= v.parse::<u64>().unwrap(),
            "{k}: read {got}, acknowledged {v}"
        );
    }
    cluster
        .wait_caught_up(1, &cluster.ids(), Duration::from_secs(10))
        .await;
    cluster.assert_replicas_identical().await;
    println!(
        "{} acknowledged keys checked after a full-cluster SIGKILL with {in_flight_at_kill} \
         writes in flight",
        acked.len()
    );
}
