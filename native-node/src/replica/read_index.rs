//! Linearizable reads without a log entry: the read-index protocol.
//!
//! A read through the log costs an entry, its replication and two fsyncs. Instead, a read at
//! the leader takes a read index that covers every entry decided before the read arrived: the
//! leader's decided index, once that has passed the log the leader started its ballot with
//! (which holds every entry earlier leaders may have decided, while its decided index may not
//! yet count them), and its log length until then (as Raft's leaders wait to commit an entry of
//! their term). Every later decision is the leader's own. It is served once two things hold:
//!
//! - a majority, the leader included, answered a probe sent after the read arrived with the
//!   leader's ballot as its promise. A newer leader needs a majority's promise before it
//!   decides anything; that majority and this one share a node, which would have answered with
//!   the newer ballot. So no write the read must see was decided elsewhere;
//! - the leader's table has applied the read index.
//!
//! A read at a follower asks the leader for an index (one request for the reads of a turn),
//! and is served from the follower's own table once that has applied it. Reads of one turn
//! share one probe round, and a probe carries its round number, which only grows (across this
//! node's ballots too), so an answer to an older probe never confirms a newer read. Anything
//! that may have lost an answer (a leader change, a link down, a refusal) fails the reads it
//! concerns as `unavailable`, which clients retry; the rest time out like any request.
//!
//! A follower's requests are numbered from a number drawn for each run of the node. A leader's
//! queue to a follower outlives the follower's process (the transport delivers it on the next
//! stream), so the answer to a request of a run that crashed reaches the next run; numbered from
//! zero in every run, it answered that run's request of the same number with an older index, and
//! the read missed a write acknowledged before it was sent (the simulation found it with
//! `queued_outlive_crash`).

use std::collections::{BTreeMap, VecDeque};

use omnikv_core::{client::ClientOp, peer::ReadIndexMsg, NodeId, RequestId};
use omnipaxos::ballot_leader_election::Ballot;

/// Followers' requests a leader holds for its next confirmed round; more are refused (the
/// followers' reads answer `unavailable` and are retried). A follower sends at most one a turn,
/// and a round trip clears them, so only a leader that no majority answers reaches it.
pub const FOLLOWER_REQUESTS_MAX: usize = 4096;

/// A linearizable read waiting for its index or for the table to reach it.
pub(super) struct Read<R> {
    pub(super) id: RequestId,
    pub(super) reply: R,
    pub(super) op: ClientOp,
    pub(super) started_us: u64,
    pub(super) traced: bool,
}

/// What a read index was asked for: a read here, or a follower's reads.
enum Asker<R> {
    Local(Read<R>),
    Follower { peer: NodeId, seq: u64 },
}

/// Where this node stands, as the read protocol needs it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Standing {
    pub(super) me: NodeId,
    /// The leader this node knows of, and whether it is in the accept phase.
    pub(super) leader: Option<(NodeId, bool)>,
    pub(super) promise: Ballot,
    /// The log's length (accepted index).
    pub(super) accepted_idx: u64,
    pub(super) decided_idx: u64,
    pub(super) cluster_size: usize,
}

impl Standing {
    fn leads(&self) -> bool {
        self.leader == Some((self.me, true))
    }
}

pub(super) struct ReadIndex<R> {
    /// Whether a leader waits for a majority's answers before it serves (off only to show that
    /// the simulation catches the stale reads it then serves).
    probe: bool,
    /// The ballot the probe rounds below belong to (this node led in it).
    ballot: Option<Ballot>,
    /// The log length when this node first served reads in `ballot`: once its decided index
    /// reaches it, every entry of earlier ballots is counted in it.
    decided_floor: u64,
    next_round: u64,
    /// The highest round each peer answered with `ballot` as its promise.
    acked: BTreeMap<NodeId, u64>,
    /// Read indices waiting for a round to be confirmed, in round order.
    unconfirmed: VecDeque<(u64, u64, Asker<R>)>,
    /// How many of `unconfirmed` are followers' requests.
    followers_unconfirmed: usize,
    /// A read arrived since the last probe.
    probe_due: bool,
    /// Reads at this follower not yet asked about, and those asked about, by request number.
    unasked: Vec<Read<R>>,
    asked: BTreeMap<u64, (NodeId, Vec<Read<R>>)>,
    next_seq: u64,
    /// Reads whose index is confirmed, waiting for the table to apply it.
    ready: Vec<(u64, Read<R>)>,
    outgoing: Vec<(NodeId, ReadIndexMsg)>,
    /// Reads that cannot be served (answered `unavailable` by the replica).
    failed: Vec<Read<R>>,
}

