//! Client requests: proposing them, answering them once, timing them out, and proposing them
//! again after a leader change.

use omnikv_core::{
    client::{Answer, ClientError, ClientOp, ClientRequest, ClientResponse, ReadMode},
    event::{NodeEvent, RequestOutcome},
    KVCommand, RequestId,
};
use tracing::info;

use super::ports::{Platform, StateMachine};
use super::{Io, Replica, ReplicaError};
use crate::events::Detail;

pub(super) struct Pending<R> {
    pub(super) reply: R,
    pub(super) started_us: u64,
    /// Kept to propose again after a leader change: a proposal forwarded to a leader that died
    /// is lost silently, and the session rule makes a second copy harmless.
    pub(super) cmd: KVCommand,
    /// Its request was published as an event, so its reply is too.
    pub(super) traced: bool,
}

/// Whether `op` is answered by the read-index protocol rather than a log entry.
fn is_linearizable_read(op: &ClientOp) -> bool {
    matches!(
        op,
        ClientOp::Get {
            read: ReadMode::Linearizable,
            ..
        } | ClientOp::Scan {
            read: ReadMode::Linearizable,
            ..
        }
    )
}

/// The outcome of a request, and the log index it names.
pub(super) type Outcome = (Result<Answer, ClientError>, Option<u64>);

impl<P: Platform> Replica<P> {
    pub(super) fn handle_client(
        &mut self,
        req: ClientRequest,
        reply: P::Reply,
        now_us: u64,
        io: &mut Io<'_>,
    ) -> Result<(), ReplicaError> {
        let id = req.id;
        let traced = io.events.wants_detail(Detail::Client);
        if traced {
            io.events.emit(NodeEvent::ClientRequest {
                id,
                op: req.op.clone(),
            });
        }
        if let Err(error) = req.validate() {
            self.answer(reply, id, now_us, now_us, traced, (Err(error), None), io);
            return Ok(());
        }
        if is_linearizable_read(&req.op) {
            let in_flight = self.pending.len() + self.reads.len();
            if in_flight >= self.config.pending_max {
                let error = ClientError::Overloaded { in_flight };
                self.answer(reply, id, now_us, now_us, traced, (Err(error), None), io);
            } else {
                self.start_read(req, reply, now_us, traced, io);
            }
            return Ok(());
        }
        let Some(cmd) = req.to_command() else {
            // A local read: served from this node's table, possibly stale.
            let answer = self.local_read(&req.op)?;
            self.answer(reply, id, now_us, now_us, traced, (Ok(answer), None), io);
            return Ok(());
        };
        if let Some(old) = self.pending.remove(&id) {
            let superseded = ClientResponse::Err {
                id: Some(id),
                error: ClientError::Unavailable {
                    reason: "superseded by a retry".into(),
                },
            };
            self.effects.replies.push((old.reply, superseded));
        } else if self.pending.len() >= self.config.pending_max {
            let error = ClientError::Overloaded {
                in_flight: self.pending.len(),
            };
            self.answer(reply, id, now_us, now_us, traced, (Err(error), None), io);
            return Ok(());
        }
        if let Some(error) = self.refusal_before_proposing(&cmd, io) {
            self.answer(reply, id, now_us, now_us, traced, (Err(error), None), io);
            return Ok(());
        }
        let deadline = now_us + self.config.request_timeout_ms * 1000;
        self.deadlines.push_back((deadline, id));
        self.pending.insert(
            id,
            Pending {
                reply,
                started_us: now_us,
                cmd,
                traced,
            },
        );
        Ok(())
    }

    /// Queues `cmd` for the turn's proposal (see `proposals`), or says why it cannot be
    /// proposed now.
    fn refusal_before_proposing(
        &mut self,
        cmd: &KVCommand,
        io: &mut Io<'_>,
    ) -> Option<ClientError> {
        // A follower cut off from the leader would forward into the void and make the client
        // wait for a timeout; saying so at once lets it retry through another node.
        if let Some((leader, _)) = self.omni.get_current_leader() {
            if leader != self.config.id && !io.links.link_up(leader) {
                return Some(ClientError::Unavailable {
                    reason: format!(
                        "node {} cannot reach leader {leader}; try another node",
                        self.config.id
                    ),
                });
            }
        }
        if self.proposals.push(cmd.clone()) {
            self.propose_batched();
        }
        None
    }

