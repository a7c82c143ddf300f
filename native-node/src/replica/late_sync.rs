//! A `Prepare` or an `AcceptSync` that reaches a follower already accepting in its ballot: the
//! follower asks to be synced again.
//!
//! OmniPaxos 0.2.4 handles both only while the follower is not yet accepting, and ignores them
//! after. Yet on a FIFO link either one, arriving then, says that the leader's view of this
//! follower has moved past the follower's own:
//! - an `AcceptSync` opens a new sequence session, and the leader then sends this follower only
//!   that session's messages, while the follower keeps the session of the sync it handled;
//! - a `Prepare` sent after the leader's last `AcceptSync` means the leader has since forgotten
//!   the follower's promise (a `PrepareReq` from it came in): the leader now waits for a new
//!   promise and sends the follower no entries, while the follower, accepting, never answers.
//!
//! Either way the next `AcceptDecide` would not repair it (the first case) or would never come
//! (the second, or the first when no write follows): the follower stays behind every entry
//! decided since. A restarted follower meets this easily: its links come up one by one, each
//! asks the leader for a sync, and the leader may handle a `Promise` and a `PrepareReq` of it in
//! one turn. The real processes showed both cases: a leader killed in the middle of pipelined
//! writes and restarted did not apply the last entries within 20 s (tests/tests/pipelining.rs,
//! 1 run in 60 at the last count). So the follower does at once what OmniPaxos does when it sees a
//! session gap: it asks its leader to sync it again (`reconnected`).
//!
//! Asking again leaves the leader's earlier answers on their way, and one can reach the
//! follower after it has promised anew and waits in the prepare phase, which is the one phase
//! in which OmniPaxos handles an `AcceptSync`. Built for an older promise, such a sync starts
//! below what the follower has decided since: OmniPaxos would truncate decided entries there
//! (its debug assertion stops the process first; the browser tests' restarts met it). So a sync
//! that starts below this node's decided index is dropped (`is_stale_sync`). On a FIFO link the
//! answer to the follower's newest promise comes after every older answer, and a follower in
//! the prepare phase resends that promise until it is answered, so the fresh sync still comes.

use omnikv_core::{KVCommand, NodeId};
use omnipaxos::{
    messages::{sequence_paxos::PaxosMsg, Message},
    storage::Storage,
    OmniPaxos,
};

/// Whether `msg` is a `Prepare` or an `AcceptSync` from `from` that OmniPaxos would ignore
/// because this node already accepts in that ballot, following `from`.
pub fn is_ignored_sync<B: Storage<KVCommand>>(
    omni: &OmniPaxos<KVCommand, B>,
    from: NodeId,
    msg: &Message<KVCommand>,
) -> bool {
    let Message::SequencePaxos(p) = msg else {
        return false;
    };
    let ballot = match &p.msg {
        PaxosMsg::Prepare(prepare) => prepare.n,
        PaxosMsg::AcceptSync(sync) => sync.n,
        _ => return false,
    };
    // `true`: this node's phase is Accept, following the leader its promise names.
    ballot == omni.get_promise() && omni.get_current_leader() == Some((from, true))
}

/// Whether `msg` is an `AcceptSync` whose log starts below this node's decided index: an answer
/// to an older promise of this node, which would overwrite decided entries. Checked on the
/// message as OmniPaxos will see it (after `snapshot_fix` placed a delta's entries).
pub fn is_stale_sync<B: Storage<KVCommand>>(
    omni: &OmniPaxos<KVCommand, B>,
    msg: &Message<KVCommand>,
) -> bool {
    let Message::SequencePaxos(p) = msg else {
        return false;
    };
    match &p.msg {
        PaxosMsg::AcceptSync(sync) => sync.log_sync.sync_idx < omni.get_decided_idx(),
        _ => false,
    }
}
