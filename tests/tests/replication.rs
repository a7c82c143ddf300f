//! Replication basics on real node processes: any node serves any request, reads are
//! linearizable by default, local reads come from the receiving node.

use std::time::Duration;

use omnikv_core::client::ReadMode;
use omnikv_tests::Cluster;

/// A linearizable read that must succeed.
async fn read(client: &mut omnikv_node::client::Client, key: &str) -> Option<String> {
    client.get(key, ReadMode::Linearizable).await.unwrap()
}

async fn put_get_delete_on(n: u64) {
    let cluster = Cluster::start(n, &[]);
    let leader = cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let followers = cluster.others(leader);
    let (a, b) = (followers[0], followers[1]);

    // Written through one follower, read linearizably through another.
    let mut writer = cluster.client_of(&[a]);
    let mut reader = cluster.client_of(&[b]);
    writer.put("greeting", "hello").await.unwrap();
    assert_eq!(
        read(&mut reader, "greeting").await.as_deref(),
        Some("hello")
    );
    // Through the leader as well.
    let mut via_leader = cluster.client_of(&[leader]);
    assert_eq!(
        read(&mut via_leader, "greeting").await.as_deref(),
        Some("hello")
    );

    writer.put("greeting", "again").await.unwrap();
    assert_eq!(
        read(&mut reader, "greeting").await.as_deref(),
        Some("again")
    );

    writer.delete("greeting").await.unwrap();
    assert_eq!(read(&mut reader, "greeting").await, None);
    assert_eq!(read(&mut reader, "never-written").await, None);

    // A local read is served by the node itself; once it has applied the write it sees it.
    writer.put("local", "v").await.unwrap();
    let status = cluster.status(a).await.unwrap();
    cluster
        .wait_applied(&cluster.ids(), status.applied_idx, Duration::from_secs(5))
        .await;
    for id in cluster.ids() {
        let mut c = cluster.client_of(&[id]);
        assert_eq!(
            c.get("local", ReadMode::Local).await.unwrap().as_deref(),
            Some("v"),
            "node {id}"
        );
    }
    // Every replica, not only the three the requests went through.
    cluster.assert_replicas_identical().await;

    // The harness sends each node's log to a file: what an operator greps holds plain text.
    for id in cluster.ids() {
        assert!(
            cluster.log_lines(id, "leader") > 0,
            "node {id} logged no leader"
        );
        assert_eq!(
            cluster.log_matching(id, &["\u{1b}"]),
            Vec::<String>::new(),
            "node {id}'s log file holds terminal colour codes"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_put_get_delete_and_local_reads() {
    put_get_delete_on(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_put_get_delete_and_local_reads() {
    put_get_delete_on(5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_is_applied_once() {
    use omnikv_core::client::{ClientOp, ClientRequest, ClientResponse};
    use omnikv_core::RequestId;
    use omnikv_node::client::Connection;

    let cluster = Cluster::start(3, &[]);
    cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let t = Duration::from_secs(5);
    let mut c1 = Connection::open(&cluster.url(1), "client", t)
        .await
        .unwrap();
    let session = omnikv_node::client::open_session(&mut c1, t).await.unwrap();
    let put = |seq, value: &str| ClientRequest {
        id: RequestId {
            client: session,
            seq,
        },
        op: ClientOp::Put {
            key: "k".into(),
            value: value.into(),
        },
        forget_below: 0,
    };
    let mut c2 = Connection::open(&cluster.url(2), "client", t)
        .await
        .unwrap();
    let mut other = cluster.client_of(&[3]);
    // Request 1 writes "first"; another client overwrites; then request 1 arrives again (a
    // retry through another node): it must not write "first" a second time.
    let acked = |r: ClientResponse| match r {
        ClientResponse::Ok { index, .. } => index.expect("a logged write names its index"),
        r => panic!("{r:?}"),
    };
    let first = acked(c1.request(&put(1, "first"), t).await.unwrap());
    other.put("k", "second").await.unwrap();
    let again = acked(c2.request(&put(1, "first"), t).await.unwrap());
    assert_eq!(again, first, "a retry is answered as its first copy was");
    assert_eq!(read(&mut other, "k").await.as_deref(), Some("second"));
    // The next request of the same client is applied normally.
    acked(c2.request(&put(2, "third"), t).await.unwrap());
    assert_eq!(read(&mut other, "k").await.as_deref(), Some("third"));
}
