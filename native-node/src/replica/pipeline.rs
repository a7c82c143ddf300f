//! What a node may send while its fsync runs, and which fsync the rest waits for.
//!
//! A host that keeps handling inputs while its fsync runs (`node`'s event loop) calls
//! [`Replica::step`] after each batch of inputs instead of ending a turn. Each step does a
//! turn's work (applies what is decided, answers reads and admin requests, compacts) and
//! sorts what it produced by what it states about this node's disk:
//!
//! - nothing: ballot leader election, a follower's `ProposalForward` (a client's command, which
//!   the leader logs itself) and the read-index protocol leave at once, as they leave before
//!   the fsync in a turn;
//! - everything written so far: a `Promise` or an `Accepted` promises what this node wrote,
//!   and a `Prepare`, an `AcceptSync` or an admin reply stands on it, so each waits for the
//!   first fsync that starts after it was produced ([`Syncs::covering_all`]);
//! - the entries below a decided index: a leader's `AcceptDecide` or `Decide`, a client's
//!   reply and the watchers' changes. OmniPaxos counts a leader's own copy of an entry as soon
//!   as it is appended, so a decided index may count a copy only the page cache holds. Each
//!   of these waits for the fsync after which this node's own copy of the entries below the
//!   index is durable ([`Syncs::covering_decided`]); with the followers' `Accepted`, each sent
//!   after its own fsync, the entries are then on a majority's disks. A follower's decided
//!   index comes from such a `Decide`, so its replies wait only for its own copy.
//!
//! Which fsync covers an index is read from a [`Mark`] taken when each fsync starts: the
//! promise, the accepted index and whether the node was in the accept phase. The log below
//! the accepted index changes under one promise only outside the accept phase (a leader
//! adopting the longest log it was promised, a follower taking its leader's sync), so only a
//! mark taken in the accept phase of the promise held now covers anything.
//!
//! Why the rest is safe: RocksDB recovers a prefix of its WAL, so after a crash a node holds
//! what it had written by some moment, at least everything the fsyncs that ended had covered.
//! An output held until then is an output the network delayed; one lost in the crash, one the
//! network dropped. The deterministic simulation drives replicas this way
//! (`SimConfig::overlap`): each simulated fsync keeps the log and table as they were when it
//! started, ends at a later step, and a crash before it ends loses it.

use std::collections::{BTreeMap, VecDeque};

use omnikv_core::{admin::AdminResponse, client::ClientResponse, KVCommand, NodeId};
use omnipaxos::ballot_leader_election::Ballot;
use omnipaxos::messages::{sequence_paxos::PaxosMsg, Message};

use super::{Effects, Io, Outgoing, Platform, ReleaseBeforeSync, Replica, ReplicaError};
use crate::changes::AppliedChanges;

/// Where the log stood when an fsync started: what that fsync makes durable.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mark {
    /// The promise then: a log written under another promise may have been cut since.
    pub ballot: Ballot,
    /// Entries below this index were written before the fsync started.
    pub accepted: u64,
    /// Whether the node was in the accept phase of `ballot` then (see the module comment).
    pub accepting: bool,
}

impl Mark {
    fn covers(&self, decided: u64, ballot: Ballot) -> bool {
        self.accepting && self.ballot == ballot && self.accepted >= decided
    }
}

/// The node's fsyncs, numbered from 1; 0 needs none.
#[derive(Debug, Default)]
pub struct Syncs {
    started: u64,
    done: u64,
    in_flight: Option<Mark>,
    durable: Option<Mark>,
}

impl Syncs {
    pub fn start(&mut self, mark: Mark) {
        assert!(self.in_flight.is_none(), "one fsync at a time");
        self.started += 1;
        self.in_flight = Some(mark);
    }

    pub fn finished(&mut self) {
        assert!(
            self.in_flight.is_some(),
            "an fsync ended that did not start"
        );
        self.done = self.started;
        self.durable = self.in_flight.take();
    }

    pub fn done(&self) -> u64 {
        self.done
    }

    pub fn started(&self) -> u64 {
        self.started
    }

    /// The fsync after which everything written so far is durable: the next to start (the
    /// replica does not know whether anything was written since the last one started, so it
    /// assumes so, and the host starts an fsync whenever something waits for one).
    pub fn covering_all(&self) -> u64 {
        self.started + 1
    }

    /// The fsync after which this node's own copy of every entry below `decided` is durable,
    /// under the promise `ballot` it holds now.
    pub fn covering_decided(&self, decided: u64, ballot: Ballot) -> u64 {
        if decided == 0 {
            0
        } else if self.durable.is_some_and(|m| m.covers(decided, ballot)) {
            self.done
        } else if self.in_flight.is_some_and(|m| m.covers(decided, ballot)) {
            self.started
        } else {
            self.covering_all()
        }
    }
}

