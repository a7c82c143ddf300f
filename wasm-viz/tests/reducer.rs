//! Host tests: recorded event sequences (in their wire JSON form) fed through the reducer and
//! the timeline, asserting what the page would show.

use omnikv_core::{
    client::{ClientError, ClientOp, ClientResponse},
    control::ProcessState,
    event::Role,
    KVCommand, RequestId,
};
use omnikv_viz::{
    client::{ClientSession, Step},
    model::{EntryStatus, NodeState, LOG_WINDOW_ENTRIES},
    timeline::{Mode, Trace, TRACE_VERSION},
    ClusterModel, Record, Timeline,
};

mod fixtures;
use fixtures::*;

#[test]
fn a_put_reaches_every_table_and_the_leader_is_marked() {
    let m = apply_all(&three_node_cluster_with_one_put());
    assert_eq!(m.shown_leader(), Some(1));
    for id in 1..=3 {
        let n = &m.nodes[&id];
        assert_eq!(n.state(), NodeState::Up);
        assert_eq!(n.kv["color"].value, "blue", "node {id}");
        assert_eq!(n.entry_status(0), EntryStatus::Applied);
        assert_eq!(n.log.len(), 1);
        assert!(!n.kv_partial, "node {id} saw every applied entry");
    }
    assert_eq!(m.nodes[&2].shown_role(), Some(Role::Follower));
}

#[test]
fn a_killed_leader_loses_its_role_and_a_restarted_node_recovers() {
    let mut r = three_node_cluster_with_one_put();
    r.push(cluster(3000, Some(1), &[(1, "down"), (2, "up"), (3, "up")]));
    r.push(ev(
        r#"{"node":2,"seq":5,"time_ms":3100,"event":{"leader_changed":{"leader":2,"ballot":{"n":2,"priority":0,"pid":2}}}}"#,
    ));
    r.push(status(2, 6, "leader", 2, 2, 1, 1, 0));
    r.extend(put_on(2, 7, 1, 2, "size", "L"));
    r.push(cluster(3500, Some(2), &[(1, "down"), (2, "up"), (3, "up")]));
    let m = apply_all(&r);
    assert_eq!(m.nodes[&1].state(), NodeState::Down);
    assert_eq!(m.nodes[&1].shown_role(), None);
    assert_eq!(m.shown_leader(), Some(2));
    assert_eq!(m.nodes[&2].ballot.unwrap().n, 2);

    // Restart: node 1 comes back behind (decided 1, the cluster is at 2) and catches up.
    r.push(cluster(4000, Some(2), &[(1, "up"), (2, "up"), (3, "up")]));
    let m = apply_all(&r);
    assert_eq!(m.nodes[&1].state(), NodeState::Recovering);
    r.push(ev(
        r#"{"node":1,"seq":1,"time_ms":4100,"event":{"leader_changed":{"leader":2,"ballot":{"n":2,"priority":0,"pid":2}}}}"#,
    ));
    r.extend(put_on(1, 2, 1, 2, "size", "L"));
    let m = apply_all(&r);
    let n1 = &m.nodes[&1];
    assert_eq!(n1.state(), NodeState::Up);
    assert!(!n1.kv_partial, "every entry it applied was seen");
    assert_eq!(n1.shown_role(), Some(Role::Follower));
    assert_eq!(n1.kv["size"].value, "L");
    assert_eq!(n1.kv["color"].value, "blue");
    assert_eq!(m.nodes[&1].process, Some(ProcessState::Up));
}

