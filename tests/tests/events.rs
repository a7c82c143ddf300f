//! The event stream tells what really happened: a Put shows up as a client request, Paxos
//! messages whose sends match their receives, entries appended, decided and applied with the
//! command, and a reply.

use std::collections::BTreeSet;
use std::time::Duration;

use omnikv_core::{
    event::{frame_events, EventEnvelope, MessageKind, NodeEvent, RequestOutcome},
    KVCommand,
};
use omnikv_node::client::Connection;
use omnikv_tests::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_is_visible_end_to_end_in_the_event_streams() {
    let cluster = Cluster::start(3, &["--snapshot-every", "5", "--log-keep-entries", "0"]);
    let leader = cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let follower = cluster.ids().into_iter().find(|&id| id != leader).unwrap();
    let t = Duration::from_secs(5);
    let mut streams = Vec::new();
    for id in cluster.ids() {
        let mut s = Connection::open(&cluster.url(id), "events", t)
            .await
            .unwrap();
        let first: EventEnvelope = serde_json::from_str(&s.recv_text(t).await.unwrap()).unwrap();
        assert!(
            matches!(first.event, NodeEvent::Status(_)),
            "first event is the status"
        );
        streams.push(s);
    }
    // The streams open one after another, so a message sent before its sender's stream opened
    // can be received after its receiver's did (an election still settling). What each stream
    // told until all were open is read and set aside: the checks below are about the put.
    for s in &mut streams {
        read_for(s, Duration::from_millis(200)).await;
    }
    let mut client = cluster.client_of(&[follower]);
    for i in 0..12 {
        client.put(&format!("key{i}"), "value").await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut events = Vec::new();
    for s in &mut streams {
        events.extend(read_for(s, Duration::from_millis(500)).await);
    }
    let sent: BTreeSet<(u64, u64)> = events
        .iter()
        .filter_map(|e| match &e.event {
            NodeEvent::MessageSent(m) if !m.kind.is_heartbeat() => Some((m.from, m.msg_id)),
            _ => None,
        })
        .collect();
    let received: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            NodeEvent::MessageReceived(m) if !m.kind.is_heartbeat() => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert!(
        received
            .iter()
            .any(|m| m.kind == MessageKind::ProposalForward),
        "follower forwards"
    );
    assert!(received
        .iter()
        .any(|m| m.kind == MessageKind::AcceptDecide && m.entry_count > 0));
    assert!(received.iter().any(|m| m.kind == MessageKind::Accepted));
    for m in &received {
        assert!(
            sent.contains(&(m.from, m.msg_id)),
            "receive of {:?} matches a send",
            m.kind
        );
    }
    let put0 = |c: &KVCommand| matches!(c, KVCommand::Put { key, .. } if key == "key0");
    for id in cluster.ids() {
        let of_node: Vec<_> = events.iter().filter(|e| e.node == id).collect();
        assert!(of_node.iter().any(|e| matches!(&e.event, NodeEvent::EntriesAppended { commands, .. } if commands.iter().any(put0))), "node {id} appended");
        assert!(
            of_node
                .iter()
                .any(|e| matches!(&e.event, NodeEvent::EntriesDecided { .. })),
            "node {id} decided"
        );
        assert!(of_node.iter().any(|e| matches!(&e.event, NodeEvent::EntriesApplied { commands, .. } if commands.iter().any(put0))), "node {id} applied");
        // Every snapshot names its first keys, whether it is a stored copy or the table.
        let snapshots: Vec<(u64, usize)> = of_node
            .iter()
            .filter_map(|e| match &e.event {
                NodeEvent::SnapshotTaken {
                    keys, key_count, ..
                } => Some((*key_count, keys.len())),
                _ => None,
            })
            .collect();
        assert!(snapshots.len() >= 2, "node {id} snapshotted: {snapshots:?}");
        assert!(
            snapshots
                .iter()
                .all(|(count, keys)| *keys > 0 || *count == 0),
            "node {id}: a snapshot of live keys without its first keys: {snapshots:?}"
        );
        let seqs: Vec<u64> = of_node.iter().map(|e| e.seq).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "node {id}: sequence numbers increase"
        );
    }
    let of_follower: Vec<_> = events.iter().filter(|e| e.node == follower).collect();
    assert!(of_follower
        .iter()
        .any(|e| matches!(&e.event, NodeEvent::ClientRequest { .. })));
    assert!(of_follower.iter().any(|e| matches!(
        &e.event,
        NodeEvent::ClientReply {
            outcome: RequestOutcome::Ok { .. },
            ..
        }
    )));
}

