//! Malformed input to every endpoint of a node gets an error (or a closed connection) and
//! changes nothing: the node keeps serving.

use std::time::Duration;

use omnikv_core::control::ProcessState;
use omnikv_core::{
    admin::{AdminRequest, AdminResponse},
    client::{ClientError, ClientOp, ClientRequest, ClientResponse, ReadMode},
    limits::CLIENT_FRAME_BYTES_MAX,
    RequestId,
};
use omnikv_node::client::{Connection, ConnectionError};
use omnikv_tests::{Cluster, Demo};
use tokio::io::AsyncWriteExt;

const T: Duration = Duration::from_secs(5);

/// Request `seq` of session `session`: a put that forgets nothing.
fn put_request(session: u64, seq: u64, key: String, value: String) -> ClientRequest {
    ClientRequest {
        id: RequestId {
            client: session,
            seq,
        },
        op: ClientOp::Put { key, value },
        forget_below: 0,
    }
}

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
        (
            "scan without its range",
            r#"{"id":{"client":1,"seq":1},"op":{"scan":{"prefix":"k"}}}"#.into(),
        ),
        (
            "scan by prefix and range at once",
            r#"{"id":{"client":1,"seq":1},"op":{"scan":{"range":{"prefix":"k","end":"z"}}}}"#
                .into(),
        ),
        (
            "transaction with nothing in it",
            r#"{"id":{"client":1,"seq":1},"op":{"txn":{"ops":[]}}}"#.into(),
        ),
        (
            "transaction with an unknown guard",
            r#"{"id":{"client":1,"seq":1},"op":{"txn":{"guards":[{"newer":{"key":"k"}}],"ops":[]}}}"#.into(),
        ),
        (
            "transaction writing an empty key",
            r#"{"id":{"client":1,"seq":1},"op":{"txn":{"ops":[{"put":{"key":"","value":"v"}}]}}}"#.into(),
        ),
        (
            "transaction of too many parts",
            format!(
                r#"{{"id":{{"client":1,"seq":1}},"op":{{"txn":{{"ops":[{}]}}}}}}"#,
                vec![r#"{"delete":{"key":"k"}}"#; 129].join(",")
            ),
        ),
    ];
    for (what, frame) in bad {
        conn.send_text(frame).await.unwrap();
        expect_bad_request(&conn.recv_text(T).await.unwrap(), what);
    }
    // Same connection, valid requests: served.
    let session = omnikv_node::client::open_session(&mut conn, T)
        .await
        .unwrap();
    let put = put_request(session, 1, "k".into(), "v".into());
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

    // A frame beyond the WebSocket limit closes that connection only: the node may first say
    // why (one bad_request), then it closes; it must not leave the connection hanging.
    let mut conn = Connection::open(&url, "client", T).await.unwrap();
    if conn
        .send_text("x".repeat(8 * CLIENT_FRAME_BYTES_MAX))
        .await
        .is_ok()
    {
        let mut replies = 0;
        loop {
            match conn.recv_text(T).await {
                Ok(reply) => {
                    expect_bad_request(&reply, "frame beyond the WebSocket limit");
                    replies += 1;
                    assert!(replies <= 1, "more than one reply to one frame");
                }
                Err(ConnectionError::Lost(_)) => break,
                Err(e) => panic!("the node kept an over-limit connection open: {e}"),
            }
        }
    }

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
    // The leader once the start-up election has settled (a higher id may take over the first
    // ballot round): a write decided, then a few election timeouts.
    cluster.client_of(&[1]).put("before", "x").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let leader = cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(5))
        .await;
    for (i, bytes) in attempts.into_iter().enumerate() {
        let mut s = tokio::net::TcpStream::connect(peer).await.unwrap();
        let _ = s.write_all(&bytes).await;
        // Our side stays open: the node itself must hang up, well before its handshake
        // timeout would.
        assert!(
            closed_by_node(&mut s, Duration::from_millis(1500)).await,
            "attempt {i}: the node kept a stranger's stream open"
        );
    }
    // Nothing the strangers sent reached OmniPaxos: same leader, every link still up.
    let mut c = cluster.client_of(&[1]);
    c.put("k", "v").await.unwrap();
    assert_eq!(
        cluster
            .wait_leader(&cluster.ids(), Duration::from_secs(5))
            .await,
        leader
    );
    let status = cluster.status(1).await.unwrap();
    assert!(
        status.peers.iter().all(|p| p.connected),
        "links after the strangers: {:?}",
        status.peers
    );
}