#[test]
fn snapshots_compact_the_log_and_install_replaces_the_table() {
    let mut r = three_node_cluster_with_one_put();
    r.extend(put_on(1, 5, 1, 2, "shape", "round"));
    r.push(ev(
        r#"{"node":1,"seq":8,"time_ms":5000,"event":{"snapshot_taken":{"compacted_idx":2,"keys":["color","shape"],"key_count":2}}}"#,
    ));
    r.push(ev(
        r#"{"node":3,"seq":5,"time_ms":5001,"event":{"snapshot_installed":{"compacted_idx":2,"keys":["shape","tree"],"key_count":2}}}"#,
    ));
    let m = apply_all(&r);
    let n1 = &m.nodes[&1];
    assert_eq!(n1.compacted_idx, 2);
    assert!(n1.log.is_empty(), "compacted entries leave the strip");
    let block = n1.snapshot.as_ref().unwrap();
    assert_eq!(
        (block.compacted_idx, block.key_count, block.installed),
        (2, 2, false)
    );
    assert_eq!(n1.kv["shape"].value, "round");

    let n3 = &m.nodes[&3];
    assert!(n3.snapshot.as_ref().unwrap().installed);
    assert!(
        !n3.kv.contains_key("color"),
        "keys not in the installed snapshot are gone"
    );
    assert!(
        n3.value_unknown("tree"),
        "values of installed keys are unknown"
    );
    assert_eq!(n3.applied_idx, 2);
    assert!(n3.kv_partial, "an installed snapshot asks for a dump");
}

#[test]
fn appends_overwrite_the_suffix_and_the_window_is_bounded() {
    let mut r = vec![status(1, 1, "follower", 2, 1, 0, 0, 0)];
    let cmds: Vec<String> = (0..100)
        .map(|i| {
            format!(
                r#"{{"delete":{{"id":{{"client":1,"seq":{}}},"key":"k{i}"}}}}"#,
                i + 1
            )
        })
        .collect();
    r.push(ev(&format!(
        r#"{{"node":1,"seq":2,"time_ms":1,"event":{{"entries_appended":{{"from_idx":0,"count":100,"commands":[{}]}}}}}}"#,
        cmds.join(",")
    )));
    r.push(ev(
        r#"{"node":1,"seq":3,"time_ms":2,"event":{"entries_appended":{"from_idx":90,"count":1,"commands":[]}}}"#,
    ));
    let m = apply_all(&r);
    let n = &m.nodes[&1];
    assert_eq!(n.accepted_idx, 91);
    assert!(n.log.len() <= LOG_WINDOW_ENTRIES);
    assert_eq!(n.log.last_index(), Some(90));
    assert_eq!(
        n.log.get(90),
        Some(&None),
        "a truncated event leaves the command unknown"
    );
}

#[test]
fn retried_duplicates_apply_once_and_gaps_are_noticed() {
    let mut r = vec![sessions_known(1), status(1, 1, "leader", 1, 1, 0, 0, 0)];
    r.extend(put_on(1, 2, 0, 5, "k", "old"));
    r.push(ev(
        r#"{"node":1,"seq":5,"time_ms":3000,"event":{"entries_applied":{"from_idx":1,"count":2,"commands":[
        {"put":{"id":{"client":8,"seq":1},"key":"k","value":"new"}},
        {"put":{"id":{"client":7,"seq":5},"key":"k","value":"old"}}],"skipped_duplicates":1}}}"#,
    ));
    r.push(ev(
        r#"{"node":1,"seq":9,"time_ms":3001,"event":{"lagged":{"dropped":3}}}"#,
    ));
    let m = apply_all(&r);
    assert_eq!(m.nodes[&1].kv["k"].value, "new");
    assert_eq!(m.notices.len(), 2, "{:?}", m.notices);
    assert!(m.nodes[&1].kv_partial);
}

#[test]
fn messages_are_matched_and_bounded() {
    let mut r = Vec::new();
    for i in 0..omnikv_viz::model::MESSAGES_KEPT as u64 + 100 {
        let info = format!(
            r#"{{"msg_id":{i},"from":1,"to":2,"kind":"AcceptDecide","ballot":{{"n":1,"priority":0,"pid":1}},"decided_idx":3,"accepted_idx":null,"sync_idx":null,"entry_count":1,"snapshot":null}}"#
        );
        r.push(ev(&format!(
            r#"{{"node":1,"seq":{},"time_ms":{},"event":{{"message_sent":{}}}}}"#,
            i + 1,
            10 * i,
            info
        )));
        r.push(ev(&format!(
            r#"{{"node":2,"seq":{},"time_ms":{},"event":{{"message_received":{}}}}}"#,
            i + 1,
            10 * i + 1,
            info
        )));
    }
    let m = apply_all(&r);
    assert_eq!(m.messages.len(), omnikv_viz::model::MESSAGES_KEPT);
    assert!(m
        .messages
        .iter()
        .all(|msg| msg.received_ms == Some(msg.sent_ms + 1)));
}

