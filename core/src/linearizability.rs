//! A linearizability checker for a key-value history, in the style of Porcupine (Wing & Gong's
//! search with Lowe's memoisation). It lives in `core` so that the nemesis tests and the page
//! check histories with one copy of the rule, and its own tests show it rejects the anomalies
//! we look for.
//!
//! The history is split by key (a KV store is linearizable iff every key is, since operations
//! touch one key each), and each key is a register: `Put` sets it, `Delete` clears it, `Get`
//! must observe it, and `Cas` sets it only if it holds what the CAS expected, and must have
//! answered whether it did. An operation whose outcome is unknown (a write that timed out) is given an
//! infinite completion time: it may take effect at any point after its invocation, or never
//! (placed after everything else, it affects nothing). Reads with unknown outcome constrain
//! nothing and should be left out by the caller.
//!
//! An operation is a wire type: traces carry histories (the page's client, the nemesis runs).

use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Put(String),
    Delete,
    /// A read and the value it returned.
    Get(Option<String>),
    /// A compare-and-swap: if the register holds `expect` (`None`: absent), it becomes `new`
    /// (`None`: deleted). `succeeded` is what the reply said (`None` when there was none).
    Cas {
        expect: Option<String>,
        new: Option<String>,
        succeeded: Option<bool>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub client: u64,
    pub key: String,
    pub op: Op,
    /// Invocation time, in microseconds on one clock for the whole history (traces use the
    /// Unix epoch).
    pub call_us: u64,
    /// Completion time on the same clock; `None` when the outcome is unknown.
    pub ret_us: Option<u64>,
}

/// The first key found not linearizable, with its operations in invocation order.
#[derive(Debug)]
pub struct Violation {
    pub key: String,
    pub operations: Vec<Operation>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "key {:?} is not linearizable; its history:", self.key)?;
        for o in &self.operations {
            let ret = o.ret_us.map_or("unknown".to_string(), |r| r.to_string());
            writeln!(
                f,
                "  client {:>3} [{:>10} .. {:>10}] {:?}",
                o.client, o.call_us, ret, o.op
            )?;
        }
        Ok(())
    }
}

/// Checks every key; returns the keys that are not linearizable.
pub fn check(history: &[Operation]) -> Vec<Violation> {
    let mut by_key: BTreeMap<&str, Vec<Operation>> = BTreeMap::new();
    for o in history {
        by_key.entry(&o.key).or_default().push(o.clone());
    }
    let mut out = Vec::new();
    for (key, ops) in by_key {
        if !check_register(&ops) {
            let operations = (invocation_order(&ops).into_iter())
                .map(|i| ops[i].clone())
                .collect();
            out.push(Violation {
                key: key.to_string(),
                operations,
            });
        }
    }
    out
}

/// The smallest illegal fragment of one key's history: the indices into `ops`, in invocation
/// order, of operations that are already not linearizable together and from which no single
/// operation can be left out without making them linearizable; `None` when the history is
/// linearizable. A write whose value a remaining operation observed is never left out: without
/// it that read would be illegal on its own, which shows nothing.
///
/// The search first finds the shortest illegal prefix in invocation order (by bisection, each
/// prefix with the writes of the values it observed), then leaves out one operation at a time:
/// so a long history with an early anomaly costs a few checks of it and many of a short one.
pub fn illegal_fragment(ops: &[Operation]) -> Option<Vec<usize>> {
    if check_register(ops) {
        return None;
    }
    let order = invocation_order(ops);
    let legal = |kept: &[usize]| check_register(&picked(ops, kept, usize::MAX));
    let (mut legal_len, mut illegal_len) = (0, order.len());
    while legal_len + 1 < illegal_len {
        let mid = (legal_len + illegal_len) / 2;
        if legal(&with_writers(ops, &order, mid)) {
            legal_len = mid;
        } else {
            illegal_len = mid;
        }
    }
    let mut kept = with_writers(ops, &order, illegal_len);
    // Latest first: what follows a violation is what usually falls away.
    for at in (0..kept.len()).rev() {
        let candidate = kept[at];
        let observed = written(&ops[candidate].op).is_some_and(|v| {
            (kept.iter()).any(|&i| i != candidate && observed(&ops[i].op) == Some(v))
        });
        if !observed && !check_register(&picked(ops, &kept, candidate)) {
            kept.remove(at);
        }
    }
    Some(kept)
}

