//! Client sessions: the one rule that makes every write apply exactly once.
//!
//! OmniPaxos may lose a proposal, so clients retry and nodes re-propose after a leader change;
//! one request can therefore be decided several times, and the copies of pipelined requests can
//! be decided in any order. The state machine recognises copies by request identity
//! (`client`, `seq`) and this module decides, for each decided write, whether it applies.
//!
//! The rule, applied identically by every replica, in log order:
//!
//! - A session is opened by a decided [`KVCommand::OpenSession`]; its id is that entry's log
//!   index, so an id is never handed out twice, and a session that expired can never come back
//!   (not even through a late copy of the entry that opened it: that copy opens a new id).
//! - Per session the state keeps the outcome (log index and a digest of the command) of every
//!   applied write whose `seq` is at or above the session's `floor`. A copy of an applied write
//!   is answered with the first copy's index and changes nothing, whatever order the copies are
//!   decided in. The same `seq` with a different command is refused.
//! - The client moves the floor: every write carries `forget_below`, its promise that it will
//!   never send a lower `seq` again (it has an answer for each). Outcomes below the floor are
//!   forgotten, and a write below it is refused, never silently skipped.
//! - A write more than [`SESSION_WINDOW`] above the floor (the floor it asks for included) is
//!   refused, so one session holds at most that many outcomes, and no request (the session's
//!   owner's or a stranger's who learned its id) moves the floor by more than
//!   [`FLOOR_STEP_MAX`].
//! - At most [`SESSIONS_MAX`] sessions live. Opening one more evicts the least recently used
//!   quarter, by the log index of their last write: a rule of log positions, never of clocks.
//!   A write to a session that does not exist is refused with "session expired".
//!
//! A transaction ([`KVCommand::Txn`]) is a write like a put: admitted by the same rule, then
//! applied all or nothing by its guards, checked against the state it is applied to. Its
//! outcome records whether the guards failed, so a copy answers as the first did even when
//! the guards would hold by the time the copy is decided. Every write sets its keys'
//! `mod_index` to its entry's index ([`Versioned`]).
//!
//! Reads are not recorded: a copy of a linearizable read reads again at its own log position,
//! which lies between the request's invocation and its reply, so every answer is linearizable.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::command::{KVCommand, RequestId};
use crate::txn::{Found, FOUND_VALUE_BYTES_MAX};
pub use crate::versioned::Versioned;

/// Outcomes a session keeps above its floor; also the most a client may pipeline.
pub const SESSION_WINDOW: u64 = 1024;
/// How far one request may move its session's floor. A client's floor runs ahead of its
/// session's by up to a window (the session's moves only with decided writes), so twice the
/// window lets every request of a client that follows the protocol through, and still bounds
/// what a stranger who learned the session id can make it forget per request. A client whose
/// floor ran further ahead (many writes given up as unknown and never decided) is told its
/// session expired, and opens another.
pub const FLOOR_STEP_MAX: u64 = 2 * SESSION_WINDOW;
/// Sessions the state keeps; opening one more evicts the least recently used quarter.
pub const SESSIONS_MAX: usize = 4096;

/// Test-only: the rule this module replaced, which kept only the highest applied `seq` per
/// client and skipped (and acknowledged) any lower one. Tests switch it on to show that the
/// simulation and the nemesis catch an acknowledged write that was never applied.
static UNSAFE_HIGHEST_SEQ_RULE: AtomicBool = AtomicBool::new(false);

/// Switches the broken rule on or off for this process. Never use it outside tests.
pub fn set_unsafe_highest_seq_rule(on: bool) {
    UNSAFE_HIGHEST_SEQ_RULE.store(on, Ordering::Relaxed);
}

/// The first application of a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliedWrite {
    /// The request's `seq` in its session.
    pub seq: u64,
    /// Log index at which it was applied.
    pub index: u64,
    /// [`KVCommand::digest`] of the command, to refuse a different command under the same id.
    pub digest: u64,
    /// A transaction whose guards failed: it changed nothing, and its copies say so too.
    #[serde(default)]
    pub guards_failed: bool,
}