impl<R> ReadIndex<R> {
    /// `seq_start`: where this run numbers its requests to the leader (see
    /// `ReplicaConfig::run_nonce`).
    pub(super) fn new(probe: bool, seq_start: u64) -> Self {
        ReadIndex {
            probe,
            ballot: None,
            decided_floor: 0,
            next_round: 0,
            acked: BTreeMap::new(),
            unconfirmed: VecDeque::new(),
            followers_unconfirmed: 0,
            probe_due: false,
            unasked: Vec::new(),
            asked: BTreeMap::new(),
            next_seq: seq_start,
            ready: Vec::new(),
            outgoing: Vec::new(),
            failed: Vec::new(),
        }
    }
}

impl<R> ReadIndex<R> {
    /// Reads waiting here, whatever for.
    pub(super) fn len(&self) -> usize {
        let unconfirmed = self.unconfirmed.len() - self.followers_unconfirmed;
        let asked: usize = self.asked.values().map(|(_, reads)| reads.len()).sum();
        unconfirmed + self.unasked.len() + asked + self.ready.len()
    }

    /// Takes a read; gives it back if no leader is known to ask.
    pub(super) fn read(&mut self, read: Read<R>, at: &Standing) -> Option<Read<R>> {
        if at.leads() {
            self.lead(at);
            let round = self.next_round;
            let idx = self.read_idx(at);
            self.unconfirmed.push_back((round, idx, Asker::Local(read)));
            self.probe_due = true;
            return None;
        }
        match at.leader {
            Some((leader, _)) if leader != at.me => {
                self.unasked.push(read);
                None
            }
            _ => Some(read),
        }
    }

    /// Handles a peer's message.
    pub(super) fn receive(&mut self, from: NodeId, msg: ReadIndexMsg, at: &Standing) {
        match msg {
            ReadIndexMsg::Probe { round, .. } => {
                let promise = at.promise;
                self.outgoing
                    .push((from, ReadIndexMsg::Ack { round, promise }));
            }
            ReadIndexMsg::Ack { round, promise } => {
                if Some(promise) == self.ballot && at.leads() {
                    let acked = self.acked.entry(from).or_default();
                    *acked = (*acked).max(round);
                    self.confirm(at.cluster_size);
                } else if self.ballot.is_some_and(|b| promise > b) {
                    // Someone promised a newer leader: this one cannot confirm anything.
                    self.step_down();
                }
            }
            ReadIndexMsg::Request { seq } => {
                if at.leads() && self.followers_unconfirmed < FOLLOWER_REQUESTS_MAX {
                    self.lead(at);
                    let round = self.next_round;
                    let asker = Asker::Follower { peer: from, seq };
                    let idx = self.read_idx(at);
                    self.unconfirmed.push_back((round, idx, asker));
                    self.followers_unconfirmed += 1;
                    self.probe_due = true;
                } else {
                    let refusal = ReadIndexMsg::Response {
                        seq,
                        read_idx: None,
                    };
                    self.outgoing.push((from, refusal));
                }
            }
            ReadIndexMsg::Response { seq, read_idx } => {
                let Some((leader, reads)) = self.asked.remove(&seq) else {
                    return;
                };
                match read_idx {
                    Some(idx) if leader == from => {
                        self.ready.extend(reads.into_iter().map(|r| (idx, r)));
                    }
                    _ => self.failed.extend(reads),
                }
            }
        }
    }

