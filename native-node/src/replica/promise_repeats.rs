//! Repeated promises: those a leader need not answer again ([`PromiseRepeats`]), and those a
//! follower need not send again ([`PromiseResends`]).
//!
//! A follower that has promised a ballot resends its `Promise` every resend timeout until the
//! leader's `AcceptSync` reaches it, and OmniPaxos answers every copy with a new `AcceptSync`.
//! For a follower behind the leader's compacted index each answer carries a complete snapshot
//! of the table, built anew: while one large snapshot is serialised and sent (seconds, for a
//! million keys), every repeat builds another, and a node once grew past 13 GB this way.
//!
//! On our links a repeat carries nothing new. A link delivers in order and loses messages in
//! two ways, each of which the replica hears of: its stream ends (a link event), or the sender
//! could not queue a message (`Replica::message_lost`). So while neither has happened since,
//! the answer is on its way. A repeat is therefore dropped when the same ballot's promise from
//! the same follower was answered, and answered again once anything could have lost the answer
//! or made the leader forget the promise: a link event for that follower, a message to it
//! lost, an operator's cut or heal, a `PrepareReq` from it (OmniPaxos then forgets its promise
//! and asks for a new one), or a new `Prepare` to it.
//!
//! The `PrepareReq` rule must act when the request arrives, not when the `Prepare` it causes
//! leaves: a node's turn handles several messages before it sends anything, and a follower
//! that restarts sends a `PrepareReq` and a `Promise` back to back. Without it, the promise
//! after the request was dropped, the leader held the follower as unpromised, and the follower,
//! already accepting, ignored every later `Prepare` of that ballot: it never caught up, and
//! writes through it timed out. A repeat older than [`PROMISE_ANSWER_FRESH_US`] is answered
//! all the same, which bounds the cost of a loss this reasoning misses to one snapshot per
//! period; it does not restore liveness, because an accepting follower sends no repeats.
//!
//! The follower's side is the same reasoning turned round. A follower ahead of a new leader
//! promises with a snapshot of what the leader lacks (a complete one when the leader is behind
//! its compacted index), and OmniPaxos resends that cached promise, snapshot and all, every
//! resend timeout until the leader's `AcceptSync` arrives, so a leader slow to answer a large
//! one is sent it again and again (40 MB every 200 ms, seen in a test). A repeat of a promise
//! that carries a snapshot is therefore not sent while its first copy is on its way: no link
//! event for the leader, no message to it lost and no cut or heal since, and no `PrepareReq`
//! sent to it (the leader answers one by forgetting the promise and asking for a new one,
//! which must leave). The leader's own repeated `Prepare`s say nothing: it resends them while
//! the promise is on its way, and the follower, already promised, ignores them. A repeat older
//! than [`PROMISE_ANSWER_FRESH_US`] is sent all the same. Promises without a snapshot are small
//! and left to OmniPaxos.

use std::collections::HashMap;

use omnikv_core::{KVCommand, NodeId};
use omnipaxos::{
    ballot_leader_election::Ballot,
    messages::{sequence_paxos::PaxosMsg, Message},
};

use crate::snapshot_fix::carries_snapshot;

/// How long an answered promise keeps its repeats from being answered.
pub const PROMISE_ANSWER_FRESH_US: u64 = 30_000_000;

/// Promises on their way, by peer: the ballot and when the first copy went. The one rule both
/// sides share: a promise of the same ballot within [`PROMISE_ANSWER_FRESH_US`] is a repeat.
#[derive(Default)]
struct OnTheirWay(HashMap<NodeId, (Ballot, u64)>);

impl OnTheirWay {
    /// Whether a promise of ballot `n` with `peer` is a repeat of one on its way; if it is
    /// not, it becomes the one on its way.
    fn repeat(&mut self, peer: NodeId, n: Ballot, now_us: u64) -> bool {
        if let Some((on_its_way, at_us)) = self.0.get(&peer) {
            if *on_its_way == n && now_us.saturating_sub(*at_us) < PROMISE_ANSWER_FRESH_US {
                return true;
            }
        }
        self.0.insert(peer, (n, now_us));
        false
    }

