//! An independent model of the replicated state machine, for the simulation to check the node's
//! state against: written from the promise users are given, not from `omnikv_core::session`
//! or `omnikv_core::txn`.
//!
//! It is deliberately naive: it remembers every request it ever applied, never forgets, never
//! evicts and has no window. For clients that follow the protocol (a few requests in flight,
//! never giving up) the real rule must agree with it on everything a client can observe: the
//! table after every entry (values and the index of each key's last write), the index each
//! write was first applied at, whether a transaction's guards held, and the value each read saw.

use std::collections::{BTreeMap, BTreeSet};

use omnikv_core::{
    session::Versioned,
    txn::{Guard, TxnOp},
    KVCommand, RequestId,
};

/// What one decided entry did, in the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelOutcome {
    Opened,
    /// A write applied here for the first time (a transaction: `succeeded` says whether its
    /// guards held and it wrote).
    Written {
        succeeded: bool,
    },
    /// A later copy of a write first applied at this index.
    Copy {
        first: u64,
    },
    /// A write under a session that was never opened: nothing happens.
    NoSession,
    /// What a get read here.
    Read(Option<Versioned>),
    /// A scan: answered from a later point (the end of the node's apply run).
    Scan,
}

#[derive(Clone, Debug, Default)]
pub struct Model {
    pub kv: BTreeMap<String, Versioned>,
    open: BTreeSet<u64>,
    /// Where each write was first applied, and whether it wrote.
    first: BTreeMap<RequestId, (u64, bool)>,
    /// The outcome of every entry so far, by index.
    pub outcomes: Vec<ModelOutcome>,
    /// Every write of each key: where, and the value it left (`None`: deleted).
    history: BTreeMap<String, Vec<(u64, Option<Versioned>)>>,
}

impl Model {
    /// Applies the next decided entry.
    pub fn push(&mut self, cmd: &KVCommand) {
        let index = self.outcomes.len() as u64;
        let outcome = match cmd {
            KVCommand::OpenSession { .. } => {
                // The session's id is the index of the entry that opens it.
                self.open.insert(index);
                ModelOutcome::Opened
            }
            KVCommand::Get { key, .. } => ModelOutcome::Read(self.kv.get(key).cloned()),
            KVCommand::Scan { .. } => ModelOutcome::Scan,
            KVCommand::Put { id, .. }
            | KVCommand::Delete { id, .. }
            | KVCommand::Txn { id, .. } => {
                if !self.open.contains(&id.client) {
                    ModelOutcome::NoSession
                } else if let Some(&(first, _)) = self.first.get(id) {
                    ModelOutcome::Copy { first }
                } else {
                    let succeeded = self.write(cmd, index);
                    self.first.insert(*id, (index, succeeded));
                    ModelOutcome::Written { succeeded }
                }
            }
        };
        self.outcomes.push(outcome);
    }

    /// Makes the writes of `cmd` at `index` if its guards hold; whether they held.
    fn write(&mut self, cmd: &KVCommand, index: u64) -> bool {
        let (guards, ops): (&[Guard], Vec<TxnOp>) = match cmd {
            KVCommand::Put { key, value, .. } => (
                &[],
                vec![TxnOp::Put {
                    key: key.clone(),
                    value: value.clone(),
                }],
            ),
            KVCommand::Delete { key, .. } => (&[], vec![TxnOp::Delete { key: key.clone() }]),
            KVCommand::Txn { guards, ops, .. } => (guards, ops.clone()),
            _ => unreachable!("only writes"),
        };
        let holds = guards.iter().all(|g| match g {
            Guard::Value { key, value } => self.kv.get(key).is_some_and(|v| &v.value == value),
            Guard::Absent { key } => !self.kv.contains_key(key),
            Guard::ModIndex { key, mod_index } => {
                self.kv.get(key).is_some_and(|v| v.mod_index == *mod_index)
            }
        });
        if holds {
            for op in ops {
                match op {
                    TxnOp::Put { key, value } => {
                        let mod_index = index;
                        let versioned = Versioned { value, mod_index };
                        self.history
                            .entry(key.clone())
                            .or_default()
                            .push((index, Some(versioned.clone())));
                        self.kv.insert(key, versioned);
                    }
                    TxnOp::Delete { key } => {
                        self.history
                            .entry(key.clone())
                            .or_default()
                            .push((index, None));
                        self.kv.remove(&key);
                    }
                }
            }
        }
        holds
    }

    /// The table after the first `len` entries of `log`.
    pub fn table_after(log: &[KVCommand], len: u64) -> BTreeMap<String, Versioned> {
        let mut m = Model::default();
        for cmd in &log[..len as usize] {
            m.push(cmd);
        }
        m.kv
    }

    /// The value of `key` once the entries up to and including `index` are applied.
    pub fn value_after(&self, key: &str, index: u64) -> Option<Versioned> {
        let writes = self.history.get(key)?;
        let before = writes.partition_point(|(at, _)| *at <= index);
        before.checked_sub(1).and_then(|i| writes[i].1.clone())
    }

    /// The index at which the write `id` was first applied.
    pub fn first_applied(&self, id: RequestId) -> Option<u64> {
        self.first.get(&id).map(|(index, _)| *index)
    }

    /// Whether the write `id` wrote when it was first applied (a transaction's guards held).
    pub fn succeeded(&self, id: RequestId) -> Option<bool> {
        self.first.get(&id).map(|(_, succeeded)| *succeeded)
    }
}