    /// Ends a turn: sends the probe the turn's reads wait for, and asks the leader about the
    /// turn's reads at this follower.
    pub(super) fn end_turn(&mut self, at: &Standing, peers: &[NodeId]) {
        if std::mem::take(&mut self.probe_due) && at.leads() {
            let ballot = at.promise;
            let round = self.next_round;
            self.next_round += 1;
            for &peer in peers {
                self.outgoing
                    .push((peer, ReadIndexMsg::Probe { ballot, round }));
            }
            // A cluster of one confirms alone.
            self.confirm(at.cluster_size);
        }
        if self.unasked.is_empty() {
            return;
        }
        match at.leader {
            Some((leader, _)) if leader != at.me => {
                let seq = self.next_seq;
                self.next_seq = seq.wrapping_add(1);
                self.asked
                    .insert(seq, (leader, std::mem::take(&mut self.unasked)));
                self.outgoing.push((leader, ReadIndexMsg::Request { seq }));
            }
            _ => self.failed.append(&mut self.unasked),
        }
    }

    /// Reads whose index the table has applied (`applied_idx`: entries applied).
    pub(super) fn take_ready(&mut self, applied_idx: u64) -> Vec<Read<R>> {
        if self.ready.iter().all(|(idx, _)| *idx > applied_idx) {
            return Vec::new();
        }
        let (now, later) = std::mem::take(&mut self.ready)
            .into_iter()
            .partition(|(idx, _)| *idx <= applied_idx);
        self.ready = later;
        now.into_iter().map(|(_, r)| r).collect()
    }

    /// The leader changed (or this node's view of it): every read index not yet confirmed, or
    /// asked of the old leader, may never come. Confirmed ones stay valid.
    pub(super) fn leader_changed(&mut self) {
        self.step_down();
        let asked = std::mem::take(&mut self.asked);
        self.failed
            .extend(asked.into_values().flat_map(|(_, reads)| reads));
    }

    /// The link to `peer` went down: what was asked of it is lost.
    pub(super) fn link_down(&mut self, peer: NodeId) {
        let asked = std::mem::take(&mut self.asked);
        for (seq, (leader, reads)) in asked {
            if leader == peer {
                self.failed.extend(reads);
            } else {
                self.asked.insert(seq, (leader, reads));
            }
        }
    }

    /// Reads that cannot be served, to be answered `unavailable`.
    pub(super) fn take_failed(&mut self) -> Vec<Read<R>> {
        std::mem::take(&mut self.failed)
    }

    /// Takes the reads started before `started_before_us` (one request timeout ago).
    pub(super) fn expire(&mut self, started_before_us: u64) -> Vec<Read<R>> {
        let old = |r: &Read<R>| r.started_us < started_before_us;
        let mut expired = Vec::new();
        let unconfirmed = std::mem::take(&mut self.unconfirmed);
        for (round, idx, asker) in unconfirmed {
            match asker {
                Asker::Local(r) if old(&r) => expired.push(r),
                asker => self.unconfirmed.push_back((round, idx, asker)),
            }
        }
        drain_where(&mut self.unasked, old, &mut expired);
        for (_, reads) in self.asked.values_mut() {
            drain_where(reads, old, &mut expired);
        }
        self.asked.retain(|_, (_, reads)| !reads.is_empty());
        let ready = std::mem::take(&mut self.ready);
        for (idx, r) in ready {
            if old(&r) {
                expired.push(r);
            } else {
                self.ready.push((idx, r));
            }
        }
        expired
    }

    pub(super) fn take_outgoing(&mut self) -> Vec<(NodeId, ReadIndexMsg)> {
        std::mem::take(&mut self.outgoing)
    }