    fn forget(&mut self, peer: NodeId) {
        self.0.remove(&peer);
    }
}

/// Promises passed to OmniPaxos, by follower.
#[derive(Default)]
pub struct PromiseRepeats {
    answered: OnTheirWay,
}

impl PromiseRepeats {
    /// Whether an incoming message should reach OmniPaxos: false for a repeated promise whose
    /// answer is still on its way.
    pub fn admit(&mut self, from: NodeId, msg: &Message<KVCommand>, now_us: u64) -> bool {
        let Message::SequencePaxos(p) = msg else {
            return true;
        };
        let promise = match &p.msg {
            PaxosMsg::Promise(promise) => promise,
            // OmniPaxos answers it by forgetting the follower's promise and sending a new
            // `Prepare`, and the follower's next promise must count. That `Prepare` leaves only
            // when the turn ends, too late for a promise handled in the same turn.
            PaxosMsg::PrepareReq(_) => {
                self.answered.forget(from);
                return true;
            }
            _ => return true,
        };
        !self.answered.repeat(from, promise.n, now_us)
    }

    /// Notes an outgoing message: a `Prepare` to a follower opens a round that needs its
    /// promise again.
    pub fn sent(&mut self, msg: &Message<KVCommand>) {
        if let Message::SequencePaxos(p) = msg {
            if matches!(p.msg, PaxosMsg::Prepare(_)) {
                self.answered.forget(p.to);
            }
        }
    }

    /// Something on the link to `peer` changed (stream up or down, cut or healed): whatever
    /// was sent on it may be lost, so its next promise is answered.
    pub fn link_changed(&mut self, peer: NodeId) {
        self.answered.forget(peer);
    }
}

/// Promises carrying a snapshot that this node sent, by leader.
#[derive(Default)]
pub struct PromiseResends {
    sent: OnTheirWay,
}

impl PromiseResends {
    /// Whether an outgoing message should leave: false for a repeat of a promise carrying a
    /// snapshot whose first copy is on its way. Call it only for a message about to be queued;
    /// if queueing then fails, call [`PromiseResends::link_changed`].
    pub fn admit(&mut self, msg: &Message<KVCommand>, now_us: u64) -> bool {
        let Message::SequencePaxos(p) = msg else {
            return true;
        };
        let promise = match &p.msg {
            PaxosMsg::Promise(promise) => promise,
            PaxosMsg::PrepareReq(_) => {
                self.sent.forget(p.to);
                return true;
            }
            _ => return true,
        };
        !carries_snapshot(msg) || !self.sent.repeat(p.to, promise.n, now_us)
    }

    /// Something on the link to `peer` changed, or a message to it was lost: the promise may
    /// not reach it, so its next repeat leaves.
    pub fn link_changed(&mut self, peer: NodeId) {
        self.sent.forget(peer);
    }
}

#[cfg(test)]
mod tests {
    use omnipaxos::messages::sequence_paxos::{PaxosMessage, Prepare, PrepareReq, Promise};
    use omnipaxos::storage::SnapshotType;
    use omnipaxos::util::LogSync;

    use super::*;

    fn ballot(n: u32) -> Ballot {
        Ballot {
            config_id: 1,
            n,
            priority: 0,
            pid: 1,
        }
    }

    fn promise(from: NodeId, n: u32) -> Message<KVCommand> {
        Message::SequencePaxos(PaxosMessage {
            from,
            to: 1,
            msg: PaxosMsg::Promise(Promise {
                n: ballot(n),
                n_accepted: ballot(0),
                decided_idx: 0,
                accepted_idx: 0,
                log_sync: None,
            }),
        })
    }

    fn prepare(to: NodeId, n: u32) -> Message<KVCommand> {
        Message::SequencePaxos(PaxosMessage {
            from: 1,
            to,
            msg: PaxosMsg::Prepare(Prepare {
                n: ballot(n),
                decided_idx: 0,
                n_accepted: ballot(0),
                accepted_idx: 0,
            }),
        })
    }

