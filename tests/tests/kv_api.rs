//! The API beyond put/get/delete, on real node processes: revisions (`mod_index`),
//! compare-and-swap and guarded batches applied atomically and exactly once, ordered scans by
//! pages, and the CLI verbs with their exit codes.

use std::io::Write;
use std::process::{Output, Stdio};
use std::time::Duration;

use omnikv_core::{
    client::{ClientOp, ClientRequest, ClientResponse, ReadMode},
    scan::ScanRange,
    txn::{Guard, TxnOp},
    RequestId,
};
use omnikv_node::client::{open_session, Client, Connection};
use omnikv_tests::Cluster;

const T: Duration = Duration::from_secs(5);

async fn started() -> Cluster {
    let cluster = Cluster::start(3, &[]);
    cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    cluster
}

fn put(key: &str, value: &str) -> TxnOp {
    TxnOp::Put {
        key: key.into(),
        value: value.into(),
    }
}

fn is_value(key: &str, value: &str) -> Guard {
    Guard::Value {
        key: key.into(),
        value: value.into(),
    }
}

/// The value and mod_index a linearizable get returns.
async fn versioned(c: &mut Client, key: &str, read: ReadMode) -> Option<(String, u64)> {
    let reply = c
        .call(ClientOp::Get {
            key: key.into(),
            read,
        })
        .await
        .unwrap();
    let a = reply.answer;
    a.value
        .map(|v| (v, a.mod_index.expect("a live key has a mod_index")))
}