/// One client's session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// Writes below this `seq` are forgotten: the client has promised not to send them again.
    pub floor: u64,
    /// Log index of the last entry that used the session: eviction picks the oldest.
    pub last_index: u64,
    /// Applied writes at or above `floor`, in `seq` order. A sorted vector, not a map: it is
    /// small, and the visualizer's wasm pays for every map type it instantiates.
    pub applied: Vec<AppliedWrite>,
}

impl Session {
    /// The applied write with this `seq`, if it is remembered.
    pub fn applied(&self, seq: u64) -> Option<&AppliedWrite> {
        self.position(seq).ok().map(|i| &self.applied[i])
    }

    fn position(&self, seq: u64) -> Result<usize, usize> {
        self.applied.binary_search_by_key(&seq, |a| a.seq)
    }
}

/// Every live session, by id. Part of the replicated state: in the KV table and in snapshots.
///
/// A vector sorted by id rather than a map: ids are log indices, so new sessions go at the end,
/// and the visualizer's wasm pays for every map type it instantiates. On the wire it is a JSON
/// object whose keys must be in increasing order (as it is always written), so that both
/// decoders can read it without sorting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sessions(Vec<(u64, Session)>);

/// Why a decided write was not applied. Each is answered to the client; none changes anything.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionRefusal {
    #[error("session {client} does not exist (never opened, or expired); open a new session")]
    Expired { client: u64 },
    #[error("request {seq} of session {client} is below its floor {floor}: its outcome was forgotten; open a new session")]
    Forgotten { client: u64, seq: u64, floor: u64 },
    #[error(
        "request {seq} of session {client} is more than {SESSION_WINDOW} above its floor {floor}"
    )]
    BeyondWindow { client: u64, seq: u64, floor: u64 },
    #[error("request {seq} of session {client} was already used for a different command (applied at index {index})")]
    SeqReused { client: u64, seq: u64, index: u64 },
}

/// What the rule says about one decided write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// New: apply it (the session has recorded it).
    Apply,
    /// A copy of a write first applied at `index`: skip it, answer as the first copy was.
    Duplicate {
        index: u64,
        guards_failed: bool,
    },
    Refused(SessionRefusal),
}

