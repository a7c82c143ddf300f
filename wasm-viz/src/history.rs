//! The history of client operations and the faults around them, drawn by the History panel
//! and checked for linearizability with `omnikv_core::linearizability` (the nemesis's copy of
//! the rule). Everything is derived from the recorded inputs, so a trace shows the history it
//! was recorded with.

use omnikv_core::{
    client::{ClientOp, ClientResponse},
    control::{ClusterView, ProcessState},
    linearizability::{illegal_fragment, Op, Operation},
    txn::{Guard, TxnOp},
};

use crate::{control::SCENARIO_PATH_PREFIX, record::Record};

/// One key's operations, in invocation order, and the verdict on them.
#[derive(Debug, PartialEq)]
pub struct KeyHistory {
    pub key: String,
    pub ops: Vec<Operation>,
    /// Indices into `ops` of the smallest illegal fragment; `None` when linearizable.
    pub fragment: Option<Vec<usize>>,
}

/// A fault in force from `from_ms` to `to_ms` (`None`: still at the end of the recording).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultBand {
    pub what: String,
    pub from_ms: u64,
    pub to_ms: Option<u64>,
}

#[derive(Debug, Default, PartialEq)]
pub struct History {
    /// Keys in the order of their first operation.
    pub keys: Vec<KeyHistory>,
    pub faults: Vec<FaultBand>,
}

impl History {
    /// The history the records hold, each key checked.
    pub fn of<'a>(records: impl IntoIterator<Item = &'a Record>) -> History {
        let mut history = History::default();
        let mut faults = FaultTracker::default();
        for record in records {
            match record {
                Record::Operation { operation, .. } => history.add(operation.clone()),
                Record::Cluster { at_ms, view } => faults.cluster(*at_ms, view),
                Record::Control { at_ms, path } => faults.control(*at_ms, path),
                _ => {}
            }
        }
        history.faults = faults.finish();
        for key in &mut history.keys {
            key.fragment = check_key(&key.ops);
        }
        history
    }

    /// Adds an operation in invocation order (records come in completion order). Inserting
    /// keeps a sort's code out of the wasm.
    fn add(&mut self, operation: Operation) {
        match self.keys.iter_mut().find(|k| k.key == operation.key) {
            Some(k) => {
                let at = (k.ops).partition_point(|o| o.call_us <= operation.call_us);
                k.ops.insert(at, operation);
            }
            None => self.keys.push(KeyHistory {
                key: operation.key.clone(),
                ops: vec![operation],
                fragment: None,
            }),
        }
    }

    /// The first key that is not linearizable.
    pub fn violation(&self) -> Option<&KeyHistory> {
        self.keys.iter().find(|k| k.fragment.is_some())
    }

    pub fn operations(&self) -> usize {
        self.keys.iter().map(|k| k.ops.len()).sum()
    }

    /// The span of time worth drawing, in microseconds (inclusive): the first illegal
    /// fragment's, or that of the latest `ops_max` invocations; `None` for everything. A run
    /// of thousands of operations drawn whole is neither readable nor quick to draw.
    pub fn focus(&self, ops_max: usize) -> Option<(u64, u64)> {
        let all = || self.keys.iter().flat_map(|k| k.ops.iter());
        if let Some(k) = self.violation() {
            let fragment = k.fragment.as_deref().unwrap_or_default();
            let ops = || fragment.iter().map(|&i| &k.ops[i]);
            let from = ops().map(|o| o.call_us).min()?;
            let to = ops().map(|o| o.ret_us.unwrap_or(o.call_us)).max()?;
            return Some((from, to));
        }
        if self.operations() <= ops_max {
            return None;
        }
        // The latest start that still leaves `ops_max` invocations at or after it, by
        // bisection over time (no sort of every operation).
        let (mut early, mut late) = (0u64, all().map(|o| o.call_us).max()?);
        while early < late {
            let mid = early + (late - early).div_ceil(2);
            if all().filter(|o| o.call_us >= mid).count() >= ops_max {
                early = mid;
            } else {
                late = mid - 1;
            }
        }
        Some((early, u64::MAX))
    }
}