/// Each node streams its own events, so a receiver's frame can reach the page before the
/// sender's: the send then completes the message the receive began, instead of adding a second
/// one under the same key that would never be received (drawn as lost, and fought over by
/// one arrow).
#[test]
fn a_receive_seen_before_its_send_makes_one_received_message() {
    let info = r#"{"msg_id":7,"from":1,"to":2,"kind":"AcceptDecide","ballot":{"n":1,"priority":0,"pid":1},"decided_idx":3,"accepted_idx":null,"sync_idx":null,"entry_count":1,"snapshot":null}"#;
    let m = apply_all(&[
        ev(&format!(
            r#"{{"node":2,"seq":1,"time_ms":101,"event":{{"message_received":{info}}}}}"#
        )),
        ev(&format!(
            r#"{{"node":1,"seq":1,"time_ms":100,"event":{{"message_sent":{info}}}}}"#
        )),
    ]);
    let views: Vec<(u64, Option<u64>)> = m
        .messages
        .iter()
        .map(|v| (v.sent_ms, v.received_ms))
        .collect();
    assert_eq!(views, [(100, Some(101))]);
}

#[test]
fn a_view_paused_at_the_recordings_start_moves_on_with_it() {
    let records = three_node_cluster_with_one_put();
    assert!(records.len() > 8);
    let mut t = Timeline::new(5);
    for r in &records[..6] {
        t.push(r.clone());
    }
    t.seek(t.start());
    assert_eq!(t.model(), &apply_all(&records[..1]));
    for (i, r) in records[6..].iter().enumerate() {
        t.push(r.clone());
        assert_eq!(t.cursor(), t.start());
        assert_eq!(
            t.model(),
            &apply_all(&records[..i + 2]),
            "after input {}",
            i + 6
        );
    }
}

#[test]
fn the_timeline_drops_old_inputs_and_rebuilds_any_point() {
    let records = three_node_cluster_with_one_put();
    let mut t = Timeline::new(5);
    for r in &records {
        t.push(r.clone());
    }
    assert_eq!(t.len(), 5);
    assert_eq!(t.dropped(), records.len() as u64 - 5);
    let live = t.live_model().clone();
    assert_eq!(live, apply_all(&records));

    // Step back one input: the last applied event of node 3 is undone.
    t.step(false);
    assert_eq!(t.mode(), Mode::Paused);
    assert_eq!(t.model(), &apply_all(&records[..records.len() - 1]));
    t.seek(t.start());
    assert_eq!(t.model(), &apply_all(&records[..records.len() - 5]));
    t.step(true);
    assert_eq!(t.model(), &apply_all(&records[..records.len() - 4]));

    // New input while paused: the picture stays, the live model moves.
    t.push(status(2, 9, "follower", 1, 1, 1, 1, 0));
    assert_eq!(t.model(), &apply_all(&records[..records.len() - 4]));
    assert_ne!(t.live_model(), &live);

    // Replay catches up and goes live.
    t.replay(1.0);
    for _ in 0..100 {
        t.tick(100.0);
    }
    assert_eq!(t.mode(), Mode::Live);
    let live = t.live_model().clone();
    assert_eq!(t.model(), &live);
}

/// A recording of `puts` puts on node 1 after the three-node fixture.
fn many_puts(puts: u64) -> Vec<Record> {
    let mut r = three_node_cluster_with_one_put();
    for i in 1..=puts {
        r.extend(nth_put_on_node_1(i, &format!("k{i}")));
    }
    r
}

