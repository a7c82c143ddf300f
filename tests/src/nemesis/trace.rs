//! A nemesis run written as a trace the page opens: the clients' history as `operation`
//! records and the faults as the launcher's cluster views would have shown them (nodes down or
//! paused, links cut or held), so the page's History panel draws and checks the run with the
//! faults as bands. One file per run, under `ARTIFACTS_DIR` (else `tmp/artifacts`).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use omnikv_core::{
    control::{ClusterView, HeldView, LinkView, NodeView, ProcessState},
    linearizability::Operation,
    NodeId,
};
use omnikv_viz::{
    timeline::{Trace, TRACE_FORMAT, TRACE_VERSION},
    Record,
};
use tokio::time::Instant;

/// The faults in force at one moment, as the nemesis knows them.
pub struct FaultState {
    pub down: Vec<NodeId>,
    pub paused: Vec<NodeId>,
    /// Cut links, each once with the lower id first.
    pub cut: Vec<(NodeId, NodeId)>,
    /// Held directions (from, to).
    pub held: Vec<(NodeId, NodeId)>,
}

pub struct TraceWriter {
    /// The run's start on the Unix clock, in microseconds: the history's clock is relative to
    /// the start.
    start_unix_us: u64,
    start: Instant,
    ids: Vec<NodeId>,
    records: Vec<Record>,
    last: Option<ClusterView>,
}

impl TraceWriter {
    pub fn new(start: Instant, ids: Vec<NodeId>) -> TraceWriter {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let start_unix = since_epoch.saturating_sub(start.elapsed());
        TraceWriter {
            start_unix_us: start_unix.as_micros() as u64,
            start,
            ids,
            records: Vec::new(),
            last: None,
        }
    }

    fn unix_ms(&self, at: Instant) -> u64 {
        (self.start_unix_us + at.duration_since(self.start).as_micros() as u64) / 1000
    }

    /// Records the faults in force now, if they changed.
    pub fn faults(&mut self, state: &FaultState) {
        let view = self.view(state);
        if self.last.as_ref() != Some(&view) {
            let at_ms = self.unix_ms(Instant::now());
            self.records.push(Record::Cluster {
                at_ms,
                view: view.clone(),
            });
            self.last = Some(view);
        }
    }

    fn view(&self, state: &FaultState) -> ClusterView {
        let node = |id: NodeId| NodeView {
            id,
            state: if state.down.contains(&id) {
                ProcessState::Down
            } else if state.paused.contains(&id) {
                ProcessState::Paused
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
        let mut links = Vec::new();
        for (i, &a) in self.ids.iter().enumerate() {
            for &b in &self.ids[i + 1..] {
                let held = (state.held.iter())
                    .filter(|&&(f, t)| (f, t) == (a, b) || (f, t) == (b, a))
                    .map(|&(from, to)| HeldView {
                        from,
                        to,
                        waiting: 0,
                    })
                    .collect();
                let connected = !state.cut.contains(&(a.min(b), a.max(b)));
                links.push(LinkView {
                    a,
                    b,
                    connected,
                    held,
                });
            }
        }
        ClusterView {
            leader: None,
            nodes: self.ids.iter().map(|&id| node(id)).collect(),
            links,
        }
    }

    /// Writes the trace with the clients' `history` (times in microseconds since the start);
    /// returns the file's path.
    pub fn write(mut self, history: &[Operation], seed: u64) -> std::io::Result<PathBuf> {
        for o in history {
            let mut operation = o.clone();
            operation.call_us += self.start_unix_us;
            operation.ret_us = o.ret_us.map(|us| us + self.start_unix_us);
            let at_us = operation.ret_us.unwrap_or(operation.call_us);
            self.records.push(Record::Operation {
                at_ms: at_us / 1000,
                operation,
            });
        }
        self.records.sort_by_key(Record::at_ms);
        let trace = Trace {
            format: TRACE_FORMAT.into(),
            version: TRACE_VERSION,
            dropped: 0,
            records: self.records,
        };
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir)?;
        let started = Duration::from_micros(self.start_unix_us).as_secs();
        let path = dir.join(format!("nemesis-{seed}-{started}.trace.bin"));
        std::fs::write(&path, omnikv_core::wire::encode_postcard(&trace))?;
        Ok(path)
    }
}

/// Where test runs leave what a person may want to look at afterwards.
fn artifacts_dir() -> PathBuf {
    match std::env::var_os("ARTIFACTS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tmp/artifacts"),
    }
}