    /// Queues one reply, and its event if the request's was sent.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn answer(
        &mut self,
        reply: P::Reply,
        id: RequestId,
        started_us: u64,
        now_us: u64,
        traced: bool,
        (result, index): Outcome,
        io: &mut Io<'_>,
    ) {
        if traced {
            let outcome = match &result {
                Ok(answer) => RequestOutcome::Ok {
                    value: answer.value.clone(),
                },
                Err(error) => RequestOutcome::Err {
                    error: error.clone(),
                },
            };
            io.events.emit(NodeEvent::ClientReply {
                id,
                outcome,
                latency_us: now_us.saturating_sub(started_us),
            });
        } else {
            io.events.skip_detail(Detail::Client);
        }
        let resp = match result {
            Ok(answer) => ClientResponse::ok(id, self.config.id, index, answer),
            Err(error) => ClientResponse::Err {
                id: Some(id),
                error,
            },
        };
        self.effects.replies.push((reply, resp));
    }

    /// Answers the waiting request `id`, if it waits here.
    pub(super) fn answer_pending(
        &mut self,
        id: RequestId,
        outcome: Outcome,
        now_us: u64,
        io: &mut Io<'_>,
    ) {
        if let Some(p) = self.pending.remove(&id) {
            self.answer(p.reply, id, p.started_us, now_us, p.traced, outcome, io);
        }
    }

    pub(super) fn expire_requests(&mut self, now_us: u64, io: &mut Io<'_>) {
        let timeout_us = self.config.request_timeout_ms * 1000;
        while let Some(&(deadline, id)) = self.deadlines.front() {
            if deadline > now_us {
                break;
            }
            self.deadlines.pop_front();
            // A retry re-registers its id with a later deadline; this entry may be stale.
            let expired = self
                .pending
                .get(&id)
                .is_some_and(|p| p.started_us + timeout_us <= now_us);
            if expired {
                let error = ClientError::Timeout {
                    timeout_ms: self.config.request_timeout_ms,
                };
                self.answer_pending(id, (Err(error), None), now_us, io);
            }
        }
    }

    /// Proposes every waiting request again when a new leader starts accepting.
    pub(super) fn renew_proposals(&mut self) {
        let accepting = self.omni.get_current_leader();
        if accepting == self.observed.accepting {
            return;
        }
        self.observed.accepting = accepting;
        if !matches!(accepting, Some((_, true))) || self.pending.is_empty() {
            return;
        }
        // In each client's order. The session rule does not need it (copies may be decided in
        // any order), but a client's writes to one key then land in the order it sent them.
        let mut waiting: Vec<_> = self.pending.iter().collect();
        waiting.sort_unstable_by_key(|(id, _)| **id);
        let mut renewed = 0;
        for (_, p) in waiting {
            if self.omni.append(p.cmd.clone()).is_ok() {
                renewed += 1;
            }
        }
        info!(renewed, leader = ?accepting, "proposals renewed after a leader change");
    }
}

impl<P: Platform> Replica<P> {
    /// A read served from this node's table, outside the log.
    pub(super) fn local_read(&self, op: &ClientOp) -> Result<Answer, ReplicaError> {
        Ok(match op {
            ClientOp::Scan { range, .. } => Answer {
                scan: Some(self.table.scan(range)?),
                ..Answer::default()
            },
            ClientOp::Get { key, .. } => {
                let current = self.table.get(key)?;
                Answer {
                    mod_index: current.as_ref().map(|v| v.mod_index),
                    value: current.map(|v| v.value),
                    ..Answer::default()
                }
            }
            // Only reads have no log entry.
            _ => Answer::default(),
        })
    }
}
