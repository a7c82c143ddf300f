//! Functions exported to JavaScript for the Node.js client (`web/omnikv.mjs`): decode frames and
//! build requests with the core types, so JavaScript never hand-writes the wire format.
//!
//! Numbers cross as `f64` (exact below 2^53) so JavaScript needs no BigInt.

use omnikv_core::{
    client::{ClientOp, ClientResponse, ReadMode},
    control::ClusterView,
    decode_json,
    event::{frame_events, postcard_frame_events, EventEnvelope},
    limits::CLIENT_FRAME_BYTES_MAX,
    scan::ScanRange,
    txn::{parse_batch, Found},
    watch::{Change, WatchFrame, WatchRequest, WATCH_FRAME_BYTES_MAX},
};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::{client, describe, record::Record};
use omnikv_core::NodeId;

/// Largest event frame the page and the CLI accept (events carry at most a few hundred keys).
pub const EVENT_FRAME_BYTES_MAX: usize = 1 << 20;
/// Largest cluster view accepted.
pub const CLUSTER_BYTES_MAX: usize = 1 << 20;

pub fn decode_event(frame: &str) -> Result<EventEnvelope, String> {
    decode_json(frame.as_bytes(), EVENT_FRAME_BYTES_MAX).map_err(|e| e.to_string())
}

pub fn decode_cluster(text: &str) -> Result<ClusterView, String> {
    decode_json(text.as_bytes(), CLUSTER_BYTES_MAX).map_err(|e| e.to_string())
}

/// One line per event of an event frame (`watch`).
#[cfg_attr(feature = "node-api", wasm_bindgen(js_name = describeEvents))]
pub fn describe_events(frame: &str) -> Result<String, JsError> {
    let mut lines = Vec::new();
    for event in frame_events(frame) {
        let env = decode_event(event).map_err(|e| JsError::new(&format!("bad event: {e}")))?;
        lines.push(describe::event_line(&env));
    }
    Ok(lines.join("\n"))
}

/// The `/client` request frame for `op` ("put", "get", "delete"), validated against the limits.
/// A write needs the id of an open session as `client_id` (see `openSessionRequest`); `seq`
/// is the session's first, so nothing below it needs remembering.
#[cfg_attr(feature = "node-api", wasm_bindgen(js_name = clientRequest))]
pub fn client_request(
    client_id: f64,
    seq: f64,
    op: &str,
    key: &str,
    value: &str,
    read: &str,
) -> Result<String, JsError> {
    let op = client::op_from_parts(op, key, value, read).map_err(|e| JsError::new(&e))?;
    request_frame(client_id, seq, op)
}

/// The validated `/client` frame of `op` as request `seq` of `client_id`.
fn request_frame(client_id: f64, seq: f64, op: ClientOp) -> Result<String, JsError> {
    let request = omnikv_core::client::ClientRequest {
        id: omnikv_core::RequestId {
            client: client_id as u64,
            seq: seq as u64,
        },
        op,
        forget_below: seq as u64,
    };
    request
        .validate()
        .map_err(|e| JsError::new(&e.to_string()))?;
    serde_json::to_string(&request).map_err(|e| JsError::new(&e.to_string()))
}

/// The keys named by `prefix`, or `[from, to)` (empty strings: not given).
fn keys(prefix: &str, from: &str, to: &str) -> ScanRange {
    let given = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    ScanRange {
        prefix: given(prefix),
        start: given(from),
        end: given(to),
        ..ScanRange::default()
    }
}

/// A scan page request (a read: `client_id` is any number that pairs the reply), continuing
/// after `after` (empty: from the first key).
#[cfg_attr(feature = "node-api", wasm_bindgen(js_name = scanRequest))]
#[allow(clippy::too_many_arguments)]
pub fn scan_request(
    client_id: f64,
    seq: f64,
    prefix: &str,
    from: &str,
    to: &str,
    after: &str,
    limit: f64,
    local: bool,
) -> Result<String, JsError> {
    let range = ScanRange {
        after: (!after.is_empty()).then(|| after.to_owned()),
        limit: limit as u32,
        ..keys(prefix, from, to)
    };
    let read = if local {
        ReadMode::Local
    } else {
        ReadMode::Linearizable
    };
    request_frame(client_id, seq, ClientOp::Scan { range, read })
}

