//! Host tests of "What happened": recorded event sequences through the reducer, asserting the
//! story a user reads and the timeline positions its markers jump to.

use omnikv_core::control::ProcessState;
use omnikv_viz::{story::HappeningKind, ClusterModel, Record, Timeline};

mod fixtures;
use fixtures::*;

fn told(m: &ClusterModel) -> Vec<(HappeningKind, String)> {
    m.story
        .happenings
        .iter()
        .map(|h| (h.kind, h.text.clone()))
        .collect()
}

fn positions(m: &ClusterModel) -> Vec<u64> {
    m.story.happenings.iter().map(|h| h.pos).collect()
}

fn leader_changed(node: u64, seq: u64, at_ms: u64, leader: u64, n: u32) -> Record {
    ev(&format!(
        r#"{{"node":{node},"seq":{seq},"time_ms":{at_ms},"event":{{"leader_changed":{{"leader":{leader},"ballot":{{"n":{n},"priority":0,"pid":{leader}}}}}}}}}"#
    ))
}

/// The leader (node 1) is killed: its stream closes, the launcher reports it down, node 2 is
/// elected 112 ms after the stream closed, a write goes on, node 1 restarts and catches up.
fn leader_kill() -> Vec<Record> {
    let mut r = three_node_cluster_with_one_put();
    r.push(Record::Stream {
        at_ms: 3000,
        node: 1,
        connected: false,
    });
    r.push(cluster(3040, None, &[(1, "down"), (2, "up"), (3, "up")]));
    r.push(leader_changed(2, 5, 3112, 2, 2));
    r.push(leader_changed(3, 5, 3113, 2, 2));
    r.push(status(2, 6, "leader", 2, 2, 1, 1, 0));
    r.extend(put_on(2, 7, 1, 2, "size", "L"));
    r.extend(put_on(3, 7, 1, 2, "size", "L"));
    r.push(cluster(5040, Some(2), &[(1, "up"), (2, "up"), (3, "up")]));
    r.push(Record::Stream {
        at_ms: 5300,
        node: 1,
        connected: true,
    });
    r.extend(put_on(1, 2, 1, 2, "size", "L"));
    r
}

#[test]
fn a_leader_kill_is_told_with_the_election_delay_and_the_catch_up() {
    let m = apply_all(&leader_kill());
    use HappeningKind::*;
    assert_eq!(
        told(&m),
        vec![
            (LeaderElected, "node 1 leads, ballot (1, 0, 1)".into()),
            (Down, "node 1 (leader) went down".into()),
            (
                LeaderElected,
                "node 2 leads, ballot (2, 0, 2), 112 ms after node 1 was lost".into()
            ),
            (Restarted, "node 1 restarted after 2.0 s down".into()),
            (
                CaughtUp,
                "node 1 caught up 1 entries from the log in 260 ms".into()
            ),
        ]
    );
    let down = &m.story.happenings[1];
    assert_eq!((down.at_ms, down.nodes.as_slice()), (3040, &[1][..]));
}

/// The page kills the leader and the launcher's answer comes before the survivors' election,
/// but the cluster view the page then asks for comes after it, as on a busy machine: the kill
/// is told when the answer came, once, before the election it caused.
#[test]
fn a_kill_the_page_ordered_is_told_before_the_election_it_caused() {
    let mut r = three_node_cluster_with_one_put();
    r.push(Record::Stream {
        at_ms: 3000,
        node: 1,
        connected: false,
    });
    r.push(Record::Control {
        at_ms: 3005,
        path: "/api/nodes/1/kill".into(),
    });
    r.push(leader_changed(2, 5, 3112, 2, 2));
    r.push(leader_changed(3, 5, 3113, 2, 2));
    r.push(cluster(3140, Some(2), &[(1, "down"), (2, "up"), (3, "up")]));
    // A pause ordered before any cluster view named the node is told too.
    r.push(Record::Control {
        at_ms: 3200,
        path: "/api/nodes/4/pause".into(),
    });
    r.push(Record::Control {
        at_ms: 3300,
        path: "/api/nodes/1/restart".into(),
    });
    r.push(cluster(3340, Some(2), &[(1, "up"), (2, "up"), (3, "up")]));
    let m = apply_all(&r);
    use HappeningKind::*;
    assert_eq!(
        told(&m),
        vec![
            (LeaderElected, "node 1 leads, ballot (1, 0, 1)".into()),
            (Down, "node 1 (leader) went down".into()),
            (
                LeaderElected,
                "node 2 leads, ballot (2, 0, 2), 112 ms after node 1 was lost".into()
            ),
            (Paused, "node 4 paused".into()),
            (Restarted, "node 1 restarted after 295 ms down".into()),
        ]
    );
    assert_eq!(m.story.happenings[1].at_ms, 3005);
    // The picture agrees with the story at each of its places.
    let mut t = Timeline::new(1_000);
    for record in &r {
        t.push(record.clone());
    }
    let down = &m.story.happenings[1];
    t.seek(down.pos);
    assert_eq!(t.model().nodes[&1].process, Some(ProcessState::Down));
    t.seek(down.pos - 1);
    assert_eq!(t.model().nodes[&1].process, Some(ProcessState::Up));
}