/// `events` in ascending order, by the standard heap's sort: each is distinct, so an unstable
/// sort is exact, and the heap costs the page's wasm 460 bytes where `sort_unstable` cost about
/// 3.5 KB (docs/performance-notes.md, section 30). The one sort of this module: the checker and
/// the fragment search sort the same type.
fn sorted(events: Vec<(u64, u8, usize)>) -> Vec<(u64, u8, usize)> {
    BinaryHeap::from(events).into_sorted_vec()
}

/// The indices of `ops` in invocation order, equal invocations in the order given.
fn invocation_order(ops: &[Operation]) -> Vec<usize> {
    let calls: Vec<(u64, u8, usize)> = (ops.iter().enumerate())
        .map(|(i, o)| (o.call_us, 0, i))
        .collect();
    sorted(calls).into_iter().map(|(_, _, i)| i).collect()
}

/// The first `len` operations in `order`, and the later ones that wrote a value they observed,
/// in invocation order.
fn with_writers(ops: &[Operation], order: &[usize], len: usize) -> Vec<usize> {
    let (prefix, rest) = order.split_at(len);
    let seen = |i: usize| {
        written(&ops[i].op).is_some_and(|v| prefix.iter().any(|&p| observed(&ops[p].op) == Some(v)))
    };
    let mut kept = prefix.to_vec();
    kept.extend(rest.iter().copied().filter(|&i| seen(i)));
    kept
}

/// The operations at `kept`, except `left_out`.
fn picked(ops: &[Operation], kept: &[usize], left_out: usize) -> Vec<Operation> {
    (kept.iter())
        .filter(|&&i| i != left_out)
        .map(|&i| ops[i].clone())
        .collect()
}

/// The value an operation may leave in the register.
fn written(op: &Op) -> Option<&String> {
    match op {
        Op::Put(v) => Some(v),
        Op::Cas { new, .. } => new.as_ref(),
        Op::Delete | Op::Get(_) => None,
    }
}

