//! The client log: the newest client requests the nodes reported, with node, result, latency.

use web_sys::Document;

use crate::{
    describe,
    dom::el::{self, Slot},
    model::ClusterModel,
};

/// Client log rows shown.
const CLIENT_ROWS_SHOWN: usize = 25;

#[derive(Default)]
pub struct ClientLog {
    /// Per row of the client log: the row and its five cells.
    rows: Vec<Vec<Slot>>,
}

/// Microseconds as `12.3 ms`, without float formatting.
fn ms_text(us: u64) -> String {
    format!("{}.{} ms", us / 1000, (us % 1000) / 100)
}

impl ClientLog {
    pub fn draw(&mut self, doc: &Document, model: &ClusterModel) {
        let Some(body) = el::by_id(doc, "client-rows") else {
            return;
        };
        let rows: Vec<_> = model
            .client_log
            .iter()
            .rev()
            .take(CLIENT_ROWS_SHOWN)
            .collect();
        el::ensure_slots(
            &body,
            &mut self.rows,
            rows.len(),
            |r| &r[0].el,
            || {
                let tr = el::html(doc, "tr", "");
                let mut row = vec![Slot::new(tr.clone())];
                for _ in 0..4 {
                    let td = el::html(doc, "td", "");
                    el::child(&tr, &td);
                    row.push(Slot::new(td));
                }
                row
            },
        );
        for (slots, r) in self.rows.iter_mut().zip(&rows) {
            let status = match &r.outcome {
                None => "pending",
                Some(omnikv_core::event::RequestOutcome::Ok { .. }) => "ok",
                Some(_) => "err",
            };
            slots[0].attr("data-status", status);
            slots[0].attr("data-request", &format!("{}/{}", r.id.client, r.id.seq));
            let cells = [
                describe::op(&r.op),
                if r.attempts > 1 {
                    format!("{} ({} tries)", r.node, r.attempts)
                } else {
                    r.node.to_string()
                },
                r.outcome
                    .as_ref()
                    .map(describe::outcome)
                    .unwrap_or_else(|| "…".into()),
                r.latency_us.map(ms_text).unwrap_or_default(),
            ];
            let id = format!("request {}/{}", r.id.client % 10_000, r.id.seq);
            slots[0].attr("title", &format!("{}  ({id})", cells.join("  ")));
            for (td, c) in slots[1..].iter_mut().zip(&cells) {
                td.text(c);
            }
        }
    }
}
