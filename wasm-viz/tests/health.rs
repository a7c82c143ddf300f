//! Host tests of health at a glance: lag behind the leader and how many more nodes can be lost,
//! from recorded event sequences.

use omnikv_viz::{health, Record};

mod fixtures;
use fixtures::*;

#[test]
fn followers_lag_by_the_entries_they_have_not_accepted() {
    let mut r = three_node_cluster_with_one_put();
    r.push(status(1, 10, "leader", 1, 1, 10, 9, 0));
    r.push(status(2, 10, "follower", 1, 1, 7, 7, 0));
    r.push(status(3, 10, "follower", 1, 1, 10, 9, 0));
    let m = apply_all(&r);
    assert_eq!(health::lag_entries(&m, 1), None, "the leader lags nobody");
    assert_eq!(health::lag_entries(&m, 2), Some(3));
    assert_eq!(health::lag_entries(&m, 3), Some(0));
}

#[test]
fn the_cluster_can_lose_what_its_majority_spares() {
    let mut r = three_node_cluster_with_one_put();
    let m = apply_all(&r);
    assert_eq!(health::can_lose(&m), 1);
    assert_eq!(health::can_lose_text(1), "can lose 1 more node");

    r.push(cluster(
        3000,
        Some(1),
        &[(1, "up"), (2, "up"), (3, "paused")],
    ));
    assert_eq!(health::can_lose(&apply_all(&r)), 0);
    assert_eq!(health::can_lose_text(0), "can lose no more nodes");

    // A follower the operator cut off from the leader does not count either.
    let mut cut = match cluster(3100, Some(1), &[(1, "up"), (2, "up"), (3, "down")]) {
        Record::Cluster { view, .. } => view,
        _ => unreachable!(),
    };
    cut.links[0].connected = false; // 1-2
    r.push(Record::Cluster {
        at_ms: 3100,
        view: cut,
    });
    assert_eq!(health::can_lose(&apply_all(&r)), -1);
    assert_eq!(
        health::can_lose_text(-1),
        "lost its majority: needs 1 more node"
    );
    assert_eq!(health::can_lose_text(2), "can lose 2 more nodes");
}