/// Whether an operation overlaps the span `(from, to)` in microseconds.
pub fn overlaps(o: &Operation, (from, to): (u64, u64)) -> bool {
    o.call_us <= to && o.ret_us.is_none_or(|r| r >= from)
}

/// A bar's short text: what the operation did and what it answered.
pub fn label(op: &Op) -> String {
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "absent".into());
    match op {
        Op::Put(v) => format!("put {v}"),
        Op::Delete => "delete".into(),
        Op::Get(seen) => format!("get → {}", shown(seen)),
        Op::Cas {
            expect,
            new,
            succeeded,
        } => {
            let answer = match succeeded {
                Some(true) => " ✓",
                Some(false) => " ✗",
                None => " ?",
            };
            format!("cas {} → {}{answer}", shown(expect), shown(new))
        }
    }
}

/// Checks one key. A value read that no operation in the history wrote was written before the
/// recording began or by another client: it is given a writer of unknown time, so that only
/// what the history itself shows can make a key fail.
fn check_key(ops: &[Operation]) -> Option<Vec<usize>> {
    let mut checked = ops.to_vec();
    for o in ops {
        let Op::Get(Some(seen)) = &o.op else { continue };
        let written = |w: &Operation| match &w.op {
            Op::Put(v) => v == seen,
            Op::Cas { new, .. } => new.as_ref() == Some(seen),
            _ => false,
        };
        if !checked.iter().any(written) {
            checked.push(Operation {
                client: 0,
                key: o.key.clone(),
                op: Op::Put(seen.clone()),
                call_us: 0,
                ret_us: None,
            });
        }
    }
    let fragment = illegal_fragment(&checked)?;
    Some(fragment.into_iter().filter(|&i| i < ops.len()).collect())
}

/// The history operation a page request amounts to, or `None` when it constrains nothing: a
/// scan (many keys), a read without an answer, a transaction that is not a compare-and-swap of
/// one key by value. A write without an acknowledgement has an unknown outcome.
pub fn operation_of(
    client: u64,
    op: &ClientOp,
    reply: Option<&ClientResponse>,
    call_us: u64,
    ret_us: u64,
) -> Option<Operation> {
    let ok = match reply {
        Some(ClientResponse::Ok { value, txn, .. }) => Some((value, txn)),
        _ => None,
    };
    let (key, op) = match op {
        ClientOp::Put { key, value } => (key.clone(), Op::Put(value.clone())),
        ClientOp::Delete { key } => (key.clone(), Op::Delete),
        ClientOp::Get { key, .. } => (key.clone(), Op::Get(ok?.0.clone())),
        ClientOp::Txn { guards, ops } => match (guards.as_slice(), ops.as_slice()) {
            ([guard], [write]) if guard.key() == write.key() => {
                let expect = match guard {
                    Guard::Value { value, .. } => Some(value.clone()),
                    Guard::Absent { .. } => None,
                    Guard::ModIndex { .. } => return None,
                };
                let new = match write {
                    TxnOp::Put { value, .. } => Some(value.clone()),
                    TxnOp::Delete { .. } => None,
                };
                let succeeded = ok.and_then(|(_, t)| t.as_ref()).map(|t| t.succeeded);
                let cas = Op::Cas {
                    expect,
                    new,
                    succeeded,
                };
                (guard.key().to_owned(), cas)
            }
            _ => return None,
        },
        ClientOp::Scan { .. } | ClientOp::OpenSession => return None,
    };
    Some(Operation {
        client,
        key,
        op,
        call_us,
        ret_us: ok.map(|_| ret_us),
    })
}

/// Opens a band when a fault appears in the launcher's view and closes it when it goes.
#[derive(Default)]
struct FaultTracker {
    open: Vec<FaultBand>,
    closed: Vec<FaultBand>,
}