/// A compare-and-swap of `key` to `value` (`None`: delete it) if it holds `expect` (`expect_kind`
/// "value"), is absent ("absent") or was last written at index `expect` ("index").
#[cfg_attr(feature = "node-api", wasm_bindgen(js_name = casRequest))]
pub fn cas_request(
    client_id: f64,
    seq: f64,
    key: &str,
    value: Option<String>,
    expect_kind: &str,
    expect: &str,
) -> Result<String, JsError> {
    let op = client::cas_op(key, value, expect_kind, expect).map_err(|e| JsError::new(&e))?;
    request_frame(client_id, seq, op)
}

/// A batch from JSON lines, as `omnikv batch` reads them (`omnikv_core::txn::parse_batch`).
#[cfg_attr(feature = "node-api", wasm_bindgen(js_name = batchRequest))]
pub fn batch_request(client_id: f64, seq: f64, lines: &str) -> Result<String, JsError> {
    let (guards, ops) = parse_batch(lines).map_err(|e| JsError::new(&e))?;
    request_frame(client_id, seq, ClientOp::Txn { guards, ops })
}

/// The `/watch` request for the keys named, from `from_index` (`None`: from now).
#[cfg_attr(feature = "node-api", wasm_bindgen(js_name = watchRequest))]
pub fn watch_request(prefix: &str, from: &str, to: &str, from_index: Option<f64>) -> String {
    let request = WatchRequest {
        range: keys(prefix, from, to),
        from_index: from_index.map(|i| i as u64),
    };
    serde_json::to_string(&request).expect("requests serialise")
}

#[derive(Serialize)]
struct WatchStep {
    /// One line per change (`Change::line`).
    lines: Vec<String>,
    /// Where to resume.
    up_to: Option<u64>,
    /// The node keeps changes from this index only; the watch is over.
    compacted: Option<u64>,
    error: Option<String>,
}

/// A `/watch` frame as JSON `{lines, up_to, compacted, error}`.
#[cfg_attr(feature = "node-api", wasm_bindgen(js_name = interpretWatchFrame))]
pub fn interpret_watch_frame(frame: &str) -> Result<String, JsError> {
    let frame: WatchFrame = decode_json(frame.as_bytes(), 2 * WATCH_FRAME_BYTES_MAX)
        .map_err(|e| JsError::new(&format!("bad watch frame: {e}")))?;
    let mut step = WatchStep {
        lines: Vec::new(),
        up_to: None,
        compacted: None,
        error: None,
    };
    match frame {
        WatchFrame::Changes { changes, up_to } => {
            step.lines = changes.iter().map(Change::line).collect();
            step.up_to = Some(up_to);
        }
        WatchFrame::Compacted { oldest_index } => step.compacted = Some(oldest_index),
        WatchFrame::Error { message } => step.error = Some(message),
    }
    serde_json::to_string(&step).map_err(|e| JsError::new(&e.to_string()))
}

/// The `/client` frame that opens a session; `nonce` pairs the reply with it.
#[cfg_attr(feature = "node-api", wasm_bindgen(js_name = openSessionRequest))]
pub fn open_session_request(nonce: f64) -> String {
    let request = omnikv_core::client::SessionClient::open_request(nonce as u64);
    serde_json::to_string(&request).expect("requests serialise")
}

#[derive(Serialize)]
struct Interpreted {
    ok: bool,
    /// The outcome is unknown: retry the same request on another node.
    retry: bool,
    /// The value read by a Get (`null` when absent or not a read).
    value: Option<String>,
    /// The log index the request was applied at: for `open_session`, the session's id.
    index: Option<u64>,
    text: String,
    /// A transaction's outcome (`null` for other requests).
    succeeded: Option<bool>,
    /// A scan page's `KEY<TAB>VALUE` lines, or a failed transaction's lines of what it found.
    lines: Vec<String>,
    /// Where the next scan page starts (`null`: the last page).
    next_after: Option<String>,
}

