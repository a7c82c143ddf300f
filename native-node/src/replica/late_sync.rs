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
//! about one run in seven). So the follower does at once what OmniPaxos does when it sees a
//! session gap: it asks its leader to sync it again (`reconnected`).

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