#[test]
fn a_full_recording_drops_up_to_a_checkpoint_and_still_rebuilds_any_point() {
    let records = many_puts(60);
    let mut t = Timeline::new(50);
    for r in &records[..120] {
        t.push(r.clone());
    }
    // A view drawn a little past the start, then a cursor moved on without drawing it: the
    // inputs that would bring the view to the cursor are dropped before it is drawn again.
    let at = t.start() + 2;
    t.seek(at);
    assert_eq!(t.model(), &apply_all(&records[..at as usize]));
    t.seek(at + 10);
    let mut next = 120;
    while t.start() <= at {
        t.push(records[next].clone());
        next += 1;
    }
    assert!(t.cursor() > t.start(), "the cursor is past the new start");
    let cursor = t.cursor() as usize;
    assert_eq!(t.model(), &apply_all(&records[..cursor]));
    for r in &records[next..] {
        t.push(r.clone());
        let (start, cursor) = (t.start() as usize, t.cursor() as usize);
        assert!(t.len() <= 50, "at most the cap is kept");
        assert_eq!(t.model(), &apply_all(&records[..cursor]), "start {start}");
    }
    assert!(
        t.len() > 40,
        "only inputs before a checkpoint are dropped: {}",
        t.len()
    );
    assert_eq!(t.dropped() + t.len() as u64, records.len() as u64);
    assert_eq!(t.live_model(), &apply_all(&records));
    for pos in t.start()..=t.end() {
        t.seek(pos);
        assert_eq!(t.model(), &apply_all(&records[..pos as usize]), "at {pos}");
    }
}

#[test]
fn a_trace_exports_and_imports() {
    let mut records = three_node_cluster_with_one_put();
    records.push(Record::Stream {
        at_ms: 7000,
        node: 2,
        connected: false,
    });
    records.push(Record::Notice {
        at_ms: 7001,
        text: "a \"quoted\" notice\n".into(),
    });
    records.push(Record::Dump {
        at_ms: 7002,
        dump: serde_json::from_value(serde_json::json!({
            "id":3,"applied_idx":2,"decided_idx":2,"compacted_idx":2,
            "kv":{"color":{"value":"blue","mod_index":2}},"sessions":{"7":{"floor":0,"last_index":0,"applied":[{"seq":2,"index":0,"digest":1}]}},"snapshot":null,"decided_suffix":[]}))
        .unwrap(),
    });
    let mut t = Timeline::new(100);
    for r in &records {
        t.push(r.clone());
    }
    // The page writes traces in postcard and reads them back with the same schema.
    let bytes = t.export_bytes();
    let trace: Trace = omnikv_core::wire::decode_postcard(&bytes, 1 << 20).unwrap();
    assert_eq!(trace.records, records);
    let mut back = Timeline::import_bytes(&bytes, 1 << 20, 100).unwrap();
    assert_eq!(back.mode(), Mode::Paused);
    assert_eq!((back.start(), back.end()), (t.start(), t.end()));
    back.seek(back.end());
    assert_eq!(back.model(), t.live_model());
    let err = |bytes: &[u8]| Timeline::import_bytes(bytes, 1 << 20, 1).err().unwrap();
    let with = |format: &str, version: u32, records: &[Record]| {
        omnikv_core::wire::encode_postcard(&Trace {
            format: format.into(),
            version,
            dropped: 0,
            records: records.to_vec(),
        })
    };
    assert!(err(&with("x", TRACE_VERSION, &records)).starts_with("not an OmniKV trace"));
    assert!(err(&bytes[..bytes.len() - 1]).starts_with("not a readable OmniKV trace"));
    assert!(err(b"[[[").starts_with("not a readable OmniKV trace"));
    // A trace of another version is named as such, whatever its records look like.
    let newer = with("omnikv-trace", TRACE_VERSION + 1, &[]);
    assert!(
        err(&newer).contains("made by a newer version of OmniKV"),
        "{}",
        err(&newer)
    );
    let mut newer_shape = newer.clone();
    newer_shape.extend([7, 7, 7]);
    assert!(err(&newer_shape).contains("made by a newer version of OmniKV"));
    // The JSON traces of versions 1 to 3 are named as older in the page, and `omnikv history`
    // still reads them.
    let v1 = r#"{"format":"omnikv-trace","version":1,"dropped":0,"records":[{"notice":{"at_ms":1,"text":"x"}}]}"#;
    assert!(err(v1.as_bytes()).contains("made by an older version of OmniKV"));
    assert_eq!(Timeline::import_json(v1, 1 << 20, 10).unwrap().end(), 1);
    let v3 = v1.replace("\"version\":1", "\"version\":3");
    assert_eq!(Timeline::import_json(&v3, 1 << 20, 10).unwrap().end(), 1);
    let v4 = v1.replace("\"version\":1", "\"version\":4");
    assert!(Timeline::import_json(&v4, 1 << 20, 10).is_err());
}

