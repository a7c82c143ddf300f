//! The inspector: a drawer over the page with every field of the selected node or message.

use web_sys::Document;

use super::{set_flag, Selection};
use crate::{
    describe,
    dom::el::{self, text},
    model::{role_str, ClusterModel, MessageView, NodeModel},
};

/// Draws the selection as `models[0]` (the picture) shows it; a message drawn after the cursor
/// (the diagram shows those too) is found in `models[1]`, the whole recording.
pub fn draw(doc: &Document, models: [&ClusterModel; 2], clock_ms: f64, selected: Selection) {
    let model = models[0];
    let Some(body) = el::by_id(doc, "inspector-rows") else {
        return;
    };
    if let Some(drawer) = el::by_id(doc, "inspector") {
        set_flag(&drawer, "hidden", selected == Selection::None);
    }
    let mut rows: Vec<(String, String)> = Vec::new();
    let title = match selected {
        Selection::None => String::new(),
        Selection::Node(id) => {
            if let Some(n) = model.nodes.get(&id) {
                node_rows(n, clock_ms, &mut rows);
            }
            format!("Node {id}")
        }
        Selection::Message(from, msg_id) => {
            let m = models.iter().find_map(|model| {
                model
                    .messages
                    .iter()
                    .rev()
                    .find(|m| m.info.from == from && m.info.msg_id == msg_id)
            });
            if let Some(m) = m {
                message_rows(m, &mut rows);
            }
            format!("Message {from}/{msg_id}")
        }
    };
    if let Some(t) = el::by_id(doc, "inspector-title") {
        text(&t, &title);
    }
    el::ensure_children(&body, rows.len(), || {
        let tr = el::html(doc, "tr", "");
        el::child(&tr, &el::html(doc, "th", ""));
        el::child(&tr, &el::html(doc, "td", ""));
        tr
    });
    for (i, (k, v)) in rows.iter().enumerate() {
        if let Some(tr) = el::nth(&body, i) {
            if let (Some(th), Some(td)) = (el::nth(&tr, 0), el::nth(&tr, 1)) {
                text(&th, k);
                text(&td, v);
            }
        }
    }
}

fn message_rows(m: &MessageView, rows: &mut Vec<(String, String)>) {
    for (k, v) in describe::message_fields(&m.info) {
        rows.push((k.to_string(), v));
    }
    rows.push(("sent".into(), format!("{} ms", m.sent_ms)));
    let rcv = m
        .received_ms
        .map(|r| format!("{} ms (+{} ms)", r, r.saturating_sub(m.sent_ms)))
        .unwrap_or_else(|| "not seen".into());
    rows.push(("received".into(), rcv));
}

fn node_rows(n: &NodeModel, clock_ms: f64, rows: &mut Vec<(String, String)>) {
    let b = |v: Option<omnikv_core::event::BallotView>| {
        v.map(|b| describe::ballot(&b)).unwrap_or("-".into())
    };
    let mut row = |k: &str, v: String| rows.push((k.to_string(), v));
    row("state", n.state().as_str().into());
    row("role", role_str(n.shown_role()).into());
    row(
        "leader",
        n.leader.map(|l| l.to_string()).unwrap_or("-".into()),
    );
    row("ballot", b(n.ballot));
    row("promise", b(n.promise));
    row("accepted_idx", n.accepted_idx.to_string());
    row("decided_idx", n.decided_idx.to_string());
    row("applied_idx", n.applied_idx.to_string());
    row("compacted_idx", n.compacted_idx.to_string());
    row("keys", n.kv.len().to_string());
    if let Some((d, at)) = n.digest {
        row("table digest", format!("{} at applied_idx {at}", d.short()));
    }
    if n.details_sampled > 0 {
        let what = format!("{} messages and client events", n.details_sampled);
        row("not drawn (busy)", what);
    }
    row("data dir", n.data_dir.clone());
    row("pid", n.pid.map(|p| p.to_string()).unwrap_or("-".into()));
    if n.started_at_ms > 0 {
        let up_s = ((clock_ms - n.started_at_ms as f64) / 1000.0).max(0.0);
        row("uptime", format!("{} s", up_s as u64));
    }
    row("peer addr", n.peer_addr.clone());
    let peers: Vec<String> = n
        .peers
        .iter()
        .map(|p| {
            let s = if !p.link_enabled {
                "cut"
            } else if p.connected {
                "up"
            } else {
                "down"
            };
            format!("{}:{s}", p.id)
        })
        .collect();
    row("peers", peers.join(" "));
    let stream = if n.stream_connected { "open" } else { "closed" };
    row("event stream", stream.into());
}