/// The value an operation says the register held.
fn observed(op: &Op) -> Option<&String> {
    match op {
        Op::Get(seen) => seen.as_ref(),
        Op::Cas {
            expect,
            succeeded: Some(true),
            ..
        } => expect.as_ref(),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Call,
    Return,
}

struct Entry {
    kind: Kind,
    op: usize,
    /// The matching call (for a return) or return (for a call).
    partner: usize,
    prev: usize,
    next: usize,
}

const NIL: usize = usize::MAX;

/// Whether one register's history is linearizable (initially absent).
pub fn check_register(ops: &[Operation]) -> bool {
    // Events in time order; at equal times calls come first, which treats touching
    // operations as concurrent (the lenient reading).
    let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
    for (i, o) in ops.iter().enumerate() {
        events.push((o.call_us, 0, i));
        events.push((o.ret_us.unwrap_or(u64::MAX), 1, i));
    }
    let events = sorted(events);
    // Entry 0 is a sentinel head.
    let mut entries: Vec<Entry> = vec![Entry {
        kind: Kind::Call,
        op: NIL,
        partner: NIL,
        prev: NIL,
        next: 1,
    }];
    let mut call_at = vec![NIL; ops.len()];
    for (n, &(_, kind, op)) in events.iter().enumerate() {
        let idx = n + 1;
        let kind = if kind == 0 { Kind::Call } else { Kind::Return };
        let partner = match kind {
            Kind::Call => {
                call_at[op] = idx;
                NIL
            }
            Kind::Return => call_at[op],
        };
        entries.push(Entry {
            kind,
            op,
            partner,
            prev: idx - 1,
            next: if n + 1 < events.len() { idx + 1 } else { NIL },
        });
        if let Kind::Return = kind {
            entries[partner].partner = idx;
        }
    }
    if events.is_empty() {
        entries[0].next = NIL;
    }

    fn lift(entries: &mut [Entry], call: usize) {
        let ret = entries[call].partner;
        for e in [call, ret] {
            let (p, n) = (entries[e].prev, entries[e].next);
            entries[p].next = n;
            if n != NIL {
                entries[n].prev = p;
            }
        }
    }
    fn unlift(entries: &mut [Entry], call: usize) {
        let ret = entries[call].partner;
        for e in [ret, call] {
            let (p, n) = (entries[e].prev, entries[e].next);
            entries[p].next = e;
            if n != NIL {
                entries[n].prev = e;
            }
        }
    }

    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: BTreeSet<(Vec<u64>, Option<String>)> = BTreeSet::new();
    let mut state: Option<String> = None;
    let mut stack: Vec<(usize, Option<String>)> = Vec::new();
    let mut entry = entries[0].next;
    while entries[0].next != NIL {
        if entry != NIL && matches!(entries[entry].kind, Kind::Call) {
            let op = entries[entry].op;
            let next_state = match &ops[op].op {
                Op::Put(v) => Some(Some(v.clone())),
                Op::Delete => Some(None),
                Op::Get(seen) => (*seen == state).then(|| state.clone()),
                Op::Cas {
                    expect,
                    new,
                    succeeded,
                } => {
                    let holds = *expect == state;
                    let answer_fits = succeeded.is_none_or(|s| s == holds);
                    answer_fits.then(|| if holds { new.clone() } else { state.clone() })
                }
            };
            if let Some(next_state) = next_state {
                let mut lin = linearized.clone();
                lin[op / 64] |= 1 << (op % 64);
                if cache.insert((lin.clone(), next_state.clone())) {
                    stack.push((entry, std::mem::replace(&mut state, next_state)));
                    linearized = lin;
                    lift(&mut entries, entry);
                    entry = entries[0].next;
                    continue;
                }
            }
            entry = entries[entry].next;
            continue;
        }
        // A return (or the end) reached before its operation was placed: undo the last choice.
        let Some((call, old)) = stack.pop() else {
            return false;
        };
        let op = entries[call].op;
        linearized[op / 64] &= !(1 << (op % 64));
        state = old;
        unlift(&mut entries, call);
        entry = entries[call].next;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: u64, o: Op, call_us: u64, ret_us: Option<u64>) -> Operation {
        Operation {
            client,
            key: "k".into(),
            op: o,
            call_us,
            ret_us,
        }
    }
    fn put(v: &str) -> Op {
        Op::Put(v.into())
    }
    fn get(v: Option<&str>) -> Op {
        Op::Get(v.map(str::to_string))
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let h = [
            op(1, put("a"), 0, Some(1)),
            op(1, get(Some("a")), 2, Some(3)),
            op(1, Op::Delete, 4, Some(5)),
            op(1, get(None), 6, Some(7)),
        ];
        assert!(check_register(&h));
    }

    #[test]
    fn concurrent_read_may_see_either_value() {
        for seen in [None, Some("a")] {
            let h = [op(1, put("a"), 0, Some(10)), op(2, get(seen), 1, Some(9))];
            assert!(check_register(&h), "{seen:?}");
        }
    }

    #[test]
    fn stale_read_is_rejected() {
        let h = [
            op(1, put("1"), 0, Some(1)),
            op(1, put("2"), 2, Some(3)),
            op(2, get(Some("1")), 4, Some(5)),
        ];
        assert!(!check_register(&h));
    }

    #[test]
    fn lost_write_is_rejected() {
        let h = [op(1, put("a"), 0, Some(1)), op(2, get(None), 2, Some(3))];
        assert!(!check_register(&h));
    }

    #[test]
    fn indeterminate_write_may_or_may_not_happen() {
        let never_seen = [op(1, put("a"), 0, None), op(2, get(None), 5, Some(6))];
        assert!(check_register(&never_seen));
        let seen_later = [
            op(1, put("a"), 0, None),
            op(2, get(None), 1, Some(2)),
            op(2, get(Some("a")), 5, Some(6)),
        ];
        assert!(check_register(&seen_later));
    }

    #[test]
    fn indeterminate_write_that_is_read_and_then_vanishes_is_rejected() {
        let h = [
            op(1, put("a"), 0, None),
            op(2, get(Some("a")), 5, Some(6)),
            op(2, get(None), 7, Some(8)),
        ];
        assert!(!check_register(&h));
    }

    #[test]
    fn reads_that_go_back_in_time_are_rejected() {
        // Two writes overlap; one reader sees b then a, another sees a then b: no single order.
        let h = [
            op(1, put("a"), 0, Some(10)),
            op(2, put("b"), 0, Some(10)),
            op(3, get(Some("a")), 11, Some(12)),
            op(4, get(Some("b")), 13, Some(14)),
        ];
        assert!(!check_register(&h));
    }

    fn cas(expect: Option<&str>, new: &str, succeeded: Option<bool>) -> Op {
        Op::Cas {
            expect: expect.map(str::to_string),
            new: Some(new.into()),
            succeeded,
        }
    }

    #[test]
    fn a_compare_and_swap_must_answer_what_the_register_held() {
        let ok = [
            op(1, put("a"), 0, Some(1)),
            op(1, cas(Some("a"), "b", Some(true)), 2, Some(3)),
            op(2, cas(Some("a"), "c", Some(false)), 4, Some(5)),
            op(2, get(Some("b")), 6, Some(7)),
        ];
        assert!(check_register(&ok));
        let succeeded_on_a_stale_value = [
            op(1, put("a"), 0, Some(1)),
            op(1, put("x"), 2, Some(3)),
            op(2, cas(Some("a"), "b", Some(true)), 4, Some(5)),
        ];
        assert!(!check_register(&succeeded_on_a_stale_value));
        let failed_although_it_held = [
            op(1, put("a"), 0, Some(1)),
            op(2, cas(Some("a"), "b", Some(false)), 4, Some(5)),
        ];
        assert!(!check_register(&failed_although_it_held));
    }

    #[test]
    fn two_concurrent_swaps_from_one_value_cannot_both_succeed() {
        let h = [
            op(1, put("a"), 0, Some(1)),
            op(2, cas(Some("a"), "b", Some(true)), 2, Some(10)),
            op(3, cas(Some("a"), "c", Some(true)), 2, Some(10)),
        ];
        assert!(!check_register(&h));
        // With one of them unanswered, it may have failed (or happened after the other).
        let unknown = [
            op(1, put("a"), 0, Some(1)),
            op(2, cas(Some("a"), "b", Some(true)), 2, Some(10)),
            op(3, cas(Some("a"), "c", None), 2, None),
            op(4, get(Some("b")), 11, Some(12)),
        ];
        assert!(check_register(&unknown));
    }

    #[test]
    fn check_reports_only_the_broken_key() {
        let mut h = vec![op(1, put("a"), 0, Some(1)), op(2, get(None), 2, Some(3))];
        h.push(Operation {
            client: 3,
            key: "other".into(),
            op: put("x"),
            call_us: 0,
            ret_us: Some(1),
        });
        let v = check(&h);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].key, "k");
        assert!(v[0].to_string().contains("not linearizable"));
    }

    #[test]
    fn larger_concurrent_history_is_checked_quickly() {
        // 8 clients, 40 rounds of 8 overlapping writes, each round followed by a read that
        // sees one of them: linearizable, and the memoised search must stay fast.
        let mut h = Vec::new();
        let mut t = 0;
        for round in 0..40 {
            for c in 0..8 {
                h.push(op(c, put(&format!("{round}-{c}")), t, Some(t + 20)));
            }
            t += 21;
            h.push(op(
                9,
                get(Some(&format!("{round}-7"))),
                t + 100,
                Some(t + 101),
            ));
            t += 102;
        }
        assert!(check_register(&h));
    }

    #[test]
    fn the_illegal_fragment_keeps_what_explains_a_stale_read() {
        let h = [
            op(1, put("1"), 0, Some(1)),
            op(3, put("x"), 0, None),
            op(1, put("2"), 2, Some(3)),
            op(2, get(Some("1")), 4, Some(5)),
            op(2, get(Some("2")), 6, Some(7)),
        ];
        // The later read and the write nobody saw are not part of the anomaly.
        assert_eq!(illegal_fragment(&h), Some(vec![0, 2, 3]));
        assert_eq!(illegal_fragment(&h[..3]), None);
    }

    #[test]
    fn the_illegal_fragment_of_an_early_anomaly_in_a_long_history_is_found_quickly() {
        let mut h = vec![
            op(1, put("1"), 0, Some(1)),
            op(1, put("2"), 2, Some(3)),
            op(2, get(Some("1")), 4, Some(5)),
        ];
        for n in 0..3000u64 {
            let t = 10 + n * 4;
            h.push(op(3, put(&format!("v{n}")), t, Some(t + 1)));
            h.push(op(4, get(Some(&format!("v{n}"))), t + 2, Some(t + 3)));
        }
        let started = std::time::Instant::now();
        assert_eq!(illegal_fragment(&h), Some(vec![0, 1, 2]));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn the_illegal_fragment_of_a_lost_write_is_the_write_and_the_read() {
        let h = [
            op(1, put("a"), 0, Some(1)),
            op(2, get(Some("a")), 2, Some(3)),
            op(2, get(None), 4, Some(5)),
        ];
        assert_eq!(illegal_fragment(&h), Some(vec![0, 2]));
    }
}