#[test]
fn the_client_session_opens_a_session_retries_with_the_same_id_and_numbers_new_requests() {
    let mut s = ClientSession::new(42);
    let put = ClientOp::Put {
        key: "k".into(),
        value: "v".into(),
    };
    // The first write opens a session first.
    let open = s.begin(put.clone()).unwrap();
    assert_eq!(open.op, ClientOp::OpenSession);
    assert_eq!(open.id, RequestId { client: 42, seq: 0 });
    assert!(s.begin(put.clone()).is_err(), "one request at a time");
    let opened = ClientResponse::Ok {
        id: open.id,
        value: None,
        node: 1,
        index: Some(9),
        mod_index: None,
        txn: None,
        scan: None,
    };
    let Step::Send(r1) = s.on_response(&opened) else {
        panic!("the write follows its session")
    };
    assert_eq!(r1.id, RequestId { client: 9, seq: 0 });
    assert_eq!(r1.op, put);
    let timeout = ClientResponse::Err {
        id: Some(r1.id),
        error: ClientError::Timeout { timeout_ms: 5 },
    };
    assert_eq!(s.on_response(&timeout), Step::Retry(r1.clone()));
    assert_eq!(s.on_lost("closed"), Step::Retry(r1.clone()));
    let other = ClientResponse::Ok {
        id: RequestId { client: 1, seq: 1 },
        value: None,
        node: 1,
        index: None,
        mod_index: None,
        txn: None,
        scan: None,
    };
    assert_eq!(s.on_response(&other), Step::Ignore);
    let ok = ClientResponse::Ok {
        id: r1.id,
        value: None,
        node: 2,
        index: Some(14),
        mod_index: None,
        txn: None,
        scan: None,
    };
    assert!(matches!(s.on_response(&ok), Step::Done { ok: true, .. }));
    let r2 = s.begin(put.clone()).unwrap();
    assert_eq!(r2.id, RequestId { client: 9, seq: 1 });
    assert_eq!(r2.forget_below, 1, "the answered write may be forgotten");
    for _ in 0..3 {
        assert!(matches!(s.on_lost("closed"), Step::Retry(_)));
    }
    assert!(matches!(s.on_lost("closed"), Step::Done { ok: false, .. }));
    // An expired session is reopened by the next write.
    let r3 = s.begin(put.clone()).unwrap();
    let expired = ClientResponse::Err {
        id: Some(r3.id),
        error: ClientError::SessionExpired { reason: "x".into() },
    };
    assert!(matches!(
        s.on_response(&expired),
        Step::Done { ok: false, .. }
    ));
    assert_eq!(s.begin(put).unwrap().op, ClientOp::OpenSession);
    let mut s = ClientSession::new(43);
    assert!(
        s.begin(ClientOp::Delete { key: String::new() }).is_err(),
        "empty keys are refused"
    );
}

#[test]
fn event_lines_describe_every_frame() {
    for r in three_node_cluster_with_one_put() {
        if let Record::Event(e) = r {
            let json = serde_json::to_string(&e).unwrap();
            let line =
                omnikv_viz::describe::event_line(&omnikv_viz::api::decode_event(&json).unwrap());
            assert!(
                line.starts_with(&format!("node={} seq={}", e.node, e.seq)),
                "{line}"
            );
        }
    }
    assert!(omnikv_viz::api::decode_event("{\"node\":1}").is_err());
}