impl Sessions {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, client: u64) -> Option<&Session> {
        self.position(client).ok().map(|i| &self.0[i].1)
    }

    fn get_mut(&mut self, client: u64) -> Option<&mut Session> {
        self.position(client).ok().map(|i| &mut self.0[i].1)
    }

    fn position(&self, client: u64) -> Result<usize, usize> {
        self.0.binary_search_by_key(&client, |(c, _)| *c)
    }

    /// The sessions in id order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Session)> {
        self.0.iter().map(|(c, s)| (*c, s))
    }

    /// Puts `session` under `client`, replacing one there (for loading stored sessions).
    pub fn insert(&mut self, client: u64, session: Session) {
        match self.position(client) {
            Ok(i) => self.0[i].1 = session,
            Err(i) => self.0.insert(i, (client, session)),
        }
    }

    /// Removes the session of `client` (for replaying stored changes, where an eviction shows
    /// as a removal).
    pub fn remove(&mut self, client: u64) -> Option<Session> {
        self.position(client).ok().map(|i| self.0.remove(i).1)
    }

    /// Opens the session whose id is `index`, the log index of the entry that opens it.
    /// Returns the ids evicted to make room.
    pub fn open(&mut self, index: u64) -> Vec<u64> {
        self.insert(
            index,
            Session {
                last_index: index,
                ..Session::default()
            },
        );
        if self.0.len() <= SESSIONS_MAX {
            return Vec::new();
        }
        // Evict a quarter at once, so the scans below cost O(n) per opened session amortised.
        // No two sessions share a `last_index` (one entry touches one session), so the order
        // is total and every replica evicts the same ones.
        let evict = self.0.len() - SESSIONS_MAX * 3 / 4;
        let mut evicted = Vec::with_capacity(evict);
        for _ in 0..evict {
            let oldest = (0..self.0.len())
                .min_by_key(|&i| self.0[i].1.last_index)
                .expect("more than SESSIONS_MAX sessions");
            evicted.push(self.0.remove(oldest).0);
        }
        evicted
    }

    /// Decides whether the write `id` (with its client's `forget_below` and the command's
    /// `digest`), decided at `index`, applies, and records it if so.
    pub fn admit(&mut self, id: RequestId, forget_below: u64, digest: u64, index: u64) -> Verdict {
        let Some(s) = self.get_mut(id.client) else {
            return Verdict::Refused(SessionRefusal::Expired { client: id.client });
        };
        let (client, seq, floor) = (id.client, id.seq, s.floor);
        if seq < floor {
            return Verdict::Refused(SessionRefusal::Forgotten { client, seq, floor });
        }
        // The floor this request asks for. The session's floor lags the client's (it moves
        // only with decided requests), so the window is measured from it; a request can only
        // forget what is below itself, and moves the floor by at most `FLOOR_STEP_MAX`.
        let proposed = floor.max(forget_below.min(seq));
        let below_highest = s.applied.last().filter(|a| a.seq > seq).map(|a| a.index);
        let verdict = match s.applied(seq) {
            _ if UNSAFE_HIGHEST_SEQ_RULE.load(Ordering::Relaxed) && below_highest.is_some() => {
                Verdict::Duplicate {
                    index: below_highest.expect("checked"),
                    guards_failed: false,
                }
            }
            Some(first) if first.digest == digest => Verdict::Duplicate {
                index: first.index,
                guards_failed: first.guards_failed,
            },
            Some(first) => {
                let index = first.index;
                return Verdict::Refused(SessionRefusal::SeqReused { client, seq, index });
            }
            None if seq - proposed >= SESSION_WINDOW || proposed - floor > FLOOR_STEP_MAX => {
                return Verdict::Refused(SessionRefusal::BeyondWindow { client, seq, floor });
            }
            None => {
                let at = s.position(seq).expect_err("not applied");
                let guards_failed = false;
                let write = AppliedWrite {
                    seq,
                    index,
                    digest,
                    guards_failed,
                };
                s.applied.insert(at, write);
                Verdict::Apply
            }
        };
        s.last_index = index;
        if proposed > floor && proposed - floor <= FLOOR_STEP_MAX {
            s.floor = proposed;
            let forgotten = s.position(proposed).unwrap_or_else(|i| i);
            s.applied.drain(..forgotten);
        }
        verdict
    }

    /// Records that the write `id`, just admitted, was a transaction whose guards failed, so
    /// that its copies are answered the same way.
    fn guards_failed(&mut self, id: RequestId) {
        let write = self.get_mut(id.client).and_then(|s| {
            let i = s.position(id.seq).ok()?;
            Some(&mut s.applied[i])
        });
        if let Some(w) = write {
            w.guards_failed = true;
        }
    }
}

/// What applying one decided command did to the state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A write took effect (a transaction: all its writes).
    Written,
    /// A transaction whose guards did not all hold: nothing was written. `found` is what each
    /// failed guard's key held.
    GuardsFailed {
        found: Vec<Found>,
    },
    /// A copy of a write first applied at `index` (a transaction that failed there if
    /// `guards_failed`).
    Duplicate {
        index: u64,
        guards_failed: bool,
    },
    Refused(SessionRefusal),
    /// A linearizable read, to be answered with the key's value at this point of the log.
    Read,
    /// A session was opened with this id (the entry's index); `evicted` made room for it.
    Opened {
        evicted: Vec<u64>,
    },
}

/// The key-value side of a state machine, as [`apply`] needs it.
pub trait KvState {
    /// What `key` holds as of the commands applied so far (`None`: absent).
    fn read(&self, key: &str) -> Option<Versioned>;
    /// Sets (`Some`) or deletes (`None`) a key, by the command applied at `index`.
    fn write(&mut self, key: &str, value: Option<&str>, index: u64);
}

/// Applies the command decided at `index`: the state machine every replica, snapshot and view
/// runs, so there is one copy of the rule.
pub fn apply(
    sessions: &mut Sessions,
    kv: &mut impl KvState,
    cmd: &KVCommand,
    index: u64,
) -> Applied {
    let (id, forget_below) = match cmd {
        KVCommand::OpenSession { .. } => {
            return Applied::Opened {
                evicted: sessions.open(index),
            }
        }
        KVCommand::Get { .. } | KVCommand::Scan { .. } => return Applied::Read,
        KVCommand::Put {
            id, forget_below, ..
        }
        | KVCommand::Delete {
            id, forget_below, ..
        }
        | KVCommand::Txn {
            id, forget_below, ..
        } => (*id, *forget_below),
    };
    match sessions.admit(id, forget_below, cmd.digest(), index) {
        Verdict::Apply => {
            // Guards are checked against the state before any of the entry's writes.
            let found = failed_guards(kv, cmd);
            if !found.is_empty() {
                sessions.guards_failed(id);
                return Applied::GuardsFailed { found };
            }
            for (key, value) in cmd.writes() {
                kv.write(key, value, index);
            }
            Applied::Written
        }
        Verdict::Duplicate {
            index,
            guards_failed,
        } => Applied::Duplicate {
            index,
            guards_failed,
        },
        Verdict::Refused(r) => Applied::Refused(r),
    }
}

