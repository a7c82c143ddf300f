//! The simulation catches the session rule this project replaced (deduplication by the highest
//! applied `seq` per client), which acknowledges pipelined writes it never applied. A test file
//! of its own: the switch is process-wide.

use omnikv_tests::sim::{Sim, SimConfig};

#[test]
fn simulation_catches_acknowledged_writes_lost_to_the_highest_seq_rule() {
    omnikv_core::session::set_unsafe_highest_seq_rule(true);
    let found = (0..200u64).find_map(|seed| {
        std::panic::catch_unwind(|| {
            Sim::new(SimConfig::standard(seed, 3)).run();
        })
        .err()
        .map(|payload| (seed, panic_message(payload)))
    });
    let (seed, message) = found.expect("no seed in 0..200 caught the broken session rule");
    println!("with the highest-seq rule, seed {seed}: {message}");
    assert!(
        message.contains("was answered ok at index")
            || message.contains("KV table differs from the model's"),
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
