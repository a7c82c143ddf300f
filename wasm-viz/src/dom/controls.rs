//! Control actions on the live cluster (kill, pause, restart, links, scenarios): the request to
//! the launcher and the line that says how it went.

use omnikv_core::{control::ActionReply, limits::CONTROL_BODY_BYTES_MAX, wire::decode_postcard};
use web_sys::Document;

use super::{
    el::{self, text},
    net,
};
use crate::control::ControlRequest;

/// Posts `req`; returns the line to show and whether the launcher carried it out.
pub async fn post(req: &ControlRequest) -> (String, bool) {
    match net::http("POST", &req.path, req.body.clone()).await {
        Ok((_, body)) => match decode_postcard::<ActionReply>(&body, CONTROL_BODY_BYTES_MAX) {
            Ok(r) if r.ok => (format!("{}: {}", req.path, r.message), true),
            Ok(r) => (format!("{} failed: {}", req.path, r.message), false),
            Err(e) => (format!("{}: unreadable reply: {e}", req.path), false),
        },
        Err(e) => (format!("{} failed: {e}", req.path), false),
    }
}

/// The one-line status of the last action.
pub fn show_status(doc: &Document, line: &str) {
    if let Some(e) = el::by_id(doc, "action-status") {
        text(&e, line);
    }
}
