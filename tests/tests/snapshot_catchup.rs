//! Catch-up by snapshot, the case OmniPaxos 0.2.4's delta-snapshot handling breaks.
//!
//! Every node snapshots a prefix that sets `k` and `a`; then `k` is overwritten and `a` deleted
//! everywhere; a follower is cut off while more entries are decided; after healing it must
//! hold exactly the leader's state (not the old `k`, not the deleted `a`). Then that follower
//! leads the catch-up of a node whose storage was wiped, which must end identical too.
//! The same scenario on nodes started with the fix off shows the upstream bug it prevents.

use std::time::Duration;

use omnikv_core::client::ReadMode;
use omnikv_core::NodeId;
use omnikv_node::client::Client;
use omnikv_node::replica::compaction_phase;
use omnikv_tests::Cluster;

const N: u64 = 20;

/// What a node logs when it rewrites a delta snapshot into the entries it folds.
const REWROTE_DELTA: &str = "replaced a delta snapshot by its entries";
/// What a node started with `--unsafe-no-snapshot-fix` logs when it lets a delta through.
const KEPT_DELTA: &str = "kept a delta snapshot, the fix being off";
/// What a node logs when it applies a snapshot received from a peer.
const INSTALLED: &str = "installed a snapshot";

/// A cluster right after a follower (`lagger`) was caught up from a short partition, the case
/// where the leader sends a delta snapshot.
struct CaughtUp {
    cluster: Cluster,
    leader: NodeId,
    lagger: NodeId,
    other: NodeId,
    client: Client,
}

