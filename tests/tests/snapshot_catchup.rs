//! Catch-up by snapshot, the case OmniPaxos 0.2.4's delta-snapshot handling breaks.
//!
//! Every node snapshots a prefix that sets `k` and `a`; then `k` is overwritten and `a` deleted
//! everywhere; a follower is cut off while 3 x N more entries are decided; after healing it must
//! hold exactly the leader's state (not the old `k`, not the deleted `a`). Then that follower
//! leads the catch-up of a node whose storage was wiped, which must end identical too.

use std::time::Duration;

use omnikv_core::client::ReadMode;
use omnikv_tests::Cluster;

const N: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_follower_catches_up_by_snapshot_and_passes_it_on() {
    let mut cluster = Cluster::start(3, &["--snapshot-every", &N.to_string()]);
    let leader = cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let followers = cluster.others(leader);
    let (lagger, other) = (followers[0], followers[1]);
    let mut client = cluster.client_of(&[leader]);

    client.put("k", "1").await.unwrap();
    client.put("a", "1").await.unwrap();
    for i in 0..N {
        client.put(&format!("pre{i}"), "p").await.unwrap();
    }
    client.put("k", "2").await.unwrap();
    client.delete("a").await.unwrap();
    cluster
        .wait_caught_up(leader, &cluster.ids(), Duration::from_secs(10))
        .await;
    for id in cluster.ids() {
        assert!(
            cluster.dump(id).await.compacted_idx >= N,
            "node {id} has a stored snapshot"
        );
    }

    // A short partition: the lagger's decided index stays above the leader's compacted index,
    // so the leader catches it up with a delta snapshot (the path 0.2.4 gets wrong).
    cut_off_while(&cluster, lagger, &[leader, other], || async {
        for i in 0..N / 4 {
            client.put(&format!("x{i}"), &i.to_string()).await.unwrap();
        }
    })
    .await;
    cluster
        .wait_caught_up(leader, &cluster.ids(), Duration::from_secs(15))
        .await;
    let mut local = cluster.client_of(&[lagger]);
    assert_eq!(
        local.get("k", ReadMode::Local).await.unwrap().as_deref(),
        Some("2"),
        "decided write reverted"
    );
    assert_eq!(
        local.get("a", ReadMode::Local).await.unwrap(),
        None,
        "deleted key resurrected"
    );
    cluster.assert_replicas_identical().await;

    // A long partition: 3 x N entries, so the leader compacts past the lagger's log and sends a
    // complete snapshot.
    cut_off_while(&cluster, lagger, &[leader, other], || async {
        for i in 0..3 * N {
            client.put(&format!("x{i}"), &i.to_string()).await.unwrap();
        }
        client.delete("x0").await.unwrap();
        client.put("k", "3").await.unwrap();
    })
    .await;
    cluster
        .wait_caught_up(leader, &cluster.ids(), Duration::from_secs(15))
        .await;

    let mut local = cluster.client_of(&[lagger]);
    assert_eq!(
        local.get("k", ReadMode::Local).await.unwrap().as_deref(),
        Some("3")
    );
    assert_eq!(
        local.get("a", ReadMode::Local).await.unwrap(),
        None,
        "deleted key resurrected"
    );
    assert_eq!(local.get("x0", ReadMode::Local).await.unwrap(), None);
    assert_eq!(
        local.get("x59", ReadMode::Local).await.unwrap().as_deref(),
        Some("59")
    );
    cluster.assert_replicas_identical().await;

    // The caught-up follower now takes part in catching up a node with wiped storage: the
    // leader and the third node go down, the wiped node comes back, and the two elect a leader
    // between them (whichever wins, the lagger's log is the one that survives).
    cluster.kill(leader);
    cluster.kill(other);
    cluster.wipe(other);
    cluster.restart(other);
    let new_leader = cluster
        .wait_leader(&[lagger, other], Duration::from_secs(10))
        .await;
    let mut client = cluster.client_of(&[new_leader]);
    client.put("after-wipe", "y").await.unwrap();
    let decided = cluster.status(new_leader).await.unwrap().decided_idx;
    cluster
        .wait_applied(&[lagger, other], decided, Duration::from_secs(15))
        .await;
    cluster.restart(leader);
    cluster
        .wait_applied(&cluster.ids(), decided, Duration::from_secs(15))
        .await;
    cluster.assert_replicas_identical().await;
    let mut local = cluster.client_of(&[other]);
    assert_eq!(
        local.get("k", ReadMode::Local).await.unwrap().as_deref(),
        Some("3")
    );
    assert_eq!(local.get("a", ReadMode::Local).await.unwrap(), None);
}

/// Cuts `node` off from `peers`, runs `during`, and heals.
async fn cut_off_while<F, Fut>(cluster: &Cluster, node: u64, peers: &[u64], during: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for &p in peers {
        cluster.set_link(node, p, false).await;
    }
    during().await;
    for &p in peers {
        cluster.set_link(node, p, true).await;
    }
}