/// A put; the log index its reply names.
async fn indexed_put(c: &mut Client, key: &str, value: &str) -> u64 {
    let op = ClientOp::Put {
        key: key.into(),
        value: value.into(),
    };
    let (_, _, index) = c.execute_indexed(op).await.unwrap();
    index.expect("a write names its index")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_carries_the_index_of_its_last_write_on_every_replica() {
    let cluster = started().await;
    let mut writer = cluster.client_of(&[1]);
    let put_at = indexed_put(&mut writer, "k", "v1").await;
    let mut reader = cluster.client_of(&[2]);
    assert_eq!(
        versioned(&mut reader, "k", ReadMode::Linearizable).await,
        Some(("v1".into(), put_at)),
        "get returns the index the put was applied at"
    );
    // Another write to another key leaves k's index alone; a write to k moves it.
    writer.put("other", "x").await.unwrap();
    let again = indexed_put(&mut writer, "k", "v2").await;
    assert!(again > put_at);
    let status = cluster.status(1).await.unwrap();
    cluster
        .wait_applied(&cluster.ids(), status.applied_idx, T)
        .await;
    for id in cluster.ids() {
        let mut local = cluster.client_of(&[id]);
        assert_eq!(
            versioned(&mut local, "k", ReadMode::Local).await,
            Some(("v2".into(), again)),
            "node {id}'s own copy"
        );
    }
    // The dumps compare each key's mod_index across replicas and with the fold of the log.
    cluster.assert_replicas_identical().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_swap_writes_only_when_its_guard_holds_and_says_what_it_found() {
    let cluster = started().await;
    let mut c = cluster.client_of(&[2]);
    let (created, at) = c
        .txn(vec![Guard::Absent { key: "k".into() }], vec![put("k", "a")])
        .await
        .unwrap();
    assert!(created.succeeded, "{created:?}");
    let created_at = at.unwrap();
    let (ok, _) = c
        .txn(vec![is_value("k", "a")], vec![put("k", "b")])
        .await
        .unwrap();
    assert!(ok.succeeded);
    // A stale expectation fails, writes nothing, and names what the key holds.
    let (stale, _) = c
        .txn(vec![is_value("k", "a")], vec![put("k", "c")])
        .await
        .unwrap();
    assert!(!stale.succeeded);
    assert_eq!(stale.found.len(), 1);
    let found = &stale.found[0];
    assert_eq!(found.value.as_deref(), Some("b"));
    let found_index = found.mod_index.expect("k exists");
    assert!(found_index > created_at);
    // The index it found is a guard that holds now; the old one does not.
    let by_old_index = Guard::ModIndex {
        key: "k".into(),
        mod_index: created_at,
    };
    let (old, _) = c
        .txn(vec![by_old_index], vec![put("k", "x")])
        .await
        .unwrap();
    assert!(!old.succeeded);
    let by_index = Guard::ModIndex {
        key: "k".into(),
        mod_index: found_index,
    };
    let (fresh, _) = c.txn(vec![by_index], vec![put("k", "d")]).await.unwrap();
    assert!(fresh.succeeded);
    assert_eq!(
        c.get("k", ReadMode::Linearizable).await.unwrap().as_deref(),
        Some("d")
    );
    cluster.assert_replicas_identical().await;
}

async fn balances(c: &mut Client) -> omnikv_core::scan::ScanPage {
    let range = ScanRange {
        prefix: Some("balance/".into()),
        ..ScanRange::default()
    };
    c.scan(range, ReadMode::Linearizable).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarded_batch_applies_all_its_writes_or_none() {
    let cluster = started().await;
    let mut c = cluster.client_of(&[1]);
    c.put("balance/a", "10").await.unwrap();
    let transfer = |a: &str, b: &str| {
        vec![
            put("balance/a", a),
            put("balance/b", b),
            TxnOp::Delete {
                key: "pending".into(),
            },
        ]
    };
    // One guard of two fails: neither write happens.
    let guards = vec![
        is_value("balance/a", "10"),
        Guard::Absent {
            key: "balance/a".into(),
        },
    ];
    let (failed, _) = c.txn(guards, transfer("0", "10")).await.unwrap();
    assert!(!failed.succeeded);
    assert_eq!(failed.found.len(), 1, "only the failed guard: {failed:?}");
    let mut other = cluster.client_of(&[3]);
    let page = balances(&mut other).await;
    let keys: Vec<_> = page.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["balance/a"], "nothing of the failed batch");
    let (done, at) = c
        .txn(vec![is_value("balance/a", "10")], transfer("0", "10"))
        .await
        .unwrap();
    assert!(done.succeeded);
    let page = balances(&mut other).await;
    let got: Vec<_> = page
        .entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str(), e.mod_index))
        .collect();
    let at = at.unwrap();
    assert_eq!(got, [("balance/a", "0", at), ("balance/b", "10", at)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_a_transaction_answers_like_the_first_even_once_its_guard_would_hold() {
    let cluster = started().await;
    let mut c1 = Connection::open(&cluster.url(1), "client", T)
        .await
        .unwrap();
    let session = open_session(&mut c1, T).await.unwrap();
    let mut c2 = Connection::open(&cluster.url(2), "client", T)
        .await
        .unwrap();
    let request = |seq, guard: Guard, value: &str| ClientRequest {
        id: RequestId {
            client: session,
            seq,
        },
        op: ClientOp::Txn {
            guards: vec![guard],
            ops: vec![put("k", value)],
        },
        forget_below: 0,
    };
    let outcome = |r: ClientResponse| match r {
        ClientResponse::Ok {
            index,
            txn: Some(t),
            ..
        } => (index.unwrap(), t.succeeded),
        r => panic!("{r:?}"),
    };
    // Seq 0 fails (k is absent); seq 1 creates k with the value seq 0 expected.
    let failing = request(0, is_value("k", "a"), "b");
    let (first_at, first_ok) = outcome(c1.request(&failing, T).await.unwrap());
    assert!(!first_ok);
    let create = request(1, Guard::Absent { key: "k".into() }, "a");
    assert!(outcome(c1.request(&create, T).await.unwrap()).1);
    // A retry of seq 0 through another node: answered as its first copy, and writes nothing,
    // although its guard would hold now.
    assert_eq!(
        outcome(c2.request(&failing, T).await.unwrap()),
        (first_at, false)
    );
    let mut reader = cluster.client_of(&[3]);
    assert_eq!(
        reader
            .get("k", ReadMode::Linearizable)
            .await
            .unwrap()
            .as_deref(),
        Some("a")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_page_through_keys_in_order_linearizably_or_locally() {
    let cluster = started().await;
    let mut c = cluster.client_of(&[1]);
    // 25 keys under the prefix, written in a scrambled order, and keys around it.
    for i in (0..25).map(|i| (i * 7) % 25) {
        c.put(&format!("p/{i:02}"), &format!("v{i}")).await.unwrap();
    }
    for k in ["p", "p0", "o/9", "q/0"] {
        c.put(k, "outside").await.unwrap();
    }
    let mut reader = cluster.client_of(&[3]);
    let mut range = ScanRange {
        prefix: Some("p/".into()),
        limit: 10,
        ..ScanRange::default()
    };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = reader
            .scan(range.clone(), ReadMode::Linearizable)
            .await
            .unwrap();
        pages += 1;
        assert!(page.entries.len() <= 10);
        seen.extend(page.entries.into_iter().map(|e| (e.key, e.value)));
        match page.next_after {
            Some(after) => range.after = Some(after),
            None => break,
        }
    }
    let expected: Vec<_> = (0..25)
        .map(|i| (format!("p/{i:02}"), format!("v{i}")))
        .collect();
    assert_eq!(seen, expected, "every key once, in key order");
    assert_eq!(pages, 3);
    // [start, end) by byte order, on every node's local copy once it has applied everything.
    let status = cluster.status(1).await.unwrap();
    cluster
        .wait_applied(&cluster.ids(), status.applied_idx, T)
        .await;
    for id in cluster.ids() {
        let mut local = cluster.client_of(&[id]);
        let range = ScanRange {
            start: Some("p".into()),
            end: Some("p/02".into()),
            ..ScanRange::default()
        };
        let page = local.scan(range, ReadMode::Local).await.unwrap();
        let keys: Vec<_> = page.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["p", "p/00", "p/01"], "node {id}");
    }
    // A limit beyond the maximum is clamped, not refused.
    let huge = ScanRange {
        limit: u32::MAX,
        ..ScanRange::default()
    };
    let page = reader.scan(huge, ReadMode::Linearizable).await.unwrap();
    assert_eq!(page.entries.len(), 29);
}

fn cli(cluster: &Cluster, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = omnikv_tests::omnikv_command();
    cmd.args(args).args(["--node", &cluster.url(1)]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_scans_compares_and_swaps_and_applies_batches_with_gets_exit_codes() {
    let cluster = started().await;
    let mut c = cluster.client_of(&[1]);
    for (k, v) in [
        ("user/b", "2"),
        ("user/a", "1"),
        ("user/c", "3"),
        ("zz", "9"),
    ] {
        c.put(k, v).await.unwrap();
    }
    let out = cli(
        &cluster,
        &["scan", "--prefix", "user/", "--limit", "2"],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(text(&out.stdout), "user/a\t1\nuser/b\t2\n");
    let out = cli(&cluster, &["scan", "--from", "user/b", "--to", "zz"], None);
    assert_eq!(text(&out.stdout), "user/b\t2\nuser/c\t3\n");
    let out = cli(&cluster, &["scan", "--prefix", "nobody/"], None);
    assert_eq!((out.status.code(), text(&out.stdout)), (Some(1), "".into()));

    let out = cli(&cluster, &["cas", "user/a", "10", "--expect", "1"], None);
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), "ok\n".into())
    );
    let out = cli(&cluster, &["cas", "user/a", "11", "--expect", "1"], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("comparison failed") && stderr.contains("user/a\t10\t(mod_index "),
        "says what it found: {stderr}"
    );
    let out = cli(&cluster, &["cas", "new", "v", "--expect-absent"], None);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = cli(
        &cluster,
        &["cas", "new", "--delete", "--expect-index", "1"],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = cli(&cluster, &["cas", "new", "v"], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an expectation is required: {out:?}"
    );

    let batch = r#"{"value":{"key":"user/b","value":"2"}}
{"put":{"key":"user/b","value":"20"}}
{"delete":{"key":"user/c"}}
"#;
    let out = cli(&cluster, &["batch"], Some(batch));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = cli(&cluster, &["batch"], Some(batch));
    assert_eq!(
        out.status.code(),
        Some(1),
        "the guard no longer holds: {out:?}"
    );
    let out = cli(&cluster, &["batch"], Some("{\"frobnicate\":{}}\n"));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("line 1"), "{out:?}");
    let out = cli(&cluster, &["scan", "--prefix", "user/"], None);
    assert_eq!(text(&out.stdout), "user/a\t10\nuser/b\t20\n");
}