#[test]
fn each_happening_jumps_to_the_picture_just_after_it() {
    let records = leader_kill();
    let mut t = Timeline::new(1_000);
    for r in &records {
        t.push(r.clone());
    }
    let story = t.live_model().story.clone();
    for h in &story.happenings {
        t.seek(h.pos);
        let seen = &t.model().story.happenings;
        assert_eq!(seen.last(), Some(h), "at position {}", h.pos);
        t.seek(h.pos - 1);
        assert_ne!(t.model().story.happenings.last(), Some(h));
    }
    // The election: at its position node 2 has said it leads.
    let elected = &story.happenings[2];
    t.seek(elected.pos);
    assert_eq!(t.model().nodes[&2].leader, Some(2));
}

#[test]
fn positions_count_dropped_and_imported_inputs() {
    let records = leader_kill();
    let mut t = Timeline::new(17);
    for r in &records {
        t.push(r.clone());
    }
    let live = positions(t.live_model());
    let imported = Timeline::import(t.export(), 1_000).unwrap();
    let base = t.dropped();
    assert!(base > 0);
    // The import begins after the dropped inputs: only happenings inside it are retold, at the
    // same absolute positions.
    let again = positions(imported.live_model());
    assert!(!again.is_empty());
    assert!(
        again.iter().all(|p| *p > base && live.contains(p)),
        "{again:?} vs {live:?}"
    );
}

#[test]
fn snapshots_merge_across_nodes_and_installs_say_how_they_came() {
    let mut r = three_node_cluster_with_one_put();
    for (node, t) in [(1, 5000), (2, 5010), (3, 5020)] {
        r.push(ev(&format!(
            r#"{{"node":{node},"seq":8,"time_ms":{t},"event":{{"snapshot_taken":{{"compacted_idx":50,"keys":[],"key_count":0}}}}}}"#
        )));
    }
    r.push(ev(
        r#"{"node":1,"seq":9,"time_ms":6000,"event":{"message_sent":{"msg_id":4,"from":1,"to":3,"kind":"AcceptSync","ballot":null,"decided_idx":120,"accepted_idx":null,"sync_idx":100,"entry_count":3,"snapshot":"delta"}}}"#,
    ));
    r.push(ev(
        r#"{"node":3,"seq":9,"time_ms":6005,"event":{"snapshot_installed":{"compacted_idx":100,"keys":[],"key_count":0}}}"#,
    ));
    let m = apply_all(&r);
    let h = &m.story.happenings;
    assert_eq!(
        h[1].text,
        "snapshot ..50 taken on nodes 1, 2, 3 (50 entries folded)"
    );
    assert_eq!(h[1].nodes, vec![1, 2, 3]);
    assert_eq!(
        h[2].text,
        "node 3 installed a delta snapshot ..100 from the leader (50 entries it did not have)"
    );
}

#[test]
fn a_busy_cluster_s_snapshots_are_one_happening_until_something_else_happens() {
    let mut r = three_node_cluster_with_one_put();
    let snapshot = |node: u64, seq: u64, t: u64, idx: u64| {
        ev(&format!(
            r#"{{"node":{node},"seq":{seq},"time_ms":{t},"event":{{"snapshot_taken":{{"compacted_idx":{idx},"keys":[],"key_count":0}}}}}}"#
        ))
    };
    for (k, idx) in [50u64, 100, 150].into_iter().enumerate() {
        for node in 1..=3 {
            r.push(snapshot(
                node,
                10 + k as u64,
                5000 + 300 * k as u64 + node,
                idx,
            ));
        }
    }
    r.push(cluster(
        6000,
        Some(1),
        &[(1, "up"), (2, "up"), (3, "paused")],
    ));
    r.push(snapshot(1, 20, 6100, 200));
    let m = apply_all(&r);
    let texts: Vec<String> = told(&m).into_iter().skip(1).map(|(_, t)| t).collect();
    assert_eq!(
        texts,
        [
            "3 snapshots ..50 to ..150 taken on nodes 1, 2, 3 (150 entries folded)",
            "node 3 paused",
            "snapshot ..200 taken on node 1 (50 entries folded)",
        ]
    );
}

#[test]
fn link_cuts_scenarios_and_pauses_are_told() {
    let mut r = three_node_cluster_with_one_put();
    r.push(Record::Control {
        at_ms: 4000,
        path: "/api/scenarios/quorum-loss".into(),
    });
    let mut view = match cluster(4010, Some(1), &[(1, "up"), (2, "up"), (3, "paused")]) {
        Record::Cluster { view, .. } => view,
        _ => unreachable!(),
    };
    view.links[0].connected = false;
    r.push(Record::Cluster {
        at_ms: 4010,
        view: view.clone(),
    });
    view.links[0].connected = true;
    view.nodes[2].state = omnikv_core::control::ProcessState::Up;
    r.push(Record::Cluster { at_ms: 7510, view });
    let m = apply_all(&r);
    let texts: Vec<String> = told(&m).into_iter().skip(1).map(|(_, t)| t).collect();
    assert_eq!(
        texts,
        [
            "scenario quorum-loss started",
            "node 3 paused",
            "link 1–2 cut",
            "node 3 resumed after 3.5 s paused",
            "link 1–2 healed",
        ]
    );
}

#[test]
fn the_story_is_bounded() {
    let mut r = three_node_cluster_with_one_put();
    for i in 0..300u64 {
        let state = if i % 2 == 0 { "paused" } else { "up" };
        r.push(cluster(
            4000 + i,
            Some(1),
            &[(1, "up"), (2, "up"), (3, state)],
        ));
    }
    let m = apply_all(&r);
    assert_eq!(m.story.happenings.len(), omnikv_viz::story::HAPPENINGS_KEPT);
}
