//! Functions exported to JavaScript for the Node.js client (`web/omnikv.mjs`): decode frames and
//! build requests with the core types, so JavaScript never hand-writes the wire format.
//!
//! Numbers cross as `f64` (exact below 2^53) so JavaScript needs no BigInt.

use omnikv_core::{
    client::ClientResponse,
    control::ClusterView,
    decode_json,
    event::{frame_events, EventEnvelope},
    limits::CLIENT_FRAME_BYTES_MAX,
};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::{client, describe, reducer::Record};
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
#[wasm_bindgen(js_name = describeEvents)]
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
#[wasm_bindgen(js_name = clientRequest)]
pub fn client_request(
    client_id: f64,
    seq: f64,
    op: &str,
    key: &str,
    value: &str,
    read: &str,
) -> Result<String, JsError> {
    let op = client::op_from_parts(op, key, value, read).map_err(|e| JsError::new(&e))?;
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

/// The `/client` frame that opens a session; `nonce` pairs the reply with it.
#[wasm_bindgen(js_name = openSessionRequest)]
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
}

/// Interprets a `/client` reply frame as JSON `{ok, retry, value, text}`.
#[wasm_bindgen(js_name = interpretResponse)]
pub fn interpret_response(frame: &str) -> Result<String, JsError> {
    let response: ClientResponse = decode_json(frame.as_bytes(), CLIENT_FRAME_BYTES_MAX)
        .map_err(|e| JsError::new(&format!("bad reply frame: {e}")))?;
    let (ok, retry, value, index) = match &response {
        ClientResponse::Ok { value, index, .. } => (true, false, value.clone(), *index),
        // The one retry rule: the same request again, through another node.
        ClientResponse::Err { error, .. } => (false, error.retryable(), None, None),
    };
    let out = Interpreted {
        ok,
        retry,
        value,
        index,
        text: client::describe_response(&response),
    };
    serde_json::to_string(&out).map_err(|e| JsError::new(&e.to_string()))
}

#[derive(Serialize)]
struct Target {
    id: u64,
    ws: String,
}

/// The nodes to send client requests to, as JSON `[{id, ws}]`: up nodes, leader first.
#[wasm_bindgen(js_name = clientTargets)]
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
#[wasm_bindgen(js_name = eventsUrl)]
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
            Err(e) => Record::Notice {
                at_ms,
                text: format!("node {node}: bad event ignored: {e}"),
            },
        })
        .collect()
}