impl FaultTracker {
    fn cluster(&mut self, at_ms: u64, view: &ClusterView) {
        let mut now: Vec<String> = Vec::new();
        for n in &view.nodes {
            match n.state {
                ProcessState::Down => now.push(format!("node {} down", n.id)),
                ProcessState::Paused => now.push(format!("node {} paused", n.id)),
                _ => {}
            }
        }
        for l in &view.links {
            if !l.connected {
                now.push(format!("link {}–{} cut", l.a, l.b));
            }
            for h in &l.held {
                now.push(format!("link {}→{} held", h.from, h.to));
            }
        }
        // Scenarios are not part of the view: they end at the next one (or a heal).
        self.close(at_ms, |what| {
            !what.starts_with("scenario ") && !now.iter().any(|n| n == what)
        });
        for what in now {
            self.begin(at_ms, what);
        }
    }

    fn control(&mut self, at_ms: u64, path: &str) {
        let Some(name) = path.strip_prefix(SCENARIO_PATH_PREFIX) else {
            return;
        };
        self.close(at_ms, |what| what.starts_with("scenario "));
        if name != "heal" {
            self.begin(at_ms, format!("scenario {name}"));
        }
    }

    fn begin(&mut self, at_ms: u64, what: String) {
        if !self.open.iter().any(|b| b.what == what) {
            self.open.push(FaultBand {
                what,
                from_ms: at_ms,
                to_ms: None,
            });
        }
    }

    fn close(&mut self, at_ms: u64, ends: impl Fn(&str) -> bool) {
        let (ended, open) = std::mem::take(&mut self.open)
            .into_iter()
            .partition(|b| ends(&b.what));
        self.open = open;
        for mut b in ended {
            b.to_ms = Some(at_ms);
            self.keep(b);
        }
    }

    /// Keeps a band in order of its start.
    fn keep(&mut self, band: FaultBand) {
        let at = (self.closed).partition_point(|b| b.from_ms <= band.from_ms);
        self.closed.insert(at, band);
    }

    fn finish(mut self) -> Vec<FaultBand> {
        for band in std::mem::take(&mut self.open) {
            self.keep(band);
        }
        self.closed
    }
}

#[cfg(test)]
mod tests {
    use omnikv_core::{
        client::ReadMode,
        control::{HeldView, LinkView, NodeView},
        txn::TxnResult,
        RequestId,
    };

    use super::*;

    fn ok(value: Option<&str>) -> ClientResponse {
        ClientResponse::Ok {
            id: RequestId { client: 1, seq: 1 },
            value: value.map(str::to_owned),
            node: 1,
            index: None,
            mod_index: None,
            txn: None,
            scan: None,
        }
    }