/// Node 3's first status as a new process, already at `applied` (accepted and decided too)
/// with a snapshot up to `compacted` it never announced.
fn node3_restarted_at(applied: u64, compacted: u64) -> Record {
    ev(&serde_json::to_string(
        &serde_json::json!({"node":3,"seq":1,"time_ms":6000,"event":{"status":{
        "id":3,"role":"follower","leader":2,"ballot":{"n":2,"priority":0,"pid":2},
        "promise":{"n":2,"priority":0,"pid":2},"accepted_idx":applied,"decided_idx":applied,
        "compacted_idx":compacted,"applied_idx":applied,"peers":[],"data_dir":"/d/3",
        "started_at_ms":5999,"pid":9}}}),
    )
    .unwrap())
}

#[test]
fn a_restart_that_applied_unseen_entries_marks_the_table_partial_until_a_dump() {
    let mut r = three_node_cluster_with_one_put();
    // Node 3 comes back as a new process already at index 2 via a snapshot it never announced.
    r.push(node3_restarted_at(2, 2));
    assert!(apply_all(&r).nodes[&3].kv_partial);
    r.push(Record::Dump { at_ms: 6001, dump: serde_json::from_value(serde_json::json!({
        "id":3,"applied_idx":2,"decided_idx":2,"compacted_idx":2,
        "kv":{"color":{"value":"blue","mod_index":2},"size":{"value":"large","mod_index":3}},"sessions":{"7":{"floor":0,"last_index":0,"applied":[{"seq":2,"index":0,"digest":1}]}},"snapshot":null,"decided_suffix":[]})).unwrap() });
    let m = apply_all(&r);
    let n3 = &m.nodes[&3];
    assert!(!n3.kv_partial);
    assert_eq!(n3.kv["size"].value, "large");
    assert!(n3.kv_unknown.is_empty());
}

#[test]
fn a_table_head_seeds_the_table_the_log_tail_and_the_snapshot() {
    let mut r = three_node_cluster_with_one_put();
    r.push(node3_restarted_at(12, 10));
    assert!(apply_all(&r).nodes[&3].kv_partial);
    // The head of a table much larger than the page keeps: its first key, not all of them.
    r.push(Record::Head {
        at_ms: 6001,
        head: serde_json::from_value(serde_json::json!({
        "id":3,"applied_idx":12,"decided_idx":12,"compacted_idx":10,
        "kv":{"a":{"value":"1","mod_index":11}},"kv_complete":false,
        "sessions":{},"snapshot_key_count":1000000,"snapshot_keys":["a","b"],
        "tail_from_idx":10,"decided_tail":[
            {"put":{"id":{"client":7,"seq":3},"key":"a","value":"1"}},
            {"delete":{"id":{"client":7,"seq":4},"key":"zz"}}]}))
        .unwrap(),
    });
    let m = apply_all(&r);
    let n3 = &m.nodes[&3];
    assert!(!n3.kv_partial);
    assert!(
        n3.kv_truncated,
        "a head that is not the whole table marks it truncated"
    );
    assert_eq!(n3.kv["a"].value, "1");
    assert_eq!(n3.kv["a"].mod_index, 11);
    let block = n3.snapshot.as_ref().expect("a snapshot block");
    assert_eq!((block.compacted_idx, block.key_count), (10, 1_000_000));
    assert!(n3.log.get(9).is_none());
    assert!(matches!(n3.log.get(10), Some(Some(KVCommand::Put { .. }))));
    assert!(matches!(
        n3.log.get(11),
        Some(Some(KVCommand::Delete { .. }))
    ));
}

#[test]
fn replay_speeds_are_looked_up_by_their_option_values() {
    use omnikv_viz::timeline::{speed_named, SPEEDS, SPEED_NAMES};
    for (name, speed) in SPEED_NAMES.iter().zip(SPEEDS) {
        assert_eq!(speed_named(name), speed);
    }
    assert_eq!(speed_named("fast"), 1.0);
}