/// The page subscribes in postcard (`omnikv_core::wire`): the node agrees to it at the upgrade
/// and sends the same envelopes a JSON subscriber gets, and a postcard client is answered in
/// postcard, a malformed frame included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postcard_subscriber_reads_the_same_events_as_a_json_one() {
    use futures_util::{SinkExt, StreamExt};
    use omnikv_core::{
        client::{ClientResponse, SessionClient},
        event::postcard_frame_events,
        wire::{decode_postcard, encode_postcard, POSTCARD_PROTOCOL},
    };
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

    let cluster = Cluster::start(3, &[]);
    let leader = cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let t = Duration::from_secs(5);
    let postcard = |endpoint: &str| {
        let url = format!("{}/{endpoint}", cluster.url(leader));
        let mut request = url.into_client_request().unwrap();
        let protocols = format!("chat, {POSTCARD_PROTOCOL}").parse().unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocols);
        tokio_tungstenite::connect_async(request)
    };
    let (mut binary, answer) = postcard("events").await.unwrap();
    assert_eq!(
        answer.headers().get("sec-websocket-protocol").unwrap(),
        POSTCARD_PROTOCOL
    );
    let mut text = Connection::open(&cluster.url(leader), "events", t)
        .await
        .unwrap();
    let mut client = cluster.client_of(&[leader]);
    for i in 0..20 {
        client.put(&format!("key{i}"), "value").await.unwrap();
    }

    let mut from_json: Vec<EventEnvelope> = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Some(left) = until.checked_duration_since(tokio::time::Instant::now()) {
        let Ok(frame) = text.recv_text(left).await else {
            break;
        };
        from_json.extend(frame_events(&frame).map(|e| serde_json::from_str(e).unwrap()));
    }
    let mut from_postcard: Vec<EventEnvelope> = Vec::new();
    // Heartbeats never stop: the frames already sent are read within a fixed time.
    let until = tokio::time::Instant::now() + Duration::from_millis(300);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(until, binary.next()).await {
        match msg {
            Message::Binary(b) => {
                from_postcard.extend(postcard_frame_events(&b).map(Result::unwrap));
            }
            Message::Text(t) => panic!("a text frame on a postcard subscription: {t}"),
            _ => {}
        }
    }
    // Both subscribed before the writes; each may have seen a few events the other missed at
    // its start (the cached status is older than both), so they are compared from the first
    // sequence number both saw.
    let streamed = |events: &[EventEnvelope]| -> Vec<EventEnvelope> {
        (events.iter())
            .filter(|e| !matches!(e.event, NodeEvent::Status(_)))
            .cloned()
            .collect()
    };
    let (from_json, from_postcard) = (streamed(&from_json), streamed(&from_postcard));
    let first = from_json[0].seq.max(from_postcard[0].seq);
    let common = |events: &[EventEnvelope]| -> Vec<EventEnvelope> {
        events.iter().filter(|e| e.seq >= first).cloned().collect()
    };
    let (json, postcard_events) = (common(&from_json), common(&from_postcard));
    let applied = |events: &[EventEnvelope]| {
        (events.iter())
            .filter(|e| matches!(e.event, NodeEvent::EntriesApplied { .. }))
            .count()
    };
    assert!(applied(&json) > 0, "the writes were seen");
    let shorter = json.len().min(postcard_events.len());
    assert!(shorter > 0);
    assert_eq!(postcard_events[..shorter], json[..shorter]);

    // A postcard client: its request and its reply in postcard; a malformed frame gets an error
    // reply and the connection stays open.
    let (mut ws, _) = postcard("client").await.unwrap();
    let read_reply = |msg: Option<Result<Message, _>>| match msg {
        Some(Ok(Message::Binary(b))) => decode_postcard::<ClientResponse>(&b, 1 << 20).unwrap(),
        other => panic!("expected a binary reply, got {other:?}"),
    };
    ws.send(Message::binary(vec![0xff, 0xff, 0xff]))
        .await
        .unwrap();
    let refused = read_reply(ws.next().await);
    assert!(
        matches!(refused, ClientResponse::Err { id: None, .. }),
        "{refused:?}"
    );
    let open = SessionClient::open_request(7);
    ws.send(Message::binary(encode_postcard(&open)))
        .await
        .unwrap();
    let opened = read_reply(ws.next().await);
    assert!(matches!(opened, ClientResponse::Ok { .. }), "{opened:?}");
}

/// The events a stream tells over `span`. Heartbeats never stop, so a stream is read for a fixed
/// time rather than until silence.
async fn read_for(s: &mut Connection, span: Duration) -> Vec<EventEnvelope> {
    let mut events = Vec::new();
    let until = tokio::time::Instant::now() + span;
    while let Some(left) = until.checked_duration_since(tokio::time::Instant::now()) {
        match s.recv_text(left).await {
            Ok(text) => events.extend(
                frame_events(&text).map(|e| serde_json::from_str::<EventEnvelope>(e).unwrap()),
            ),
            Err(_) => break,
        }
    }
    events
}

/// `omnikv bench load --events` holds a subscriber per node while it loads the cluster, and
/// counts what they hear: in postcard, decoded as the page decodes it, or in JSON with
/// `--events-json`. A subscriber that asked for one encoding and read the other would count
/// nothing.
#[test]
fn the_benchmark_subscribers_hear_events_in_either_encoding() {
    let cluster = Cluster::start(3, &[]);
    let dir = tempfile::tempdir().unwrap();
    for (name, extra) in [("postcard", &[][..]), ("json", &["--events-json"][..])] {
        let out = dir.path().join(format!("{name}.json"));
        let status = omnikv_tests::omnikv_command()
            .args(["bench", "load", "--endpoint", &cluster.urls().join(",")])
            .args([
                "--clients",
                "4",
                "--ops",
                "300",
                "--events",
                "--no-progress",
            ])
            .args(extra)
            .arg("--out")
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{name}: bench load exited with {status}");
        let result: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(result["events_subscribers"], 3, "{name}: {result}");
        let heard = result["events_received"].as_u64().unwrap();
        assert!(
            heard >= 300,
            "{name}: {heard} events for 300 puts: {result}"
        );
    }
}