    fn put(key: &str, value: &str) -> ClientOp {
        ClientOp::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    fn get(key: &str) -> ClientOp {
        ClientOp::Get {
            key: key.into(),
            read: ReadMode::Local,
        }
    }

    fn record(op: &ClientOp, reply: Option<&ClientResponse>, call_ms: u64, ret_ms: u64) -> Record {
        let operation = operation_of(7, op, reply, call_ms * 1000, ret_ms * 1000).unwrap();
        Record::Operation {
            at_ms: ret_ms,
            operation,
        }
    }

    fn view(down: &[u64], cut: &[(u64, u64)]) -> ClusterView {
        let node = |id| NodeView {
            id,
            state: if down.contains(&id) {
                ProcessState::Down
            } else {
                ProcessState::Up
            },
            role: None,
            ballot: None,
            ws: String::new(),
            pid: None,
            data_dir: String::new(),
            peer_addr: String::new(),
        };
        let link = |a, b| LinkView {
            a,
            b,
            connected: !cut.contains(&(a, b)),
            held: Vec::new(),
        };
        ClusterView {
            leader: Some(1),
            nodes: (1..=3).map(node).collect(),
            links: vec![link(1, 2), link(1, 3), link(2, 3)],
        }
    }

    fn held(mut view: ClusterView, from: u64, to: u64) -> ClusterView {
        let link = (view.links.iter_mut()).find(|l| (l.a, l.b) == (from.min(to), from.max(to)));
        link.unwrap().held.push(HeldView {
            from,
            to,
            waiting: 2,
        });
        view
    }

    #[test]
    fn page_requests_become_register_operations() {
        let o = operation_of(7, &get("k"), Some(&ok(Some("v"))), 1, 2).unwrap();
        assert_eq!(
            (o.key.as_str(), &o.op, o.ret_us),
            ("k", &Op::Get(Some("v".into())), Some(2))
        );
        // A read without an answer says nothing; a write without one may have happened.
        assert_eq!(operation_of(7, &get("k"), None, 1, 2), None);
        let w = operation_of(7, &put("k", "v"), None, 1, 2).unwrap();
        assert_eq!(w.ret_us, None);
        let cas = crate::client::cas_op("k", Some("b".into()), "value", "a").unwrap();
        let mut reply = ok(None);
        if let ClientResponse::Ok { txn, .. } = &mut reply {
            *txn = Some(TxnResult {
                succeeded: false,
                found: Vec::new(),
            });
        }
        let c = operation_of(7, &cas, Some(&reply), 1, 2).unwrap();
        let expected = Op::Cas {
            expect: Some("a".into()),
            new: Some("b".into()),
            succeeded: Some(false),
        };
        assert_eq!(c.op, expected);
        let by_index = crate::client::cas_op("k", Some("b".into()), "index", "3").unwrap();
        assert_eq!(operation_of(7, &by_index, Some(&reply), 1, 2), None);
    }

    #[test]
    fn a_stale_local_read_during_a_cut_is_not_linearizable() {
        let records = [
            record(&put("k", "1"), Some(&ok(None)), 10, 20),
            Record::Cluster {
                at_ms: 30,
                view: view(&[], &[(1, 3), (2, 3)]),
            },
            record(&put("k", "2"), Some(&ok(None)), 40, 50),
            record(&get("other"), Some(&ok(None)), 55, 56),
            record(&get("k"), Some(&ok(Some("1"))), 60, 61),
            Record::Cluster {
                at_ms: 70,
                view: view(&[], &[]),
            },
        ];
        let h = History::of(&records);
        assert_eq!(h.operations(), 4);
        // Drawn: the span of the fragment, from the first write's call to the read's return.
        assert_eq!(h.focus(100), Some((10_000, 61_000)));
        let bad = h.violation().expect("the stale read is found");
        assert_eq!(bad.key, "k");
        assert_eq!(bad.fragment, Some(vec![0, 1, 2]));
        assert!(h
            .keys
            .iter()
            .any(|k| k.key == "other" && k.fragment.is_none()));
        let cuts: Vec<_> = h
            .faults
            .iter()
            .map(|b| (b.what.as_str(), b.from_ms, b.to_ms))
            .collect();
        assert_eq!(
            cuts,
            [
                ("link 1–3 cut", 30, Some(70)),
                ("link 2–3 cut", 30, Some(70))
            ]
        );
    }

    #[test]
    fn an_ordinary_run_is_linearizable_even_over_values_written_before_it() {
        let records = [
            record(&get("k"), Some(&ok(Some("old"))), 1, 2),
            record(&put("k", "1"), Some(&ok(None)), 3, 4),
            record(&get("k"), Some(&ok(Some("1"))), 5, 6),
            Record::Control {
                at_ms: 7,
                path: format!("{SCENARIO_PATH_PREFIX}quorum-loss"),
            },
            Record::Cluster {
                at_ms: 8,
                view: view(&[2], &[]),
            },
            Record::Cluster {
                at_ms: 8,
                view: held(view(&[2], &[]), 1, 3),
            },
            Record::Cluster {
                at_ms: 9,
                view: view(&[2], &[]),
            },
            Record::Control {
                at_ms: 9,
                path: format!("{SCENARIO_PATH_PREFIX}heal"),
            },
        ];
        let h = History::of(&records);
        assert_eq!(h.violation(), None);
        assert_eq!(h.focus(3), None);
        assert_eq!(h.focus(2), Some((3_000, u64::MAX)));
        let faults: Vec<_> = h
            .faults
            .iter()
            .map(|b| (b.what.as_str(), b.to_ms))
            .collect();
        let expected = [
            ("scenario quorum-loss", Some(9)),
            ("link 1→3 held", Some(9)),
            ("node 2 down", None),
        ];
        assert_eq!(faults, expected);
    }
}