/// Reads (and discards) until the other side closes; false if it is still open at `within`.
async fn closed_by_node(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
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
    for _ in 0..50 {
        let mut watch = Connection::open(&url, "watch", T).await.unwrap();
        watch.send_text(random_frame(&mut rng)).await.unwrap();
        let frame: omnikv_core::watch::WatchFrame =
            serde_json::from_str(&watch.recv_text(T).await.unwrap()).unwrap();
        assert!(
            matches!(frame, omnikv_core::watch::WatchFrame::Error { .. }),
            "seed {seed}: {frame:?}"
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

/// One HTTP/1.1 request written by hand, so that `Host` and `Origin` are exactly what a hostile
/// page's browser would send. Returns the status and body.
fn raw_http(base: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = base.strip_prefix("http://").expect("http base URL");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP reply: {resp:?}"));
    let body = resp
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn node_view(demo: &Demo, id: u64) -> omnikv_core::control::NodeView {
    demo.cluster()
        .nodes
        .into_iter()
        .find(|n| n.id == id)
        .unwrap()
}

/// What a DNS-rebinding page sends: its own name as `Host`, and a matching `Origin`. The
/// control API must refuse it and change nothing; the same request naming the launcher by a
/// loopback name works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_api_refuses_dns_rebinding() {
    let demo = Demo::start(3, &[]);
    demo.wait_leader(Duration::from_secs(10));
    let port = demo.http.rsplit(':').next().unwrap().to_string();
    let before = node_view(&demo, 2);
    assert_eq!(before.state, ProcessState::Up);

    let evil_host = format!("evil.example:{port}");
    let evil_origin = format!("http://evil.example:{port}");
    for (method, path) in [
        ("POST", "/api/nodes/2/kill"),
        ("POST", "/api/scenarios/quorum-loss"),
        ("GET", "/api/cluster"),
        ("GET", "/"),
    ] {
        let (code, body) = raw_http(
            &demo.http,
            method,
            path,
            &[("Host", &evil_host), ("Origin", &evil_origin)],
        );
        assert_eq!(code, 403, "{method} {path} from a rebound page: {body}");
        assert!(body.contains("evil.example"), "{body}");
    }
    let after = node_view(&demo, 2);
    assert_eq!(
        (after.state, after.pid),
        (before.state, before.pid),
        "node 2 was touched"
    );
    assert!(demo.cluster().links.iter().all(|l| l.connected));

    // The launcher's own page (any loopback name) still drives it.
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let origin = format!("http://{host}");
        for action in ["pause", "resume"] {
            let (code, body) = raw_http(
                &demo.http,
                "POST",
                &format!("/api/nodes/2/{action}"),
                &[("Host", &host), ("Origin", &origin)],
            );
            assert_eq!(code, 200, "{action} from {origin}: {body}");
        }
    }
}

/// Token mode end to end: the API refuses requests without the token (or with a wrong one of
/// any length), and the CLI, given it by flag or environment, finds the nodes and writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_mode_works_from_the_cli() {
    const TOKEN: &str = "correct-horse-battery";
    let demo = Demo::start(3, &["--token", TOKEN]);
    let port = demo.http.rsplit(':').next().unwrap().to_string();
    let host = format!("127.0.0.1:{port}");
    let bearer = format!("Bearer {TOKEN}");
    for wrong in [
        "",
        "Bearer ",
        "Bearer correct",
        "Bearer correct-horse-battery-staple",
    ] {
        let mut headers = vec![("Host", host.as_str())];
        if !wrong.is_empty() {
            headers.push(("Authorization", wrong));
        }
        let (code, body) = raw_http(&demo.http, "GET", "/api/cluster", &headers);
        assert_eq!(code, 401, "{wrong:?}: {body}");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (code, body) = raw_http(
            &demo.http,
            "GET",
            "/api/cluster",
            &[("Host", &host), ("Authorization", &bearer)],
        );
        assert_eq!(code, 200, "{body}");
        let view: omnikv_core::control::ClusterView = serde_json::from_str(&body).unwrap();
        if view.leader.is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let cli = |args: &[&str], token: Option<&str>| {
        let mut cmd = std::process::Command::new(omnikv_tests::omnikv_bin());
        cmd.args(args).args(["--demo", &demo.http]);
        cmd.env_remove("OMNIKV_TOKEN");
        if let Some(t) = token {
            cmd.env("OMNIKV_TOKEN", t);
        }
        cmd.output().unwrap()
    };
    let out = cli(&["put", "k", "v"], None);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--token"),
        "says how to pass the token: {stderr}"
    );

    let out = cli(&["put", "k", "v"], Some(TOKEN));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    let out = cli(&["get", "k", "--token", TOKEN], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v");
}

/// The status of a WebSocket upgrade to `path` on `addr`, with extra headers, as a browser
/// would send it.
fn upgrade_status(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> u16 {
    use std::io::{BufRead, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut status_line = String::new();
    std::io::BufReader::new(s)
        .read_line(&mut status_line)
        .unwrap();
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP reply: {status_line:?}"))
}

/// A page of another origin cannot open any node endpoint; the cluster's own page and tools
/// (no `Origin`) can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_endpoints_refuse_foreign_origins() {
    const PAGE: &str = "http://127.0.0.1:8080";
    let cluster = Cluster::start(3, &["--allowed-origin", PAGE]);
    cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let ws = cluster.nodes[&1].ws;
    for path in ["/admin", "/client", "/events"] {
        for evil in ["http://evil.example", "http://127.0.0.1:8081", "null"] {
            assert_eq!(
                upgrade_status(ws, path, &[("Origin", evil)]),
                403,
                "{path} from {evil}"
            );
        }
        assert_eq!(upgrade_status(ws, path, &[("Origin", PAGE)]), 101, "{path}");
        assert_eq!(upgrade_status(ws, path, &[]), 101, "{path} without Origin");
    }
}

/// `/admin` changes need the cluster secret; without it the connection is read-only, and a
/// wrong secret is refused at the upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_need_the_cluster_secret() {
    let cluster = Cluster::start(3, &[]);
    cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let url = cluster.url(1);
    let cut = AdminRequest::SetLink {
        peer: 2,
        connected: false,
    };
    let mut anonymous = Connection::open(&url, "admin", T).await.unwrap();
    match anonymous.admin(&cut, T).await.unwrap() {
        AdminResponse::Error { message } => assert!(message.contains("secret"), "{message}"),
        other => panic!("a link was cut without the secret: {other:?}"),
    }
    assert!(matches!(
        anonymous.admin(&AdminRequest::Status, T).await.unwrap(),
        AdminResponse::Status(_)
    ));
    assert!(matches!(
        anonymous.admin(&AdminRequest::Dump, T).await.unwrap(),
        AdminResponse::Dump(_)
    ));
    let wrong = "0".repeat(cluster.secret.len());
    assert!(
        Connection::open_as(&url, "admin", T, Some(&wrong))
            .await
            .is_err(),
        "wrong secret accepted"
    );
    let status = cluster.status(1).await.unwrap();
    assert!(
        status.peers.iter().all(|p| p.link_enabled),
        "{:?}",
        status.peers
    );

    let mut authorised = Connection::open_as(&url, "admin", T, Some(&cluster.secret))
        .await
        .unwrap();
    assert_eq!(authorised.admin(&cut, T).await.unwrap(), AdminResponse::Ok);
    let status = cluster.status(1).await.unwrap();
    assert!(status.peers.iter().any(|p| p.id == 2 && !p.link_enabled));
}

/// Without a secret a node would be open to anyone who can reach it, so it refuses to listen
/// beyond loopback.
#[test]
fn a_node_without_secret_refuses_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let peer = omnikv_tests::free_addr();
    let mut child = std::process::Command::new(omnikv_tests::omnikv_bin())
        .args(["node", "--id", "1", "--ws", "0.0.0.0:0"])
        .args([
            "--member",
            &format!("1={peer}"),
            "--member",
            "2=127.0.0.1:2",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("OMNIKV_SECRET_FILE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the node started on 0.0.0.0 without a secret");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--secret-file"), "{stderr}");
}

/// The launcher makes one private secret per cluster and gives it, with its page's origin, to
/// every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_gives_its_nodes_a_private_secret_and_its_origin() {
    use std::os::unix::fs::PermissionsExt;
    let demo = Demo::start(3, &[]);
    demo.wait_leader(Duration::from_secs(10));
    let secret = demo.dir.path().join("data").join("secret");
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let view = demo.cluster();
    let node = &view.nodes[0];
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", node.pid.unwrap())).unwrap();
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(
        args.windows(2)
            .any(|w| w[0] == "--secret-file" && std::path::Path::new(&w[1]) == secret),
        "{args:?}"
    );
    let ws: std::net::SocketAddr = node.ws.strip_prefix("ws://").unwrap().parse().unwrap();
    let port = demo.http.rsplit(':').next().unwrap();
    for page in [demo.http.clone(), format!("http://localhost:{port}")] {
        assert_eq!(
            upgrade_status(ws, "/events", &[("Origin", &page)]),
            101,
            "{page}"
        );
    }
    assert_eq!(
        upgrade_status(ws, "/events", &[("Origin", "http://evil.example")]),
        403
    );
    // The launcher itself still changes links (it holds the secret).
    let (code, body) = demo.post("/api/links", r#"{"a":1,"b":2,"connected":false}"#);
    assert_eq!(code, 200, "{body}");
    let status = omnikv_node::client::admin(&node.ws, &AdminRequest::Status, T)
        .await
        .unwrap();
    let AdminResponse::Status(status) = status else {
        panic!("{status:?}")
    };
    assert!(status.peers.iter().any(|p| p.id == 2 && !p.link_enabled));
}

/// Writes one length-delimited peer frame.
async fn write_frame(s: &mut tokio::net::TcpStream, json: &str) {
    let mut v = (json.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(json.as_bytes());
    s.write_all(&v).await.unwrap();
}

/// Reads one length-delimited peer frame.
async fn read_frame(s: &mut tokio::net::TcpStream) -> omnikv_core::peer::PeerFrame {
    use tokio::io::AsyncReadExt;
    let read = async {
        let len = s.read_u32().await.unwrap();
        let mut body = vec![0; len as usize];
        s.read_exact(&mut body).await.unwrap();
        serde_json::from_slice(&body).unwrap()
    };
    tokio::time::timeout(T, read)
        .await
        .expect("a frame in time")
}

/// Opens a peer stream to `addr` as member `from` of cluster "test", answering the challenge
/// with `prove(nonce)` and challenging the node with [`OUR_NONCE`]. Returns the stream and the
/// nonce it was challenged with.
async fn peer_stream_as(
    addr: std::net::SocketAddr,
    from: u64,
    prove: impl Fn(&[u8]) -> Vec<u8>,
) -> (tokio::net::TcpStream, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    write_frame(
        &mut s,
        &format!(r#"{{"hello":{{"cluster_id":"test","from":{from}}}}}"#),
    )
    .await;
    let omnikv_core::peer::PeerFrame::Challenge { nonce } = read_frame(&mut s).await else {
        panic!("no challenge")
    };
    let nonce: Vec<u8> = (0..nonce.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&nonce[i..i + 2], 16).unwrap())
        .collect();
    let mac: String = prove(&nonce).iter().map(|b| format!("{b:02x}")).collect();
    let ours: String = OUR_NONCE.iter().map(|b| format!("{b:02x}")).collect();
    // One write: the node may hang up as soon as it has read a bad proof.
    let mut frames = Vec::new();
    for json in [
        format!(r#"{{"proof":{{"mac":"{mac}"}}}}"#),
        format!(r#"{{"challenge":{{"nonce":"{ours}"}}}}"#),
    ] {
        frames.extend_from_slice(&(json.len() as u32).to_be_bytes());
        frames.extend_from_slice(json.as_bytes());
    }
    s.write_all(&frames).await.unwrap();
    (s, nonce)
}

/// The challenge test streams send the node.
const OUR_NONCE: [u8; 32] = [7; 32];

/// Knowing the cluster id and a member id is not enough to join: a peer must prove it holds
/// the secret for this very challenge; before that, frames are small; and a member has at most
/// one stream (a newer one replaces the older).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_streams_need_the_secret_and_one_per_member() {
    let mut cluster = Cluster::start(3, &[]);
    cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    // Streams claim member 3, which is down: no real dialer competes with them.
    cluster.kill(3);
    let peer = cluster.nodes[&1].peer;
    let secret =
        omnikv_node::secret::ClusterSecret::from_file(&cluster.dir.path().join("secret")).unwrap();
    let proof = |nonce: &[u8]| secret.peer_proof("test", 3, 1, nonce);

    // A large frame before the handshake is refused at its length, not read.
    let mut big = tokio::net::TcpStream::connect(peer).await.unwrap();
    big.write_all(&(64u32 << 10).to_be_bytes()).await.unwrap();
    big.write_all(b"{\"hello\":").await.unwrap();
    assert!(
        closed_by_node(&mut big, Duration::from_secs(1)).await,
        "a 64 KiB frame was awaited before the handshake"
    );

    // A wrong proof, and a proof replayed from another challenge, are refused.
    let (mut wrong, _) = peer_stream_as(peer, 3, |_| vec![0; 32]).await;
    assert!(closed_by_node(&mut wrong, Duration::from_millis(1500)).await);
    let (mut first, first_nonce) = peer_stream_as(peer, 3, proof).await;
    let replayed = proof(&first_nonce);
    let (mut replay, _) = peer_stream_as(peer, 3, |_| replayed.clone()).await;
    assert!(closed_by_node(&mut replay, Duration::from_millis(1500)).await);

    // The right proof is accepted, and the node proves itself in turn...
    let omnikv_core::peer::PeerFrame::Proof { mac } = read_frame(&mut first).await else {
        panic!("the node did not answer our challenge")
    };
    let mac: Vec<u8> = (0..mac.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&mac[i..i + 2], 16).unwrap())
        .collect();
    assert!(secret.verify_peer_proof("test", 1, 3, &OUR_NONCE, &mac));
    // ...and the stream stays open...
    assert!(
        !closed_by_node(&mut first, Duration::from_millis(500)).await,
        "an authenticated member's stream was closed"
    );
    // ...until the same member authenticates again, which replaces it.
    let (mut second, _) = peer_stream_as(peer, 3, proof).await;
    assert!(
        closed_by_node(&mut first, Duration::from_millis(1500)).await,
        "two streams for one member"
    );
    assert!(!closed_by_node(&mut second, Duration::from_millis(300)).await);

    let mut c = cluster.client_of(&[1]);
    c.put("k", "v").await.unwrap();
}

/// Sockets that connect and say nothing are closed after the handshake timeout (5 s), on the
/// WebSocket port and on the peer port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_are_closed_after_the_handshake_timeout() {
    let cluster = Cluster::start(3, &[]);
    let node = &cluster.nodes[&1];
    let mut ws = tokio::net::TcpStream::connect(node.ws).await.unwrap();
    let mut peer = tokio::net::TcpStream::connect(node.peer).await.unwrap();
    let within = Duration::from_secs(8);
    let (ws_closed, peer_closed) = tokio::join!(
        closed_by_node(&mut ws, within),
        closed_by_node(&mut peer, within)
    );
    assert!(ws_closed, "a silent WebSocket connection was kept open");
    assert!(peer_closed, "a silent peer connection was kept open");
}

/// More idle sockets than the node has connection places, on both its ports: a client that
/// comes after them is still served promptly, and the cluster keeps its links.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_sockets_does_not_lock_clients_out() {
    const SOCKETS: usize = 1100;
    let cluster = Cluster::start(3, &[]);
    let leader = cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let node = &cluster.nodes[&1];
    let mut flood = Vec::new();
    for addr in [node.ws, node.peer] {
        let mut opened = 0;
        for _ in 0..SOCKETS {
            let connect = tokio::net::TcpStream::connect(addr);
            if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(3), connect).await {
                flood.push(s);
                opened += 1;
            }
        }
        assert!(opened >= 1000, "only {opened} sockets to {addr}");
    }
    let started = std::time::Instant::now();
    let mut c = cluster.client_of(&[1]);
    c.total_timeout = Duration::from_secs(5);
    c.put("after", "flood").await.unwrap();
    let mut events = Connection::open(&cluster.url(1), "events", T)
        .await
        .unwrap();
    assert!(events.recv_text(T).await.unwrap().contains("\"status\""));
    println!(
        "put and subscription served {} ms after {} idle sockets",
        started.elapsed().as_millis(),
        flood.len()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        cluster
            .wait_leader(&cluster.ids(), Duration::from_secs(5))
            .await,
        leader
    );
    drop(flood);
}

/// One connection pipelining far more requests than the node's pending table holds is slowed
/// down, not refused: the node reads at most a bounded number of its requests at a time, so
/// it cannot take every pending place and starve other clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelining_connection_is_bounded_not_overloaded() {
    // Three sessions on one connection, each within its window: 3000 writes in flight if the
    // node read them all, against a pending table of 1100.
    const SESSIONS: u64 = 3;
    const PER_SESSION: u64 = 1000;
    let cluster = Cluster::start(3, &["--pending-max", "1100"]);
    let leader = cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let mut conn = Connection::open(&cluster.url(leader), "client", T)
        .await
        .unwrap();
    let mut sessions = Vec::new();
    for _ in 0..SESSIONS {
        sessions.push(
            omnikv_node::client::open_session(&mut conn, T)
                .await
                .unwrap(),
        );
    }
    for seq in 1..=PER_SESSION {
        for &session in &sessions {
            let req = put_request(session, seq, format!("k{}", seq % 10), seq.to_string());
            conn.send_text(serde_json::to_string(&req).unwrap())
                .await
                .unwrap();
        }
    }
    let mut refused = Vec::new();
    for _ in 0..SESSIONS * PER_SESSION {
        let reply: ClientResponse =
            serde_json::from_str(&conn.recv_text(Duration::from_secs(30)).await.unwrap()).unwrap();
        if let ClientResponse::Err { error, .. } = reply {
            refused.push(error);
        }
    }
    assert!(
        refused.is_empty(),
        "{} refused: {:?}",
        refused.len(),
        &refused[..1]
    );
}

