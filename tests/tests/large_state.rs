//! State larger than one message or one reply: a follower caught up from a snapshot of several
//! peer frames, and a table read by pages through `/admin`.

use std::collections::BTreeMap;
use std::time::Duration;

use omnikv_core::admin::{AdminRequest, AdminResponse};
use omnikv_core::client::ReadMode;
use omnikv_core::limits::VALUE_BYTES_MAX;
use omnikv_node::peer_chunks::PEER_CHUNK_BYTES;
use omnikv_tests::Cluster;

/// What a node logs when it applies a snapshot received from a peer.
const INSTALLED: &str = "installed a snapshot";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_follower_catches_up_from_a_snapshot_of_many_frames() {
    let cluster = Cluster::start(3, &["--snapshot-every", "8"]);
    let leader = cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let (lagger, other) = (cluster.others(leader)[0], cluster.others(leader)[1]);
    let mut client = cluster.client_of(&[leader]);
    client.put("first", "1").await.unwrap();
    cluster
        .wait_caught_up(leader, &cluster.ids(), Duration::from_secs(10))
        .await;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_read_by_pages_is_the_table() {
    let cluster = Cluster::start(3, &[]);
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
