//! The simulation's clients: each follows the protocol with the real client rule
//! ([`SessionClient`]), opens a session through the log, pipelines up to [`WINDOW`] requests
//! through random nodes and retries a request that waited long, or was answered with an error
//! that says its outcome is unknown, through another node with the same id.

use std::collections::{BTreeMap, BTreeSet};

use omnikv_core::{
    client::{ClientOp, ClientRequest, ClientResponse, ReadMode, SessionClient},
    scan::{ScanPage, ScanRange},
    txn::{Guard, TxnOp},
    NodeId, RequestId,
};
use rand::Rng;

use super::Sim;
use crate::model::Model;

pub const CLIENTS: u64 = 4;
/// How often several clients' requests reach a node in one turn (with `clients_together`).
const CLIENTS_TOGETHER_CHANCE: f64 = 0.3;
const KEYS: u64 = 3;
/// Steps a request waits for an answer before its client sends it again.
pub const RETRY_AFTER_STEPS: u64 = 300;
/// Requests one client keeps in flight.
pub const WINDOW: usize = 4;
/// Opening nonces start here, far from session ids (log indices).
const NONCE_BASE: u64 = 1 << 40;
/// Clients' read ids start here, between session ids and opening nonces.
const READER_BASE: u64 = 1 << 39;

pub(super) struct SimClient {
    session: SessionClient,
    /// The `open_session` in flight, and the step it was last sent.
    opening: Option<(ClientRequest, u64)>,
    /// Requests in flight, and the step each was last sent.
    in_flight: BTreeMap<RequestId, (ClientRequest, u64)>,
    /// Nodes each request in flight was sent to.
    sent_to: BTreeMap<RequestId, BTreeSet<NodeId>>,
}

impl SimClient {
    fn new(c: usize) -> SimClient {
        SimClient {
            session: SessionClient::without_session(READER_BASE + c as u64),
            opening: None,
            in_flight: BTreeMap::new(),
            sent_to: BTreeMap::new(),
        }
    }
}

impl SimClient {
    pub(super) fn idle(&self) -> bool {
        self.in_flight.is_empty() && self.opening.is_none()
    }
}

/// An answered request, to be checked against the model.
pub(super) struct Answer {
    id: RequestId,
    is_write: bool,
    /// The key a get read.
    key: Option<String>,
    index: u64,
    value: Option<String>,
    mod_index: Option<u64>,
    /// A transaction's answer: whether its guards held.
    succeeded: Option<bool>,
    scan: Option<ScanPage>,
    pub(super) retried: bool,
}

/// The clients' state in a run.
pub(super) struct Clients {
    pub(super) all: Vec<SimClient>,
    /// Which client a request's `client` field names: a session id or an opening nonce.
    client_of: BTreeMap<u64, usize>,
    pub(super) answers: Vec<Answer>,
    /// The highest index of a write answered so far.
    acked_write_max: Option<u64>,
    /// For each read in flight: the highest index of a write answered before it was sent,
    /// which its answer must include.
    read_floors: BTreeMap<RequestId, u64>,
}

impl Clients {
    pub(super) fn new() -> Clients {
        Clients {
            all: (0..CLIENTS as usize).map(SimClient::new).collect(),
            client_of: (0..CLIENTS as usize)
                .flat_map(|c| [(NONCE_BASE + c as u64, c), (READER_BASE + c as u64, c)])
                .collect(),
            answers: Vec::new(),
            acked_write_max: None,
            read_floors: BTreeMap::new(),
        }
    }
}

impl Clients {
    pub(super) fn describe(&self) -> String {
        let all: Vec<String> = self
            .all
            .iter()
            .map(|c| {
                format!(
                    "session {:?} opening {:?} in flight {:?}",
                    c.session.session,
                    c.opening.as_ref().map(|(r, sent)| (r.id, *sent)),
                    c.in_flight
                        .iter()
                        .map(|(s, (_, sent))| (*s, *sent))
                        .collect::<Vec<_>>()
                )
            })
            .collect();
        all.join(", ")
    }
}