/// A node that cannot answer (here stopped behind the launcher's back; in the field, flooded)
/// makes a link change fail with an error that changed nothing, instead of an `ok` for a cut
/// that never happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_link_change_is_an_error_and_is_undone() {
    let demo = Demo::start(3, &[]);
    demo.wait_leader(Duration::from_secs(10));
    let node2 = node_view(&demo, 2);
    let pid = nix::unistd::Pid::from_raw(node2.pid.unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let (code, body) = demo.post("/api/links", r#"{"a":1,"b":2,"connected":false}"#);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert_eq!(code, 504, "{body}");
    assert!(
        body.contains("node 2") && body.contains("nothing was changed"),
        "{body}"
    );
    assert!(demo.cluster().links.iter().all(|l| l.connected));
    let node1 = node_view(&demo, 1);
    let AdminResponse::Status(status) =
        omnikv_node::client::admin(&node1.ws, &AdminRequest::Status, T)
            .await
            .unwrap()
    else {
        panic!("no status")
    };
    assert!(
        status.peers.iter().all(|p| p.link_enabled),
        "node 1 kept half of a refused cut: {:?}",
        status.peers
    );
    // Once node 2 answers again, the same change goes through.
    let (code, body) = demo.post("/api/links", r#"{"a":1,"b":2,"connected":false}"#);
    assert_eq!(code, 200, "{body}");
}

/// A client that pipelines reads of a large value and never reads the replies: the node's
/// writes to it stall, the node closes it after its write timeout (10 s) instead of holding it
/// forever, and other clients are served all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_and_hurts_nobody() {
    const READS: u64 = 200;
    let cluster = Cluster::start(3, &[]);
    cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let mut c = cluster.client_of(&[1]);
    let big = "b".repeat(200 * 1024);
    c.put("big", &big).await.unwrap();

    // 200 replies of 200 KiB: far more than the sockets' buffers hold.
    let mut stalled = tokio::net::TcpStream::connect(cluster.nodes[&1].ws)
        .await
        .unwrap();
    upgrade_by_hand(&mut stalled, cluster.nodes[&1].ws).await;
    let mut frames = Vec::new();
    for seq in 1..=READS {
        let req = format!(
            r#"{{"id":{{"client":9,"seq":{seq}}},"op":{{"get":{{"key":"big","read":"local"}}}}}}"#
        );
        frames.extend_from_slice(&masked_text_frame(req.as_bytes()));
    }
    stalled.write_all(&frames).await.unwrap();

    // Meanwhile, others are served.
    let started = std::time::Instant::now();
    c.put("other", "served").await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));

    // After the write timeout the node has hung up: reading now drains what it had sent, then
    // ends, well before all the replies.
    tokio::time::sleep(Duration::from_secs(12)).await;
    use tokio::io::AsyncReadExt;
    let mut received = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received += n,
            Err(_) => panic!(
                "the node kept a connection that stopped reading ({received} bytes received)"
            ),
        }
    }
    assert!(
        received < READS as usize * big.len(),
        "all {received} bytes arrived: the writes never stalled"
    );
}

