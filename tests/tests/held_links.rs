//! Held links on a real demo: a sender holds its messages to one peer, the operator delivers
//! them one at a time or drops one, and the store keeps its promises throughout.

use std::time::{Duration, Instant};

use omnikv_core::admin::{AdminRequest, AdminResponse};
use omnikv_core::control::ClusterView;
use omnikv_core::event::NodeStatus;
use omnikv_core::NodeId;
use omnikv_node::client::{self, Client};
use omnikv_tests::Demo;

const T: Duration = Duration::from_secs(5);

async fn status(view: &ClusterView, id: NodeId) -> NodeStatus {
    let node = view.nodes.iter().find(|n| n.id == id).unwrap();
    match client::admin(&node.ws, &AdminRequest::Status, T)
        .await
        .unwrap()
    {
        AdminResponse::Status(s) => s,
        other => panic!("{other:?}"),
    }
}

/// Messages `from` holds for `to`, as `/api/cluster` reports them.
fn waiting(demo: &Demo, from: NodeId, to: NodeId) -> Option<u64> {
    demo.cluster()
        .links
        .iter()
        .flat_map(|l| &l.held)
        .find(|h| (h.from, h.to) == (from, to))
        .map(|h| h.waiting)
}

fn post_ok(demo: &Demo, path: &str, body: &str) -> String {
    let (code, reply) = demo.post(path, body);
    assert_eq!(code, 200, "{path} {body}: {reply}");
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_messages_wait_are_delivered_in_order_and_a_drop_is_recovered() {
    // Slow ticks: a follower that hears nothing from its leader calls an election after 5
    // ticks, and this test wants the held follower to stay a follower while it looks.
    let demo = Demo::start(3, &["--tick-ms", "400"]);
    let leader = demo.wait_leader(Duration::from_secs(20));
    let view = demo.cluster();
    let follower = view
        .nodes
        .iter()
        .map(|n| n.id)
        .find(|&id| id != leader)
        .unwrap();
    let mut writer = Client::new(demo.urls());

    writer.put("before", "1").await.unwrap();
    post_ok(
        &demo,
        "/api/links/hold",
        &format!(r#"{{"a":{leader},"b":{follower},"held":true}}"#),
    );
    let applied_at_hold = status(&view, follower).await.applied_idx;
    // The other follower is a majority with the leader: writes go on.
    for i in 0..3 {
        writer.put(&format!("held{i}"), "v").await.unwrap();
    }
    let queued = waiting(&demo, leader, follower).expect("the held direction is listed");
    assert!(queued >= 3, "only {queued} messages waiting");
    assert_eq!(
        waiting(&demo, follower, leader),
        None,
        "only one direction is held"
    );
    assert_eq!(
        status(&view, follower).await.applied_idx,
        applied_at_hold,
        "the follower applied entries it was never sent"
    );

    let reply = post_ok(
        &demo,
        "/api/links/deliver",
        &format!(r#"{{"a":{leader},"b":{follower},"count":1}}"#),
    );
    assert!(reply.contains("delivered 1"), "{reply}");
    assert_eq!(waiting(&demo, leader, follower), Some(queued - 1));

    let reply = post_ok(
        &demo,
        "/api/links/drop",
        &format!(r#"{{"a":{leader},"b":{follower}}}"#),
    );
    assert!(reply.contains("dropped 1"), "{reply}");
    post_ok(
        &demo,
        "/api/links/hold",
        &format!(r#"{{"a":{leader},"b":{follower},"held":false}}"#),
    );
    assert_eq!(waiting(&demo, leader, follower), None);

    // The dropped message broke the stream; the follower is resynchronised and holds every
    // acknowledged write.
    let leader_status = status(&view, leader).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while status(&view, follower).await.applied_idx < leader_status.decided_idx {
        assert!(
            Instant::now() < deadline,
            "node {follower} did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let node = view.nodes.iter().find(|n| n.id == follower).unwrap();
    let mut local = Client::new(vec![node.ws.clone()]);
    for key in ["before", "held0", "held1", "held2"] {
        let got = local
            .get(key, omnikv_core::client::ReadMode::Local)
            .await
            .unwrap();
        assert_eq!(
            got.as_deref(),
            Some(if key == "before" { "1" } else { "v" }),
            "{key}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_link_requests_that_make_no_sense_are_refused() {
    let demo = Demo::start(3, &[]);
    demo.wait_leader(Duration::from_secs(20));
    for (path, body, expect) in [
        ("/api/links/deliver", r#"{"a":1,"b":2}"#, 409),
        ("/api/links/drop", r#"{"a":1,"b":2}"#, 409),
        ("/api/links/hold", r#"{"a":1,"b":1,"held":true}"#, 400),
        ("/api/links/hold", r#"{"a":1,"b":9,"held":true}"#, 404),
        ("/api/links/hold", r#"{"a":1,"b":2}"#, 400),
        ("/api/links/drop", r#"{"a":1,"b":2,"count":3}"#, 400),
    ] {
        let (code, reply) = demo.post(path, body);
        assert_eq!(code, expect, "{path} {body}: {reply}");
        assert!(reply.contains("\"ok\":false"), "{reply}");
    }
    // Holding both directions lists both; releasing lists none.
    post_ok(
        &demo,
        "/api/links/hold",
        r#"{"a":1,"b":2,"held":true,"both":true}"#,
    );
    let mut held: Vec<_> = demo
        .cluster()
        .links
        .iter()
        .flat_map(|l| l.held.iter().map(|h| (h.from, h.to)))
        .collect();
    held.sort();
    assert_eq!(held, vec![(1, 2), (2, 1)]);
    post_ok(
        &demo,
        "/api/links/hold",
        r#"{"a":1,"b":2,"held":false,"both":true}"#,
    );
    assert!(demo.cluster().links.iter().all(|l| l.held.is_empty()));
}
