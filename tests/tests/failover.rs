//! Leader crash: a new leader takes over quickly, and the old one recovers from its RocksDB.

use std::time::{Duration, Instant};

use omnikv_core::client::ReadMode;
use omnikv_tests::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_leader_is_replaced_within_a_second_and_recovers_from_disk() {
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
    survivor.total_timeout = Duration::from_secs(1);
    let killed_at = Instant::now();
    cluster.kill(leader);
    survivor
        .put("after-failover", "yes")
        .await
        .expect("a write succeeds within 1 s of the leader's death");
    let failover = killed_at.elapsed();
    println!(
        "leader {leader} SIGKILLed; first write acknowledged after {} ms",
        failover.as_millis()
    );
    assert!(failover < Duration::from_secs(1));
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
