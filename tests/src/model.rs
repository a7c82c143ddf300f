//! An independent model of the replicated state machine, for the simulation to check the node's
//! state against: written from the promise users are given, not from `omnikv_core::session`.
//!
//! It is deliberately naive: it remembers every request it ever applied, never forgets, never
//! evicts and has no window. For clients that follow the protocol (a few requests in flight,
//! never giving up) the real rule must agree with it on everything a client can observe: the
//! table after every entry, the index each write was first applied at, and the value each read
//! saw.

use std::collections::{BTreeMap, BTreeSet};

use omnikv_core::{KVCommand, RequestId};

/// What one decided entry did, in the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelOutcome {
    Opened,
    /// A write applied here for the first time.
    Written,
    /// A later copy of a write first applied at this index.
    Copy {
        first: u64,
    },
    /// A write under a session that was never opened: nothing happens.
    NoSession,
    Read(Option<String>),
}

#[derive(Clone, Debug, Default)]
pub struct Model {
    pub kv: BTreeMap<String, String>,
    open: BTreeSet<u64>,
    first: BTreeMap<RequestId, u64>,
    /// The outcome of every entry so far, by index.
    pub outcomes: Vec<ModelOutcome>,
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
            KVCommand::Put { id, .. } | KVCommand::Delete { id, .. } => {
                if !self.open.contains(&id.client) {
                    ModelOutcome::NoSession
                } else if let Some(&first) = self.first.get(id) {
                    ModelOutcome::Copy { first }
                } else {
                    self.first.insert(*id, index);
                    match cmd {
                        KVCommand::Put { key, value, .. } => {
                            self.kv.insert(key.clone(), value.clone());
                        }
                        _ => {
                            self.kv.remove(cmd.key());
                        }
                    }
                    ModelOutcome::Written
                }
            }
        };
        self.outcomes.push(outcome);
    }

    /// The table after the first `len` entries of `log`.
    pub fn table_after(log: &[KVCommand], len: u64) -> BTreeMap<String, String> {
        let mut m = Model::default();
        for cmd in &log[..len as usize] {
            m.push(cmd);
        }
        m.kv
    }

    /// The index at which the write `id` was first applied.
    pub fn first_applied(&self, id: RequestId) -> Option<u64> {
        self.first.get(&id).copied()
    }
}