/// What the keys of `cmd`'s failing guards hold, in guard order (empty: every guard holds).
fn failed_guards(kv: &impl KvState, cmd: &KVCommand) -> Vec<Found> {
    let KVCommand::Txn { guards, .. } = cmd else {
        return Vec::new();
    };
    let mut room = FOUND_VALUE_BYTES_MAX;
    guards
        .iter()
        .filter_map(|g| {
            let current = kv.read(g.key());
            (!g.holds(current.as_ref())).then(|| Found::of(g.key(), current, &mut room))
        })
        .collect()
}

const SESSIONS_OUT_OF_ORDER: &str = "session ids in increasing order";

impl Serialize for Sessions {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (client, session) in &self.0 {
            map.serialize_entry(client, session)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Sessions {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Sessions;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of sessions by id")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Sessions, A::Error> {
                let mut out: Vec<(u64, Session)> = Vec::new();
                while let Some((client, session)) = map.next_entry::<u64, Session>()? {
                    if out.last().is_some_and(|(last, _)| *last >= client) {
                        return Err(serde::de::Error::custom(SESSIONS_OUT_OF_ORDER));
                    }
                    out.push((client, session));
                }
                Ok(Sessions(out))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(client: u64, seq: u64) -> RequestId {
        RequestId { client, seq }
    }

    #[test]
    fn copies_in_any_order_apply_once_and_answer_the_first_index() {
        let mut s = Sessions::default();
        s.open(7);
        assert_eq!(s.admit(id(7, 2), 0, 22, 10), Verdict::Apply);
        assert_eq!(
            s.admit(id(7, 1), 0, 11, 11),
            Verdict::Apply,
            "a lower seq decided later still applies"
        );
        assert_eq!(
            s.admit(id(7, 2), 0, 22, 12),
            Verdict::Duplicate {
                index: 10,
                guards_failed: false
            }
        );
        assert_eq!(
            s.admit(id(7, 1), 0, 11, 13),
            Verdict::Duplicate {
                index: 11,
                guards_failed: false
            }
        );
    }

    #[test]
    fn a_reused_seq_with_another_command_is_refused() {
        let mut s = Sessions::default();
        s.open(1);
        assert_eq!(s.admit(id(1, 1), 0, 5, 2), Verdict::Apply);
        assert!(matches!(
            s.admit(id(1, 1), 0, 6, 3),
            Verdict::Refused(SessionRefusal::SeqReused { index: 2, .. })
        ));
    }

    #[test]
    fn the_floor_forgets_and_refuses_below_it() {
        let mut s = Sessions::default();
        s.open(1);
        for seq in 0..5 {
            assert_eq!(s.admit(id(1, seq), 0, seq, 10 + seq), Verdict::Apply);
        }
        assert_eq!(s.admit(id(1, 5), 4, 5, 20), Verdict::Apply);
        assert_eq!(s.get(1).unwrap().floor, 4);
        assert_eq!(s.get(1).unwrap().applied.len(), 2);
        assert_eq!(s.get(1).unwrap().applied[0].seq, 4);
        assert!(matches!(
            s.admit(id(1, 3), 4, 3, 21),
            Verdict::Refused(SessionRefusal::Forgotten { .. })
        ));
        // A request cannot forget itself.
        assert_eq!(s.admit(id(1, 6), 100, 6, 22), Verdict::Apply);
        assert_eq!(s.get(1).unwrap().floor, 6);
    }

    #[test]
    fn a_floor_that_lags_the_clients_still_admits_its_next_write() {
        let mut s = Sessions::default();
        s.open(1);
        // Writes 0..=1023 decided with a floor of 0: the session's floor is still 0.
        for seq in 0..SESSION_WINDOW {
            assert_eq!(s.admit(id(1, seq), 0, seq, 10 + seq), Verdict::Apply);
        }
        // The client has every answer below 1000 and sends 2000 (999 above its own floor).
        assert_eq!(s.admit(id(1, 2000), 1000, 2000, 5000), Verdict::Apply);
        assert_eq!(s.get(1).unwrap().floor, 1000);
        assert!(s.get(1).unwrap().applied.iter().all(|a| a.seq >= 1000));
    }

    #[test]
    fn nobody_moves_the_floor_beyond_the_window() {
        let mut s = Sessions::default();
        s.open(1);
        assert_eq!(s.admit(id(1, 0), 0, 0, 2), Verdict::Apply);
        assert!(matches!(
            s.admit(id(1, u64::MAX), u64::MAX, 9, 3),
            Verdict::Refused(SessionRefusal::BeyondWindow { .. })
        ));
        assert_eq!(s.get(1).unwrap().floor, 0, "a refused write moves nothing");
        assert_eq!(
            s.admit(id(1, 1), 0, 1, 4),
            Verdict::Apply,
            "the owner's next write still applies"
        );
    }

    #[test]
    fn unknown_sessions_are_refused_and_eviction_is_least_recently_used() {
        let mut s = Sessions::default();
        assert!(matches!(
            s.admit(id(3, 0), 0, 0, 1),
            Verdict::Refused(SessionRefusal::Expired { client: 3 })
        ));
        for i in 0..SESSIONS_MAX as u64 {
            assert!(s.open(i).is_empty());
        }
        // Session 0 was used last; sessions 1.. are the oldest.
        assert_eq!(s.admit(id(0, 0), 0, 0, 100_000), Verdict::Apply);
        let evicted = s.open(100_001);
        assert_eq!(evicted.len(), SESSIONS_MAX + 1 - SESSIONS_MAX * 3 / 4);
        assert!(!evicted.contains(&0) && !evicted.contains(&100_001));
        assert_eq!(evicted[0], 1);
        assert!(s.len() <= SESSIONS_MAX);
        assert!(matches!(
            s.admit(id(1, 1), 0, 1, 100_002),
            Verdict::Refused(SessionRefusal::Expired { .. })
        ));
    }

    fn cas(seq: u64, expect: &str, new: &str) -> KVCommand {
        KVCommand::Txn {
            id: id(0, seq),
            guards: vec![crate::txn::Guard::Value {
                key: "k".into(),
                value: expect.into(),
            }],
            ops: vec![crate::txn::TxnOp::Put {
                key: "k".into(),
                value: new.into(),
            }],
            forget_below: 0,
        }
    }

    #[test]
    fn a_transaction_writes_all_or_nothing_and_its_copies_answer_like_it() {
        let mut s = Sessions::default();
        let mut kv = std::collections::BTreeMap::<String, Versioned>::new();
        apply(&mut s, &mut kv, &KVCommand::OpenSession { id: id(9, 0) }, 0);
        kv.write("k", Some("a"), 1);
        assert_eq!(
            apply(&mut s, &mut kv, &cas(0, "a", "b"), 2),
            Applied::Written
        );
        assert_eq!(kv["k"].mod_index, 2, "the write carries its entry's index");
        let failed = apply(&mut s, &mut kv, &cas(1, "a", "c"), 3);
        let found = Found {
            key: "k".into(),
            mod_index: Some(2),
            value: Some("b".into()),
        };
        assert_eq!(failed, Applied::GuardsFailed { found: vec![found] });
        assert_eq!(kv["k"].value, "b", "a failed guard writes nothing");
        // Copies, even once the value would make the guard hold, answer as the first did.
        kv.write("k", Some("a"), 4);
        assert_eq!(
            apply(&mut s, &mut kv, &cas(1, "a", "c"), 5),
            Applied::Duplicate {
                index: 3,
                guards_failed: true
            }
        );
        assert_eq!(
            apply(&mut s, &mut kv, &cas(0, "a", "b"), 6),
            Applied::Duplicate {
                index: 2,
                guards_failed: false
            }
        );
        assert_eq!(kv["k"].value, "a");
    }
}