    #[test]
    fn a_repeat_is_dropped_until_the_link_changes() {
        let mut r = PromiseRepeats::default();
        assert!(r.admit(2, &promise(2, 5), 0));
        assert!(
            !r.admit(2, &promise(2, 5), 200_000),
            "the answer is on its way"
        );
        assert!(r.admit(3, &promise(3, 5), 200_000), "another follower");
        r.link_changed(2);
        assert!(
            r.admit(2, &promise(2, 5), 400_000),
            "the answer may be lost"
        );
        assert!(!r.admit(2, &promise(2, 5), 600_000));
    }

    fn prepare_req(from: NodeId, n: u32) -> Message<KVCommand> {
        Message::SequencePaxos(PaxosMessage {
            from,
            to: 1,
            msg: PaxosMsg::PrepareReq(PrepareReq { n: ballot(n) }),
        })
    }

    /// A restarted follower's `PrepareReq` and its next `Promise` arrive in one turn, before
    /// the leader's new `Prepare` leaves: that promise must reach OmniPaxos.
    #[test]
    fn a_promise_after_a_prepare_request_is_answered() {
        let mut r = PromiseRepeats::default();
        assert!(r.admit(2, &promise(2, 5), 0));
        assert!(r.admit(2, &prepare_req(2, 5), 1));
        assert!(
            r.admit(2, &promise(2, 5), 2),
            "the leader forgot the promise when it took the request"
        );
        assert!(!r.admit(2, &promise(2, 5), 3), "a repeat of that one");
        assert!(r.admit(3, &prepare_req(3, 4), 4), "requests always pass");
    }

    /// A follower's promise to leader 1, with a complete snapshot or without one.
    fn promise_to_leader(n: u32, with_snapshot: bool) -> Message<KVCommand> {
        let log_sync = LogSync {
            decided_snapshot: with_snapshot
                .then(|| SnapshotType::Complete(omnikv_core::KVSnapshot::default())),
            suffix: vec![],
            sync_idx: 0,
            stopsign: None,
        };
        let Message::SequencePaxos(mut p) = promise(2, n) else {
            unreachable!()
        };
        if let PaxosMsg::Promise(promise) = &mut p.msg {
            promise.log_sync = Some(log_sync);
        }
        Message::SequencePaxos(p)
    }

    #[test]
    fn a_snapshot_promise_is_resent_only_once_something_could_have_lost_it() {
        let mut r = PromiseResends::default();
        assert!(r.admit(&promise_to_leader(5, true), 0));
        assert!(
            !r.admit(&promise_to_leader(5, true), 200_000),
            "the first copy is on its way"
        );
        assert!(
            r.admit(&promise_to_leader(5, false), 200_000),
            "a promise without a snapshot is OmniPaxos' to resend"
        );
        r.link_changed(1);
        assert!(
            r.admit(&promise_to_leader(5, true), 400_000),
            "the link changed"
        );
        assert!(!r.admit(&promise_to_leader(5, true), 600_000));
        let request = Message::SequencePaxos(PaxosMessage {
            from: 2,
            to: 1,
            msg: PaxosMsg::PrepareReq(PrepareReq { n: ballot(5) }),
        });
        assert!(r.admit(&request, 700_000));
        assert!(
            r.admit(&promise_to_leader(5, true), 800_000),
            "the leader forgets the promise when it takes the request"
        );
        assert!(
            r.admit(&promise_to_leader(6, true), 800_001),
            "a new ballot"
        );
        assert!(
            r.admit(
                &promise_to_leader(6, true),
                800_001 + PROMISE_ANSWER_FRESH_US
            ),
            "a first copy this old is sent again"
        );
    }

    #[test]
    fn a_new_ballot_a_new_prepare_or_an_old_answer_is_answered() {
        let mut r = PromiseRepeats::default();
        assert!(r.admit(2, &promise(2, 5), 0));
        assert!(r.admit(2, &promise(2, 6), 1), "a new ballot");
        r.sent(&prepare(2, 6));
        assert!(r.admit(2, &promise(2, 6), 2), "a new round");
        assert!(!r.admit(2, &promise(2, 6), 3));
        assert!(
            r.admit(2, &promise(2, 6), 2 + PROMISE_ANSWER_FRESH_US),
            "an answer this old is sent again"
        );
    }
}