/// Interprets a `/client` reply frame as JSON `{ok, retry, value, text}`.
#[cfg_attr(feature = "node-api", wasm_bindgen(js_name = interpretResponse))]
pub fn interpret_response(frame: &str) -> Result<String, JsError> {
    let response: ClientResponse = decode_json(frame.as_bytes(), CLIENT_FRAME_BYTES_MAX)
        .map_err(|e| JsError::new(&format!("bad reply frame: {e}")))?;
    let text = client::describe_response(&response);
    let out = match response {
        ClientResponse::Ok {
            value,
            index,
            txn,
            scan,
            ..
        } => {
            let scan = scan.unwrap_or_default();
            let mut lines: Vec<String> = (scan.entries.iter())
                .map(|e| format!("{}\t{}", e.key, e.value))
                .collect();
            lines.extend(txn.iter().flat_map(|t| t.found.iter().map(Found::line)));
            Interpreted {
                ok: true,
                retry: false,
                value,
                index,
                text,
                succeeded: txn.map(|t| t.succeeded),
                lines,
                next_after: scan.next_after,
            }
        }
        // The one retry rule: the same request again, through another node.
        ClientResponse::Err { error, .. } => Interpreted {
            ok: false,
            retry: error.retryable(),
            value: None,
            index: None,
            text,
            succeeded: None,
            lines: Vec::new(),
            next_after: None,
        },
    };
    serde_json::to_string(&out).map_err(|e| JsError::new(&e.to_string()))
}

#[derive(Serialize)]
struct Target {
    id: u64,
    ws: String,
}

/// The nodes to send client requests to, as JSON `[{id, ws}]`: up nodes, leader first.
#[cfg_attr(feature = "node-api", wasm_bindgen(js_name = clientTargets))]
pub fn client_targets(cluster_json: &str) -> Result<String, JsError> {
    let view = decode_cluster(cluster_json).map_err(|e| JsError::new(&e))?;
    let targets: Vec<Target> = view
        .client_targets()
        .into_iter()
        .map(|n| Target {
            id: n.id,
            ws: n.ws.clone(),
        })
        .collect();
    serde_json::to_string(&targets).map_err(|e| JsError::new(&e.to_string()))
}

/// The event stream URL of node `node_id`.
#[cfg_attr(feature = "node-api", wasm_bindgen(js_name = eventsUrl))]
pub fn events_url(cluster_json: &str, node_id: f64) -> Result<String, JsError> {
    let view = decode_cluster(cluster_json).map_err(|e| JsError::new(&e))?;
    // Formatting the id as an integer keeps float printing (14 KB) out of the wasm.
    let node_id = node_id as u64;
    view.nodes
        .iter()
        .find(|n| n.id == node_id)
        .map(|n| format!("{}/events", n.ws.trim_end_matches('/')))
        .ok_or_else(|| JsError::new(&format!("no node {node_id} in the cluster")))
}

/// The records an `/events` frame of node `node` makes: one per event, and a notice per line
/// that does not decode.
pub fn frame_records(node: NodeId, text: &str, at_ms: u64) -> Vec<Record> {
    frame_events(text)
        .map(|line| match decode_event(line) {
            Ok(env) => Record::Event(env),
            Err(e) => bad_event(node, at_ms, e),
        })
        .collect()
}

/// The records a postcard `/events` frame of node `node` makes (the page's): one per event, and
/// a notice for the rest of the frame from the first event that does not decode.
pub fn postcard_frame_records(node: NodeId, frame: &[u8], at_ms: u64) -> Vec<Record> {
    if frame.len() > EVENT_FRAME_BYTES_MAX {
        let e = format!("a frame of {} bytes", frame.len());
        return vec![bad_event(node, at_ms, e)];
    }
    postcard_frame_events(frame)
        .map(|decoded| match decoded {
            Ok(env) => Record::Event(env),
            Err(e) => bad_event(node, at_ms, e.to_string()),
        })
        .collect()
}

fn bad_event(node: NodeId, at_ms: u64, e: String) -> Record {
    Record::Notice {
        at_ms,
        text: format!("node {node}: bad event ignored: {e}"),
    }
}
