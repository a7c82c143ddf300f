//! Malformed input to every endpoint of a node gets an error (or a closed connection) and
//! changes nothing: the node keeps serving.

use std::time::Duration;

use omnikv_core::{
    admin::{AdminRequest, AdminResponse},
    client::{ClientError, ClientOp, ClientRequest, ClientResponse, ReadMode},
    limits::CLIENT_FRAME_BYTES_MAX,
    RequestId,
};
use omnikv_node::client::Connection;
use omnikv_tests::Cluster;
use tokio::io::AsyncWriteExt;

const T: Duration = Duration::from_secs(5);

fn expect_bad_request(reply: &str, what: &str) {
    let resp: ClientResponse =
        serde_json::from_str(reply).unwrap_or_else(|e| panic!("{what}: {e}: {reply}"));
    match resp {
        ClientResponse::Err {
            error: ClientError::BadRequest { reason },
            ..
        } => assert!(!reason.is_empty()),
        other => panic!("{what}: expected bad_request, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_endpoint_rejects_bad_frames_and_keeps_the_connection() {
    let cluster = Cluster::start(3, &[]);
    cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let mut conn = Connection::open(&cluster.url(1), "client", T)
        .await
        .unwrap();
    let oversized = format!(
        r#"{{"id":{{"client":1,"seq":1}},"op":{{"put":{{"key":"k","value":"{}"}}}}}}"#,
        "v".repeat(CLIENT_FRAME_BYTES_MAX)
    );
    let bad: Vec<(&str, String)> = vec![
        ("not JSON", "hello".into()),
        ("empty object", "{}".into()),
        (
            "unknown field",
            r#"{"id":{"client":1,"seq":1},"op":{"get":{"key":"k"}},"x":1}"#.into(),
        ),
        (
            "unknown command",
            r#"{"id":{"client":1,"seq":1},"op":{"scan":{"key":"k"}}}"#.into(),
        ),
        (
            "empty key",
            r#"{"id":{"client":1,"seq":1},"op":{"put":{"key":"","value":"v"}}}"#.into(),
        ),
        (
            "bad read mode",
            r#"{"id":{"client":1,"seq":1},"op":{"get":{"key":"k","read":"stale"}}}"#.into(),
        ),
        ("oversized frame", oversized),
    ];
    for (what, frame) in bad {
        conn.send_text(frame).await.unwrap();
        expect_bad_request(&conn.recv_text(T).await.unwrap(), what);
    }
    // Same connection, valid requests: served.
    let session = omnikv_node::client::open_session(&mut conn, T)
        .await
        .unwrap();
    let put = ClientRequest {
        id: RequestId {
            client: session,
            seq: 1,
        },
        op: ClientOp::Put {
            key: "k".into(),
            value: "v".into(),
        },
        forget_below: 0,
    };
    assert!(matches!(
        conn.request(&put, T).await.unwrap(),
        ClientResponse::Ok { .. }
    ));
    // Nothing from the bad frames was written.
    let mut c = cluster.client_of(&[2]);
    assert_eq!(
        c.get("k", ReadMode::Linearizable).await.unwrap().as_deref(),
        Some("v")
    );
    let dump = cluster.dump(1).await;
    assert_eq!(
        dump.kv.len(),
        1,
        "only the valid write is in the table: {:?}",
        dump.kv
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_events_unknown_paths_and_huge_frames_do_not_hurt_the_node() {
    let cluster = Cluster::start(3, &[]);
    cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let url = cluster.url(1);

    let mut admin = Connection::open(&url, "admin", T).await.unwrap();
    admin.send_text("{".into()).await.unwrap();
    let r: AdminResponse = serde_json::from_str(&admin.recv_text(T).await.unwrap()).unwrap();
    assert!(matches!(r, AdminResponse::Error { .. }));
    let r = admin
        .admin(
            &AdminRequest::SetLink {
                peer: 42,
                connected: false,
            },
            T,
        )
        .await
        .unwrap();
    assert!(matches!(r, AdminResponse::Error { .. }), "{r:?}");
    assert!(matches!(
        admin.admin(&AdminRequest::Status, T).await.unwrap(),
        AdminResponse::Status(_)
    ));

    // Event subscribers cannot talk the node into anything.
    let mut events = Connection::open(&url, "events", T).await.unwrap();
    events.send_text("please crash".into()).await.unwrap();
    assert!(events.recv_text(T).await.unwrap().contains("\"status\""));

    assert!(
        Connection::open(&url, "nope", T).await.is_err(),
        "unknown path refused"
    );

    // A frame beyond the WebSocket limit closes that connection only.
    let mut conn = Connection::open(&url, "client", T).await.unwrap();
    let _ = conn.send_text("x".repeat(8 * CLIENT_FRAME_BYTES_MAX)).await;
    let _ = conn.recv_text(T).await;

    let mut c = cluster.client_of(&[1]);
    c.put("after", "abuse").await.unwrap();
    assert_eq!(
        c.get("after", ReadMode::Linearizable)
            .await
            .unwrap()
            .as_deref(),
        Some("abuse")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_port_refuses_strangers_and_garbage() {
    let cluster = Cluster::start(3, &[]);
    cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let peer = cluster.nodes[&1].peer;
    let frame = |json: &str| {
        let mut v = (json.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(json.as_bytes());
        v
    };
    let attempts: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![0xFF; 64],
        frame(r#"{"hello":{"cluster_id":"other","from":2}}"#),
        frame(r#"{"hello":{"cluster_id":"test","from":9}}"#),
        [frame(r#"{"hello":{"cluster_id":"test","from":2}}"#), frame("garbage")].concat(),
        [frame(r#"{"hello":{"cluster_id":"test","from":3}}"#), frame(r#"{"paxos":{"msg_id":1,"msg":{"BLE":{"from":2,"to":1,"msg":{"Request":{"round":1}}}}}}"#)].concat(),
    ];
    for bytes in attempts {
        let mut s = tokio::net::TcpStream::connect(peer).await.unwrap();
        let _ = s.write_all(&bytes).await;
        let _ = s.shutdown().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = cluster.client_of(&[1]);
    c.put("k", "v").await.unwrap();
    cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(5))
        .await;
}

/// Seeded random frames to every endpoint of a node: each client frame gets exactly one error
/// reply, admin frames get errors, peer streams are dropped, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_frames_to_every_endpoint_change_nothing() {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let cluster = Cluster::start(3, &[]);
    cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let url = cluster.url(2);
    let random_frame = |rng: &mut StdRng| -> String {
        let len = rng.gen_range(0..300);
        let alphabet = b"{}[]\":,0123456789abcdefghijklmnopqrstuvwxyz_ -\\\n\t";
        (0..len)
            .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
            .collect()
    };

    let mut conn = Connection::open(&url, "client", T).await.unwrap();
    for _ in 0..300 {
        conn.send_text(random_frame(&mut rng)).await.unwrap();
        let reply = conn.recv_text(T).await.unwrap();
        expect_bad_request(&reply, &format!("seed {seed}"));
    }
    let mut admin = Connection::open(&url, "admin", T).await.unwrap();
    for _ in 0..100 {
        admin.send_text(random_frame(&mut rng)).await.unwrap();
        let r: AdminResponse = serde_json::from_str(&admin.recv_text(T).await.unwrap()).unwrap();
        assert!(
            matches!(r, AdminResponse::Error { .. }),
            "seed {seed}: {r:?}"
        );
    }
    let peer = cluster.nodes[&2].peer;
    for i in 0..50 {
        let mut s = tokio::net::TcpStream::connect(peer).await.unwrap();
        let body = if i % 2 == 0 {
            r#"{"hello":{"cluster_id":"test","from":1}}"#.to_string()
        } else {
            random_frame(&mut rng)
        };
        let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(body.as_bytes());
        let junk = random_frame(&mut rng);
        bytes.extend_from_slice(&(junk.len() as u32).to_be_bytes());
        bytes.extend_from_slice(junk.as_bytes());
        let _ = s.write_all(&bytes).await;
        let _ = s.shutdown().await;
    }
    let dump = cluster.dump(2).await;
    assert!(
        dump.kv.is_empty() && dump.decided_idx == 0,
        "seed {seed}: state changed: {dump:?}"
    );
    let mut c = cluster.client_of(&[2]);
    c.put("k", "v").await.unwrap();
    assert_eq!(
        c.get("k", ReadMode::Linearizable).await.unwrap().as_deref(),
        Some("v")
    );
}
