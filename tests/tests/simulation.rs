//! Deterministic simulation over many seeds (see `omnikv_tests::sim`). `OMNIKV_SIM_SEEDS`
//! sets how many (default 1000 per cluster size); a failure names its seed, and
//! `OMNIKV_SIM_FIRST_SEED` starts the range elsewhere.

use omnikv_tests::sim::{Sim, SimConfig, SimStats};

fn seeds() -> std::ops::Range<u64> {
    let n: u64 = std::env::var("OMNIKV_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let first: u64 = std::env::var("OMNIKV_SIM_FIRST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    first..first + n
}

fn run_many(nodes: u64) {
    let mut total = SimStats::default();
    let range = seeds();
    for seed in range.clone() {
        let s = Sim::new(SimConfig {
            seed,
            nodes,
            steps: 3000,
            snapshot_every: 10,
            snapshot_fix: true,
        })
        .run();
        total.decided += s.decided;
        total.acked += s.acked;
        total.acked_after_retry += s.acked_after_retry;
        total.crashes += s.crashes;
        total.cuts += s.cuts;
        total.broken_sessions += s.broken_sessions;
        total.delta_snapshots_completed += s.delta_snapshots_completed;
    }
    println!(
        "{nodes} nodes, seeds {range:?}: {} entries decided, {} requests acknowledged ({} after copies went to several nodes), {} crashes, {} link cuts, {} broken sessions, {} delta snapshots completed; every invariant held",
        total.decided, total.acked, total.acked_after_retry, total.crashes, total.cuts, total.broken_sessions, total.delta_snapshots_completed
    );
    assert!(
        total.crashes > 0 && total.delta_snapshots_completed > 0 && total.acked_after_retry > 0,
        "the faults, the catch-up path and retried requests were exercised"
    );
}

#[test]
fn three_node_simulations_keep_every_invariant() {
    run_many(3);
}

#[test]
fn five_node_simulations_keep_every_invariant() {
    run_many(5);
}

/// Without the delta-snapshot fix, the simulation finds OmniPaxos 0.2.4's catch-up bug: a
/// node's snapshot plus decided suffix (or its table) stops being the fold of the decided log.
#[test]
fn simulation_catches_the_upstream_delta_snapshot_bug() {
    let found = (0..500u64).find_map(|seed| {
        std::panic::catch_unwind(|| {
            Sim::new(SimConfig {
                seed,
                nodes: 3,
                steps: 3000,
                snapshot_every: 10,
                snapshot_fix: false,
            })
            .run();
        })
        .err()
        .map(|payload| (seed, panic_message(payload)))
    });
    let (seed, message) = found.expect("no seed in 0..500 broke an invariant without the fix");
    println!("without the fix, seed {seed}: {message}");
    assert!(
        message.contains("snapshot + suffix differs from the decided log")
            || message.contains("differs from the model's")
            || message.contains("applied state differs"),
        "seed {seed} failed for another reason: {message}"
    );
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}