impl Sim {
    /// One client acts: opens its session, retries a request, or sends a new one. With
    /// `clients_together`, now and then several do, and their requests reach one node in one
    /// turn, as they do under load (the node proposes a turn's requests together).
    pub(super) fn client(&mut self, faults: bool) {
        // Drawn in this order, so that seeds without `clients_together` run as they always did.
        let first = self.rng.gen_range(0..CLIENTS);
        let live = self.live();
        if live.is_empty() {
            return;
        }
        let target = live[self.rng.gen_range(0..live.len())];
        let acting = if self.config.clients_together && self.rng.gen_bool(CLIENTS_TOGETHER_CHANCE) {
            self.rng.gen_range(2..=CLIENTS)
        } else {
            1
        };
        let mut inputs = Vec::new();
        for c in (first..first + acting).map(|c| (c % CLIENTS) as usize) {
            let Some(req) = self.next_request(c, faults) else {
                continue;
            };
            let client = &mut self.clients.all[c];
            if req.op == ClientOp::OpenSession {
                client.opening = Some((req.clone(), self.step));
            } else if let Some((_, sent)) = client.in_flight.get_mut(&req.id) {
                *sent = self.step;
                client.sent_to.entry(req.id).or_default().insert(target);
            }
            inputs.push(omnikv_node::input::Input::Client { req, reply: () });
        }
        if !inputs.is_empty() {
            self.act_on(target, inputs, faults);
        }
    }

    fn next_request(&mut self, c: usize, faults: bool) -> Option<ClientRequest> {
        let step = self.step;
        let stale = |sent: u64| step.saturating_sub(sent) > RETRY_AFTER_STEPS;
        let client = &mut self.clients.all[c];
        if client.session.session.is_none() {
            return match &client.opening {
                Some((req, sent)) if stale(*sent) => Some(req.clone()),
                Some(_) => None,
                None => Some(SessionClient::open_request(NONCE_BASE + c as u64)),
            };
        }
        if let Some((req, _)) = client.in_flight.values().find(|(_, sent)| stale(*sent)) {
            // The same id again, maybe through another node.
            return Some(client.session.retry(req));
        }
        if client.in_flight.len() >= WINDOW || !client.session.can_send() || !faults {
            return None;
        }
        let key = format!("k{}", self.rng.gen_range(0..KEYS));
        let req = match self.rng.gen_range(0..14) {
            0..=5 => client.session.write_request(ClientOp::Put {
                value: format!("{c}-{}", self.rng.gen::<u32>()),
                key,
            }),
            6..=7 => client.session.write_request(ClientOp::Delete { key }),
            8..=10 => {
                let op = random_txn(&mut self.rng, key, self.decided.len() as u64);
                client.session.write_request(op)
            }
            11 => client.session.read_op_request(ClientOp::Scan {
                range: ScanRange {
                    prefix: Some("k".into()),
                    limit: 2,
                    ..ScanRange::default()
                },
                read: ReadMode::Linearizable,
            }),
            _ => client.session.read_request(key, ReadMode::Linearizable),
        };
        client.in_flight.insert(req.id, (req.clone(), step));
        if let (false, Some(floor)) = (req.op.is_write(), self.clients.acked_write_max) {
            self.clients.read_floors.insert(req.id, floor);
        }
        Some(req)
    }

    /// A reply reaches its client.
    pub(super) fn on_reply(&mut self, resp: ClientResponse) {
        let id = match &resp {
            ClientResponse::Ok { id, .. } => *id,
            ClientResponse::Err { id: Some(id), .. } => *id,
            ClientResponse::Err { id: None, error } => panic!("a reply without an id: {error}"),
        };
        let Some(&c) = self.clients.client_of.get(&id.client) else {
            return;
        };
        let client = &mut self.clients.all[c];
        if id.client >= NONCE_BASE {
            // An answer to opening the session: the first one opens it; later copies' answers
            // name sessions nobody will use.
            let opening = client.opening.as_ref().is_some_and(|(o, _)| o.id == id);
            if let (
                true,
                ClientResponse::Ok {
                    index: Some(session),
                    ..
                },
            ) = (opening, resp)
            {
                client.opening = None;
                client.session.opened(session);
                self.clients.client_of.insert(session, c);
            }
            return;
        }
        let Some((req, _)) = client.in_flight.get(&id) else {
            return; // already answered through another node
        };
        let is_write = req.op.is_write();
        let key = match &req.op {
            ClientOp::Get { key, .. } => Some(key.clone()),
            _ => None,
        };
        match resp {
            ClientResponse::Ok {
                value,
                index,
                mod_index,
                txn,
                scan,
                ..
            } => {
                client.in_flight.remove(&id);
                client.session.settled(id);
                let retried = client.sent_to.remove(&id).is_some_and(|n| n.len() > 1);
                let answer = Answer {
                    id,
                    is_write,
                    key,
                    index: index.expect("a logged request names its index"),
                    value,
                    mod_index,
                    succeeded: txn.map(|t| t.succeeded),
                    scan,
                    retried,
                };
                // With `overlap`, the record of decided entries holds only what fsyncs kept,
                // and may not reach this answer yet: every answer is checked at the end.
                if !self.config.overlap {
                    self.check_answer(&answer);
                }
                if is_write {
                    let max = self.clients.acked_write_max.max(Some(answer.index));
                    self.clients.acked_write_max = max;
                } else if let Some(floor) = self.clients.read_floors.remove(&id) {
                    assert!(
                        answer.index >= floor,
                        "seed {} step {}: read {id:?} answered at index {} misses the write answered at index {floor} before it was sent",
                        self.config.seed,
                        self.step,
                        answer.index
                    );
                }
                self.clients.answers.push(answer);
            }
            ClientResponse::Err { error, .. } if error.retryable() => {
                // Sent again at the client's next turn.
                if let Some((_, sent)) = client.in_flight.get_mut(&id) {
                    *sent = 0;
                }
            }
            ClientResponse::Err { error, .. } => panic!(
                "seed {} step {}: request {id:?} refused although its client follows the protocol: {error}",
                self.config.seed, self.step
            ),
        }
    }