/// Which fsync `msg` waits for: see the module comment.
pub fn message_needs(syncs: &Syncs, msg: &Message<KVCommand>, ballot: Ballot) -> u64 {
    match msg {
        Message::BLE(_) => 0,
        Message::SequencePaxos(p) => match &p.msg {
            PaxosMsg::ProposalForward(_) => 0,
            PaxosMsg::AcceptDecide(a) => syncs.covering_decided(a.decided_idx as u64, ballot),
            PaxosMsg::Decide(d) => syncs.covering_decided(d.decided_idx as u64, ballot),
            _ => syncs.covering_all(),
        },
    }
}

fn is_decide(msg: &Message<KVCommand>) -> bool {
    matches!(
        msg,
        Message::SequencePaxos(p)
            if matches!(p.msg, PaxosMsg::AcceptDecide(_) | PaxosMsg::Decide(_))
    )
}

/// Outputs waiting for an fsync, each queue in order: messages per peer (a stream keeps its
/// order), and the rest in one queue.
pub struct Held<M, R> {
    messages: BTreeMap<NodeId, VecDeque<(u64, M)>>,
    others: VecDeque<(u64, R)>,
}

impl<M, R> Default for Held<M, R> {
    fn default() -> Self {
        Held {
            messages: BTreeMap::new(),
            others: VecDeque::new(),
        }
    }
}

/// Queues `item` behind what `queue` holds, or hands it back if it may leave now.
fn hold<T>(queue: &mut VecDeque<(u64, T)>, needs: u64, done: u64, item: T) -> Option<T> {
    let needs = queue.back().map_or(needs, |(n, _)| needs.max(*n));
    if queue.is_empty() && needs <= done {
        return Some(item);
    }
    queue.push_back((needs, item));
    None
}

fn drain<T>(queue: &mut VecDeque<(u64, T)>, done: u64, into: &mut Vec<T>) {
    while queue.front().is_some_and(|(n, _)| *n <= done) {
        into.push(queue.pop_front().expect("front checked").1);
    }
}

impl<M, R> Held<M, R> {
    /// A message for `to` that waits for fsync `needs`: handed back if it may leave now.
    pub fn message(&mut self, to: NodeId, needs: u64, done: u64, msg: M) -> Option<M> {
        hold(self.messages.entry(to).or_default(), needs, done, msg)
    }

    /// A reply or change that waits for fsync `needs`: handed back if it may leave now.
    pub fn other(&mut self, needs: u64, done: u64, out: R) -> Option<R> {
        hold(&mut self.others, needs, done, out)
    }

    /// Whether anything waits for an fsync after `started`.
    pub fn waits_beyond(&self, started: u64) -> bool {
        self.messages
            .values()
            .any(|q| q.back().is_some_and(|(n, _)| *n > started))
            || self.others.back().is_some_and(|(n, _)| *n > started)
    }

    /// What may leave once fsync `done` has ended.
    pub fn release(&mut self, done: u64) -> (Vec<M>, Vec<R>) {
        let mut messages = Vec::new();
        for queue in self.messages.values_mut() {
            drain(queue, done, &mut messages);
        }
        let mut others = Vec::new();
        drain(&mut self.others, done, &mut others);
        (messages, others)
    }
}

/// A reply or an applied change that waits for an fsync.
enum Later<P: Platform> {
    Reply(P::Reply, ClientResponse),
    Admin(P::AdminReply, AdminResponse),
    Changes(Vec<AppliedChanges>),
}

/// The replica's fsyncs and what waits for them.
pub(super) struct Pipeline<P: Platform> {
    syncs: Syncs,
    held: Held<Outgoing, Later<P>>,
}

impl<P: Platform> Default for Pipeline<P> {
    fn default() -> Self {
        Pipeline {
            syncs: Syncs::default(),
            held: Held::default(),
        }
    }
}

fn push_later<P: Platform>(out: &mut Effects<P>, later: Option<Later<P>>) {
    match later {
        Some(Later::Reply(reply, resp)) => out.replies.push((reply, resp)),
        Some(Later::Admin(reply, resp)) => out.admin_replies.push((reply, resp)),
        Some(Later::Changes(changes)) => out.changes.extend(changes),
        None => {}
    }
}

impl<P: Platform> Replica<P> {
    /// After the host handed over some inputs, or an fsync ended: does a turn's work (see
    /// [`Replica::finish_turn`]) and returns what may leave now, holding the rest for the
    /// fsync it waits for.
    pub fn step(&mut self, now_us: u64, io: &mut Io<'_>) -> Result<Effects<P>, ReplicaError> {
        let read_index = self.take_read_index_before_sync(io);
        let effects = self.finish_turn(now_us, io)?;
        let mut out = Effects {
            read_index,
            ..Effects::default()
        };
        self.route(effects, &mut out);
        let (messages, later) = self.pipeline.held.release(self.pipeline.syncs.done());
        out.messages.extend(messages);
        for later in later {
            push_later(&mut out, Some(later));
        }
        Ok(out)
    }

    /// The host claimed everything written so far for an fsync it starts now.
    pub fn sync_started(&mut self) {
        self.pipeline.syncs.start(Mark {
            ballot: self.omni.get_promise(),
            accepted: self.omni.get_accepted_idx() as u64,
            accepting: matches!(self.omni.get_current_leader(), Some((_, true))),
        });
    }