    /// Starts the rounds of this node's ballot. Reads of an older ballot of its own fail: a
    /// leader between the two may have decided writes their index misses, and only the older
    /// ballot's rounds could have shown it.
    fn lead(&mut self, at: &Standing) {
        if self.ballot != Some(at.promise) {
            self.step_down();
            self.ballot = Some(at.promise);
            self.decided_floor = at.accepted_idx;
            // Rounds keep growing: an answer still on its way from before the step down names
            // an older round, which confirms no read taken now.
        }
    }

    /// The read index of a read arriving now at this leader (see the module comment).
    fn read_idx(&self, at: &Standing) -> u64 {
        if at.decided_idx >= self.decided_floor {
            at.decided_idx
        } else {
            at.accepted_idx
        }
    }

    /// Confirms the rounds a majority (this node and the peers' highest answers) has answered.
    fn confirm(&mut self, cluster_size: usize) {
        let peers_needed = if self.probe { cluster_size / 2 } else { 0 };
        let confirmed = if peers_needed == 0 {
            Some(u64::MAX)
        } else {
            let mut rounds: Vec<u64> = self.acked.values().copied().collect();
            rounds.sort_unstable_by(|a, b| b.cmp(a));
            rounds.get(peers_needed - 1).copied()
        };
        let Some(confirmed) = confirmed else {
            return;
        };
        while self
            .unconfirmed
            .front()
            .is_some_and(|(round, _, _)| *round <= confirmed)
        {
            let (_, idx, asker) = self.unconfirmed.pop_front().expect("checked above");
            match asker {
                Asker::Local(read) => self.ready.push((idx, read)),
                Asker::Follower { peer, seq } => {
                    self.followers_unconfirmed -= 1;
                    let read_idx = Some(idx);
                    self.outgoing
                        .push((peer, ReadIndexMsg::Response { seq, read_idx }));
                }
            }
        }
    }

    /// Gives up this node's rounds: its reads fail, its followers' requests are refused.
    fn step_down(&mut self) {
        self.ballot = None;
        self.acked.clear();
        self.probe_due = false;
        self.followers_unconfirmed = 0;
        for (_, _, asker) in std::mem::take(&mut self.unconfirmed) {
            match asker {
                Asker::Local(read) => self.failed.push(read),
                Asker::Follower { peer, seq } => {
                    let refusal = ReadIndexMsg::Response {
                        seq,
                        read_idx: None,
                    };
                    self.outgoing.push((peer, refusal));
                }
            }
        }
    }
}

