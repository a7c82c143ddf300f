//! The deterministic simulation (see `omnikv_tests::sim`) with nodes that keep handling inputs
//! while their fsync runs (`SimConfig::overlap`): each fsync keeps what was written when it
//! started and ends at a later step, and a crash in between loses it. `OMNIKV_SIM_SEEDS` sets
//! how many seeds (default 1000 per cluster size). The last tests send everything at once, send
//! a leader's decides before its own copy is durable, or never sync, and require the
//! simulation to catch it.

use omnikv_node::replica::ReleaseBeforeSync;
use omnikv_tests::sim::{first_failure, Sim, SimConfig, SimStats};

/// `OMNIKV_SIM_FIRST_SEED` starts the range elsewhere, as in `simulation.rs`.
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

fn overlapped(seed: u64, nodes: u64) -> SimConfig {
    SimConfig {
        overlap: true,
        ..SimConfig::standard(seed, nodes)
    }
}

fn run_many(nodes: u64) {
    let mut total = SimStats::default();
    let range = seeds();
    for seed in range.clone() {
        let s = Sim::new(SimConfig {
            clients_together: true,
            ..overlapped(seed, nodes)
        })
        .run();
        total.decided += s.decided;
        total.acked += s.acked;
        total.acked_after_retry += s.acked_after_retry;
        total.crashes += s.crashes;
        total.crashes_after_sync += s.crashes_after_sync;
    }
    println!(
        "{nodes} nodes, seeds {range:?}, overlapped: {} entries decided, {} requests acknowledged ({} after copies went to several nodes), {} crashes ({} between sends); every invariant held",
        total.decided, total.acked, total.acked_after_retry, total.crashes, total.crashes_after_sync
    );
    assert!(
        range.end - range.start < 50
            || (total.crashes_after_sync > 0 && total.acked_after_retry > 0 && total.decided > 0),
        "crashes between sends and retried requests were exercised"
    );
}

#[test]
fn overlapped_three_node_simulations_keep_every_invariant() {
    run_many(3);
}

#[test]
fn overlapped_five_node_simulations_keep_every_invariant() {
    run_many(5);
}

#[test]
fn simulation_catches_an_overlapped_node_that_sends_everything_at_once() {
    let (seed, message) = first_failure(500, |seed| SimConfig {
        release_before_sync: ReleaseBeforeSync::UnsafeAll,
        ..overlapped(seed, 3)
    });
    println!("overlapped, everything sent at once, seed {seed}: {message}");
    assert!(
        message.contains("decided a different entry")
            || message.contains("would overwrite decided entries")
            || message.contains("was answered ok at index")
            || message.contains("differs from the model's"),
        "seed {seed} failed for another reason: {message}"
    );
}

#[test]
fn simulation_catches_an_overlapped_leader_that_sends_its_decides_at_once() {
    let (seed, message) = first_failure(1000, |seed| SimConfig {
        release_before_sync: ReleaseBeforeSync::UnsafeDecides,
        ..overlapped(seed, 3)
    });
    println!("overlapped, decides sent at once, seed {seed}: {message}");
    assert!(
        message.contains("decided a different entry")
            || message.contains("was answered ok at index")
            || message.contains("differs from the model's"),
        "seed {seed} failed for another reason: {message}"
    );
}

#[test]
fn simulation_catches_an_overlapped_node_that_does_not_sync() {
    let (seed, message) = first_failure(500, |seed| SimConfig {
        sync: false,
        ..overlapped(seed, 3)
    });
    println!("overlapped, without syncing, seed {seed}: {message}");
    assert!(
        message.contains("decided a different entry")
            // The client model's check: an acknowledged write names where it was applied.
            || message.contains("a logged request names its index")
            || message.contains("was answered ok at index")
            || message.contains("differs from the model's")
            // A session whose opening was acknowledged, then lost.
            || message.contains("refused although its client follows the protocol"),
        "seed {seed} failed for another reason: {message}"
    );
}