    /// The fsync [`Replica::sync_started`] announced ended; the host then calls
    /// [`Replica::step`], which releases what waited for it.
    pub fn sync_finished(&mut self) {
        self.pipeline.syncs.finished();
    }

    /// Whether something waits for an fsync not yet started: the host starts one even if it
    /// wrote nothing.
    pub fn wants_sync(&self) -> bool {
        let p = &self.pipeline;
        p.held.waits_beyond(p.syncs.started())
    }

    fn route(&mut self, effects: Effects<P>, out: &mut Effects<P>) {
        let ballot = self.omni.get_promise();
        // Only to show the simulation catches it: everything leaves at once.
        let rule = self.config.release_before_sync;
        let unsafe_all = rule == ReleaseBeforeSync::UnsafeAll;
        let p = &mut self.pipeline;
        let done = p.syncs.done();
        for m in effects.messages {
            let needs = match rule {
                ReleaseBeforeSync::UnsafeAll => 0,
                ReleaseBeforeSync::UnsafeDecides if is_decide(&m.msg) => 0,
                _ => message_needs(&p.syncs, &m.msg, ballot),
            };
            out.messages.extend(p.held.message(m.to, needs, done, m));
        }
        out.read_index.extend(effects.read_index);
        let (told, all) = if unsafe_all {
            (0, 0)
        } else {
            (
                p.syncs.covering_decided(self.applied_idx, ballot),
                p.syncs.covering_all(),
            )
        };
        for (reply, resp) in effects.replies {
            push_later(out, p.held.other(told, done, Later::Reply(reply, resp)));
        }
        for (reply, resp) in effects.admin_replies {
            push_later(out, p.held.other(all, done, Later::Admin(reply, resp)));
        }
        if !effects.changes.is_empty() {
            push_later(
                out,
                p.held.other(told, done, Later::Changes(effects.changes)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnipaxos::messages::sequence_paxos::PaxosMsg;
    use omnipaxos::messages::sequence_paxos::{Accepted, Decide, PaxosMessage};

    fn ballot(n: u32) -> Ballot {
        Ballot {
            config_id: 1,
            n,
            priority: 0,
            pid: 1,
        }
    }

    fn paxos(msg: PaxosMsg<KVCommand>) -> Message<KVCommand> {
        Message::SequencePaxos(PaxosMessage {
            from: 1,
            to: 2,
            msg,
        })
    }

    fn accepted() -> Message<KVCommand> {
        paxos(PaxosMsg::Accepted(Accepted {
            n: ballot(1),
            accepted_idx: 5,
        }))
    }

    fn decide(decided_idx: usize) -> Message<KVCommand> {
        paxos(PaxosMsg::Decide(Decide {
            n: ballot(1),
            seq_num: Default::default(),
            decided_idx,
        }))
    }

    #[test]
    fn an_accepted_written_during_an_fsync_waits_for_the_next_one() {
        let mut syncs = Syncs::default();
        let mut held: Held<&str, ()> = Held::default();
        syncs.start(Mark {
            ballot: ballot(1),
            accepted: 4,
            accepting: true,
        });
        let needs = message_needs(&syncs, &accepted(), ballot(1));
        assert_eq!(needs, 2);
        assert_eq!(held.message(2, needs, syncs.done(), "accepted"), None);
        syncs.finished();
        assert!(held.release(syncs.done()).0.is_empty());
        syncs.start(Mark {
            ballot: ballot(1),
            accepted: 5,
            accepting: true,
        });
        syncs.finished();
        assert_eq!(held.release(syncs.done()).0, ["accepted"]);
    }

    #[test]
    fn a_decide_leaves_once_the_leaders_own_copy_below_it_is_durable() {
        let mut syncs = Syncs::default();
        syncs.start(Mark {
            ballot: ballot(1),
            accepted: 10,
            accepting: true,
        });
        // Covered by the fsync in flight: it waits for that one only.
        assert_eq!(message_needs(&syncs, &decide(8), ballot(1)), 1);
        // Written after it started: the next one.
        assert_eq!(message_needs(&syncs, &decide(11), ballot(1)), 2);
        syncs.finished();
        assert_eq!(message_needs(&syncs, &decide(10), ballot(1)), 1);
        assert!(message_needs(&syncs, &decide(10), ballot(1)) <= syncs.done());
    }

    #[test]
    fn a_mark_taken_under_another_promise_covers_nothing() {
        let mut syncs = Syncs::default();
        syncs.start(Mark {
            ballot: ballot(1),
            accepted: 10,
            accepting: true,
        });
        syncs.finished();
        assert_eq!(syncs.covering_decided(5, ballot(2)), 2);
    }

    #[test]
    fn a_message_behind_a_waiting_one_to_the_same_peer_waits_too() {
        let mut held: Held<&str, ()> = Held::default();
        assert_eq!(held.message(2, 1, 0, "first"), None);
        assert_eq!(held.message(2, 0, 0, "second"), None);
        assert_eq!(held.message(3, 0, 0, "other peer"), Some("other peer"));
        assert_eq!(held.release(1).0, ["first", "second"]);
    }
}
