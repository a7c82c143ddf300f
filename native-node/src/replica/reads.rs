//! Linearizable reads: the replica's side of the read-index protocol (`read_index`), from a
//! client's request to its answer at the index the read names.

use omnikv_core::{
    client::{ClientError, ClientRequest},
    peer::ReadIndexMsg,
    NodeId,
};

use super::ports::Platform;
use super::read_index::{Read, Standing};
use super::requests::Outcome;
use super::{Io, Replica, ReplicaError};

impl<P: Platform> Replica<P> {
    fn standing(&self) -> Standing {
        Standing {
            me: self.config.id,
            leader: self.omni.get_current_leader(),
            promise: self.omni.get_promise(),
            accepted_idx: self.omni.get_accepted_idx() as u64,
            decided_idx: self.omni.get_decided_idx() as u64,
            cluster_size: self.config.peers.len() + 1,
        }
    }

    /// Takes a linearizable read (validated, within the bound on requests in flight).
    pub(super) fn start_read(
        &mut self,
        req: ClientRequest,
        reply: P::Reply,
        now_us: u64,
        traced: bool,
        io: &mut Io<'_>,
    ) {
        let read = Read {
            id: req.id,
            reply,
            op: req.op,
            started_us: now_us,
            traced,
        };
        let at = self.standing();
        // As for writes: a follower cut off from its leader says so at once.
        if let Some((leader, _)) = at.leader {
            if leader != at.me && !io.links.link_up(leader) {
                let reason = format!(
                    "node {} cannot reach leader {leader}; try another node",
                    at.me
                );
                return self.fail_reads(vec![read], &reason, now_us, io);
            }
        }
        if let Some(read) = self.reads.read(read, &at) {
            self.fail_reads(vec![read], "no leader known; try again", now_us, io);
        }
    }

    pub(super) fn handle_read_index(&mut self, from: NodeId, msg: ReadIndexMsg) {
        let at = self.standing();
        self.reads.receive(from, msg, &at);
    }

    /// The read-index messages the turn has so far: they promise nothing about this node's
    /// storage, so they leave before its fsync, and the probe and the follower's request for
    /// the turn's reads go with them.
    pub fn take_read_index_before_sync(&mut self, io: &mut Io<'_>) -> Vec<(NodeId, ReadIndexMsg)> {
        let at = self.standing();
        self.reads.end_turn(&at, &self.config.peers);
        let mut out = self.reads.take_outgoing();
        out.retain(|(to, _)| io.links.link_enabled(*to));
        out
    }

    /// Ends the turn's reads: answers what the table has applied, fails what lost its leader,
    /// and queues the protocol's messages (after `apply_decided`).
    pub(super) fn finish_reads(
        &mut self,
        now_us: u64,
        io: &mut Io<'_>,
    ) -> Result<(), ReplicaError> {
        let at = self.standing();
        if at.leader != self.observed.read_leader {
            self.observed.read_leader = at.leader;
            self.reads.leader_changed();
        }
        self.reads.end_turn(&at, &self.config.peers);
        for read in self.reads.take_ready(self.applied_idx) {
            let answer = self.local_read(&read.op)?;
            // The table holds every entry before the applied index.
            let index = self.applied_idx.checked_sub(1);
            let outcome = (Ok(answer), index);
            self.answer_read(read, outcome, now_us, io);
        }
        let failed = self.reads.take_failed();
        self.fail_reads(failed, "the leader changed; try again", now_us, io);
        for (to, msg) in self.reads.take_outgoing() {
            if io.links.link_enabled(to) {
                self.effects.read_index.push((to, msg));
            }
        }
        Ok(())
    }

    /// Reads waiting for more than the request timeout get a timeout reply.
    pub(super) fn expire_reads(&mut self, now_us: u64, io: &mut Io<'_>) {
        let timeout_us = self.config.request_timeout_ms * 1000;
        let Some(started_before_us) = now_us.checked_sub(timeout_us) else {
            return;
        };
        for read in self.reads.expire(started_before_us) {
            let error = ClientError::Timeout {
                timeout_ms: self.config.request_timeout_ms,
            };
            let outcome = (Err(error), None);
            self.answer_read(read, outcome, now_us, io);
        }
    }

    fn answer_read(
        &mut self,
        read: Read<P::Reply>,
        outcome: Outcome,
        now_us: u64,
        io: &mut Io<'_>,
    ) {
        self.answer(
            read.reply,
            read.id,
            read.started_us,
            now_us,
            read.traced,
            outcome,
            io,
        );
    }

    pub(super) fn fail_reads(
        &mut self,
        reads: Vec<Read<P::Reply>>,
        reason: &str,
        now_us: u64,
        io: &mut Io<'_>,
    ) {
        for read in reads {
            let error = ClientError::Unavailable {
                reason: reason.to_owned(),
            };
            let outcome = (Err(error), None);
            self.answer_read(read, outcome, now_us, io);
        }
    }
}
