//! The page's model for Node.js: `top`, `tour` and `record` (`web/*.mjs`) feed an [`Observer`]
//! the same records the page records (cluster polls, event frames, stream openings), so the
//! terminal and the browser tell the same story from the same reducer and can never disagree.
//! JavaScript reads a dashboard (JSON) and the trace in the format the page's Import takes.

use omnikv_core::{control::ProcessState, NodeId};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::{
    api, describe, health,
    model::{role_str, ClusterModel},
    record::Record,
    timeline::{Timeline, RECORDS_CAP},
};

/// Client requests listed on the dashboard.
const REQUESTS_SHOWN: usize = 4;
/// The window messages per second are counted over.
const RATE_WINDOW_MS: u64 = 1000;

#[cfg_attr(feature = "node-api", wasm_bindgen)]
pub struct Observer {
    timeline: Timeline,
}

#[derive(Serialize)]
struct Dashboard {
    leader: Option<NodeId>,
    can_lose: String,
    nodes: Vec<NodeRow>,
    links: Vec<omnikv_core::control::LinkView>,
    messages_per_s: Vec<(String, u64)>,
    requests: Vec<String>,
    happened: Vec<Happened>,
}

#[derive(Serialize)]
struct NodeRow {
    id: NodeId,
    state: &'static str,
    role: &'static str,
    ballot: String,
    accepted: u64,
    decided: u64,
    applied: u64,
    compacted: u64,
    lag: Option<u64>,
    digest: Option<String>,
    /// The applied index `digest` is at (a node folds it beside its loop, so it trails).
    digest_at: Option<u64>,
    ws: String,
}

#[derive(Serialize)]
struct Happened {
    at_ms: u64,
    /// `HH:MM:SS.mmm`, UTC.
    time: String,
    text: String,
}

#[cfg_attr(feature = "node-api", wasm_bindgen)]
impl Observer {
    #[cfg_attr(feature = "node-api", wasm_bindgen(constructor))]
    pub fn new() -> Observer {
        Observer {
            timeline: Timeline::new(RECORDS_CAP),
        }
    }

    /// A poll of the launcher's `/api/cluster` (its text), at `now_ms` (wall clock).
    pub fn cluster(&mut self, json: &str, now_ms: f64) -> Result<(), JsError> {
        let view = api::decode_cluster(json).map_err(|e| JsError::new(&e))?;
        self.timeline.push(Record::Cluster {
            at_ms: now_ms as u64,
            view,
        });
        Ok(())
    }

    /// A frame of node `node`'s `/events` stream; undecodable lines become notices.
    pub fn events(&mut self, node: f64, frame: &str, now_ms: f64) {
        for record in api::frame_records(node as NodeId, frame, now_ms as u64) {
            self.timeline.push(record);
        }
    }

    /// The stream to node `node` opened or closed.
    pub fn stream(&mut self, node: f64, connected: bool, now_ms: f64) {
        self.timeline.push(Record::Stream {
            at_ms: now_ms as u64,
            node: node as NodeId,
            connected,
        });
    }

    /// A control action carried out (`/api/...` path), as the page records it.
    pub fn control(&mut self, path: &str, now_ms: f64) {
        self.timeline.push(Record::Control {
            at_ms: now_ms as u64,
            path: path.into(),
        });
    }

    /// Records kept.
    pub fn records(&self) -> f64 {
        self.timeline.len() as f64
    }

    /// The dashboard as JSON: nodes, links, messages per second by kind, the last client
    /// requests and what happened.
    pub fn dashboard(&self, now_ms: f64) -> String {
        let model = self.timeline.live_model();
        let dashboard = Dashboard {
            leader: model.shown_leader(),
            can_lose: health::can_lose_text(health::can_lose(model)),
            nodes: model
                .nodes
                .values()
                .map(|n| node_row(model, n.id))
                .collect(),
            links: model.links.clone(),
            messages_per_s: rates(model, now_ms as u64),
            requests: requests(model),
            happened: model
                .story
                .happenings
                .iter()
                .map(|h| Happened {
                    at_ms: h.at_ms,
                    time: clock(h.at_ms),
                    text: h.text.clone(),
                })
                .collect(),
        };
        serde_json::to_string(&dashboard).expect("the dashboard serialises")
    }

    /// Everything recorded, as a trace file the page's Import opens.
    pub fn trace(&self) -> Vec<u8> {
        self.timeline.export_bytes()
    }
}

impl Default for Observer {
    fn default() -> Observer {
        Observer::new()
    }
}

fn node_row(model: &ClusterModel, id: NodeId) -> NodeRow {
    let n = &model.nodes[&id];
    NodeRow {
        id,
        state: n.state().as_str(),
        role: role_str(n.shown_role()),
        ballot: n.ballot.as_ref().map_or("-".into(), describe::ballot),
        accepted: n.accepted_idx,
        decided: n.decided_idx,
        applied: n.applied_idx,
        compacted: n.compacted_idx,
        lag: health::lag_entries(model, id),
        digest: n
            .digest
            .filter(|_| n.process == Some(ProcessState::Up))
            .map(|(d, _)| d.short()),
        digest_at: n.digest.map(|(_, at)| at),
        ws: n.ws.clone(),
    }
}

/// Messages sent in the last second, by kind.
fn rates(model: &ClusterModel, now_ms: u64) -> Vec<(String, u64)> {
    let mut counts: Vec<(String, u64)> = Vec::new();
    let recent = model
        .messages
        .iter()
        .filter(|m| m.sent_ms + RATE_WINDOW_MS >= now_ms);
    for m in recent {
        let kind = describe::kind_name(m.info.kind);
        match counts.iter_mut().find(|(k, _)| k == kind) {
            Some((_, n)) => *n += 1,
            None => counts.push((kind.into(), 1)),
        }
    }
    counts
}

fn requests(model: &ClusterModel) -> Vec<String> {
    let start = model.client_log.len().saturating_sub(REQUESTS_SHOWN);
    model.client_log[start..]
        .iter()
        .map(|r| {
            let outcome = r
                .outcome
                .as_ref()
                .map_or("waiting".into(), describe::outcome);
            let ms = r
                .latency_us
                .map_or(String::new(), |us| format!(" in {} ms", us / 1000));
            format!("{} via node {}: {outcome}{ms}", describe::op(&r.op), r.node)
        })
        .collect()
}

/// `HH:MM:SS.mmm` (UTC) of a wall-clock time in milliseconds.
fn clock(ms: u64) -> String {
    let day_ms = ms % 86_400_000;
    let (h, m, s) = (day_ms / 3_600_000, day_ms / 60_000 % 60, day_ms / 1000 % 60);
    format!("{h:02}:{m:02}:{s:02}.{:03}", day_ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_reads_utc_time_of_day() {
        assert_eq!(clock(0), "00:00:00.000");
        assert_eq!(clock(86_400_000 + 3_723_004), "01:02:03.004");
    }
}