    /// Every answered write was applied exactly once, at the index its answer names; every
    /// answered read saw the model's value at its index.
    pub(super) fn check_answers(&self) {
        for a in &self.clients.answers {
            self.check_answer(a);
        }
    }

    fn check_answer(&self, a: &Answer) {
        let seed = self.config.seed;
        if a.is_write {
            assert_eq!(
                self.model.first_applied(a.id),
                Some(a.index),
                "seed {seed}: write {:?} was answered ok at index {} but the model applied it first at {:?}",
                a.id,
                a.index,
                self.model.first_applied(a.id)
            );
            if let Some(succeeded) = a.succeeded {
                assert_eq!(
                    self.model.succeeded(a.id),
                    Some(succeeded),
                    "seed {seed}: transaction {:?} at index {} answered succeeded = {succeeded}",
                    a.id,
                    a.index
                );
            }
        } else if let Some(page) = &a.scan {
            // A scan sees every entry up to and including the index it names, and no later one.
            let table = Model::table_after(&self.decided, a.index + 1);
            let expected: Vec<_> = table
                .iter()
                .filter(|(k, _)| k.starts_with('k'))
                .take(page.entries.len())
                .map(|(k, v)| (k.clone(), v.value.clone(), v.mod_index))
                .collect();
            let got: Vec<_> = page
                .entries
                .iter()
                .map(|e| (e.key.clone(), e.value.clone(), e.mod_index))
                .collect();
            assert_eq!(
                got, expected,
                "seed {seed}: scan {:?} answered at index {} differs from the model's table",
                a.id, a.index
            );
            let more = table.keys().filter(|k| k.starts_with('k')).count() > got.len();
            assert_eq!(
                page.next_after.is_some(),
                more,
                "seed {seed}: scan {:?}",
                a.id
            );
        } else {
            let read = a
                .value
                .clone()
                .zip(a.mod_index)
                .map(|(value, mod_index)| omnikv_core::session::Versioned { value, mod_index });
            // A read sees every entry up to and including the index it names, and no later
            // one (through the log, its own entry is that index).
            let key = a.key.as_deref().expect("a get names its key");
            assert_eq!(
                self.model.value_after(key, a.index),
                read,
                "seed {seed}: read {:?} at index {} answered {:?} (mod_index {:?}), which differs from the model's value",
                a.id,
                a.index,
                a.value,
                a.mod_index
            );
        }
    }
}

/// A compare-and-swap or a batch on the simulation's few keys and values: guards on the value
/// (from a small set, so that they sometimes hold), on absence, or on a recent `mod_index`.
fn random_txn(rng: &mut impl Rng, key: String, decided: u64) -> ClientOp {
    let value = |rng: &mut dyn rand::RngCore| format!("c{}", rng.gen_range(0..3));
    let guard = match rng.gen_range(0..4) {
        0 => Guard::Value {
            key: key.clone(),
            value: value(rng),
        },
        1 => Guard::Absent { key: key.clone() },
        2 => Guard::ModIndex {
            key: key.clone(),
            mod_index: decided.saturating_sub(rng.gen_range(1..6)),
        },
        // A batch: no guard, and a second key.
        _ => {
            let other = format!("k{}", rng.gen_range(0..KEYS));
            let ops = vec![
                TxnOp::Put {
                    key,
                    value: value(rng),
                },
                TxnOp::Delete { key: other },
            ];
            return ClientOp::Txn {
                guards: Vec::new(),
                ops,
            };
        }
    };
    ClientOp::Txn {
        guards: vec![guard],
        ops: vec![TxnOp::Put {
            key,
            value: value(rng),
        }],
    }
}
