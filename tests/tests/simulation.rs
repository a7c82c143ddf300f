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
        total.crashes += s.crashes;
        total.cuts += s.cuts;
        total.broken_sessions += s.broken_sessions;
        total.delta_snapshots_completed += s.delta_snapshots_completed;
    }
    println!(
        "{nodes} nodes, seeds {range:?}: {} entries decided, {} requests acknowledged, {} crashes, {} link cuts, {} broken sessions, {} delta snapshots completed; every invariant held",
        total.decided, total.acked, total.crashes, total.cuts, total.broken_sessions, total.delta_snapshots_completed
    );
    assert!(
        total.crashes > 0 && total.delta_snapshots_completed > 0,
        "the faults and the catch-up path were exercised"
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

/// Without the delta-snapshot fix, the simulation finds OmniPaxos 0.2.4's catch-up bug.
#[test]
fn simulation_catches_the_upstream_delta_snapshot_bug() {
    let found = (0..500u64).find(|&seed| {
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
        .is_err()
    });
    println!("without the fix, seed {found:?} breaks an invariant");
    assert!(
        found.is_some(),
        "no seed in 0..500 broke an invariant without the fix"
    );
}
