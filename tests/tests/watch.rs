//! Watch on real node processes: the changes to a prefix from a log index, caught up from the
//! node's window then live, in log order with the index of each, with nothing lost or repeated
//! when the watch moves to another node; "compacted" from a node that no longer keeps them.

use std::sync::mpsc;
use std::time::Duration;

use omnikv_core::{
    client::ClientOp,
    scan::ScanRange,
    txn::TxnOp,
    watch::{Change, WatchRequest},
};
use omnikv_node::client::{watch, Client, WatchEnd};
use omnikv_tests::Cluster;

const T: Duration = Duration::from_secs(10);

fn prefix(p: &str) -> ScanRange {
    ScanRange {
        prefix: Some(p.into()),
        ..ScanRange::default()
    }
}

/// Writes `op` and returns the changes to `w/` keys it made, with its index.
async fn write(c: &mut Client, op: ClientOp) -> Vec<Change> {
    let writes: Vec<(String, Option<String>)> = match &op {
        ClientOp::Put { key, value } => vec![(key.clone(), Some(value.clone()))],
        ClientOp::Delete { key } => vec![(key.clone(), None)],
        ClientOp::Txn { ops, .. } => ops
            .iter()
            .map(|o| (o.key().to_owned(), o.value().map(str::to_owned)))
            .collect(),
        other => panic!("not a write: {other:?}"),
    };
    let reply = c.call(op).await.unwrap();
    let index = reply.index.unwrap();
    writes
        .into_iter()
        .filter(|(k, _)| k.starts_with("w/"))
        .map(|(key, value)| Change { index, key, value })
        .collect()
}

fn put(key: &str, value: &str) -> ClientOp {
    ClientOp::Put {
        key: key.into(),
        value: value.into(),
    }
}

/// A watch of `w/` from index 0 through `nodes`, in a task: its changes arrive on the channel.
fn spawn_watch(nodes: Vec<String>) -> (mpsc::Receiver<Change>, tokio::task::JoinHandle<WatchEnd>) {
    let (tx, rx) = mpsc::channel();
    let request = WatchRequest {
        range: prefix("w/"),
        from_index: Some(0),
    };
    let task = tokio::spawn(async move {
        watch(&nodes, request, T, |c| tx.send(c.clone()).is_ok())
            .await
            .unwrap()
    });
    (rx, task)
}

fn take(rx: &mpsc::Receiver<Change>, n: usize) -> Vec<Change> {
    (0..n)
        .map(|i| {
            rx.recv_timeout(T)
                .unwrap_or_else(|e| panic!("change {i} of {n}: {e}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_catches_up_then_follows_live_changes_across_a_move_to_another_node() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_leader(&cluster.ids(), T).await;
    let mut c = cluster.client_of(&[1, 3]);
    let mut expected = Vec::new();
    // Before the watch: puts, a delete, keys outside the prefix, a batch of two changes.
    for i in 0..5 {
        expected.extend(write(&mut c, put(&format!("w/{i}"), &format!("v{i}"))).await);
        write(&mut c, put(&format!("x/{i}"), "outside")).await;
    }
    expected.extend(write(&mut c, ClientOp::Delete { key: "w/0".into() }).await);
    let batch = ClientOp::Txn {
        guards: vec![],
        ops: vec![
            TxnOp::Put {
                key: "w/a".into(),
                value: "1".into(),
            },
            TxnOp::Put {
                key: "w/b".into(),
                value: "2".into(),
            },
        ],
    };
    expected.extend(write(&mut c, batch).await);
    assert_eq!(expected.len(), 8);

    let (rx, task) = spawn_watch(vec![cluster.url(2), cluster.url(3)]);
    assert_eq!(
        take(&rx, 8),
        expected,
        "caught up from index 0, in log order"
    );
    // Live changes.
    let live = write(&mut c, put("w/live", "1")).await;
    assert_eq!(take(&rx, 1), live);
    // The watched node dies; the watch moves to node 3 from where it was.
    cluster.kill(2);
    let mut after = Vec::new();
    for i in 0..5 {
        after.extend(write(&mut c, put(&format!("w/after/{i}"), "v")).await);
    }
    assert_eq!(
        take(&rx, 5),
        after,
        "no change lost or repeated across the move"
    );
    assert!(
        rx.recv_timeout(Duration::from_millis(1500)).is_err(),
        "nothing more"
    );
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_no_longer_keeps_the_changes_says_compacted_and_the_cli_exits_1() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_leader(&cluster.ids(), T).await;
    let mut c = cluster.client_of(&[1]);
    for i in 0..3 {
        write(&mut c, put(&format!("w/{i}"), "v")).await;
    }
    let status = cluster.status(1).await.unwrap();
    cluster.wait_applied(&[3], status.applied_idx, T).await;
    // A restarted node keeps changes from the index it recovered to.
    cluster.kill(3);
    cluster.restart(3);
    let (rx, task) = spawn_watch(vec![cluster.url(3)]);
    let end = task.await.unwrap();
    let WatchEnd::Compacted { oldest_index } = end else {
        panic!("{end:?}")
    };
    assert!(oldest_index > 0 && oldest_index <= status.applied_idx + 1);
    assert!(
        rx.try_recv().is_err(),
        "no change before the compacted reply"
    );

    let cli = |node: u64, from: &str| {
        omnikv_tests::omnikv_command()
            .args(["watch", "--prefix", "w/", "--from-index", from])
            .args(["--count", "2", "--node", &cluster.url(node)])
            .output()
            .unwrap()
    };
    let out = cli(3, "0");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("scan, then watch"));
    let out = cli(1, "0");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines: Vec<_> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').skip(1).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(lines, ["put w/0 v", "put w/1 v"]);
}
