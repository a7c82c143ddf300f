//! State larger than one message or one reply: a follower caught up from a snapshot of several
//! peer frames, a table read by pages through `/admin`, and the bounded head a viewer asks for.

use std::collections::BTreeMap;
use std::time::Duration;

use omnikv_core::admin::{AdminRequest, AdminResponse, NodeHead};
use omnikv_core::client::ReadMode;
use omnikv_core::limits::{
    DUMP_HEAD_BYTES_MAX, DUMP_HEAD_LOG_BYTES_MAX, DUMP_HEAD_SNAPSHOT_KEYS_MAX, VALUE_BYTES_MAX,
};
use omnikv_core::NodeId;
use omnikv_node::client::Client;
use omnikv_node::peer_chunks::PEER_CHUNK_BYTES;
use omnikv_tests::Cluster;

/// What a node logs when it applies a snapshot received from a peer.
const INSTALLED: &str = "installed a snapshot";

/// A 3-node cluster snapshotting every 8 entries, with one write on every node: the cluster,
/// its leader, the follower a test will leave behind, the other follower, and a client.
async fn snapshotting_cluster(args: &[&str]) -> (Cluster, NodeId, NodeId, NodeId, Client) {
    let mut all_args = vec!["--snapshot-every", "8", "--log-keep-entries", "0"];
    all_args.extend_from_slice(args);
    let cluster = Cluster::start(3, &all_args);
    let leader = cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let (lagger, other) = (cluster.others(leader)[0], cluster.others(leader)[1]);
    let mut client = cluster.client_of(&[leader]);
    client.put("first", "1").await.unwrap();
    cluster
        .wait_caught_up(leader, &cluster.ids(), Duration::from_secs(10))
        .await;
    (cluster, leader, lagger, other, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_follower_catches_up_from_a_snapshot_of_many_frames() {
    let (cluster, leader, lagger, other, mut client) = snapshotting_cluster(&[]).await;

    // While the lagger is cut off, 16 values of 256 KiB are written and compacted: the leader
    // can only catch it up with a complete snapshot of about 4 MiB, four peer frames or more.
    let big = |i: usize| {
        let tag = format!("{i}:");
        tag.clone() + &"x".repeat(VALUE_BYTES_MAX - tag.len())
    };
    let values = 16;
    assert!(values * VALUE_BYTES_MAX > 3 * PEER_CHUNK_BYTES);
    for peer in [leader, other] {
        cluster.set_link(lagger, peer, false).await;
    }
    for i in 0..values {
        client.put(&format!("big{i}"), &big(i)).await.unwrap();
    }
    for i in 0..8 {
        client.put(&format!("small{i}"), "s").await.unwrap();
    }
    assert!(cluster.status(leader).await.unwrap().compacted_idx > 16);
    for peer in [leader, other] {
        cluster.set_link(lagger, peer, true).await;
    }
    cluster
        .wait_caught_up(leader, &cluster.ids(), Duration::from_secs(30))
        .await;
    assert!(
        cluster.log_lines(lagger, INSTALLED) > 0,
        "node {lagger} was caught up without a snapshot"
    );
    let mut local = cluster.client_of(&[lagger]);
    for i in [0, values - 1] {
        let got = local
            .get(&format!("big{i}"), ReadMode::Local)
            .await
            .unwrap();
        assert_eq!(got, Some(big(i)));
    }
    cluster.assert_replicas_identical().await;
}

/// A 3-node cluster holding `k00`..`k29` but `k07`, caught up on every node: its leader and a
/// client of it.
async fn cluster_with_29_keys(args: &[&str]) -> (Cluster, NodeId, Client) {
    let cluster = Cluster::start(3, args);
    let leader = cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let mut client = cluster.client_of(&[leader]);
    for i in 0..30 {
        client
            .put(&format!("k{i:02}"), &i.to_string())
            .await
            .unwrap();
    }
    client.delete("k07").await.unwrap();
    cluster
        .wait_caught_up(leader, &cluster.ids(), Duration::from_secs(10))
        .await;
    (cluster, leader, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_read_by_pages_is_the_table() {
    let (cluster, leader, _) = cluster_with_29_keys(&[]).await;
    for id in cluster.ids() {
        let mut paged = BTreeMap::new();
        let (mut after, mut pages) = (None, 0);
        loop {
            let req = AdminRequest::DumpPage { after, limit: 7 };
            let Some(AdminResponse::DumpPage(page)) = cluster.admin(id, req).await else {
                panic!("node {id} gave no page");
            };
            pages += 1;
            assert!(page.entries.len() <= 7);
            for (k, v) in page.entries {
                assert!(
                    paged.last_key_value().is_none_or(|(last, _)| *last < k),
                    "key order"
                );
                paged.insert(k, v);
            }
            match page.next_after {
                Some(key) => after = Some(key),
                None => break,
            }
        }
        assert_eq!(pages, 5, "29 keys in pages of 7");
        let values: BTreeMap<_, _> = (cluster.dump(id).await.kv.into_iter())
            .map(|(k, v)| (k, v.value))
            .collect();
        assert_eq!(paged, values, "node {id}");
    }

    // The CLI prints the same table, one `key<TAB>value` line per key in order.
    let out = omnikv_tests::omnikv_command()
        .args(["dump", "--node", &cluster.url(leader)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<(String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('\t').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    let expected: Vec<_> = (cluster.dump(leader).await.kv.into_iter())
        .map(|(k, v)| (k, v.value))
        .collect();
    assert_eq!(printed, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_head_is_the_state_cut_to_its_bounds() {
    // Snapshots every 8 entries, so the head names a stored snapshot and a log tail after it.
    let (cluster, leader, mut client) = cluster_with_29_keys(&["--snapshot-every", "8"]).await;
    let head_of = |keys, log_entries| AdminRequest::DumpHead { keys, log_entries };
    for id in cluster.ids() {
        let dump = cluster.dump(id).await;
        assert!(dump.compacted_idx > 0, "node {id} took no snapshot");
        for (keys, log) in [(10, 3), (100, 100)] {
            let Some(AdminResponse::DumpHead(head)) = cluster.admin(id, head_of(keys, log)).await
            else {
                panic!("node {id} gave no head");
            };
            let expected = NodeHead::of_dump(
                &dump,
                keys as usize,
                log as usize,
                DUMP_HEAD_SNAPSHOT_KEYS_MAX,
            );
            assert_eq!(*head, expected, "node {id}, {keys} keys, {log} entries");
        }
    }

    // A head's keys are bounded in bytes too: 12 values of the largest size are more than it
    // carries, whatever number of keys is asked for.
    let big = "v".repeat(VALUE_BYTES_MAX);
    for i in 0..12 {
        client.put(&format!("big{i:02}"), &big).await.unwrap();
    }
    // And so is its log tail: the 12 large entries are more than it carries.
    let Some(AdminResponse::DumpHead(head)) = cluster.admin(leader, head_of(2001, 256)).await
    else {
        panic!("no head");
    };
    let bytes: usize = head.kv.iter().map(|(k, v)| k.len() + v.value.len()).sum();
    assert!(!head.kv_complete);
    assert!(bytes <= DUMP_HEAD_BYTES_MAX, "{bytes} bytes");
    assert!(head.kv.len() >= 2, "{} keys", head.kv.len());
    let tail_bytes: usize = head.decided_tail.iter().map(|c| c.payload_bytes()).sum();
    assert!(
        (1..12).contains(&head.decided_tail.len()) && tail_bytes <= DUMP_HEAD_LOG_BYTES_MAX,
        "{} entries, {tail_bytes} bytes",
        head.decided_tail.len()
    );
    assert_eq!(
        head.tail_from_idx + head.decided_tail.len() as u64,
        head.decided_idx,
        "the tail ends at the decided index"
    );
}

/// What a node logs each time it sends a complete snapshot: a leader in an `AcceptSync`, a
/// follower ahead of a new leader in a `Promise`.
const SENDING_COMPLETE: &str = "sending a complete snapshot";

/// The complete snapshots one node sent in `AcceptSync`s, counted by ballot and receiver.
type SyncsSent = BTreeMap<(String, String), usize>;

/// The value of `name=` in a log line. The node writes no colour codes into a log file, so a
/// field's name is preceded by a plain space.
fn log_field(line: &str, name: &str) -> Option<String> {
    let at = line.find(&format!(" {name}="))? + name.len() + 2;
    Some(line[at..].split(' ').next()?.to_owned())
}

/// Cuts a follower off while 40 MB are written, heals it, waits until it has caught up and
/// checks that every node holds the same table; returns, by node, the complete snapshots each
/// sent in an `AcceptSync`, and the log lines that tell who led when and who sent what. A
/// follower resends its promise every 200 ms until the leader's answer arrives, and a snapshot
/// this large takes longer than that to encode, send and read.
async fn catch_up_from_a_large_snapshot(args: &[&str]) -> (Vec<SyncsSent>, String) {
    let (cluster, leader, lagger, other, mut client) = snapshotting_cluster(args).await;
    for peer in [leader, other] {
        cluster.set_link(lagger, peer, false).await;
    }
    let big = "x".repeat(VALUE_BYTES_MAX);
    for i in 0..160 {
        client.put(&format!("big{i:03}"), &big).await.unwrap();
    }
    for peer in [leader, other] {
        cluster.set_link(lagger, peer, true).await;
    }
    cluster
        .wait_caught_up(leader, &cluster.ids(), Duration::from_secs(60))
        .await;
    // The table is too large for a full dump: the nodes' digests at one applied index, which
    // they keep while someone watches.
    let mut watchers = Vec::new();
    for id in cluster.ids() {
        watchers.push(cluster.watch_events(id).await);
    }
    cluster.wait_equal_digests(Duration::from_secs(20)).await;
    watchers.iter().for_each(|w| w.abort());
    let sent: Vec<SyncsSent> = (cluster.ids().iter())
        .map(|&id| {
            let mut syncs = SyncsSent::new();
            for line in cluster.log_matching(id, &[SENDING_COMPLETE]) {
                if log_field(&line, "kind").as_deref() == Some("AcceptSync") {
                    let ballot = log_field(&line, "ballot").expect("a ballot");
                    let to = log_field(&line, "to").expect("a receiver");
                    *syncs.entry((ballot, to)).or_default() += 1;
                }
            }
            syncs
        })
        .collect();
    eprintln!(
        "complete snapshots in syncs by nodes {:?}, by (ballot, receiver): {sent:?}",
        cluster.ids()
    );
    assert!(
        sent.iter().any(|s| !s.is_empty()),
        "caught up without a snapshot"
    );
    // Who led when, and who sent what: what explains more snapshots than expected.
    let story = (cluster.ids().iter())
        .flat_map(|&id| {
            let lines = cluster.log_matching(id, &["leader changed", SENDING_COMPLETE]);
            lines.into_iter().map(move |l| format!("node {id}: {l}"))
        })
        .collect::<Vec<_>>()
        .join("\n");
    (sent, story)
}

/// Healing asks for a sync from both ends: a leader answers a follower with two rounds at most
/// in one ballot. More means repeats were answered. A leader that stalls long enough to be
/// replaced (a debug build on two busy cores can) is not a repeat: the next leader owes the
/// follower its own sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_waiting_for_a_large_snapshot_is_sent_it_once() {
    let (sent, story) = catch_up_from_a_large_snapshot(&[]).await;
    assert!(
        sent.iter().flat_map(|s| s.values()).all(|&n| n <= 2),
        "{sent:?} complete snapshots in syncs for one catch-up:\n{story}"
    );
}

/// The catch-up above with every repeat answered. Repeats come only while the snapshot is on its
/// way, and a fast catch-up (one resend timeout or less) sends none: a run that sees none
/// shows nothing either way, so a few are tried before the control is called blind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_every_repeated_promise_builds_a_snapshot_each_time() {
    const ATTEMPTS: usize = 3;
    let mut seen = Vec::new();
    for _ in 0..ATTEMPTS {
        let (sent, _) =
            catch_up_from_a_large_snapshot(&["--unsafe-answer-repeated-promises"]).await;
        if sent.iter().flat_map(|s| s.values()).any(|&n| n > 2) {
            return;
        }
        seen.push(sent);
    }
    panic!(
        "{seen:?}: in {ATTEMPTS} catch-ups the repeats were not answered, so this test cannot \
         show what dropping them saves"
    );
}

/// Transactions of 128 writes, 40 of them: 5,120 keys in far fewer entries than
/// `--snapshot-every`. Folding entries costs a turn time in proportion to the keys they wrote,
/// so a node snapshots once they wrote 1,024 keys rather than let one fold hold its loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_that_wrote_many_keys_are_snapshotted_before_snapshot_every() {
    use omnikv_core::txn::TxnOp;
    let cluster = Cluster::start(
        3,
        &["--snapshot-every", "100000", "--log-keep-entries", "0"],
    );
    let leader = cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let mut client = cluster.client_of(&[leader]);
    for t in 0..40 {
        let ops = (0..128)
            .map(|k| TxnOp::Put {
                key: format!("t{t:02}-k{k:03}"),
                value: "v".repeat(64),
            })
            .collect();
        let (done, _) = client.txn(Vec::new(), ops).await.unwrap();
        assert!(done.succeeded);
    }
    let status = cluster.status(leader).await.unwrap();
    let last = status.applied_idx;
    assert!(
        last < 100,
        "{last} entries: far fewer than --snapshot-every"
    );
    cluster
        .wait_caught_up(leader, &cluster.ids(), Duration::from_secs(10))
        .await;
    for id in cluster.ids() {
        let status = cluster.status(id).await.unwrap();
        assert!(
            status.compacted_idx > 0,
            "node {id} compacted nothing after 5,120 keys in {last} entries"
        );
    }
    let value = client
        .get("t00-k000", ReadMode::Linearizable)
        .await
        .unwrap();
    assert_eq!(value, Some("v".repeat(64)));
}

/// Bytes of a data directory's write-ahead log files.
fn wal_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// `--wal-max-mb` bounds what a restart replays: 32 MB of values, written three times over (the
/// log, the table, the stored snapshot), leave at most three times the bound of WAL (the live
/// file grows until RocksDB switches it at a flush), where the default bound (64 MiB) keeps
/// more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_stays_within_the_bound_an_operator_sets() {
    let cluster = Cluster::start(3, &["--wal-max-mb", "8"]);
    let leader = cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let mut client = cluster.client_of(&[leader]);
    let value = "w".repeat(16 * 1024);
    for i in 0..2000 {
        client.put(&format!("wal-{i:04}"), &value).await.unwrap();
    }
    cluster
        .wait_caught_up(leader, &cluster.ids(), Duration::from_secs(30))
        .await;
    for id in cluster.ids() {
        let wal = wal_bytes(cluster.data_dir(id));
        assert!(wal <= 24 << 20, "node {id} keeps {wal} bytes of WAL");
    }
    let mut local = cluster.client_of(&[cluster.others(leader)[0]]);
    let got = local.get("wal-1999", ReadMode::Local).await.unwrap();
    assert_eq!(got.as_deref(), Some(value.as_str()));
}

/// A follower ahead of a new leader promises with a complete snapshot of what the leader
/// lacks. The follower's promises to the leader are held, as a slow link would keep them, so
/// the follower stays waiting for an answer for two seconds; returns the complete snapshots it
/// sent in promises to that leader meanwhile. Then the held promise is delivered, and the
/// cluster must converge.
async fn promises_sent_while_the_first_is_on_its_way(args: &[&str]) -> usize {
    let (cluster, old_leader, next_leader, ahead, mut client) = snapshotting_cluster(args).await;
    let hold = |node: NodeId, peer: NodeId, held: bool| {
        let cluster = &cluster;
        async move {
            let r = cluster
                .admin(node, AdminRequest::HoldLink { peer, held })
                .await;
            assert_eq!(r, Some(AdminResponse::Ok), "hold on node {node}");
        }
    };
    // `next_leader` hears heartbeats but no entries, and falls behind the compacted index.
    hold(old_leader, next_leader, true).await;
    for i in 0..24 {
        client.put(&format!("k{i}"), "v").await.unwrap();
    }
    let behind = cluster.status(next_leader).await.unwrap().decided_idx;
    assert!(cluster.status(ahead).await.unwrap().compacted_idx > behind);
    hold(ahead, next_leader, true).await;
    // The old leader is cut from `ahead` first and from `next_leader` rounds later: by then
    // `ahead` no longer follows anyone, so `next_leader` takes over as soon as it misses the old
    // leader, before `ahead` sees it unhappy and tries itself.
    cluster.set_link(old_leader, ahead, false).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.set_link(old_leader, next_leader, false).await;

    let promises = || {
        let lines = cluster
            .log_matching(ahead, &[SENDING_COMPLETE])
            .into_iter()
            .filter(|l| log_field(l, "kind").as_deref() == Some("Promise"))
            .filter(|l| log_field(l, "to") == Some(next_leader.to_string()));
        lines.count()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while promises() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "node {ahead} never promised node {next_leader} a snapshot"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Ten resend timeouts of the nodes' default 200 ms.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = promises();
    println!(
        "node {ahead} sent node {next_leader} {sent} promises with a complete snapshot in 2 s"
    );

    hold(ahead, next_leader, false).await;
    for peer in [ahead, next_leader] {
        cluster.set_link(old_leader, peer, true).await;
    }
    hold(old_leader, next_leader, false).await;
    let leader = cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(30))
        .await;
    let mut client = cluster.client_of(&[leader]);
    client.put("after", "1").await.unwrap();
    cluster
        .wait_caught_up(leader, &cluster.ids(), Duration::from_secs(30))
        .await;
    cluster.assert_replicas_identical().await;
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_ahead_of_a_new_leader_sends_its_snapshot_promise_once() {
    let sent = promises_sent_while_the_first_is_on_its_way(&[]).await;
    assert_eq!(sent, 1, "promises with a complete snapshot in 2 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resending_every_promise_resends_the_snapshot() {
    let sent =
        promises_sent_while_the_first_is_on_its_way(&["--unsafe-resend-snapshot-promises"]).await;
    assert!(
        sent >= 4,
        "{sent} promises with a complete snapshot in 2 s: the repeats were not sent, so this \
         test cannot show what holding them back saves"
    );
}
