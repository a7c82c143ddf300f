//! The held messages panel: one row per held direction of a link with messages waiting, and
//! the buttons that deliver the next one (named after it), the next five, all of them, drop
//! the first, or release the link (both directions deliver what waits and stop holding).

use omnikv_core::NodeId;
use web_sys::Document;

use super::{bool_str, set_flag};
use crate::{
    describe,
    dom::el::{self, attr, text},
    model::{ClusterModel, HeldDirection},
};

/// Kinds of waiting messages named in a row; the rest are counted.
const KINDS_NAMED: usize = 3;

/// The deliver button's words: what it delivers next, if the page knows.
pub fn deliver_label(model: &ClusterModel, from: NodeId, to: NodeId) -> String {
    let next = model.nodes.get(&from).and_then(|n| n.held_head(to).first());
    match next {
        Some(m) => format!("Deliver {} {from}->{to}", describe::kind_name(m.kind)),
        None => format!("Deliver next {from}->{to}"),
    }
}

fn make_row(doc: &Document) -> web_sys::Element {
    let li = el::html(doc, "li", "held-row");
    attr(&li, "data-action", "select-held");
    el::child(&li, &el::html(doc, "span", "summary"));
    for (action, words) in [
        ("deliver", ""),
        ("deliver-five", "5"),
        ("deliver-all", "All"),
        ("drop-held", "Drop"),
        ("release-held", "Release"),
    ] {
        let b = el::html(doc, "button", action);
        attr(&b, "type", "button");
        attr(&b, "data-action", action);
        text(&b, words);
        el::child(&li, &b);
    }
    li
}

pub fn draw(doc: &Document, model: &ClusterModel, selected: Option<(NodeId, NodeId)>) {
    let Some(list) = el::by_id(doc, "held-list") else {
        return;
    };
    // Directions with nothing waiting have nothing to act on; the ring shows them held.
    let rows: Vec<HeldDirection> = (model.held_directions().into_iter())
        .filter(|d| d.waiting > 0)
        .collect();
    set_flag(&list, "hidden", rows.is_empty());
    el::ensure_children(&list, rows.len(), || make_row(doc));
    for (i, d) in rows.iter().enumerate() {
        let Some(li) = el::nth(&list, i) else {
            continue;
        };
        let (a, b) = (d.from.to_string(), d.to.to_string());
        let head = model
            .nodes
            .get(&d.from)
            .map_or(&[][..], |n| n.held_head(d.to));
        let mut kinds: Vec<&str> = (head.iter().take(KINDS_NAMED))
            .map(|m| describe::kind_name(m.kind))
            .collect();
        if d.waiting as usize > kinds.len() {
            kinds.push("…");
        }
        let summary = format!(
            "{}→{} · {} waiting {}",
            d.from,
            d.to,
            d.waiting,
            kinds.join(" ")
        );
        let selected = selected == Some((d.from, d.to));
        attr(&li, "data-selected", bool_str(selected));
        attr(&li, "data-from", &a);
        attr(&li, "data-to", &b);
        let children = li.children();
        for k in 0..children.length() {
            let Some(c) = children.item(k) else { continue };
            attr(&c, "data-a", &a);
            attr(&c, "data-b", &b);
            match c.class_name().as_str() {
                "summary" => text(&c, &summary),
                "deliver" => {
                    let label = deliver_label(model, d.from, d.to);
                    text(&c, &label);
                    attr(&c, "aria-label", &label);
                }
                "deliver-all" => {
                    attr(
                        &c,
                        "aria-label",
                        &format!("Deliver all {}->{}", d.from, d.to),
                    );
                }
                "deliver-five" => {
                    attr(
                        &c,
                        "aria-label",
                        &format!("Deliver next 5 {}->{}", d.from, d.to),
                    );
                }
                "drop-held" => {
                    attr(&c, "aria-label", &format!("Drop next {}->{}", d.from, d.to));
                }
                "release-held" => {
                    attr(
                        &c,
                        "aria-label",
                        &format!("Release link {}-{}", d.from, d.to),
                    );
                }
                _ => {}
            }
        }
    }
}
