//! How a node stops when its storage fails.
//!
//! OmniPaxos treats a failed storage write as fatal and panics inside its own code (its
//! `Storage` calls return errors only to be `expect`ed), and the node's own writes and fsyncs end
//! its loop with an error. Either way the node must stop at once: anything it sent or answered
//! after the failure could promise what is not durable. This hook turns a panic into one line a
//! user can act on and ends the process before another reply or message leaves it; restarting
//! on the same data directory, once the disk has room, recovers from what was synced.

use std::panic::PanicHookInfo;

/// The exit status of a node stopped by a fatal error (sysexits' EX_SOFTWARE).
pub const FATAL_EXIT: i32 = 70;

/// Installs the hook for a node process.
pub fn install(node_id: u64) {
    std::panic::set_hook(Box::new(move |info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        stop(node_id, &format!("{}{at}", payload(info)));
    }));
}

/// Stops the node process at once with one line saying why. Nothing is dropped on the way out:
/// closing RocksDB after a failed write would try to flush what it could not write (and the
/// system's RocksDB asserts on that and aborts).
pub fn stop(node_id: u64, why: &str) -> ! {
    let hint = if why.contains("No space left") || why.contains("disk full") {
        " (disk full: free space, then start the node again on the same data directory)"
    } else {
        ""
    };
    eprintln!(
        "omnikv node {node_id}: fatal: {}{hint}; stopped without answering anything not durable",
        why.replace('\n', " ")
    );
    std::process::exit(FATAL_EXIT);
}

fn payload<'a>(info: &'a PanicHookInfo<'_>) -> &'a str {
    info.payload()
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| info.payload().downcast_ref::<&str>().copied())
        .unwrap_or("(no message)")
}