/// Every node stores a snapshot holding `k = 1` and `a = 1`; `k = 2` and `delete a` are decided
/// after it; then `lagger` is cut off while N / 4 entries are decided, healed, and caught up.
async fn catch_up_after_short_partition(extra_args: &[&str]) -> CaughtUp {
    let every = N.to_string();
    let mut args = vec![
        "--snapshot-every",
        every.as_str(),
        "--log-keep-entries",
        "0",
    ];
    args.extend_from_slice(extra_args);
    let cluster = Cluster::start(3, &args);
    let leader = cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let followers = cluster.others(leader);
    let (lagger, other) = (followers[0], followers[1]);
    let mut client = cluster.client_of(&[leader]);

    client.put("k", "1").await.unwrap();
    client.put("a", "1").await.unwrap();
    let holds_k_and_a = cluster.status(leader).await.unwrap().decided_idx;
    for i in 0..N {
        client.put(&format!("pre{i}"), "p").await.unwrap();
    }
    let before_k2 = cluster.status(leader).await.unwrap().decided_idx;
    client.put("k", "2").await.unwrap();
    client.delete("a").await.unwrap();
    cluster
        .wait_caught_up(leader, &cluster.ids(), Duration::from_secs(10))
        .await;
    // Each member snapshots at its own point of the interval (`compaction_phase`); N entries
    // reach one on every member.
    for id in cluster.ids() {
        let compacted = cluster.dump(id).await.compacted_idx;
        assert!(
            (holds_k_and_a..=before_k2).contains(&compacted),
            "node {id}'s stored snapshot ends at {compacted}, not between {holds_k_and_a} and {before_k2}"
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
    CaughtUp {
        cluster,
        leader,
        lagger,
        other,
        client,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_follower_catches_up_by_snapshot_and_passes_it_on() {
    let CaughtUp {
        mut cluster,
        leader,
        lagger,
        other,
        mut client,
    } = catch_up_after_short_partition(&[]).await;
    // Without this the test could pass by never taking the path it is about (e.g. if the
    // leader sent the entries themselves instead of a delta snapshot).
    assert!(
        cluster.log_lines(lagger, REWROTE_DELTA) > 0,
        "node {lagger} was caught up without a delta snapshot"
    );
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
    let deltas_before = cluster.log_lines(lagger, REWROTE_DELTA);
    let installs_before = cluster.log_lines(lagger, INSTALLED);

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
    assert!(
        cluster.log_lines(lagger, INSTALLED) > installs_before,
        "node {lagger} was caught up without a snapshot"
    );
    assert_eq!(
        cluster.log_lines(lagger, REWROTE_DELTA),
        deltas_before,
        "node {lagger} was caught up by a delta, not a complete snapshot"
    );

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

/// The same catch-up on nodes started with the fix off: OmniPaxos 0.2.4 merges the delta onto
/// the lagger's stored snapshot instead of its decided prefix, so the writes decided after that
/// snapshot (`k = 2`, `delete a`) are undone on the lagger. The nodes keep a copy of the table
/// as that snapshot, as OmniPaxos expects: a table that serves as the snapshot holds those
/// writes, and hides the bug.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_fix_a_delta_snapshot_reverts_decided_writes() {
    let CaughtUp {
        cluster, lagger, ..
    } = catch_up_after_short_partition(&["--unsafe-no-snapshot-fix", "--unsafe-snapshot-copy"])
        .await;
    let deltas = cluster.log_lines(lagger, KEPT_DELTA);
    eprintln!("node {lagger} received {deltas} delta snapshot(s) with the fix off");
    assert!(deltas > 0, "node {lagger} received no delta snapshot");
    assert_eq!(cluster.log_lines(lagger, REWROTE_DELTA), 0, "the fix ran");
    let mut local = cluster.client_of(&[lagger]);
    let k = local.get("k", ReadMode::Local).await.unwrap();
    let a = local.get("a", ReadMode::Local).await.unwrap();
    eprintln!("node {lagger} after catch-up: k = {k:?}, a = {a:?}");
    assert_eq!(k.as_deref(), Some("1"), "decided write k = 2 not reverted");
    assert_eq!(a.as_deref(), Some("1"), "deleted key a not resurrected");
}

/// A follower whose data directory was wiped (a replaced disk) comes back while the leader is
/// stable: it holds no promise, so it must ask to be synced; it is caught up by snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_follower_catches_up_from_a_stable_leader() {
    let every = N.to_string();
    let mut cluster = Cluster::start(3, &["--snapshot-every", every.as_str()]);
    let leader = cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let wiped = cluster.others(leader)[0];
    let mut client = cluster.client_of(&[leader]);
    for i in 0..2 * N {
        client.put(&format!("k{i}"), &i.to_string()).await.unwrap();
    }
    cluster
        .wait_caught_up(leader, &cluster.ids(), Duration::from_secs(10))
        .await;
    cluster.kill(wiped);
    cluster.wipe(wiped);
    cluster.restart(wiped);
    cluster
        .wait_caught_up(leader, &cluster.ids(), Duration::from_secs(15))
        .await;
    assert!(cluster.log_lines(wiped, INSTALLED) > 0);
    assert_eq!(
        cluster.current_leader().await,
        Some(leader),
        "caught up without an election"
    );
    cluster.assert_replicas_identical().await;
}

/// How a follower cut off while `N - 1` entries are decided, on a cluster snapshotting every
/// `N` entries with `keep` entries left behind each snapshot, was caught up: the snapshots
/// it installed and the deltas it took apart meanwhile.
async fn catch_up_after_lagging_almost_an_interval(keep: &str) -> (usize, usize) {
    let every = N.to_string();
    let cluster = Cluster::start(3, &["--snapshot-every", &every, "--log-keep-entries", keep]);
    let leader = cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let (lagger, other) = (cluster.others(leader)[0], cluster.others(leader)[1]);
    let mut client = cluster.client_of(&[leader]);
    for i in 0..3 * N {
        client.put(&format!("pre{i}"), "p").await.unwrap();
    }
    // Not at one of the leader's snapshot points: N - 1 more entries then reach the next one.
    let phase = compaction_phase(leader, cluster.ids().len(), N);
    if cluster.status(leader).await.unwrap().decided_idx % N == phase {
        client.put("step", "1").await.unwrap();
    }
    cluster
        .wait_caught_up(leader, &cluster.ids(), Duration::from_secs(10))
        .await;
    let installs = cluster.log_lines(lagger, INSTALLED);
    let deltas = cluster.log_lines(lagger, REWROTE_DELTA);
    cut_off_while(&cluster, lagger, &[leader, other], || async {
        for i in 0..N - 1 {
            client.put(&format!("x{i}"), "x").await.unwrap();
        }
    })
    .await;
    cluster
        .wait_caught_up(leader, &cluster.ids(), Duration::from_secs(15))
        .await;
    cluster.assert_replicas_identical().await;
    let mut local = cluster.client_of(&[lagger]);
    let last = format!("x{}", N - 2);
    assert_eq!(
        local.get(&last, ReadMode::Local).await.unwrap().as_deref(),
        Some("x")
    );
    (
        cluster.log_lines(lagger, INSTALLED) - installs,
        cluster.log_lines(lagger, REWROTE_DELTA) - deltas,
    )
}

/// The log keeps `--snapshot-every` entries behind a snapshot by default, so a follower that
/// fell less than that behind is caught up with entries even though the leader snapshotted
/// past it; without them it is sent the whole table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_less_behind_than_the_log_keeps_is_caught_up_with_entries() {
    let (installs, deltas) = catch_up_after_lagging_almost_an_interval(&N.to_string()).await;
    assert_eq!(installs, 0, "caught up by the whole table");
    assert!(deltas > 0, "caught up without a delta to take apart");
    let (installs, _) = catch_up_after_lagging_almost_an_interval("0").await;
    assert!(
        installs > 0,
        "a log that keeps nothing still caught it up with entries"
    );
}
