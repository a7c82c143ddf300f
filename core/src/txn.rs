//! Transactions: guarded batches of puts and deletes, applied atomically in one log entry.
//!
//! Compare-and-swap is a transaction with one guard and one write; a batch is one without
//! guards. Every guard is checked against the state the entry is applied to, and either all the
//! writes apply or none does. A failed guard is an outcome, not an error: the reply says what
//! each failed guard found, so the caller can decide what to do without another round trip.
//!
//! Guards compare what the state machine replicates: the value and the key's `mod_index` (the
//! log index of its last write), which every replica holds identically.

use serde::{Deserialize, Serialize};

use crate::limits::VALUE_BYTES_MAX;
use crate::versioned::Versioned;

/// A condition on one key, checked when the transaction is applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Guard {
    /// The key holds exactly this value.
    Value { key: String, value: String },
    /// The key does not exist.
    Absent { key: String },
    /// The key exists and its last write was applied at this log index.
    ModIndex { key: String, mod_index: u64 },
}

impl Guard {
    pub fn key(&self) -> &str {
        match self {
            Guard::Value { key, .. } | Guard::Absent { key } | Guard::ModIndex { key, .. } => key,
        }
    }

    /// Whether the guard holds for what the key holds now (`None`: absent).
    pub fn holds(&self, found: Option<&Versioned>) -> bool {
        match (self, found) {
            (Guard::Value { value, .. }, Some(f)) => f.value == *value,
            (Guard::Absent { .. }, None) => true,
            (Guard::ModIndex { mod_index, .. }, Some(f)) => f.mod_index == *mod_index,
            _ => false,
        }
    }
}

/// One write of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TxnOp {
    Put { key: String, value: String },
    Delete { key: String },
}

impl TxnOp {
    pub fn key(&self) -> &str {
        match self {
            TxnOp::Put { key, .. } | TxnOp::Delete { key } => key,
        }
    }

    /// `Some(value)` sets, `None` deletes.
    pub fn value(&self) -> Option<&str> {
        match self {
            TxnOp::Put { value, .. } => Some(value),
            TxnOp::Delete { .. } => None,
        }
    }
}

/// Bytes of values the failed guards of one reply carry, so that the reply is bounded like a
/// get's (a client request reserves room for its reply while it is in flight).
pub const FOUND_VALUE_BYTES_MAX: usize = VALUE_BYTES_MAX;

/// What a failed guard's key held when the transaction was applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Found {
    pub key: String,
    /// The index of the key's last write; `None`: the key was absent.
    pub mod_index: Option<u64>,
    /// Its value; `None` when absent, or left out once the values of earlier failed guards
    /// in the reply reach [`FOUND_VALUE_BYTES_MAX`].
    pub value: Option<String>,
}

impl Found {
    /// What `key` holds, with its value while `room` (bytes of values still allowed in the
    /// reply) lasts; `room` shrinks by the value kept.
    pub fn of(key: &str, current: Option<Versioned>, room: &mut usize) -> Found {
        let mod_index = current.as_ref().map(|v| v.mod_index);
        let value = current
            .map(|v| v.value)
            .filter(|v| v.len() <= *room)
            .inspect(|v| *room -= v.len());
        Found {
            key: key.to_owned(),
            mod_index,
            value,
        }
    }
}

impl Found {
    /// How the CLIs print it: `KEY<TAB>VALUE<TAB>(mod_index N)`, or `KEY<TAB>absent`.
    pub fn line(&self) -> String {
        match (&self.value, self.mod_index) {
            (Some(v), Some(i)) => format!("{}\t{v}\t(mod_index {i})", self.key),
            (None, Some(i)) => format!("{}\t(value left out)\t(mod_index {i})", self.key),
            _ => format!("{}\tabsent", self.key),
        }
    }
}

/// Reads a batch as the CLIs take it, one JSON object a line: writes (`{"put":{...}}`,
/// `{"delete":{...}}`) and guards (`{"value":{...}}`, `{"absent":{...}}`,
/// `{"mod_index":{...}}`); blank lines are skipped.
pub fn parse_batch(text: &str) -> Result<(Vec<Guard>, Vec<TxnOp>), String> {
    let (mut guards, mut ops) = (Vec::new(), Vec::new());
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        // from_slice, like `decode_json`: one decoder per type in the wasm, not two.
        if let Ok(op) = serde_json::from_slice::<TxnOp>(line.as_bytes()) {
            ops.push(op);
        } else {
            let guard = serde_json::from_slice::<Guard>(line.as_bytes()).map_err(|e| {
                format!(
                    "line {}: neither a write (put, delete) nor a guard (value, absent, mod_index): {e}",
                    n + 1
                )
            })?;
            guards.push(guard);
        }
    }
    Ok((guards, ops))
}

/// The outcome of a transaction, in its reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxnResult {
    /// Every guard held and every write was applied.
    pub succeeded: bool,
    /// For a failed transaction, what each failed guard found, in guard order. Empty when the
    /// reply answers a copy of a transaction that failed earlier: what it found then is not
    /// kept (it could be a whole value per guard), and the table may have moved on since.
    #[serde(default)]
    pub found: Vec<Found>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(value: &str, mod_index: u64) -> Versioned {
        Versioned {
            value: value.into(),
            mod_index,
        }
    }

    #[test]
    fn guards_compare_value_absence_and_mod_index() {
        let key = String::from("k");
        let value = Guard::Value {
            key: key.clone(),
            value: "a".into(),
        };
        assert!(value.holds(Some(&v("a", 3))));
        assert!(!value.holds(Some(&v("b", 3))));
        assert!(!value.holds(None));
        let absent = Guard::Absent { key: key.clone() };
        assert!(absent.holds(None));
        assert!(!absent.holds(Some(&v("", 1))));
        let index = Guard::ModIndex { key, mod_index: 3 };
        assert!(index.holds(Some(&v("x", 3))));
        assert!(!index.holds(Some(&v("x", 4))));
        assert!(!index.holds(None), "an absent key has no mod_index");
    }

    #[test]
    fn a_batch_is_read_line_by_line_into_guards_and_writes() {
        let text = "{\"absent\":{\"key\":\"a\"}}\n\n{\"put\":{\"key\":\"a\",\"value\":\"1\"}}\n";
        let (guards, ops) = parse_batch(text).unwrap();
        assert_eq!(guards, [Guard::Absent { key: "a".into() }]);
        assert_eq!(ops.len(), 1);
        let err = parse_batch("{\"put\":{}}\n{\"x\":1}").unwrap_err();
        assert!(err.starts_with("line 1:"), "{err}");
    }

    #[test]
    fn what_failed_guards_found_is_bounded_in_value_bytes() {
        let mut room = 5;
        let first = Found::of("a", Some(v("abc", 1)), &mut room);
        assert_eq!(
            (first.value.as_deref(), first.mod_index),
            (Some("abc"), Some(1))
        );
        let second = Found::of("b", Some(v("def", 2)), &mut room);
        assert_eq!(
            (second.value, second.mod_index),
            (None, Some(2)),
            "past the room"
        );
        let absent = Found::of("c", None, &mut room);
        assert_eq!((absent.value, absent.mod_index), (None, None));
        assert_eq!(room, 2);
    }
}
