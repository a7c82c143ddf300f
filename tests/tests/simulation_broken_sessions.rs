//! The simulation catches the session rule this project replaced (deduplication by the highest
//! applied `seq` per client), which acknowledges pipelined writes it never applied. A test file
//! of its own: the switch is process-wide.

use omnikv_tests::sim::{first_failure, SimConfig};

#[test]
fn simulation_catches_acknowledged_writes_lost_to_the_highest_seq_rule() {
    omnikv_core::session::set_unsafe_highest_seq_rule(true);
    let (seed, message) = first_failure(200, |seed| SimConfig::standard(seed, 3));
    println!("with the highest-seq rule, seed {seed}: {message}");
    assert!(
        message.contains("was answered ok at index")
            || message.contains("KV table differs from the model's"),
        "seed {seed} failed for another reason: {message}"
    );
}