/// Performs a WebSocket client handshake to `/client` by hand on `s`, so that the test controls
/// every byte that follows (and reads nothing it does not ask for).
async fn upgrade_by_hand(s: &mut tokio::net::TcpStream, addr: std::net::SocketAddr) {
    use tokio::io::AsyncReadExt;
    let req = format!(
        "GET /client HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    // Read the 101 reply up to its blank line, byte by byte so as to read nothing more.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(s.read_u8().await.unwrap());
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
}

/// One masked client text frame (RFC 6455), with a zero mask.
fn masked_text_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x81];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n < 65536 => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// One connection pipelining large values to a leader that cannot commit them (its followers
/// are paused): the node reads only as many of its bytes as the connection's budget allows and
/// then stops reading the socket, instead of taking in everything the client sends; once the
/// followers are back, every write read is acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_pipelining_large_values_is_bounded_in_bytes() {
    const VALUE_BYTES: usize = 200 << 10;
    // 60 MiB offered, against a budget of 16 MiB per connection (and kernel socket buffers of a
    // few MiB); without the byte budget the node would read all of it (1024 requests in flight).
    const OFFERED: u64 = 300;
    let cluster = Cluster::start(3, &["--request-timeout-ms", "60000"]);
    let leader = cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let mut conn = Connection::open(&cluster.url(leader), "client", T)
        .await
        .unwrap();
    let session = omnikv_node::client::open_session(&mut conn, T)
        .await
        .unwrap();
    for id in cluster.others(leader) {
        cluster.signal(id, "STOP");
    }
    let value = "v".repeat(VALUE_BYTES);
    let mut sent = 0;
    for seq in 1..=OFFERED {
        let req = put_request(session, seq, format!("big{}", seq % 7), value.clone());
        let send = conn.send_text(serde_json::to_string(&req).unwrap());
        match tokio::time::timeout(Duration::from_secs(2), send).await {
            Ok(r) => r.unwrap(),
            Err(_) => break,
        }
        sent = seq;
    }
    eprintln!("the node took {sent} writes of {OFFERED} before it stopped reading");
    assert!(
        sent < 200,
        "the node read {sent} writes of 200 KiB from one connection"
    );
    assert!(
        sent >= 60,
        "the node read only {sent} writes: the budget is smaller than said"
    );
    for id in cluster.others(leader) {
        cluster.signal(id, "CONT");
    }
    // The send that timed out was cut off mid-frame; every write before it is answered.
    for _ in 0..sent {
        let reply = conn.recv_text(Duration::from_secs(60)).await.unwrap();
        let reply: ClientResponse = serde_json::from_str(&reply).unwrap();
        assert!(matches!(reply, ClientResponse::Ok { .. }), "{reply:?}");
    }
}