/// Moves the items of `from` for which `take` holds into `to`.
fn drain_where<T>(from: &mut Vec<T>, take: impl Fn(&T) -> bool, to: &mut Vec<T>) {
    let all = std::mem::take(from);
    for item in all {
        if take(&item) {
            to.push(item);
        } else {
            from.push(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ballot(n: u32, pid: NodeId) -> Ballot {
        Ballot {
            config_id: 1,
            n,
            priority: 0,
            pid,
        }
    }

    fn read(seq: u64) -> Read<()> {
        Read {
            id: RequestId { client: 9, seq },
            reply: (),
            op: ClientOp::Get {
                key: "k".into(),
                read: omnikv_core::client::ReadMode::Linearizable,
            },
            started_us: seq,
            traced: false,
        }
    }

    fn leader(accepted_idx: u64) -> Standing {
        Standing {
            me: 1,
            leader: Some((1, true)),
            promise: ballot(2, 1),
            accepted_idx,
            decided_idx: 0,
            cluster_size: 3,
        }
    }

    fn follower() -> Standing {
        Standing {
            me: 2,
            leader: Some((1, true)),
            promise: ballot(2, 1),
            accepted_idx: 0,
            decided_idx: 0,
            cluster_size: 3,
        }
    }

    fn probes(ri: &mut ReadIndex<()>) -> Vec<(NodeId, u64)> {
        ri.take_outgoing()
            .into_iter()
            .filter_map(|(to, m)| match m {
                ReadIndexMsg::Probe { round, .. } => Some((to, round)),
                _ => None,
            })
            .collect()
    }

    fn ids(reads: Vec<Read<()>>) -> Vec<u64> {
        reads.into_iter().map(|r| r.id.seq).collect()
    }

    #[test]
    fn a_leaders_read_waits_for_a_majority_and_for_the_table() {
        let mut ri = ReadIndex::new(true, 0);
        let at = leader(7);
        assert!(ri.read(read(1), &at).is_none());
        ri.end_turn(&at, &[2, 3]);
        assert_eq!(probes(&mut ri), [(2, 0), (3, 0)]);
        assert!(ri.take_ready(7).is_empty(), "no peer has answered");
        let ack = ReadIndexMsg::Ack {
            round: 0,
            promise: ballot(2, 1),
        };
        ri.receive(2, ack, &at);
        assert!(
            ri.take_ready(6).is_empty(),
            "the table is behind the read index"
        );
        assert_eq!(ids(ri.take_ready(7)), [1]);
        assert_eq!(ri.len(), 0);
    }

    #[test]
    fn an_answer_to_an_older_probe_does_not_confirm_a_newer_read() {
        let mut ri = ReadIndex::new(true, 0);
        let at = leader(3);
        ri.read(read(1), &at);
        ri.end_turn(&at, &[2, 3]);
        ri.read(read(2), &at);
        ri.end_turn(&at, &[2, 3]);
        assert_eq!(probes(&mut ri), [(2, 0), (3, 0), (2, 1), (3, 1)]);
        let ack = |round| ReadIndexMsg::Ack {
            round,
            promise: ballot(2, 1),
        };
        ri.receive(3, ack(0), &at);
        assert_eq!(ids(ri.take_ready(3)), [1]);
        ri.receive(2, ack(1), &at);
        assert_eq!(ids(ri.take_ready(3)), [2]);
    }

    #[test]
    fn a_newer_promise_fails_the_leaders_reads_and_refuses_its_followers() {
        let mut ri = ReadIndex::new(true, 0);
        let at = leader(3);
        ri.read(read(1), &at);
        ri.receive(2, ReadIndexMsg::Request { seq: 5 }, &at);
        ri.end_turn(&at, &[2, 3]);
        ri.take_outgoing();
        let newer = ReadIndexMsg::Ack {
            round: 0,
            promise: ballot(3, 3),
        };
        ri.receive(3, newer, &at);
        assert_eq!(ids(ri.take_failed()), [1]);
        let refusal = ReadIndexMsg::Response {
            seq: 5,
            read_idx: None,
        };
        assert_eq!(ri.take_outgoing(), [(2, refusal)]);
        assert!(ri.take_ready(u64::MAX).is_empty());
    }

    #[test]
    fn a_followers_reads_wait_for_the_leaders_index_and_fail_with_its_leadership() {
        let mut ri = ReadIndex::new(true, 0);
        let at = follower();
        ri.read(read(1), &at);
        ri.read(read(2), &at);
        ri.end_turn(&at, &[1, 3]);
        assert_eq!(ri.take_outgoing(), [(1, ReadIndexMsg::Request { seq: 0 })]);
        let response = ReadIndexMsg::Response {
            seq: 0,
            read_idx: Some(4),
        };
        ri.receive(1, response, &at);
        assert!(ri.take_ready(3).is_empty());
        assert_eq!(ids(ri.take_ready(4)), [1, 2]);

        ri.read(read(3), &at);
        ri.end_turn(&at, &[1, 3]);
        ri.leader_changed();
        assert_eq!(ids(ri.take_failed()), [3]);
        assert_eq!(ri.len(), 0);
    }

    #[test]
    fn a_leader_reads_at_its_log_length_until_it_has_decided_its_first_log() {
        let mut ri = ReadIndex::new(true, 0);
        let ack = |round| ReadIndexMsg::Ack {
            round,
            promise: ballot(2, 1),
        };
        // Entries 0..8 came from earlier ballots; the new leader has decided up to 5 of them.
        let mut at = Standing {
            decided_idx: 5,
            ..leader(8)
        };
        ri.read(read(1), &at);
        ri.end_turn(&at, &[2, 3]);
        ri.receive(2, ack(0), &at);
        assert!(
            ri.take_ready(7).is_empty(),
            "an entry of an earlier ballot is missing"
        );
        assert_eq!(ids(ri.take_ready(8)), [1]);
        // Past them, reads wait only for what is decided, not for the writes in flight.
        at.decided_idx = 9;
        at.accepted_idx = 12;
        ri.read(read(2), &at);
        ri.end_turn(&at, &[2, 3]);
        ri.receive(3, ack(1), &at);
        assert_eq!(ids(ri.take_ready(9)), [2]);
    }

    #[test]
    fn a_followers_request_gets_the_decided_index_and_a_flood_is_refused() {
        let mut ri: ReadIndex<()> = ReadIndex::new(true, 0);
        let at = Standing {
            decided_idx: 9,
            ..leader(12)
        };
        // The first read fixes the floor at the log length, 12: until the leader has decided
        // that far, a follower is given the log length.
        ri.read(read(1), &at);
        ri.receive(2, ReadIndexMsg::Request { seq: 0 }, &at);
        let later = Standing {
            decided_idx: 12,
            ..leader(15)
        };
        ri.receive(2, ReadIndexMsg::Request { seq: 1 }, &later);
        ri.end_turn(&later, &[2, 3]);
        ri.take_outgoing();
        let ack = ReadIndexMsg::Ack {
            round: 0,
            promise: ballot(2, 1),
        };
        ri.receive(3, ack, &later);
        let response = |seq, idx| ReadIndexMsg::Response {
            seq,
            read_idx: Some(idx),
        };
        assert_eq!(
            ri.take_outgoing(),
            [(2, response(0, 12)), (2, response(1, 12))]
        );

        for seq in 0..FOLLOWER_REQUESTS_MAX as u64 + 1 {
            ri.receive(3, ReadIndexMsg::Request { seq }, &later);
        }
        let refused: Vec<_> = ri
            .take_outgoing()
            .into_iter()
            .filter(|(_, m)| matches!(m, ReadIndexMsg::Response { read_idx: None, .. }))
            .collect();
        assert_eq!(refused.len(), 1);
    }

    #[test]
    fn an_answer_from_before_a_step_down_confirms_no_later_read() {
        let mut ri = ReadIndex::new(true, 0);
        let at = leader(3);
        ri.read(read(1), &at);
        ri.end_turn(&at, &[2, 3]);
        let newer = ReadIndexMsg::Ack {
            round: 0,
            promise: ballot(3, 3),
        };
        ri.receive(3, newer, &at);
        assert_eq!(ids(ri.take_failed()), [1]);
        // OmniPaxos still has this node leading in its ballot: a new read opens a new round.
        ri.read(read(2), &at);
        ri.end_turn(&at, &[2, 3]);
        assert_eq!(probes(&mut ri).last(), Some(&(3, 1)));
        let old = ReadIndexMsg::Ack {
            round: 0,
            promise: ballot(2, 1),
        };
        ri.receive(2, old, &at);
        assert!(
            ri.take_ready(u64::MAX).is_empty(),
            "round 0 answered before the read came"
        );
        let fresh = ReadIndexMsg::Ack {
            round: 1,
            promise: ballot(2, 1),
        };
        ri.receive(2, fresh, &at);
        assert_eq!(ids(ri.take_ready(u64::MAX)), [2]);
    }

    #[test]
    fn a_probe_is_answered_with_the_promise_held() {
        let mut ri: ReadIndex<()> = ReadIndex::new(true, 0);
        let probe = ReadIndexMsg::Probe {
            ballot: ballot(2, 1),
            round: 4,
        };
        ri.receive(1, probe, &follower());
        let ack = ReadIndexMsg::Ack {
            round: 4,
            promise: ballot(2, 1),
        };
        assert_eq!(ri.take_outgoing(), [(1, ack)]);
    }
}