#[test]
fn a_table_larger_than_kept_is_truncated_not_partial() {
    // A partial table makes the page fetch a dump; a table that is merely larger than the page
    // keeps must not, or the page would fetch the whole table again and again under load.
    let mut m = ClusterModel::default();
    m.apply(&sessions_known(1));
    m.apply(&status(1, 1, "leader", 1, 1, 0, 0, 0));
    let keys = omnikv_viz::model::KV_KEYS_MAX as u64 + 5;
    for i in 0..keys {
        for r in nth_put_on_node_1(i, &format!("k{i:05}")) {
            m.apply(&r);
        }
    }
    let n = &m.nodes[&1];
    assert_eq!(n.kv.len(), omnikv_viz::model::KV_KEYS_MAX);
    assert!(n.kv_truncated);
    assert!(!n.kv_partial, "every applied entry was seen");
}

fn applied_on(node: u64, seq: u64, idx: u64, cmd: &str) -> Record {
    ev(&format!(
        r#"{{"node":{node},"seq":{seq},"time_ms":{t},"event":{{"entries_applied":{{"from_idx":{idx},"count":1,"commands":[{cmd}],"skipped_duplicates":0}}}}}}"#,
        t = 3000 + seq
    ))
}

#[test]
fn a_transaction_applies_only_when_its_guards_hold_by_the_nodes_rule() {
    let mut records = three_node_cluster_with_one_put();
    // color = blue was written at index 0. A compare-and-swap on its value holds; one on its
    // old mod_index (0, now 1) then fails and changes nothing.
    let cas = |seq: u64, guard: &str, value: &str| {
        format!(
            r#"{{"txn":{{"id":{{"client":7,"seq":{seq}}},"guards":[{guard}],"ops":[{{"put":{{"key":"color","value":"{value}"}}}},{{"put":{{"key":"size","value":"{value}"}}}}],"forget_below":{seq}}}}}"#
        )
    };
    records.push(applied_on(
        1,
        10,
        1,
        &cas(2, r#"{"value":{"key":"color","value":"blue"}}"#, "green"),
    ));
    records.push(applied_on(
        1,
        11,
        2,
        &cas(3, r#"{"mod_index":{"key":"color","mod_index":0}}"#, "red"),
    ));
    let m = apply_all(&records);
    let n = &m.nodes[&1];
    assert_eq!(n.kv["color"].value, "green");
    assert_eq!(n.kv["size"].value, "green", "both writes of the batch");
    assert_eq!(n.kv["color"].mod_index, 1);
}

#[test]
fn held_messages_are_kept_per_direction_until_released() {
    let mut r = three_node_cluster_with_one_put();
    let msg = |id: u64, kind: &str| {
        format!(
            r#"{{"msg_id":{id},"from":2,"to":1,"kind":"{kind}","ballot":null,"decided_idx":null,
            "accepted_idx":null,"sync_idx":null,"entry_count":1,"snapshot":null}}"#
        )
    };
    r.push(ev(
        r#"{"node":2,"seq":50,"time_ms":7000,"event":{"link_changed":{"peer":1,"connected":true}}}"#,
    ));
    r.push(ev(&format!(
        r#"{{"node":2,"seq":51,"time_ms":7001,"event":{{"held_messages":{{"peer":1,"held":true,"waiting":2,"head":[{},{}]}}}}}}"#,
        msg(7, "AcceptDecide"),
        msg(8, "Decide")
    )));
    let m = apply_all(&r);
    let held = m.held_directions();
    assert_eq!(held.len(), 1);
    assert_eq!((held[0].from, held[0].to, held[0].waiting), (2, 1, 2));
    let head = m.nodes[&2].held_head(1);
    assert_eq!(head.len(), 2);
    assert_eq!(head[0].kind, omnikv_core::event::MessageKind::AcceptDecide);
    assert!(m.nodes[&2].held_head(3).is_empty());

    r.push(ev(
        r#"{"node":2,"seq":52,"time_ms":7002,"event":{"held_messages":{"peer":1,"held":false,"waiting":0,"head":[]}}}"#,
    ));
    let m = apply_all(&r);
    assert!(m.held_directions().is_empty());
    assert!(m.nodes[&2].held_head(1).is_empty());
}
