//! Leader crash: a new leader takes over, and the old one recovers from its RocksDB.

use std::time::{Duration, Instant};

use omnikv_core::client::ReadMode;
use omnikv_tests::Cluster;

/// How soon after the leader's death a write must be acknowledged. A correctness bound (the
/// cluster does recover, with no operator), set for a loaded 2-core machine: failover takes
/// 100-500 ms here when idle, and how fast it is belongs to `scripts/bench`, not to a test.
const FAILOVER_BOUND: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_leader_is_replaced_and_recovers_from_disk() {
    let mut cluster = Cluster::start(3, &["--snapshot-every", "50"]);
    let leader = cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let others = cluster.others(leader);
    let mut client = cluster.client_of(&cluster.ids());
    for i in 0..120 {
        client
            .put(&format!("k{i}"), &format!("v{i}"))
            .await
            .unwrap();
    }

    let mut survivor = cluster.client_of(&others);
    survivor.total_timeout = FAILOVER_BOUND;
    let killed_at = Instant::now();
    cluster.kill(leader);
    survivor
        .put("after-failover", "yes")
        .await
        .expect("a write succeeds after the leader's death");
    let failover = killed_at.elapsed();
    println!(
        "leader {leader} SIGKILLed; first write acknowledged after {} ms",
        failover.as_millis()
    );
    // The client's last attempt may start just before its total timeout and end later.
    assert!(
        failover < FAILOVER_BOUND,
        "first write acknowledged {failover:?} after the leader's death"
    );
    let new_leader = cluster.wait_leader(&others, Duration::from_secs(5)).await;
    assert_ne!(new_leader, leader);

    // Writes while the old leader is down, then it restarts from its own data directory.
    for i in 0..80 {
        survivor.put(&format!("during-{i}"), "x").await.unwrap();
    }
    cluster.restart(leader);
    cluster
        .wait_caught_up(new_leader, &[leader], Duration::from_secs(10))
        .await;
    let mut old = cluster.client_of(&[leader]);
    assert_eq!(
        old.get("k0", ReadMode::Local).await.unwrap().as_deref(),
        Some("v0")
    );
    assert_eq!(
        old.get("during-79", ReadMode::Local)
            .await
            .unwrap()
            .as_deref(),
        Some("x")
    );
    assert_eq!(
        old.get("after-failover", ReadMode::Linearizable)
            .await
            .unwrap()
            .as_deref(),
        Some("yes")
    );
    cluster.assert_replicas_identical().await;
}
